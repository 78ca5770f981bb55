//! No secret reaches the logs: a run through every kind of request at TRACE level (every
//! crate, the database driver included) is captured and searched for the passwords, session
//! keys and API token it used.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::json;
use support::{TestApp, TOKEN};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[actix_web::test]
async fn a_full_run_at_trace_level_logs_no_password_key_or_token() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let app = TestApp::start_with(|s| {
        s.throttle.account_failures = 2;
        s.metrics.enabled = true;
    })
    .await;
    let passwords = [
        "first-Secret-1",
        "second-Secret-2",
        "third-Secret-3",
        "wrong-Secret-4",
    ];
    let id = app.create_user("alice", passwords[0], true).await;
    let key = app.login("alice", passwords[0]).await;
    let other = app.login("alice", passwords[0]).await;
    app.check(&key).await;
    app.check("not-a-real-key-but-secret-ish").await;
    // The sessions page (its form token is derived from the key) and a remembered session
    // whose cookie forward auth re-issues.
    let page = app
        .http
        .get(format!("{}/sessions", app.base))
        .header("Cookie", format!("pgusers_session={other}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form_token = page
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's form token")
        .to_string();
    app.http
        .post(format!("{}/sessions", app.base))
        .header("Cookie", format!("pgusers_session={other}"))
        .form(&[("token", form_token.as_str()), ("end", "999999")])
        .send()
        .await
        .unwrap();
    let remembered = app
        .post(
            "/v1/login",
            None,
            json!({"username": "alice", "password": passwords[0], "remember": true}),
        )
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_string();
    app.clock.advance(chrono::Duration::seconds(120));
    let reissued = app
        .http
        .get(format!("{}/v1/auth", app.base))
        .header("Cookie", format!("pgusers_session={remembered}"))
        .send()
        .await
        .unwrap();
    assert!(reissued.headers().contains_key("set-cookie"));
    app.http
        .get(format!("{}/v1/auth", app.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    app.http
        .get(format!("{}/v1/auth/admin", app.base))
        .header("Cookie", format!("pgusers_session={other}"))
        .send()
        .await
        .unwrap();
    app.get("/v1/me", Some(&key)).await;
    app.request(
        Method::PUT,
        "/v1/me/password",
        Some(&key),
        Some(json!({"old_password": passwords[0], "new_password": passwords[1]})),
    )
    .await;
    app.request(
        Method::PUT,
        "/v1/me/password",
        Some(&key),
        Some(json!({"old_password": passwords[3], "new_password": passwords[2]})),
    )
    .await;
    app.admin(
        Method::PUT,
        &format!("/v1/users/{id}/password"),
        Some(json!({"new_password": passwords[2], "old_password": passwords[1]})),
    )
    .await;
    for _ in 0..3 {
        app.try_login("alice", passwords[3]).await;
    }
    // Secrets in the wrong places of malformed requests.
    app.post(
        "/v1/login",
        None,
        json!({"username": "alice", "pasword": passwords[3]}),
    )
    .await;
    app.admin(
        Method::POST,
        "/v1/users",
        Some(json!({"username": passwords[3], "password": 12345678, "email": "x"})),
    )
    .await;
    app.http
        .post(format!("{}/login", app.base))
        .form(&[("username", "alice"), ("password", passwords[3])])
        .send()
        .await
        .unwrap();
    app.get("/v1/users", Some("a-wrong-token-that-is-secret"))
        .await;
    app.get("/metrics", None).await;
    app.request(Method::POST, "/v1/logout", Some(&key), None)
        .await;
    app.daemon.services.janitor.run_now().await.unwrap();

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(
        logs.len() > 1000,
        "the run was logged ({} bytes)",
        logs.len()
    );
    for secret in passwords.iter().copied().chain([
        key.as_str(),
        other.as_str(),
        remembered.as_str(),
        form_token.as_str(),
        TOKEN,
        "a-wrong-token-that-is-secret",
    ]) {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
}
