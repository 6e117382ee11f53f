//! Access control route by route: anonymous and under-privileged requests are refused, and
//! forms need the session's token and parley's own origin.

use parley::app::accounts::Role;

use crate::helpers::{
    backoffice::{Agent, PASSWORD, location, offline_message, sales_department, signed_in},
    spawn_app,
};

/// Every back-office route: method, path, and who may use it (`None`: anyone).
fn routes(
    chat: &str,
    offline: i64,
    manager: i64,
    department: i64,
) -> Vec<(&'static str, String, Option<Role>)> {
    let m = Some(Role::Manager);
    let a = Some(Role::Admin);
    vec![
        ("GET", "/admin".into(), m),
        ("GET", "/admin/chats".into(), m),
        ("GET", format!("/admin/chats/{chat}"), m),
        ("GET", format!("/admin/chats/{chat}/export.json"), m),
        ("GET", format!("/admin/chats/{chat}/export.txt"), m),
        ("GET", format!("/admin/chats/{chat}/delete"), m),
        ("GET", format!("/admin/chats/{chat}/files/none"), m),
        ("GET", "/admin/offline".into(), m),
        ("POST", format!("/admin/offline/{offline}/handled"), m),
        ("GET", "/admin/departments".into(), m),
        ("GET", "/admin/departments/new".into(), m),
        ("POST", "/admin/departments".into(), m),
        ("GET", format!("/admin/departments/{department}"), m),
        ("POST", format!("/admin/departments/{department}"), m),
        ("GET", format!("/admin/departments/{department}/delete"), m),
        ("GET", "/admin/audit".into(), a),
        ("GET", "/admin/settings".into(), a),
        ("POST", "/admin/settings/test".into(), a),
        ("POST", "/admin/settings/connection/teams".into(), a),
        ("POST", "/admin/settings/connection/channels".into(), a),
        ("POST", "/admin/settings/connection/test".into(), a),
        ("POST", "/admin/settings/connection".into(), a),
        ("GET", "/admin/managers".into(), a),
        ("POST", format!("/admin/managers/{manager}/disable"), a),
        ("POST", format!("/admin/managers/{manager}/enable"), a),
        ("POST", format!("/admin/managers/{manager}/reset"), a),
        ("POST", "/admin/managers".into(), a),
        ("POST", "/admin/settings".into(), a),
        // Last: these end what they act on.
        ("POST", format!("/admin/chats/{chat}/delete"), m),
        ("POST", format!("/admin/departments/{department}/delete"), m),
        ("POST", "/admin/logout".into(), m),
    ]
}

#[tokio::test]
async fn every_route_refuses_anonymous_and_under_privileged_requests() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Hello").await;
    let offline = offline_message(&app).await;
    let department = sales_department(&app).await;
    let (target, _) = app.invite("t@example.com", Role::Manager).await;
    let anonymous = Agent::new(&app);
    let manager = signed_in(&app, "m@example.com", Role::Manager).await;
    let manager_csrf = manager.csrf().await;

    for (method, path, role) in routes(&chat.id, offline, target.id, department) {
        let role = role.unwrap();
        // Anonymous: pages send to the sign-in page, actions are refused.
        let response = if method == "GET" {
            anonymous.get(&path).await
        } else {
            anonymous.post(&path, &[("csrf", "x")]).await
        };
        if method == "GET" {
            assert_eq!(response.status(), 303, "anonymous {method} {path}");
            assert!(
                location(&response).starts_with("/admin/login?next=%2Fadmin"),
                "anonymous {method} {path} → {}",
                location(&response)
            );
        } else {
            assert_eq!(response.status(), 401, "anonymous {method} {path}");
        }
        // A manager: admin routes are forbidden, even with a valid token.
        if role == Role::Admin {
            let response = if method == "GET" {
                manager.get(&path).await
            } else {
                manager.post(&path, &[("csrf", &manager_csrf)]).await
            };
            assert_eq!(response.status(), 403, "manager {method} {path}");
        }
    }

    // An admin may use every route; a manager every manager route.
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    for (method, path, role) in routes(&chat.id, offline, target.id, department) {
        let agents: Vec<&Agent> = if role == Some(Role::Manager)
            && !path.ends_with("logout")
            && !path.ends_with("/delete")
        {
            vec![&manager, &admin]
        } else {
            vec![&admin]
        };
        for agent in agents {
            let response = if method == "GET" {
                agent.get(&path).await
            } else {
                agent
                    .submit(&path, &[("email", "new@example.com"), ("role", "manager")])
                    .await
            };
            let status = response.status().as_u16();
            assert!(
                ![401, 403].contains(&status) && status != 303
                    || location(&response).starts_with("/admin")
                        && !location(&response).starts_with("/admin/login?"),
                "allowed {method} {path}: {status} → {}",
                location(&response)
            );
        }
    }
}

#[tokio::test]
async fn forms_without_the_session_token_or_from_another_origin_are_refused() {
    // Arrange
    let app = spawn_app().await;
    let chat = app.start_simple_chat("Please keep me").await;
    let offline = offline_message(&app).await;
    let department = sales_department(&app).await;
    let (target, _) = app.invite("t@example.com", Role::Manager).await;
    let admin = signed_in(&app, "a@example.com", Role::Admin).await;
    let other = signed_in(&app, "b@example.com", Role::Admin).await;
    let others_token = other.csrf().await;
    let token = admin.csrf().await;

    for (method, path, _) in routes(&chat.id, offline, target.id, department) {
        if method != "POST" {
            continue;
        }
        // Act and assert: no token, a wrong one, another session's one.
        for form in [
            vec![],
            vec![("csrf", "wrong")],
            vec![("csrf", others_token.as_str())],
        ] {
            let response = admin.post(&path, &form).await;
            assert_eq!(response.status(), 403, "POST {path} with {form:?}");
        }
        // The right token from another site.
        let response = admin
            .post_from("https://evil.example", &path, &[("csrf", token.as_str())])
            .await;
        assert_eq!(response.status(), 403, "POST {path} from another origin");
    }
    assert!(!app.chat_gone(&chat.id).await);
    assert_eq!(admin.page("/admin").await.0, 200, "still signed in");

    // The sign-in form is protected too (double-submit token).
    let anonymous = Agent::new(&app);
    let response = anonymous
        .post(
            "/admin/login",
            &[("email", "a@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(response.status(), 403);
}
