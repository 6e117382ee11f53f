//! Settings in the back office: validated, stored, served to the widget and audited.

use std::time::Duration;

use parley::app::accounts::Role;
use reqwest::header;
use serde_json::{Value, json};

use crate::helpers::{
    backoffice::{audit, signed_in},
    spawn_app,
};

#[tokio::test]
async fn settings_are_validated_stored_served_to_the_widget_and_audited() {
    let app = spawn_app().await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    let (status, html) = admin.page("/admin/settings").await;
    assert_eq!(status, 200);
    assert!(html.contains("PARLEY_MATTERMOST_TOKEN") && html.contains("set (hidden)"));
    // The live preview frames the demo page, which only parley's own pages may frame.
    assert!(
        html.contains("<iframe class=\"preview\" src=\"/\""),
        "{html}"
    );
    let demo = app.http.get(format!("{}/", app.url)).send().await.unwrap();
    let csp = demo.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert!(!html.contains(&app.bot.token), "the token is never shown");
    let defaults: Value = app.get_json(&app.api("/widget-config")).await;
    assert_eq!(defaults["title"], "Chat with us");

    let mut form = vec![
        ("title", "Talk to Acme"),
        ("color", "#AA3300"),
        ("greeting", "Hi! We answer within minutes."),
        ("position", "left"),
        ("name_field", "required"),
        ("email_field", "hidden"),
        ("delete_after_hours", "6"),
    ];
    let response = admin.submit("/admin/settings", &form).await;
    assert_eq!(response.status(), 303);
    let widget: Value = app.get_json(&app.api("/widget-config")).await;
    assert_eq!(
        widget,
        json!({"title": "Talk to Acme", "color": "#aa3300", "greeting": "Hi! We answer within minutes.",
               "position": "left", "fields": {"name": "required", "email": "hidden"}})
    );
    let delay = app.delete_after_in_force().await;
    assert_eq!(delay, Duration::from_secs(6 * 3600));
    let log = audit(&app).await;
    assert!(log.iter().any(|(a, _, d)| a == "settings_changed"
        && d.contains("widget.title")
        && d.contains("Talk to Acme")));

    form[1] = ("color", "red");
    let response = admin.submit("/admin/settings", &form).await;
    assert_eq!(response.status(), 422);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("the colour must look like #1f6feb")
    );
}
