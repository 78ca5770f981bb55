//! Logins, checks, sliding expiry, the janitor, logout, listing and killing sessions, the TTL
//! setting and self service, against a real PostgreSQL with a movable clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{Reply, TestApp};

#[actix_web::test]
async fn a_login_returns_a_cookie_safe_key_that_checks_as_the_user() {
    let app = TestApp::start().await;
    let id = app.create_user("alice", "s3cret-pass", true).await;
    let r = app
        .post(
            "/v1/login",
            None,
            json!({"username": "ALICE", "password": "s3cret-pass", "extra_data": {"ip": "10.0.0.1"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let key = r.body["key"].as_str().unwrap();
    assert!(
        key.len() >= 43
            && key
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    assert_eq!(r.body["userid"], id);
    assert_eq!(r.body["admin"], true);
    assert!(r.body["expires_at"].is_string());

    let c = app.check(key).await;
    assert_eq!(c.status, StatusCode::OK);
    assert_eq!(c.body["userid"], id);
    assert_eq!(c.body["username"], "alice");
    assert_eq!(c.body["email"], "alice@example.org");
    assert_eq!(c.body["admin"], true);
    assert_eq!(c.body["extra_data"], json!({"ip": "10.0.0.1"}));

    let stored: Vec<u8> = app
        .db
        .client()
        .await
        .query_one("SELECT key_digest FROM sessions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored.len(), 32);
    assert_ne!(stored, key.as_bytes(), "only a digest of the key is stored");
}

#[actix_web::test]
async fn unknown_users_and_wrong_passwords_look_the_same() {
    let app = TestApp::start().await;
    app.create_user("bob", "s3cret-pass", false).await;
    let wrong = app.try_login("bob", "password2").await;
    let unknown = app.try_login("nobody", "password2").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.code(), "INVALID_CREDENTIALS");
    assert_eq!(
        (wrong.status, wrong.text.clone()),
        (unknown.status, unknown.text.clone())
    );
    let missing = app
        .post("/v1/login", None, json!({"username": "bob"}))
        .await;
    assert_eq!(missing.code(), "BAD_CALL");
}

#[actix_web::test]
async fn unknown_keys_are_not_found_and_bad_bodies_are_bad_calls() {
    let app = TestApp::start().await;
    for key in ["nope", "", &"k".repeat(2000)] {
        let r = app.check(key).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "NOT_FOUND")
        );
    }
    let r = app
        .post("/v1/sessions/check", None, json!({"key": 5}))
        .await;
    assert_eq!(r.code(), "BAD_CALL");
    let r = app
        .post("/v1/sessions/check", None, json!({"key": "a", "more": 1}))
        .await;
    assert_eq!(r.code(), "BAD_CALL");
}

#[actix_web::test]
async fn an_oversized_body_is_413_and_deeply_nested_json_is_a_bad_call_that_harms_nothing() {
    let app = TestApp::start().await;
    let raw = |body: String| {
        app.http
            .post(format!("{}/v1/sessions/check", app.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let big = format!(r#"{{"key": "{}"}}"#, "k".repeat(70 * 1024));
    let r = Reply::of(raw(big).await.unwrap()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE")
    );
    let deep = format!(r#"{{"key": {}1{}}}"#, "[".repeat(5000), "]".repeat(5000));
    let r = Reply::of(raw(deep).await.unwrap()).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "BAD_CALL"));
    app.create_user("still", "correct horse battery", false)
        .await;
    let key = app.login("still", "correct horse battery").await;
    assert_eq!(
        app.check(&key).await.status,
        StatusCode::OK,
        "the daemon still answers"
    );
}

#[actix_web::test]
async fn checks_slide_the_expiry_and_an_unchecked_session_expires_then_is_purged() {
    let app = TestApp::start_with(|s| {
        s.session.ttl = std::time::Duration::from_secs(600);
        s.session.refresh_interval = std::time::Duration::from_secs(60);
    })
    .await;
    app.create_user("carol", "s3cret-pass", false).await;
    let key = app.login("carol", "s3cret-pass").await;

    // Checked every 5 minutes, the session outlives its first TTL many times over.
    for _ in 0..6 {
        app.clock.advance(Duration::seconds(300));
        assert_eq!(app.check(&key).await.status, StatusCode::OK);
    }
    // Left alone past the TTL, it expires.
    app.clock.advance(Duration::seconds(601));
    let r = app.check(&key).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNAUTHORIZED, "EXPIRED"));
    // Once expired for longer than the refresh interval (the most the stored expiry may lag
    // the true one), the janitor purges it; after that it is unknown.
    app.clock.advance(Duration::seconds(60));
    assert_eq!(app.check(&key).await.code(), "EXPIRED");
    let purged = app.daemon.services.janitor.run_now().await.unwrap();
    assert_eq!(purged, 1);
    assert_eq!(app.check(&key).await.code(), "NOT_FOUND");
}

/// A daemon with a one-hour TTL and a one-minute refresh interval, a user `name` logged in,
/// and the session's stored expiry at login.
async fn hour_long_session(name: &str) -> (TestApp, String, chrono::DateTime<chrono::Utc>) {
    let app = TestApp::start_with(|s| {
        s.session.ttl = std::time::Duration::from_secs(3600);
        s.session.refresh_interval = std::time::Duration::from_secs(60);
    })
    .await;
    app.create_user(name, "s3cret-pass", false).await;
    let key = app.login(name, "s3cret-pass").await;
    let at_login = app.stored_expiry(&key).await.unwrap();
    (app, key, at_login)
}

#[actix_web::test]
async fn the_stored_expiry_is_written_at_most_once_per_refresh_interval() {
    let (app, key, at_login) = hour_long_session("dan").await;
    app.clock.advance(Duration::seconds(30));
    assert_eq!(app.check(&key).await.status, StatusCode::OK);
    app.daemon.services.sessions.flush().await.unwrap();
    assert_eq!(
        app.stored_expiry(&key).await.unwrap(),
        at_login,
        "30 s of lag is within the interval"
    );
    app.clock.advance(Duration::seconds(31));
    let r = app.check(&key).await;
    // Written behind the answer: within 200 ms, or at once when asked (shutdown does).
    let mut stored = app.stored_expiry(&key).await.unwrap();
    for _ in 0..50 {
        if stored != at_login {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        stored = app.stored_expiry(&key).await.unwrap();
    }
    assert!(
        stored - at_login >= Duration::seconds(60),
        "61 s of lag is written"
    );
    let answered: chrono::DateTime<chrono::Utc> =
        r.body["expires_at"].as_str().unwrap().parse().unwrap();
    assert!((answered - stored).num_seconds().abs() <= 1);
}

#[actix_web::test]
async fn the_janitor_runs_on_its_own_schedule() {
    let app = TestApp::start_with(|s| {
        s.session.ttl = std::time::Duration::from_secs(60);
        s.janitor.interval = std::time::Duration::from_millis(200);
    })
    .await;
    app.create_user("erin", "s3cret-pass", false).await;
    app.login("erin", "s3cret-pass").await;
    app.login("erin", "s3cret-pass").await;
    // Expired for longer than the refresh interval (the most the stored expiry may lag).
    app.clock.advance(Duration::seconds(121));
    let client = app.db.client().await;
    let mut left = 2;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        left = client
            .query("SELECT 1 FROM sessions", &[])
            .await
            .unwrap()
            .len();
        if left == 0 {
            break;
        }
    }
    assert_eq!(left, 0, "expired sessions were purged without being asked");
}

#[actix_web::test]
async fn logout_ends_the_session() {
    let app = TestApp::start().await;
    app.create_user("fay", "s3cret-pass", false).await;
    let key = app.login("fay", "s3cret-pass").await;
    assert_eq!(app.check(&key).await.status, StatusCode::OK);
    let r = app
        .request(Method::POST, "/v1/logout", Some(&key), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.check(&key).await.code(), "NOT_FOUND");
    let again = app
        .request(Method::POST, "/v1/logout", Some(&key), None)
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    let none = app.request(Method::POST, "/v1/logout", None, None).await;
    assert_eq!(none.code(), "UNAUTHENTICATED");
}

#[actix_web::test]
async fn sessions_are_listed_and_killed_by_user_and_by_expiry_without_keys() {
    let app = TestApp::start_with(|s| s.session.ttl = std::time::Duration::from_secs(100)).await;
    let g = app.create_user("gus", "s3cret-pass", false).await;
    let h = app.create_user("hal", "s3cret-pass", false).await;
    let old = app.login("gus", "s3cret-pass").await;
    app.clock.advance(Duration::seconds(60));
    let gus_new = app.login("gus", "s3cret-pass").await;
    let hal = app.login("hal", "s3cret-pass").await;
    app.clock.advance(Duration::seconds(50));

    let all = app.admin(Method::GET, "/v1/sessions?userid=0", None).await;
    let sessions = all.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3);
    for s in sessions {
        for field in [
            "session_id",
            "userid",
            "username",
            "created_at",
            "expires_at",
            "last_seen_at",
            "extra_data",
        ] {
            assert!(s.get(field).is_some(), "{field}");
        }
    }
    for key in [&old, &gus_new, &hal] {
        assert!(
            !all.text.contains(key.as_str()),
            "a listing never shows keys"
        );
    }
    let gus_only = app
        .admin(Method::GET, &format!("/v1/sessions?userid={g}"), None)
        .await;
    assert_eq!(gus_only.body["sessions"].as_array().unwrap().len(), 2);
    let expired = app
        .admin(Method::GET, "/v1/sessions?userid=0&expired=true", None)
        .await;
    let expired = expired.body["sessions"].as_array().unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["userid"], g);

    let r = app.admin(Method::GET, "/v1/sessions", None).await;
    assert_eq!(r.code(), "BAD_CALL", "userid is required");
    let r = app
        .admin(Method::DELETE, "/v1/sessions?expired=true", None)
        .await;
    assert_eq!(r.code(), "BAD_CALL");

    let r = app
        .admin(Method::DELETE, "/v1/sessions?userid=0&expired=true", None)
        .await;
    assert_eq!(r.body, json!({"killed": 1}));
    assert_eq!(app.check(&old).await.code(), "NOT_FOUND");
    assert_eq!(app.check(&gus_new).await.status, StatusCode::OK);
    let r = app
        .admin(Method::DELETE, &format!("/v1/sessions?userid={h}"), None)
        .await;
    assert_eq!(r.body, json!({"killed": 1}));
    assert_eq!(
        app.check(&hal).await.code(),
        "NOT_FOUND",
        "a killed session is refused at once"
    );
    let r = app
        .admin(Method::DELETE, "/v1/sessions?userid=0", None)
        .await;
    assert_eq!(r.body, json!({"killed": 1}));
    assert_eq!(app.check(&gus_new).await.code(), "NOT_FOUND");
}

#[actix_web::test]
async fn one_session_is_killed_by_its_public_id() {
    let app = TestApp::start().await;
    app.create_user("ida", "s3cret-pass", false).await;
    let key = app.login("ida", "s3cret-pass").await;
    let other = app.login("ida", "s3cret-pass").await;
    assert_eq!(app.check(&key).await.status, StatusCode::OK);
    let listing = app.admin(Method::GET, "/v1/sessions?userid=0", None).await;
    let id = listing.body["sessions"][0]["session_id"].as_i64().unwrap();
    let r = app
        .admin(Method::DELETE, &format!("/v1/sessions/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.check(&key).await.code(), "NOT_FOUND");
    assert_eq!(app.check(&other).await.status, StatusCode::OK);
    let r = app
        .admin(Method::DELETE, &format!("/v1/sessions/{id}"), None)
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "NOT_FOUND"));
}

#[actix_web::test]
async fn the_ttl_can_be_set_through_the_api_and_reset_to_the_configured_one() {
    let app = TestApp::start_with(|s| s.session.ttl = std::time::Duration::from_secs(1000)).await;
    app.create_user("jo", "s3cret-pass", false).await;
    let settings = app.admin(Method::GET, "/v1/settings", None).await;
    assert_eq!(
        settings.body["session_ttl"],
        json!({"seconds": 1000, "source": "config"})
    );

    let r = app
        .admin(
            Method::PUT,
            "/v1/settings/session_ttl",
            Some(json!({"seconds": 60})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let settings = app.admin(Method::GET, "/v1/settings", None).await;
    assert_eq!(
        settings.body["session_ttl"],
        json!({"seconds": 60, "source": "api"})
    );
    let key = app.login("jo", "s3cret-pass").await;
    app.clock.advance(Duration::seconds(61));
    assert_eq!(
        app.check(&key).await.code(),
        "EXPIRED",
        "new sessions get the new TTL"
    );

    for bad in [
        json!({"seconds": 0}),
        json!({"seconds": 315_360_001}),
        json!({"seconds": "60"}),
        json!({}),
    ] {
        let r = app
            .admin(Method::PUT, "/v1/settings/session_ttl", Some(bad.clone()))
            .await;
        assert_eq!(r.code(), "BAD_CALL", "{bad}");
    }
    let r = app
        .admin(Method::DELETE, "/v1/settings/session_ttl", None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let settings = app.admin(Method::GET, "/v1/settings", None).await;
    assert_eq!(
        settings.body["session_ttl"],
        json!({"seconds": 1000, "source": "config"})
    );
}

#[actix_web::test]
async fn the_api_ttl_survives_a_restart_because_it_is_stored() {
    let app = TestApp::start().await;
    app.admin(
        Method::PUT,
        "/v1/settings/session_ttl",
        Some(json!({"seconds": 77})),
    )
    .await;
    let db = support::TestDb::create().await;
    drop(db);
    let mut settings = support::settings_for(&app.db.config);
    settings.session.ttl = std::time::Duration::from_secs(5000);
    let mut second =
        pgusers::daemon::startup::build(settings, app.clock.clone(), Default::default())
            .await
            .unwrap();
    let base = second.base_url().unwrap();
    second.spawn();
    let r = app
        .http
        .get(format!("{base}/v1/settings"))
        .bearer_auth(support::TOKEN)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["session_ttl"], json!({"seconds": 77, "source": "api"}));
}

#[actix_web::test]
async fn each_account_change_is_seen_by_the_very_next_check() {
    let app = TestApp::start().await;
    let id = app.create_user("kim", "s3cret-pass", true).await;
    let key = app.login("kim", "s3cret-pass").await;
    assert_eq!(app.check(&key).await.body["admin"], true);

    app.admin(
        Method::PATCH,
        &format!("/v1/users/{id}"),
        Some(json!({"username": "kimberly", "email": "k@x.org"})),
    )
    .await;
    let r = app.check(&key).await;
    assert_eq!(
        (r.body["username"].as_str(), r.body["email"].as_str()),
        (Some("kimberly"), Some("k@x.org"))
    );

    app.admin(
        Method::PUT,
        &format!("/v1/users/{id}/admin"),
        Some(json!({"admin": false})),
    )
    .await;
    let r = app.check(&key).await;
    assert_eq!(r.status, StatusCode::OK, "revoking admin ends nothing");
    assert_eq!(r.body["admin"], false);
}

#[actix_web::test]
async fn a_user_manages_their_own_account_and_sessions() {
    let app = TestApp::start().await;
    let id = app.create_user("lou", "s3cret-pass", false).await;
    let mine = app.login("lou", "s3cret-pass").await;
    let other = app.login("lou", "s3cret-pass").await;
    let third = app.login("lou", "s3cret-pass").await;

    let me = app.get("/v1/me", Some(&mine)).await;
    assert_eq!(
        (me.status, me.body["userid"].as_i64()),
        (StatusCode::OK, Some(id))
    );
    let cookie = app
        .http
        .get(format!("{}/v1/me", app.base))
        .header("Cookie", format!("pgusers_session={mine}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        cookie.status(),
        StatusCode::OK,
        "the session cookie works too"
    );
    assert_eq!(app.get("/v1/me", None).await.code(), "UNAUTHENTICATED");
    assert_eq!(
        app.get("/v1/me", Some("bogus")).await.status,
        StatusCode::UNAUTHORIZED
    );

    let list = app.get("/v1/me/sessions", Some(&mine)).await;
    assert_eq!(list.body["sessions"].as_array().unwrap().len(), 3);

    let r = app
        .request(
            Method::PUT,
            "/v1/me/password",
            Some(&mine),
            Some(json!({"old_password": "nope-nope", "new_password": "password2"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "REJECTED"));
    let r = app
        .request(
            Method::PUT,
            "/v1/me/password",
            Some(&mine),
            Some(json!({"old_password": "s3cret-pass", "new_password": "password2"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.check(&mine).await.status,
        StatusCode::OK,
        "the session that made the change stays"
    );
    assert_eq!(
        app.check(&other).await.code(),
        "NOT_FOUND",
        "other sessions end"
    );
    assert_eq!(app.check(&third).await.code(), "NOT_FOUND");

    let again = app.login("lou", "password2").await;
    let r = app
        .request(Method::DELETE, "/v1/me/sessions", Some(&mine), None)
        .await;
    assert_eq!(r.body, json!({"killed": 1}));
    assert_eq!(app.check(&again).await.code(), "NOT_FOUND");
    assert_eq!(app.check(&mine).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn an_admin_session_may_manage_and_keeps_itself_when_changing_its_own_password() {
    let app = TestApp::start().await;
    let id = app.create_user("max", "s3cret-pass", true).await;
    let key = app.login("max", "s3cret-pass").await;
    let second = app.login("max", "s3cret-pass").await;
    let r = app
        .request(
            Method::PUT,
            &format!("/v1/users/{id}/password"),
            Some(&key),
            Some(json!({"new_password": "password9"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.check(&key).await.status, StatusCode::OK);
    assert_eq!(app.check(&second).await.code(), "NOT_FOUND");
}

#[actix_web::test]
async fn an_absolute_lifetime_ends_a_session_however_often_it_is_checked() {
    let app = TestApp::start_with(|s| {
        s.session.ttl = std::time::Duration::from_secs(600);
        s.session.max_lifetime = Some(std::time::Duration::from_secs(1000));
    })
    .await;
    app.create_user("ned", "s3cret-pass", false).await;
    let key = app.login("ned", "s3cret-pass").await;
    for _ in 0..3 {
        app.clock.advance(Duration::seconds(300));
        assert_eq!(app.check(&key).await.status, StatusCode::OK);
    }
    app.clock.advance(Duration::seconds(101));
    assert_eq!(app.check(&key).await.code(), "EXPIRED");
}

#[actix_web::test]
async fn health_and_readiness_answer() {
    let app = TestApp::start().await;
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        ready.body["schema_version"],
        pgusers::store::migrate::latest_version()
    );
}

#[actix_web::test]
async fn with_the_cache_disabled_everything_still_works() {
    let app = TestApp::start_with(|s| s.session.cache_capacity = 0).await;
    let id = app.create_user("ola", "s3cret-pass", false).await;
    let key = app.login("ola", "s3cret-pass").await;
    assert_eq!(app.check(&key).await.status, StatusCode::OK);
    app.admin(
        Method::PATCH,
        &format!("/v1/users/{id}"),
        Some(json!({"username": "olaf"})),
    )
    .await;
    assert_eq!(app.check(&key).await.body["username"], "olaf");
}

#[actix_web::test]
async fn concurrent_uncached_checks_each_get_their_own_answer() {
    // One lookup query at a time (pool of 2): concurrent misses are answered in shared batches,
    // with repeated keys and unknown keys among them.
    let app = TestApp::start_with(|s| {
        s.session.cache_capacity = 0;
        s.database.pool_size = 2;
    })
    .await;
    let mut keys = Vec::new();
    for name in ["pia", "quin", "rae"] {
        app.create_user(name, "s3cret-pass", false).await;
        keys.push((name, app.login(name, "s3cret-pass").await));
    }
    let asked: Vec<(Option<&str>, String)> = (0..60)
        .map(|i| match i % 4 {
            3 => (None, format!("{}{i:02}", &keys[0].1[..41])),
            n => (Some(keys[n].0), keys[n].1.clone()),
        })
        .collect();
    let replies = futures_util::future::join_all(asked.iter().map(|(_, key)| app.check(key))).await;
    for ((owner, _), reply) in asked.iter().zip(&replies) {
        match owner {
            Some(name) => {
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
                assert_eq!(reply.body["username"], *name);
            }
            None => assert_eq!(reply.code(), "NOT_FOUND"),
        }
    }
}

#[actix_web::test]
async fn a_login_flood_beyond_the_hash_queue_gets_429_with_retry_after() {
    let app = TestApp::start_with(|s| {
        s.password.hash_threads = 1;
        s.password.hash_queue_limit = 1;
        s.password.argon2_memory_kib = 8192;
        s.password.argon2_iterations = 2;
    })
    .await;
    app.create_user("pat", "s3cret-pass", false).await;
    let flood = (0..8).map(|_| app.try_login("pat", "s3cret-pass"));
    let replies = futures_util::future::join_all(flood).await;
    let throttled: Vec<_> = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(!throttled.is_empty(), "some logins are turned away");
    assert!(
        replies.iter().any(|r| r.status == StatusCode::CREATED),
        "the others succeed"
    );
    for r in throttled {
        assert_eq!(r.code(), "TOO_MANY_REQUESTS");
        assert_eq!(r.headers["retry-after"], "1");
    }
}

#[actix_web::test]
async fn a_bug_answers_internal_with_a_correlation_id() {
    let app = TestApp::start().await;
    app.db
        .client()
        .await
        .batch_execute("DROP TABLE settings")
        .await
        .unwrap();
    let r = app
        .admin(
            Method::PUT,
            "/v1/settings/session_ttl",
            Some(json!({"seconds": 60})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL")
    );
    let id = r.body["correlation_id"].as_str().unwrap();
    assert_eq!(id.len(), 16);
    assert!(r.body["message"].as_str().unwrap().contains(id));
    assert!(
        !r.text.contains("settings"),
        "no internals reach the client"
    );
}

#[actix_web::test]
async fn shutting_down_writes_the_pending_expiry_refreshes() {
    let (app, key, at_login) = hour_long_session("quin").await;
    app.clock.advance(Duration::seconds(600));
    assert_eq!(app.check(&key).await.status, StatusCode::OK);
    app.daemon.shutdown().await;
    let stored = app.stored_expiry(&key).await.unwrap();
    assert!(
        stored - at_login >= Duration::seconds(600),
        "the slide survived the shutdown"
    );
}

/// Logs `username` in `n` times, a second apart; the keys, oldest first.
async fn logins(app: &TestApp, username: &str, n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    for _ in 0..n {
        keys.push(app.login(username, "s3cret-pass").await);
        app.clock.advance(Duration::seconds(1));
    }
    keys
}

#[actix_web::test]
async fn a_login_beyond_the_per_user_cap_ends_the_oldest_sessions_on_every_instance() {
    let app = TestApp::start_with(|s| s.session.max_per_user = 3).await;
    let b = app.another_instance(|s| s.session.max_per_user = 3).await;
    app.create_user("cap", "s3cret-pass", false).await;
    app.create_user("other", "s3cret-pass", false).await;
    let bystander = app.login("other", "s3cret-pass").await;
    let keys = logins(&app, "cap", 3).await;
    assert_eq!(
        app.check_on(&b, &keys[0]).await,
        StatusCode::OK,
        "instance B has the oldest session cached"
    );

    let keys = [keys, logins(&app, "cap", 2).await].concat();

    for old in &keys[..2] {
        assert_eq!(
            app.check(old).await.code(),
            "NOT_FOUND",
            "the two oldest end"
        );
    }
    for new in &keys[2..] {
        assert_eq!(
            app.check(new).await.status,
            StatusCode::OK,
            "the newest stay"
        );
    }
    let started = std::time::Instant::now();
    while app.check_on(&b, &keys[0]).await != StatusCode::UNAUTHORIZED {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "instance B still accepts an ended session"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mine = app.get("/v1/me/sessions", Some(&keys[4])).await;
    assert_eq!(mine.body["sessions"].as_array().unwrap().len(), 3);
    assert_eq!(
        app.check(&bystander).await.status,
        StatusCode::OK,
        "another user's sessions are untouched"
    );
}

#[actix_web::test]
async fn parallel_logins_leave_exactly_the_cap_and_none_is_refused() {
    let app = TestApp::start_with(|s| {
        s.session.max_per_user = 2;
        s.throttle.account_failures = 100;
    })
    .await;
    let id = app.create_user("rush", "s3cret-pass", false).await;
    let keys =
        futures_util::future::join_all((0..6).map(|_| app.login("rush", "s3cret-pass"))).await;
    let mut valid = 0;
    for key in &keys {
        if app.check(key).await.status == StatusCode::OK {
            valid += 1;
        }
    }
    assert_eq!(valid, 2, "six logins succeeded and the cap of two holds");
    let listed = app
        .admin(Method::GET, &format!("/v1/sessions?userid={id}"), None)
        .await;
    assert_eq!(listed.body["sessions"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn a_cap_of_zero_keeps_every_session() {
    let app = TestApp::start_with(|s| s.session.max_per_user = 0).await;
    app.create_user("many", "s3cret-pass", false).await;
    for key in &logins(&app, "many", 4).await {
        assert_eq!(app.check(key).await.status, StatusCode::OK);
    }
}

/// Follows `next_after` from the start with pages of `limit`; the session ids, page by page.
async fn pages(app: &TestApp, path: &str, key: Option<&str>, limit: usize) -> Vec<Vec<i64>> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut after = 0;
    let mut out = Vec::new();
    loop {
        let url = format!("{path}{sep}after={after}&limit={limit}");
        let r = match key {
            Some(k) => app.get(&url, Some(k)).await,
            None => app.admin(Method::GET, &url, None).await,
        };
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let ids: Vec<i64> = r.body["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["session_id"].as_i64().unwrap())
            .collect();
        assert!(ids.len() <= limit);
        out.push(ids.clone());
        match r.body["next_after"].as_i64() {
            Some(next) => {
                assert_eq!(Some(&next), ids.last(), "next_after is the page's last id");
                after = next;
            }
            None => return out,
        }
    }
}

#[actix_web::test]
async fn session_listings_come_in_pages_that_follow_next_after() {
    let app = TestApp::start().await;
    let id = app.create_user("pager", "s3cret-pass", false).await;
    app.create_user("else", "s3cret-pass", false).await;
    let keys = logins(&app, "pager", 5).await;
    app.login("else", "s3cret-pass").await;

    let mine = pages(&app, "/v1/me/sessions", Some(&keys[0]), 2).await;
    assert_eq!(mine.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let ids: Vec<i64> = mine.concat();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ordered by session_id");

    let theirs = pages(&app, &format!("/v1/sessions?userid={id}"), None, 2).await;
    assert_eq!(theirs.concat(), ids, "the admin sees the same sessions");
    let everyone = pages(&app, "/v1/sessions?userid=0", None, 3).await;
    assert_eq!(everyone.concat().len(), 6);
    assert_eq!(
        everyone.len(),
        3,
        "a full last page is followed by an empty one"
    );

    let whole = app.get("/v1/me/sessions", Some(&keys[0])).await;
    assert_eq!(whole.body["sessions"].as_array().unwrap().len(), 5);
    assert_eq!(
        whole.body["next_after"],
        json!(null),
        "one short page is the last"
    );

    for bad in ["limit=0", "limit=1001", "after=-1", "limit=x", "page=2"] {
        let r = app
            .get(&format!("/v1/me/sessions?{bad}"), Some(&keys[0]))
            .await;
        assert_eq!(r.code(), "BAD_CALL", "{bad}");
        let r = app
            .admin(Method::GET, &format!("/v1/sessions?userid=0&{bad}"), None)
            .await;
        assert_eq!(r.code(), "BAD_CALL", "{bad}");
    }
    let r = app
        .admin(Method::DELETE, "/v1/sessions?userid=0&limit=2", None)
        .await;
    assert_eq!(r.code(), "BAD_CALL", "a kill is not paged");
    assert_eq!(
        app.check(&keys[0]).await.status,
        StatusCode::OK,
        "nothing was killed"
    );
}
