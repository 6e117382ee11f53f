//! Signing in to the back office: the first-run link, the per-account limit on sign-ins and
//! its audit lines, and a disabled manager signed out.

use parley::app::accounts::Role;
use reqwest::header;

use crate::helpers::{
    backoffice::{Agent, PASSWORD, audit, location, log_in, signed_in, use_setup_link},
    spawn_app,
};

#[tokio::test]
async fn the_first_run_link_creates_the_first_admin_once() {
    // Arrange
    let app = spawn_app().await;
    let link = app
        .first_run_link()
        .await
        .expect("no manager yet, so there is a first-run link");
    assert!(link.starts_with(&format!("{}/admin/setup/", app.url)));

    // Act
    let agent = Agent::new(&app);
    let (_, html) = agent.page(&link).await;
    assert!(html.contains("Create the first admin"), "{html}");
    let response = use_setup_link(&agent, &link, Some("Boss@Example.com")).await;

    // Assert
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin");
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("parley_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http here: {cookie}");
    let (status, html) = agent.page("/admin").await;
    assert_eq!(status, 200);
    assert!(html.contains("Dashboard") && html.contains("boss@example.com"));
    assert!(html.contains("Settings"), "an admin sees the admin pages");
    let (status, _) = Agent::new(&app).page(&link).await;
    assert_eq!(status, 410, "the link works once");
    assert!(
        app.first_run_link().await.is_none(),
        "no first-run link once a manager exists"
    );
    let (agent2, response) = log_in(&app, "boss@example.com", PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(agent2.page("/admin").await.0, 200);
    let log = audit(&app).await;
    assert!(log.iter().any(|(a, _, _)| a == "first_admin_created"));
    assert!(
        log.iter()
            .any(|(a, who, _)| a == "sign_in" && who == "boss@example.com")
    );
}

#[tokio::test]
async fn sign_in_is_limited_per_account_and_failures_are_audited() {
    // Arrange
    let app = spawn_app().await;
    drop(signed_in(&app, "m@example.com", Role::Manager).await);

    // Act: five wrong passwords, then the right one.
    for _ in 0..5 {
        let (_, response) = log_in(&app, "m@example.com", "wrong password!").await;
        assert_eq!(response.status(), 401);
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("Wrong e-mail or password")
        );
    }
    let (_, response) = log_in(&app, "m@example.com", PASSWORD).await;

    // Assert
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    let (_, unknown) = log_in(&app, "nobody@example.com", PASSWORD).await;
    assert_eq!(unknown.status(), 401, "other accounts are not blocked");
    // Counted on one line per reason (see tests/api/signin_attacks.rs).
    let log = app.audit_entries().await;
    let failed: i64 = log
        .iter()
        .filter(|r| r.action == "sign_in_failed" && r.actor.as_deref() == Some("m@example.com"))
        .map(|r| r.attempts)
        .sum();
    assert_eq!(failed, 6, "{log:?}");
}

#[tokio::test]
async fn a_disabled_manager_is_signed_out_and_cannot_sign_in() {
    let app = spawn_app().await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    let manager = signed_in(&app, "m@example.com", Role::Manager).await;
    let id = app.manager_id("m@example.com").await;

    let response = admin
        .submit(&format!("/admin/managers/{id}/disable"), &[])
        .await;

    assert_eq!(response.status(), 303);
    assert_eq!(
        manager.get("/admin").await.status(),
        303,
        "the session ended"
    );
    let (_, response) = log_in(&app, "m@example.com", PASSWORD).await;
    assert_eq!(response.status(), 403);
    admin
        .submit(&format!("/admin/managers/{id}/enable"), &[])
        .await;
    let (_, response) = log_in(&app, "m@example.com", PASSWORD).await;
    assert_eq!(response.status(), 303);
    let log = audit(&app).await;
    assert!(
        log.iter()
            .any(|(a, _, t)| a == "manager_disabled" && t.contains("m@example.com"))
    );
}
