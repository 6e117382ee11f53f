//! Managers: invitations and new-password links from the back office and from
//! `parley admin create-manager`.

use parley::app::accounts::Role;

use crate::helpers::{
    backoffice::{Agent, signed_in, use_setup_link},
    binary::run_binary,
    spawn_app,
};

#[tokio::test]
async fn managers_are_invited_and_get_new_password_links() {
    let app = spawn_app().await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;

    let response = admin
        .submit(
            "/admin/managers",
            &[("email", "New.Person@example.com"), ("role", "manager")],
        )
        .await;
    assert_eq!(response.status(), 201);
    let html = response.text().await.unwrap();
    let start = html
        .find(&format!("{}/admin/setup/", app.url))
        .expect("the link is shown");
    let link: String = html[start..].chars().take_while(|c| *c != '<').collect();
    let invited = Agent::new(&app);
    assert_eq!(use_setup_link(&invited, &link, None).await.status(), 303);
    let (status, html) = invited.page("/admin/chats").await;
    assert_eq!(status, 200);
    assert!(
        !html.contains("/admin/settings"),
        "a manager sees no admin pages"
    );

    // The same e-mail again is refused clearly.
    let response = admin
        .submit(
            "/admin/managers",
            &[("email", "new.person@example.com"), ("role", "admin")],
        )
        .await;
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("exists already"));

    // A reset link sets a new password and ends the old sessions.
    let id = app.manager_id("new.person@example.com").await;
    let response = admin
        .submit(&format!("/admin/managers/{id}/reset"), &[])
        .await;
    let html = response.text().await.unwrap();
    let start = html.find(&format!("{}/admin/setup/", app.url)).unwrap();
    let reset: String = html[start..].chars().take_while(|c| *c != '<').collect();
    assert_eq!(
        use_setup_link(&Agent::new(&app), &reset, None)
            .await
            .status(),
        303
    );
    assert_eq!(
        invited.get("/admin").await.status(),
        303,
        "old session ended"
    );
    let (_, managers) = admin.page("/admin/managers").await;
    assert!(managers.contains("new.person@example.com"));
}

#[tokio::test]
async fn parley_admin_create_manager_prints_a_working_link() {
    let app = spawn_app().await;
    let dir = app.data_dir().to_path_buf();
    let envs = [
        ("PARLEY_DATABASE_URL", app.database_url()),
        ("PARLEY_PUBLIC_URL", app.url.clone()),
    ];

    let output = run_binary(
        &[
            "admin",
            "create-manager",
            "--email",
            "cli@example.com",
            "--role",
            "admin",
        ],
        &envs,
        &dir,
    )
    .await;

    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let link = out
        .lines()
        .find(|l| l.contains("/admin/setup/"))
        .expect("a link")
        .trim()
        .to_owned();
    let agent = Agent::new(&app);
    assert_eq!(use_setup_link(&agent, &link, None).await.status(), 303);
    let (_, html) = agent.page("/admin/settings").await;
    assert!(html.contains("Configuration in force"), "an admin");
    let again = run_binary(
        &["admin", "create-manager", "--email", "cli@example.com"],
        &envs,
        &dir,
    )
    .await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("reset-password"));
}
