//! Departments in the back office: create, preview, edit and delete, audited.

use parley::app::accounts::Role;
use serde_json::{Value, json};

use crate::helpers::{
    backoffice::{audit, location, signed_in},
    spawn_app,
};

#[tokio::test]
async fn managers_create_preview_edit_and_delete_departments_and_it_is_audited() {
    // Arrange
    let app = spawn_app().await;
    let agent = signed_in(&app, "m@example.com", Role::Manager).await;
    let (status, html) = agent.page("/admin/departments").await;
    assert_eq!(status, 200);
    assert!(html.contains("No departments"), "{html}");

    // Mistakes are refused with their field, and nothing is stored.
    let response = agent
        .submit(
            "/admin/departments",
            &[
                ("name", "Sales"),
                ("team", "support"),
                ("channel", "requests"),
                ("hours", "weekdays"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("hours:"));
    // A channel Mattermost does not know is refused, as by the CLI.
    let response = agent
        .submit(
            "/admin/departments",
            &[
                ("name", "Sales"),
                ("team", "support"),
                ("channel", "no-such-channel"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("channel `no-such-channel` not found")
    );
    assert!(app.departments().await.is_empty());

    // Preview: the templates filled with a sample visitor, visitor text escaped, not saved.
    let response = agent
        .submit(
            "/admin/departments",
            &[
                ("name", "Sales"),
                ("team", "support"),
                ("channel", "requests"),
                (
                    "request_template",
                    "@here **{department}**: {nick} ({email}) asks",
                ),
                ("first_post_template", "Hi {nick}, welcome to <Sales>"),
                ("action", "preview"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("@here **Sales**: Jane Doe (jane@example.com) asks"),
        "{html}"
    );
    assert!(html.contains("Hi Jane Doe, welcome to &lt;Sales&gt;"));
    assert!(html.contains("Chat: Jane Doe"), "default display name");
    assert!(app.departments().await.is_empty());

    // Create.
    let response = agent
        .submit(
            "/admin/departments",
            &[
                ("name", "Sales"),
                ("team", "support"),
                ("channel", "~requests"),
                ("hours", "Mon-Fri 9:00-17:30"),
                ("timezone", "Europe/Berlin"),
                ("greeting", "Questions about prices?"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let rows = app.departments().await;
    assert_eq!(rows.len(), 1);
    let id = rows[0].id;
    assert_eq!(rows[0].hours.as_deref(), Some("mon-fri 09:00-17:30"));
    assert_eq!(rows[0].channel, "requests");
    assert_eq!(
        location(&response),
        format!("/admin/departments/{id}?done=created")
    );
    let (_, html) = agent.page(&format!("/admin/departments/{id}")).await;
    assert!(html.contains("Questions about prices?") && html.contains("Preview"));
    let (_, html) = agent.page("/admin/departments").await;
    assert!(html.contains("Sales") && html.contains("mon-fri 09:00-17:30"));
    let status: Value = app.get_json(&app.api("/status")).await;
    assert_eq!(status["departments"][0]["name"], "Sales", "{status}");

    // Edit.
    let response = agent
        .submit(
            &format!("/admin/departments/{id}"),
            &[
                ("name", "Sales team"),
                ("team", "support"),
                ("channel", "requests"),
                ("timezone", "UTC"),
                ("title", "Talk to sales"),
                ("action", "save"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let row = app.department(id).await.unwrap();
    assert_eq!(row.name, "Sales team");
    assert_eq!(row.hours, None, "emptied: always open");
    assert_eq!(row.text_title.as_deref(), Some("Talk to sales"));
    assert_eq!(row.text_greeting, None);

    // Delete: refused while a chat of it is open, then done.
    let chat = app
        .start_chat(json!({"name": "Erika", "message": "Prices?", "department": id}))
        .await;
    let response = agent
        .submit(&format!("/admin/departments/{id}/delete"), &[])
        .await;
    assert_eq!(response.status(), 409);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("1 waiting or active chat")
    );
    assert!(app.department(id).await.is_some());
    let (_, html) = agent.page(&format!("/admin/chats/{}", chat.id)).await;
    assert!(html.contains("Sales team"), "the chat shows its department");
    let (_, html) = agent.page(&format!("/admin/chats?department={id}")).await;
    assert!(html.contains("Erika"), "department filter");
    let (_, html) = agent.page("/admin/chats?department=none").await;
    assert!(!html.contains("Erika"), "default department filter");
    assert!(app.close(&chat).await.status().is_success());
    let response = agent
        .submit(&format!("/admin/departments/{id}/delete"), &[])
        .await;
    assert_eq!(response.status(), 303);
    assert!(app.department(id).await.is_none());

    // Audited.
    let log = audit(&app).await;
    for action in [
        "department_created",
        "department_changed",
        "department_removed",
    ] {
        assert!(
            log.iter()
                .any(|(a, who, _)| a == action && who == "m@example.com"),
            "{action} in {log:?}"
        );
    }
    assert!(log.iter().any(|(a, _, detail)| a == "department_changed"
        && detail.contains("name: \"Sales\" → \"Sales team\"")));
}
