//! Security behaviour: brute-force throttling (per account, per address, across instances,
//! reset and unlock), no user enumeration by timing, rehash on login, the password policy and
//! the audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{Reply, TestApp};

fn strict(s: &mut pgusers::config::Settings) {
    s.throttle.account_failures = 3;
    s.throttle.address_failures = 100;
    s.throttle.base_lock = Duration::from_secs(30);
}

async fn login_as(app: &TestApp, base: &str, username: &str, password: &str, from: &str) -> Reply {
    let r = app
        .http
        .post(format!("{base}/v1/login"))
        .header("X-Forwarded-For", from)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    Reply::of(r).await
}

#[actix_web::test]
async fn an_account_is_locked_after_the_configured_failures_and_a_success_resets_it() {
    let app = TestApp::start_with(strict).await;
    app.create_user("alice", "s3cret-pass", false).await;
    for _ in 0..3 {
        let r = login_as(&app, &app.base, "alice", "wrong-pass", "203.0.113.1").await;
        assert_eq!(r.code(), "INVALID_CREDENTIALS");
    }
    let r = login_as(&app, &app.base, "ALICE", "s3cret-pass", "203.0.113.2").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS"),
        "even the right password, from anywhere"
    );
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");

    app.clock.advance(chrono::Duration::seconds(31));
    let r = login_as(&app, &app.base, "alice", "s3cret-pass", "203.0.113.1").await;
    assert_eq!(r.status, StatusCode::CREATED, "the lock ends");
    for _ in 0..2 {
        login_as(&app, &app.base, "alice", "wrong-pass", "203.0.113.1").await;
    }
    let r = login_as(&app, &app.base, "alice", "s3cret-pass", "203.0.113.1").await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "the success reset the counter, so two failures do not lock"
    );
}

#[actix_web::test]
async fn locks_escalate_and_unknown_accounts_lock_the_same_way() {
    let app = TestApp::start_with(strict).await;
    for _ in 0..3 {
        login_as(&app, &app.base, "ghost", "wrong-pass", "203.0.113.9").await;
    }
    let first = login_as(&app, &app.base, "ghost", "wrong-pass", "203.0.113.9").await;
    assert_eq!(
        first.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a lock says nothing about existence"
    );
    app.clock.advance(chrono::Duration::seconds(31));
    login_as(&app, &app.base, "ghost", "wrong-pass", "203.0.113.9").await;
    let second = login_as(&app, &app.base, "ghost", "wrong-pass", "203.0.113.9").await;
    let retry: u64 = second.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 30, "the second lock is longer: {retry}");
}

#[actix_web::test]
async fn a_lock_holds_on_every_instance_and_an_admin_can_lift_it() {
    let a = TestApp::start_with(strict).await;
    let b = a.another_instance(strict).await;
    let id = a.create_user("bob", "s3cret-pass", false).await;
    for _ in 0..3 {
        login_as(&a, &a.base, "bob", "wrong-pass", "198.51.100.7").await;
    }
    let on_b = login_as(&a, &b.base, "bob", "s3cret-pass", "198.51.100.8").await;
    assert_eq!(
        on_b.status,
        StatusCode::TOO_MANY_REQUESTS,
        "spreading attempts over instances does not help"
    );

    let r = a
        .admin(Method::DELETE, &format!("/v1/users/{id}/lock"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        login_as(&a, &b.base, "bob", "s3cret-pass", "198.51.100.8")
            .await
            .status,
        StatusCode::CREATED
    );
    let r = a.admin(Method::DELETE, "/v1/users/999/lock", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn one_address_trying_many_accounts_is_throttled_but_never_locks_out_everyone() {
    let app = TestApp::start_with(|s| {
        s.throttle.address_failures = 4;
        s.throttle.account_failures = 100;
    })
    .await;
    app.create_user("carol", "s3cret-pass", false).await;
    app.create_user("dave", "s3cret-pass", false).await;
    for i in 0..4 {
        login_as(
            &app,
            &app.base,
            &format!("user{i}"),
            "wrong-pass",
            "192.0.2.66",
        )
        .await;
    }
    let r = login_as(&app, &app.base, "user0", "wrong-pass", "192.0.2.66").await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the address is over its limit for the accounts it tried"
    );
    // Every client behind a proxy that is not trusted shares one address: its limit must not
    // lock out the users it never tried.
    let r = login_as(&app, &app.base, "carol", "s3cret-pass", "192.0.2.66").await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "an untried account still logs in"
    );
    let r = login_as(&app, &app.base, "carol", "s3cret-pass", "192.0.2.66").await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "and again: a success leaves it untried"
    );
    let r = login_as(&app, &app.base, "dave", "wrong-pass", "192.0.2.66").await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "one guess at an untried account"
    );
    let r = login_as(&app, &app.base, "dave", "s3cret-pass", "192.0.2.66").await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "but no second one from that address"
    );
    let r = login_as(&app, &app.base, "dave", "s3cret-pass", "192.0.2.67").await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "another address is not affected"
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[actix_web::test]
async fn unknown_users_and_wrong_passwords_take_the_same_time() {
    let app = TestApp::start_with(|s| {
        s.password.argon2_memory_kib = 4096;
        s.password.argon2_iterations = 2;
        s.password.hash_threads = 1;
        s.throttle.account_failures = 10_000;
        s.throttle.address_failures = 10_000;
    })
    .await;
    app.create_user("dave", "s3cret-pass", false).await;
    let time = |username: &'static str| {
        let app = &app;
        async move {
            let started = Instant::now();
            let r = app.try_login(username, "wrong-pass").await;
            assert_eq!(r.code(), "INVALID_CREDENTIALS");
            started.elapsed()
        }
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..25 {
        known.push(time("dave").await);
        unknown.push(time("nobody-here").await);
    }
    let (k, u) = (median(known), median(unknown));
    let diff = k.abs_diff(u);
    eprintln!("login failure medians: known user {k:?}, unknown user {u:?}");
    assert!(k > Duration::from_millis(2), "hashing happened: {k:?}");
    assert!(
        diff <= k.max(u) / 4 + Duration::from_millis(3),
        "known {k:?} vs unknown {u:?}"
    );
}

