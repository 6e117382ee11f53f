//! The client address behind a proxy: taken from the right of `X-Forwarded-For`, where the
//! trusted proxy wrote it, so a visitor's own header forges nothing (issue 12, item 3).

use parley::config::ProxyTrust;
use reqwest::header;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app_with};

/// What nginx with `$proxy_add_x_forwarded_for` sends for a client at `seen` that wrote
/// `forged` itself.
fn appended(forged: &str, seen: &str) -> String {
    format!("{forged}, {seen}")
}

async fn app_behind(trust: ProxyTrust) -> TestApp {
    spawn_app_with(|s| {
        s.proxy = trust;
        s.limits.chats_per_minute_per_ip = 5;
    })
    .await
}

fn one_proxy() -> ProxyTrust {
    ProxyTrust {
        enabled: true,
        hops: 1,
        networks: Vec::new(),
    }
}

async fn offline_message(app: &TestApp, xff: &str) -> u16 {
    app.http
        .post(app.api("/offline-messages"))
        .header("x-forwarded-for", xff)
        .json(&json!({"email": "erika@example.com", "message": "Call me back"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Offline messages accepted out of `tries`, each with a different forged leftmost entry.
async fn accepted_with_forged_entries(app: &TestApp, seen: &str, tries: usize) -> usize {
    let mut accepted = 0;
    for i in 0..tries {
        let forged = format!("10.{}.{}.1", i / 250, i % 250);
        let status = offline_message(app, &appended(&forged, seen)).await;
        assert!(matches!(status, 201 | 429), "status {status}");
        accepted += usize::from(status == 201);
    }
    accepted
}

#[tokio::test]
async fn a_forged_leftmost_entry_does_not_bypass_the_per_address_limit() {
    // Arrange
    let app = app_behind(one_proxy()).await;

    // Act
    let accepted = accepted_with_forged_entries(&app, "203.0.113.7", 40).await;

    // Assert: the limit is 5 a minute for the address the proxy saw.
    assert_eq!(accepted, 5, "forged entries made new addresses");
    // Another client behind the same proxy has its own budget.
    assert_eq!(offline_message(&app, "198.51.100.20").await, 201);
}

#[tokio::test]
async fn chats_and_the_audit_log_store_the_address_the_proxy_saw() {
    // Arrange
    let app = app_behind(one_proxy()).await;

    // Act: a chat from a client that forged two entries.
    let response = app
        .http
        .post(app.api("/chats"))
        .header("x-forwarded-for", "6.6.6.6, 7.7.7.7")
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"name": "Erika", "message": "Hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    let chat = app.chat(body["id"].as_str().unwrap()).await;

    // Assert
    assert_eq!(chat.visitor_ip.as_deref(), Some("203.0.113.7"));

    // Act: the first admin is created through the proxy by someone who forged an entry.
    let link = app.first_run_link().await.unwrap();
    let xff = appended("6.6.6.6", "198.51.100.30");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(&link)
        .header("x-forwarded-for", &xff)
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = page
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|c| c.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let html = page.text().await.unwrap();
    let start = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = &html[start..start + html[start..].find('"').unwrap()];
    let password = "correct horse battery staple";
    let response = http
        .post(&link)
        .header("x-forwarded-for", &xff)
        .header(header::COOKIE, cookies.join("; "))
        .form(&[
            ("csrf", csrf),
            ("email", "boss@example.com"),
            ("password", password),
            ("password2", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "the first admin is created");

    // Assert
    let rows = app.audit_entries().await;
    assert!(!rows.is_empty(), "the sign-up is audited");
    for row in rows {
        assert_eq!(row.ip.as_deref(), Some("198.51.100.30"), "{row:?}");
    }
}

#[tokio::test]
async fn with_two_proxies_the_client_is_the_second_entry_from_the_right() {
    // Arrange: a CDN appends the client, nginx appends the CDN.
    let app = app_behind(ProxyTrust {
        hops: 2,
        ..one_proxy()
    })
    .await;

    // Act
    let mut accepted = 0;
    for i in 0..20 {
        let xff = format!("10.0.0.{i}, 203.0.113.7, 192.0.2.{i}");
        accepted += usize::from(offline_message(&app, &xff).await == 201);
    }

    // Assert: neither the forged entry nor the CDN's (varying) address counts.
    assert_eq!(accepted, 5);
}

#[tokio::test]
async fn with_trusted_networks_only_a_trusted_peer_is_believed() {
    // Arrange: loopback (the test's own connection) is not a trusted proxy.
    let app = app_behind(ProxyTrust {
        networks: vec!["192.0.2.0/24".parse().unwrap()],
        ..one_proxy()
    })
    .await;

    // Act: every request claims another address.
    let mut accepted = 0;
    for i in 0..20 {
        accepted += usize::from(offline_message(&app, &format!("203.0.113.{i}")).await == 201);
    }

    // Assert: all were counted for the peer itself.
    assert_eq!(accepted, 5);
}

#[tokio::test]
async fn entries_that_are_not_addresses_are_not_trusted() {
    // Arrange
    let app = app_behind(one_proxy()).await;

    // Act: the entry where the proxy's should be is not an address (a proxy that passes the
    // header on unchanged, or a chain shorter than configured), after a valid forged one that
    // differs every time: any of them believed would make a budget of its own.
    let mut accepted = 0;
    for i in 0..20 {
        let bad = match i % 6 {
            0 => format!("203.0.113.{i}:443"),
            1 => format!("unknown{i}"),
            2 => format!("[2001:db8::{i}]"),
            3 => format!("203.0.113.{i} 6.6.6.6"),
            4 => format!("_hidden{i}"),
            _ => String::new(),
        };
        let xff = format!("10.9.0.{i}, {bad}");
        accepted += usize::from(offline_message(&app, &xff).await == 201);
    }

    // Assert: all of them fell back to the peer (the proxy) and shared its budget.
    assert_eq!(accepted, 5);
}
