//! The audit log page: searchable, and it shows the bridge's errors.

use parley::app::accounts::Role;

use crate::helpers::{
    backoffice::{log_in, signed_in},
    spawn_app, wait_until,
};

#[tokio::test]
async fn the_audit_log_is_searchable_and_shows_bridge_errors() {
    let app = spawn_app().await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    let _ = log_in(&app, "a@example.com", "not the password").await;
    app.sim.fail_next_requests(1, 400);
    app.start_simple_chat("refused").await;
    wait_until("the refusal is recorded", || async {
        !app.bridge_errors().await.is_empty()
    })
    .await;

    let (status, html) = admin.page("/admin/audit").await;
    assert_eq!(status, 200);
    assert!(html.contains("sign_in_failed") && html.contains("bridge_error"));
    let (_, html) = admin.page("/admin/audit?action=bridge_error").await;
    assert!(html.contains("sim.injected_failure") && !html.contains("<code>sign_in</code>"));
    let (_, html) = admin.page("/admin/audit?q=NOT+THE").await;
    assert!(
        html.contains("Nothing matches"),
        "passwords are never logged"
    );
    let (_, html) = admin.page("/admin/audit?q=wrong+e-mail").await;
    assert!(html.contains("sign_in_failed") && !html.contains("bridge_error</code>"));
}
