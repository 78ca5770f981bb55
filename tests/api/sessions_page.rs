//! The "Where am I signed in?" page (`GET/POST /sessions`) over HTTP: who sees what, what the
//! buttons end, and which posts are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use reqwest::{header, StatusCode};
use serde_json::json;
use support::{Reply, TestApp};

const PASSWORD: &str = "s3cret-pass";

/// Logs `user` in through the JSON API with this user agent (and optional forwarded address).
async fn login_as(app: &TestApp, user: &str, agent: &str, forwarded_for: Option<&str>) -> String {
    let mut req = app
        .http
        .post(format!("{}/v1/login", app.base))
        .header(header::USER_AGENT, agent)
        .json(&json!({"username": user, "password": PASSWORD}));
    if let Some(addr) = forwarded_for {
        req = req.header("X-Forwarded-For", addr);
    }
    let r = Reply::of(req.send().await.unwrap()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["key"].as_str().unwrap().to_string()
}

async fn page(app: &TestApp, key: &str) -> Reply {
    let r = app
        .http
        .get(format!("{}/sessions", app.base))
        .header(header::COOKIE, format!("pgusers_session={key}"))
        .send()
        .await
        .unwrap();
    Reply::of(r).await
}

/// The form token the page carries.
fn token_in(html: &str) -> String {
    let start = html.find("name=\"token\" value=\"").expect("a form token") + 20;
    html[start..].split('"').next().unwrap().to_string()
}

async fn post(app: &TestApp, key: &str, form: &[(&str, &str)], extra: &[(&str, &str)]) -> Reply {
    let mut req = app
        .http
        .post(format!("{}/sessions", app.base))
        .header(header::COOKIE, format!("pgusers_session={key}"))
        .form(form);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    Reply::of(req.send().await.unwrap()).await
}

async fn session_id_of(app: &TestApp, key: &str) -> i64 {
    let digest = pgusers::domain::KeyDigest::of(key);
    app.db
        .client()
        .await
        .query_one(
            "SELECT session_id FROM sessions WHERE key_digest = $1",
            &[&digest.as_bytes()],
        )
        .await
        .unwrap()
        .get(0)
}

#[actix_web::test]
async fn without_a_session_the_page_sends_the_browser_to_the_login_page() {
    let app = TestApp::start().await;
    for r in [
        app.get("/sessions", None).await,
        page(&app, "no-such-key").await,
        post(&app, "no-such-key", &[("end", "others")], &[]).await,
    ] {
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.headers[header::LOCATION], "/login?rd=%2Fsessions");
    }
}

