//! The back office as a browser drives it: an [`Agent`] that keeps cookies and sends the
//! session's CSRF token, signing in (setup links, the login form, a ready signed-in manager),
//! reading form fields and redirects, the audit log, and the data pages are about (a
//! department, an offline message).

use std::{collections::HashMap, sync::Mutex};

use parley::{app::accounts::Role, storage::departments::DepartmentRow};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use super::TestApp;

/// The password every test manager gets.
pub const PASSWORD: &str = "a long enough password";

/// A browser-like client: keeps cookies, follows no redirects.
pub struct Agent {
    base: String,
    http: reqwest::Client,
    cookies: Mutex<HashMap<String, String>>,
}

impl Agent {
    pub fn new(app: &TestApp) -> Self {
        Self::at(&app.url)
    }

    /// An agent for the parley at `base`.
    pub fn at(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Mutex::default(),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    fn with_cookies(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let cookies = self.cookies.lock().unwrap();
        if cookies.is_empty() {
            return request;
        }
        let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        request.header(header::COOKIE, header.join("; "))
    }

    fn keep_cookies(&self, response: &reqwest::Response) {
        let mut cookies = self.cookies.lock().unwrap();
        for value in response.headers().get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap();
            let pair = value.split(';').next().unwrap();
            let (name, v) = pair.split_once('=').unwrap();
            if v.is_empty() || value.contains("Max-Age=0") {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), v.to_owned());
            }
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        let response = self
            .with_cookies(self.http.get(self.url(path)))
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let response = self
            .with_cookies(self.http.post(self.url(path)).form(form))
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    /// POSTs a form (with the session's cookies) as if sent from a page of `origin`.
    pub async fn post_from(
        &self,
        origin: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.with_cookies(self.http.post(self.url(path)))
            .header(header::ORIGIN, origin)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// GETs a page and returns its status and HTML.
    pub async fn page(&self, path: &str) -> (StatusCode, String) {
        let response = self.get(path).await;
        (response.status(), response.text().await.unwrap())
    }

    /// The CSRF token of the session (read from any page's sign-out form).
    pub async fn csrf(&self) -> String {
        let (_, html) = self.page("/admin").await;
        field(&html, "csrf").expect("a signed-in page has a csrf field")
    }

    /// POSTs a form with the session's CSRF token.
    pub async fn submit(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let csrf = self.csrf().await;
        let mut all = form.to_vec();
        all.push(("csrf", &csrf));
        self.post(path, &all).await
    }
}

/// The value of the first `<input name="…" value="…">` in a page.
pub fn field(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("name=\"{name}\" value=\""))? + name.len() + 15;
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Opens a setup link and sets the password; the agent is signed in afterwards.
pub async fn use_setup_link(agent: &Agent, link: &str, email: Option<&str>) -> reqwest::Response {
    let (status, html) = agent.page(link).await;
    assert_eq!(status, 200, "the setup page opens: {html}");
    let csrf = field(&html, "csrf").unwrap();
    let mut form = vec![
        ("csrf", csrf.as_str()),
        ("password", PASSWORD),
        ("password2", PASSWORD),
    ];
    if let Some(email) = email {
        form.push(("email", email));
    }
    agent.post(link, &form).await
}

/// An agent signed in as a new manager with `role`.
pub async fn signed_in(app: &TestApp, email: &str, role: Role) -> Agent {
    let (_, link) = app.invite(email, role).await;
    let agent = Agent::new(app);
    let response = use_setup_link(&agent, &link, None).await;
    assert_eq!(response.status(), 303, "setting the password signs in");
    agent
}

/// An agent that signs in through the login form.
pub async fn log_in(app: &TestApp, email: &str, password: &str) -> (Agent, reqwest::Response) {
    let agent = Agent::new(app);
    let (_, html) = agent.page("/admin/login").await;
    let csrf = field(&html, "csrf").unwrap();
    let response = agent
        .post(
            "/admin/login",
            &[("email", email), ("password", password), ("csrf", &csrf)],
        )
        .await;
    (agent, response)
}

pub async fn audit(app: &TestApp) -> Vec<(String, String, String)> {
    app.audit_entries()
        .await
        .into_iter()
        .map(|r| {
            (
                r.action,
                r.actor.unwrap_or_default(),
                format!(
                    "{} {}",
                    r.target.unwrap_or_default(),
                    r.detail.unwrap_or_default()
                ),
            )
        })
        .collect()
}

/// A department as the back office or the CLI would save it (validate it first).
pub fn department(name: &str, team: &str, channel: &str) -> DepartmentRow {
    DepartmentRow::new(name, team, channel)
}

/// A department "Sales" routed to the simulator's team and requests channel.
pub async fn sales_department(app: &TestApp) -> i64 {
    app.add_department(department("Sales", "support", "requests"))
        .await
}

/// An offline message sent through the visitor API; returns its id.
pub async fn offline_message(app: &TestApp) -> i64 {
    let response = app
        .http
        .post(app.api("/offline-messages"))
        .json(&json!({"name": "Olga", "email": "olga@example.com", "message": "Call me back, please"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}
