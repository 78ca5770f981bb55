//! Several daemons on one database: a change made anywhere (another instance, SQL typed in psql)
//! reaches every instance's cache through PostgreSQL NOTIFY, and a cache that may have missed a
//! notification is not trusted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{Instance, TestApp};

/// Polls instance `b` until `key` is refused; returns how long that took.
async fn refused_within(app: &TestApp, b: &Instance, key: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if app.check_on(b, key).await == StatusCode::UNAUTHORIZED {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "instance B still accepted the key after {limit:?}"
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

#[actix_web::test]
async fn a_session_killed_through_one_instance_is_refused_by_the_other_within_a_second() {
    let a = TestApp::start().await;
    let b = a.another_instance(|_| {}).await;
    a.create_user("alice", "s3cret-pass", false).await;
    let mut delays = Vec::new();
    for _ in 0..100 {
        let key = a.login("alice", "s3cret-pass").await;
        assert_eq!(a.check_on(&b, &key).await, StatusCode::OK, "cached on B");
        a.request(Method::POST, "/v1/logout", Some(&key), None)
            .await;
        delays.push(refused_within(&a, &b, &key, Duration::from_secs(1)).await);
    }
    delays.sort();
    eprintln!(
        "revocation delay over {} trials: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        percentile(&delays, 0.5),
        percentile(&delays, 0.9),
        percentile(&delays, 0.99),
        delays[delays.len() - 1]
    );
    // Every trial was refused within the one-second limit (asserted above). The distribution is
    // a measurement, not a test of speed: it is printed (run with --nocapture) and reported in
    // the README; the p99 goal of 50 ms is checked there, not here, since a loaded machine may
    // miss it without anything being wrong.
}

#[actix_web::test]
async fn every_kind_of_change_reaches_the_other_instance() {
    let a = TestApp::start().await;
    let b = a.another_instance(|_| {}).await;
    let limit = Duration::from_secs(1);

    // User deletion.
    let id = a.create_user("del", "s3cret-pass", false).await;
    let key = a.login("del", "s3cret-pass").await;
    assert_eq!(a.check_on(&b, &key).await, StatusCode::OK);
    a.admin(Method::DELETE, &format!("/v1/users/{id}"), None)
        .await;
    refused_within(&a, &b, &key, limit).await;

    // Password change.
    let id = a.create_user("pw", "s3cret-pass", false).await;
    let key = a.login("pw", "s3cret-pass").await;
    assert_eq!(a.check_on(&b, &key).await, StatusCode::OK);
    a.admin(
        Method::PUT,
        &format!("/v1/users/{id}/password"),
        Some(json!({"new_password": "password2"})),
    )
    .await;
    refused_within(&a, &b, &key, limit).await;

    // SQL typed by hand.
    a.create_user("sql", "s3cret-pass", false).await;
    let key = a.login("sql", "s3cret-pass").await;
    assert_eq!(a.check_on(&b, &key).await, StatusCode::OK);
    a.db.client()
        .await
        .batch_execute("DELETE FROM sessions")
        .await
        .unwrap();
    refused_within(&a, &b, &key, limit).await;

    // Admin revocation and rename: seen in the very next answer from B.
    let id = a.create_user("boss", "s3cret-pass", true).await;
    let key = a.login("boss", "s3cret-pass").await;
    let on_b = |k: String| {
        let http = a.http.clone();
        let url = format!("{}/v1/sessions/check", b.base);
        async move {
            http.post(url)
                .json(&json!({ "key": k }))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(on_b(key.clone()).await["admin"], true);
    a.admin(
        Method::PUT,
        &format!("/v1/users/{id}/admin"),
        Some(json!({"admin": false})),
    )
    .await;
    let started = Instant::now();
    while on_b(key.clone()).await["admin"] != false {
        assert!(started.elapsed() < limit, "admin revocation not seen by B");
    }
    a.admin(
        Method::PATCH,
        &format!("/v1/users/{id}"),
        Some(json!({"username": "chief"})),
    )
    .await;
    let started = Instant::now();
    while on_b(key.clone()).await["username"] != "chief" {
        assert!(started.elapsed() < limit, "rename not seen by B");
    }

    // TTL change through the API of A reaches B's settings.
    a.admin(
        Method::PUT,
        "/v1/settings/session_ttl",
        Some(json!({"seconds": 1234})),
    )
    .await;
    let started = Instant::now();
    loop {
        let r = a
            .http
            .get(format!("{}/v1/settings", b.base))
            .bearer_auth(support::TOKEN)
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        if body["session_ttl"]["seconds"] == 1234 {
            break;
        }
        assert!(started.elapsed() < limit, "TTL change not seen by B");
    }
}

#[actix_web::test]
async fn a_session_kept_alive_through_one_instance_stays_valid_on_the_other() {
    let a = TestApp::start_with(|s| {
        s.session.ttl = Duration::from_secs(100);
        s.session.refresh_interval = Duration::from_secs(10);
    })
    .await;
    let b = a
        .another_instance(|s| {
            s.session.ttl = Duration::from_secs(100);
            s.session.refresh_interval = Duration::from_secs(10);
        })
        .await;
    a.create_user("slider", "s3cret-pass", false).await;
    let key = a.login("slider", "s3cret-pass").await;
    assert_eq!(
        a.check(&key).await.status,
        StatusCode::OK,
        "cached on A with the original expiry"
    );
    for _ in 0..5 {
        a.clock.advance(chrono::Duration::seconds(60));
        assert_eq!(a.check_on(&b, &key).await, StatusCode::OK);
        // B writes its refreshes behind, within 200 ms; the test clock runs faster than that.
        b.daemon.services.sessions.flush().await.unwrap();
    }
    // 300 s after login, far past the original expiry, A (whose cache says "expired")
    // confirms with the database and accepts.
    assert_eq!(a.check(&key).await.status, StatusCode::OK);
    assert_eq!(
        a.daemon.services.janitor.run_now().await.unwrap(),
        0,
        "A's janitor does not purge it"
    );
    assert_eq!(a.check_on(&b, &key).await, StatusCode::OK);
}

#[actix_web::test]
async fn an_instance_whose_listener_is_cut_stops_trusting_its_cache_until_it_is_back() {
    let a = TestApp::start().await;
    let b = a.another_instance(|_| {}).await;
    a.create_user("cut", "s3cret-pass", false).await;
    let client = a.db.client().await;
    let mut status = b.daemon.listener.clone();
    for _ in 0..5 {
        let key = a.login("cut", "s3cret-pass").await;
        assert_eq!(a.check_on(&b, &key).await, StatusCode::OK, "cached on B");
        let before = status.current().count;
        // Cut every listener (A's and B's) ...
        client
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'pgusers-listener' AND datname = '{}'",
                a.db.name
            ))
            .await
            .unwrap();
        // ... and once B has noticed (it may already have re-subscribed), delete the session
        // behind its back: its notification may be lost, yet B must never answer from the
        // cache it had before the cut.
        assert!(
            status
                .wait_for(Duration::from_secs(5), |s| !s.listening || s.count > before)
                .await,
            "B notices the cut"
        );
        client.batch_execute("DELETE FROM sessions").await.unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(300) {
            assert_eq!(
                a.check_on(&b, &key).await,
                StatusCode::UNAUTHORIZED,
                "stale answer from B"
            );
        }
        assert!(
            status.wait_listening(Duration::from_secs(5)).await,
            "B re-subscribes"
        );
        assert_eq!(a.check_on(&b, &key).await, StatusCode::UNAUTHORIZED);
    }
    // Trusted again after re-subscribing: a fresh session is served from the cache.
    let key = a.login("cut", "s3cret-pass").await;
    assert_eq!(a.check_on(&b, &key).await, StatusCode::OK);
    assert!(b.daemon.services.core.cache.is_trusted());
}