#[actix_web::test]
async fn a_password_hashed_with_old_parameters_is_rehashed_at_login() {
    let app = TestApp::start().await;
    app.create_user("erin", "s3cret-pass", false).await;
    let hash = |app: &TestApp| {
        let db = app.db.config.clone();
        async move {
            let client = support::connect(&db).await;
            client
                .query_one("SELECT password_hash FROM users", &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    let before = hash(&app).await;
    assert!(before.contains("m=256,t=1,p=1"), "{before}");
    let stronger = app
        .another_instance(|s| {
            s.password.argon2_memory_kib = 1024;
            s.password.argon2_iterations = 2;
        })
        .await;
    let r = app
        .http
        .post(format!("{}/v1/login", stronger.base))
        .json(&json!({"username": "erin", "password": "s3cret-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let after = hash(&app).await;
    assert!(after.contains("m=1024,t=2,p=1"), "{after}");
    app.login("erin", "s3cret-pass").await;
}

#[actix_web::test]
async fn passwords_are_normalised_and_common_ones_refused() {
    let app = TestApp::start().await;
    let composed = "caf\u{e9}-latt\u{e9}-42";
    let decomposed = "cafe\u{301}-latte\u{301}-42";
    let r = app
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"username": "fay", "password": composed, "email": "f@x.org"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    app.login("fay", decomposed).await;
    for common in ["password", "Password1", "qwertyuiop", "12345678"] {
        let r = app
            .admin(
                Method::POST,
                "/v1/users",
                Some(json!({"username": "gus", "password": common, "email": "g@x.org"})),
            )
            .await;
        assert_eq!(r.code(), "BAD_CALL", "{common}");
        assert!(r.body["message"].as_str().unwrap().contains("common"));
    }
}

#[actix_web::test]
async fn security_events_are_recorded_listed_and_purged() {
    let app = TestApp::start_with(strict).await;
    let id = app.create_user("hal", "s3cret-pass", false).await;
    login_as(&app, &app.base, "hal", "s3cret-pass", "203.0.113.50").await;
    for _ in 0..3 {
        login_as(&app, &app.base, "hal", "wrong-pass", "203.0.113.51").await;
    }
    app.admin(Method::DELETE, &format!("/v1/users/{id}/lock"), None)
        .await;
    app.admin(
        Method::PUT,
        &format!("/v1/users/{id}/password"),
        Some(json!({"new_password": "n3w-secret"})),
    )
    .await;
    app.admin(
        Method::PUT,
        &format!("/v1/users/{id}/admin"),
        Some(json!({"admin": true})),
    )
    .await;
    app.admin(Method::DELETE, &format!("/v1/sessions?userid={id}"), None)
        .await;
    app.admin(Method::DELETE, &format!("/v1/users/{id}"), None)
        .await;

    let r = app.admin(Method::GET, "/v1/audit?limit=1000", None).await;
    let events = r.body["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in [
        "login_success",
        "login_failure",
        "lockout",
        "unlock",
        "password_changed",
        "admin_changed",
        "sessions_killed",
        "user_deleted",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let success = events
        .iter()
        .find(|e| e["kind"] == "login_success")
        .unwrap();
    assert_eq!(success["userid"], id);
    assert_eq!(success["client_addr"], "203.0.113.50");
    assert!(!success["instance"].as_str().unwrap().is_empty());
    let failure = events
        .iter()
        .find(|e| e["kind"] == "login_failure")
        .unwrap();
    assert_eq!(failure["client_addr"], "203.0.113.51");
    assert!(!r.text.contains("wrong-pass") && !r.text.contains("s3cret-pass"));

    let mine = app
        .admin(Method::GET, &format!("/v1/audit?userid={id}"), None)
        .await;
    assert!(mine.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["userid"] == id));
    assert_eq!(app.get("/v1/audit", None).await.code(), "UNAUTHENTICATED");

    app.clock.advance(chrono::Duration::days(91));
    app.daemon.services.janitor.run_now().await.unwrap();
    let r = app.admin(Method::GET, "/v1/audit", None).await;
    assert!(
        r.body["events"].as_array().unwrap().is_empty(),
        "events older than the retention are purged"
    );
}

#[actix_web::test]
async fn the_janitor_purges_more_old_events_and_throttle_rows_than_one_batch_and_leaves_none() {
    let app = TestApp::start_with(|s| s.janitor.batch_size = 10).await;
    let db = app.db.client().await;
    let old = chrono::Utc::now() - chrono::Duration::days(100);
    db.execute(
        "INSERT INTO audit_events (at, kind, instance)
         SELECT $1, 'login_failure', 'old' FROM generate_series(1, 35)",
        &[&old],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO login_failures (scope, key, failures, first_failure_at, last_failure_at)
         SELECT 'address', '198.51.100.' || i, 1, $1, $1 FROM generate_series(1, 35) AS i",
        &[&old],
    )
    .await
    .unwrap();
    let fresh = chrono::Utc::now();
    db.execute(
        "INSERT INTO audit_events (at, kind, instance) VALUES ($1, 'login_failure', 'fresh')",
        &[&fresh],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO login_failures (scope, key, failures, first_failure_at, last_failure_at)
         VALUES ('address', '203.0.113.9', 1, $1, $1)",
        &[&fresh],
    )
    .await
    .unwrap();

    app.daemon.services.janitor.run_now().await.unwrap();
    let left = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        left("SELECT count(*) FROM audit_events WHERE instance = 'old'").await,
        0,
        "35 old events, 10 per batch: none left behind"
    );
    assert_eq!(
        left("SELECT count(*) FROM login_failures WHERE key LIKE '198.51.100.%'").await,
        0,
        "35 stale throttle rows, 10 per batch: none left behind"
    );
    assert_eq!(
        left("SELECT count(*) FROM audit_events").await,
        1,
        "the fresh event stays"
    );
    assert_eq!(
        left("SELECT count(*) FROM login_failures").await,
        1,
        "the fresh row stays"
    );
}

#[actix_web::test]
async fn a_parallel_burst_over_two_instances_gets_at_most_the_configured_verifications() {
    let a = TestApp::start_with(|s| {
        strict(s);
        s.throttle.account_failures = 5;
    })
    .await;
    let b = a
        .another_instance(|s| {
            strict(s);
            s.throttle.account_failures = 5;
        })
        .await;
    a.create_user("victim", "s3cret-pass", false).await;
    let attempts = (0..40).map(|i| {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let password = if i == 39 { "s3cret-pass" } else { "wrong-pass" };
        login_as(&a, base, "victim", password, "203.0.113.77")
    });
    let replies = futures_util::future::join_all(attempts).await;
    let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
    let verified = statuses
        .iter()
        .filter(|s| **s != StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        verified <= 5,
        "{verified} passwords were checked, not at most 5: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [
            StatusCode::UNAUTHORIZED,
            StatusCode::CREATED,
            StatusCode::TOO_MANY_REQUESTS
        ]
        .contains(s)),
        "{statuses:?}"
    );
    let after = login_as(&a, &b.base, "victim", "wrong-pass", "203.0.113.78").await;
    assert_eq!(after.status, StatusCode::TOO_MANY_REQUESTS);
}

#[actix_web::test]
async fn no_session_from_a_login_with_the_old_password_outlives_a_password_change() {
    // One slow hashing thread: the change's hash is queued ahead of the login's verification,
    // so the login reads the old hash before the change commits and verifies it after.
    let app = TestApp::start_with(|s| {
        s.password.hash_threads = 1;
        s.password.argon2_memory_kib = 4096;
        s.password.argon2_iterations = 3;
    })
    .await;
    let id = app.create_user("dora", "old-secret-1", false).await;
    for round in 0..3 {
        let (old, new) = (
            format!("old-secret-{}", round + 1),
            format!("old-secret-{}", round + 2),
        );
        let path = format!("/v1/users/{id}/password");
        let change = app.admin(Method::PUT, &path, Some(json!({ "new_password": new })));
        let login = async {
            actix_web::rt::time::sleep(Duration::from_millis(30)).await;
            login_as(&app, &app.base, "dora", &old, "203.0.113.90").await
        };
        let (changed, login) = futures_util::future::join(change, login).await;
        assert_eq!(changed.status, StatusCode::NO_CONTENT);
        if login.status == StatusCode::CREATED {
            let key = login.body["key"].as_str().unwrap();
            assert_eq!(
                app.check(key).await.status,
                StatusCode::UNAUTHORIZED,
                "round {round}: a session made with the old password is still valid"
            );
        } else {
            assert_eq!(login.code(), "INVALID_CREDENTIALS", "round {round}");
        }
    }
    let rows = app
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM sessions WHERE userid = $1", &[&id])
        .await
        .unwrap();
    assert_eq!(rows.get::<_, i64>(0), 0);
}

#[actix_web::test]
async fn the_old_password_check_of_a_self_service_change_is_throttled_and_audited() {
    let app = TestApp::start_with(strict).await;
    let id = app.create_user("racer", "s3cret-pass", false).await;
    let key = app.login("racer", "s3cret-pass").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = app
            .http
            .put(format!("{}/v1/me/password", app.base))
            .bearer_auth(&key)
            .header("X-Forwarded-For", "203.0.113.99")
            .json(&json!({"old_password": "wrong-pass", "new_password": "n3w-secret-pass"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
    }
    assert_eq!(
        statuses,
        [
            StatusCode::FORBIDDEN,
            StatusCode::FORBIDDEN,
            StatusCode::FORBIDDEN,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let r = login_as(&app, &app.base, "racer", "s3cret-pass", "203.0.113.98").await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the same lock as logins"
    );
    let r = app
        .admin(Method::GET, &format!("/v1/audit?userid={id}"), None)
        .await;
    let kinds: Vec<&str> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "password_change_failure")
            .count(),
        3,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"lockout"), "{kinds:?}");
}

#[actix_web::test]
async fn every_spelling_that_finds_an_account_shares_its_throttle() {
    let app = TestApp::start_with(strict).await;
    app.create_user("kim", "s3cret-pass", false).await;
    for _ in 0..3 {
        login_as(&app, &app.base, "kim", "wrong-pass", "203.0.113.120").await;
    }
    // PostgreSQL's lower('KİM') is 'kim' (the lookup), Rust's "kİm".to_lowercase() is not.
    let client = app.db.client().await;
    let row = client
        .query_one("SELECT lower('KİM') = 'kim'", &[])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the test cluster folds İ to i");
    let r = login_as(&app, &app.base, "KİM", "s3cret-pass", "203.0.113.121").await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "another spelling of a locked account is locked too"
    );
}

#[actix_web::test]
async fn a_login_racing_the_deletion_of_its_user_is_refused_not_an_error() {
    let app = TestApp::start_with(|s| {
        s.password.hash_threads = 1;
        s.password.argon2_memory_kib = 4096;
        s.password.argon2_iterations = 3;
    })
    .await;
    let id = app.create_user("doomed", "s3cret-pass", false).await;
    let login = login_as(&app, &app.base, "doomed", "s3cret-pass", "203.0.113.130");
    let delete = async {
        actix_web::rt::time::sleep(Duration::from_millis(30)).await;
        app.admin(Method::DELETE, &format!("/v1/users/{id}"), None)
            .await
    };
    let (login, deleted) = futures_util::future::join(login, delete).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(
        login.status == StatusCode::UNAUTHORIZED || login.status == StatusCode::CREATED,
        "{} {}",
        login.status,
        login.text
    );
    if login.status == StatusCode::CREATED {
        let key = login.body["key"].as_str().unwrap();
        assert_eq!(app.check(key).await.status, StatusCode::UNAUTHORIZED);
    }
}