#[actix_web::test]
async fn the_page_lists_ones_own_sessions_with_where_they_came_from_and_marks_this_device() {
    let app = TestApp::start().await;
    app.create_user("alice", PASSWORD, false).await;
    app.create_user("bob", PASSWORD, false).await;
    let evil_agent = format!("<script>alert(1)</script>\"&{}", "x".repeat(1000));
    let laptop = login_as(&app, "alice", "Laptop/1.0", Some("203.0.113.7")).await;
    let phone = login_as(&app, "alice", &evil_agent, None).await;
    let bobs = login_as(&app, "bob", "Bob/1.0", None).await;
    let (laptop_id, phone_id, bob_id) = (
        session_id_of(&app, &laptop).await,
        session_id_of(&app, &phone).await,
        session_id_of(&app, &bobs).await,
    );

    let r = page(&app, &laptop).await;
    assert_eq!(r.status, StatusCode::OK);
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    let html = &r.text;
    assert!(html.contains("id=\"username\">alice<"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("<script"),
        "no third-party assets, no script (the user agent is escaped): {html}"
    );
    let row = |id: i64| {
        let start = html
            .find(&format!("id=\"session-{id}\""))
            .unwrap_or_else(|| panic!("session {id} is listed: {html}"));
        html[start..].split("</tr>").next().unwrap().to_string()
    };
    let this = row(laptop_id);
    assert!(
        this.contains("this device") && this.contains("203.0.113.7") && this.contains("Laptop/1.0"),
        "the address after trusted-proxy resolution and the agent: {this}"
    );
    let other = row(phone_id);
    assert!(
        other.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;")
            && other.contains(&format!("name=\"end\" value=\"{phone_id}\""))
            && !other.contains("this device")
            && other.contains("127.0.0.1"),
        "{other}"
    );
    assert!(
        !html.contains(&format!("id=\"session-{bob_id}\"")),
        "only one's own sessions"
    );
    assert!(html.contains("id=\"end-others\""));

    // The same facts through the API, the user agent cut to 256 characters.
    let mine = app.get("/v1/me/sessions", Some(&laptop)).await;
    let sessions = mine.body["sessions"].as_array().unwrap();
    assert_eq!(sessions[0]["client_addr"], "203.0.113.7");
    assert_eq!(sessions[0]["user_agent"], "Laptop/1.0");
    assert_eq!(sessions[0]["remember"], false);
    let agent = sessions[1]["user_agent"].as_str().unwrap();
    assert_eq!(agent.chars().count(), 256);
    assert!(evil_agent.starts_with(agent));
}

#[actix_web::test]
async fn the_buttons_end_one_other_session_or_all_others_at_once() {
    let app = TestApp::start().await;
    app.create_user("carol", PASSWORD, false).await;
    app.create_user("dave", PASSWORD, false).await;
    let here = login_as(&app, "carol", "Here/1", None).await;
    let tablet = login_as(&app, "carol", "Tablet/1", None).await;
    let phone = login_as(&app, "carol", "Phone/1", None).await;
    let old = login_as(&app, "carol", "Old/1", None).await;
    let daves = login_as(&app, "dave", "Dave/1", None).await;
    // All are cached before they are ended: ending must reach the cache at once.
    for key in [&here, &tablet, &phone, &old, &daves] {
        assert_eq!(app.check(key).await.status, StatusCode::OK);
    }
    let token = token_in(&page(&app, &here).await.text);

    let tablet_id = session_id_of(&app, &tablet).await.to_string();
    let r = post(&app, &here, &[("token", &token), ("end", &tablet_id)], &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/sessions?ended=1");
    assert_eq!(app.check(&tablet).await.code(), "NOT_FOUND");
    assert_eq!(app.check(&phone).await.status, StatusCode::OK);
    let note = app
        .http
        .get(format!("{}/sessions?ended=1", app.base))
        .header(header::COOKIE, format!("pgusers_session={here}"))
        .send()
        .await
        .unwrap();
    assert!(note.text().await.unwrap().contains("Ended 1 session."));

    // Another user's session id ends nothing.
    let daves_id = session_id_of(&app, &daves).await.to_string();
    let r = post(&app, &here, &[("token", &token), ("end", &daves_id)], &[]).await;
    assert_eq!(r.headers[header::LOCATION], "/sessions?ended=0");
    assert_eq!(app.check(&daves).await.status, StatusCode::OK);

    let r = post(&app, &here, &[("token", &token), ("end", "others")], &[]).await;
    assert_eq!(r.headers[header::LOCATION], "/sessions?ended=2");
    assert_eq!(app.check(&phone).await.code(), "NOT_FOUND");
    assert_eq!(app.check(&old).await.code(), "NOT_FOUND");
    assert_eq!(app.check(&here).await.status, StatusCode::OK);
    assert_eq!(app.check(&daves).await.status, StatusCode::OK);
    let html = page(&app, &here).await.text;
    assert!(html.contains("id=\"only-this\""), "{html}");
    let events = app.admin(reqwest::Method::GET, "/v1/audit", None).await;
    assert!(
        events.text.contains("sessions_killed") && events.text.contains("session_killed"),
        "{}",
        events.text
    );

    // Ending this device's own session signs it out.
    let here_id = session_id_of(&app, &here).await.to_string();
    let r = post(&app, &here, &[("token", &token), ("end", &here_id)], &[]).await;
    assert_eq!(r.headers[header::LOCATION], "/login?rd=%2Fsessions");
    assert!(r.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(app.check(&here).await.code(), "NOT_FOUND");
}

#[actix_web::test]
async fn posts_from_another_site_or_without_the_pages_token_change_nothing() {
    let app = TestApp::start().await;
    app.create_user("erin", PASSWORD, false).await;
    let here = login_as(&app, "erin", "Here/1", None).await;
    let other = login_as(&app, "erin", "Other/1", None).await;
    let token = token_in(&page(&app, &here).await.text);
    let others_token = token_in(&page(&app, &other).await.text);
    assert_ne!(token, others_token, "each session's page has its own token");
    let all = [("token", token.as_str()), ("end", "others")];

    for (form, headers, what) in [
        (
            &all[..],
            &[("Sec-Fetch-Site", "cross-site")][..],
            "cross-site",
        ),
        (
            &all[..],
            &[("Sec-Fetch-Site", "same-site")][..],
            "same-site",
        ),
        (
            &all[..],
            &[("Origin", "http://evil.example")][..],
            "Origin elsewhere",
        ),
        (&[("end", "others")][..], &[][..], "no token"),
        (
            &[("token", others_token.as_str()), ("end", "others")][..],
            &[][..],
            "another session's token",
        ),
    ] {
        let r = post(&app, &here, form, headers).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}: {}", r.text);
        assert!(r.headers.get(header::SET_COOKIE).is_none());
        assert_eq!(app.check(&other).await.status, StatusCode::OK, "{what}");
    }
    let r = post(&app, &here, &[("token", &token), ("end", "nonsense")], &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // The page itself, loaded from this origin, still works.
    let r = post(&app, &here, &all, &[("Sec-Fetch-Site", "same-origin")]).await;
    assert_eq!(r.headers[header::LOCATION], "/sessions?ended=1");
    assert_eq!(app.check(&other).await.code(), "NOT_FOUND");
}

#[actix_web::test]
async fn the_page_shows_the_first_hundred_sessions_and_says_there_are_more() {
    let app = TestApp::start().await;
    let userid = app.create_user("frank", PASSWORD, false).await;
    let here = login_as(&app, "frank", "Here/1", None).await;
    app.db
        .client()
        .await
        .execute(
            "INSERT INTO sessions (key_digest, userid, created_at, last_seen_at, expires_at)
             SELECT sha256(('k' || i)::bytea), $1, now(), now(), now() + interval '1 hour'
             FROM generate_series(1, 120) i",
            &[&userid],
        )
        .await
        .unwrap();
    let html = page(&app, &here).await.text;
    assert_eq!(html.matches("<tr id=\"session-").count(), 100);
    assert!(
        html.contains("Showing the first 100 of 121 sessions"),
        "{html}"
    );
    assert!(html.contains("unknown"), "older sessions have no address");
}
