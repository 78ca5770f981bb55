//! `/metrics`: off by default, Prometheus text when enabled, on the main listener or its own,
//! and its counters move with traffic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use reqwest::StatusCode;
use support::TestApp;

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("{series} not in the metrics"))
}

#[actix_web::test]
async fn metrics_are_off_unless_enabled() {
    let app = TestApp::start().await;
    assert_eq!(
        app.get("/metrics", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn counters_move_with_traffic() {
    let app = TestApp::start_with(|s| s.metrics.enabled = true).await;
    let before = app.get("/metrics", None).await.text;
    app.create_user("alice", "s3cret-pass", false).await;
    let key = app.login("alice", "s3cret-pass").await;
    for _ in 0..3 {
        app.check(&key).await;
    }
    app.check("unknown-key").await;
    let _ = app.try_login("alice", "wrong-one").await;
    let r = app.get("/metrics", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let after = r.text;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert!(moved("pgusers_session_checks_total{outcome=\"valid\"}") >= 3.0);
    assert!(moved("pgusers_session_checks_total{outcome=\"not_found\"}") >= 1.0);
    assert!(moved("pgusers_cache_hits_total") >= 2.0);
    assert!(moved("pgusers_logins_total{result=\"success\"}") >= 1.0);
    assert!(moved("pgusers_logins_total{result=\"failure\"}") >= 1.0);
    assert!(moved("pgusers_password_hash_seconds_count") >= 3.0);
    assert!(after.contains(
        "pgusers_http_request_duration_seconds_count{route=\"/v1/sessions/check\",status=\"200\"}"
    ));
    assert!(after.contains(
        "pgusers_http_request_duration_seconds_count{route=\"/v1/sessions/check\",status=\"401\"}"
    ));
    assert!(after.contains("pgusers_db_pool_size"));
    assert_eq!(value(&after, "pgusers_invalidation_listener_up"), 1.0);
    assert!(!after.contains(&key), "no secret in metrics");
}

#[actix_web::test]
async fn the_cache_size_is_true_right_after_logins_fill_it() {
    let app = TestApp::start_with(|s| s.metrics.enabled = true).await;
    app.create_user("alice", "s3cret-pass", false).await;
    let first = app.login("alice", "s3cret-pass").await;
    let second = app.login("alice", "s3cret-pass").await;
    app.check(&first).await;
    app.check(&second).await;
    let text = app.get("/metrics", None).await.text;
    assert_eq!(value(&text, "pgusers_cache_entries"), 2.0, "{text}");
    assert!(
        value(&text, "pgusers_cache_bytes") >= 2.0 * 500.0,
        "the two sessions are counted in bytes: {text}"
    );
}

#[actix_web::test]
async fn the_standard_process_metrics_and_the_build_are_exported() {
    let app = TestApp::start_with(|s| s.metrics.enabled = true).await;
    let text = app.get("/metrics", None).await.text;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value(&text, "process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 24.0 * 3600.0,
        "start time {started} is not near {now}"
    );
    assert!(value(&text, "process_cpu_seconds_total") > 0.0);
    assert!(value(&text, "process_resident_memory_bytes") > 1_000_000.0);
    let open = value(&text, "process_open_fds");
    assert!(open >= 3.0 && open <= value(&text, "process_max_fds"));
    assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
    assert_eq!(
        value(
            &text,
            &format!(
                "pgusers_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
}

#[actix_web::test]
async fn metrics_can_live_on_their_own_address() {
    let app = TestApp::start_with(|s| {
        s.metrics.enabled = true;
        s.metrics.listen = Some("127.0.0.1:0".into());
    })
    .await;
    assert_eq!(
        app.get("/metrics", None).await.status,
        StatusCode::NOT_FOUND,
        "not on the main listener"
    );
    let addr = app.daemon.metrics_address.clone().unwrap();
    let r = app
        .http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("pgusers_cache_hits_total"));
}

#[actix_web::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::start().await;
    let r = app.get("/healthz", None).await;
    assert!(!r.headers["x-request-id"].is_empty());
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("X-Request-Id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "bad id with spaces");
}

#[actix_web::test]
async fn a_unix_socket_listener_serves_with_the_configured_mode() {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pgusers.sock");
    let socket = path.clone();
    let app = TestApp::start_with(move |s| {
        s.server
            .listen
            .push(pgusers::config::ListenAddr::Unix(socket));
        s.server.unix_socket_mode = 0o600;
    })
    .await;
    assert!(app.daemon.addresses.iter().any(|a| a.starts_with("unix:")));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let reply = tokio::task::spawn_blocking(move || {
        let mut stream = std::os::unix::net::UnixStream::connect(&path).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(
        reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"),
        "{reply}"
    );
}

#[actix_web::test]
async fn a_login_is_cached_so_its_very_next_check_is_a_hit_that_needs_no_database() {
    let app = TestApp::start_with(|s| {
        s.metrics.enabled = true;
        s.database.lock_timeout = std::time::Duration::from_secs(1);
        s.server.request_timeout = std::time::Duration::from_secs(30);
    })
    .await;
    app.create_user("alice", "s3cret-pass", false).await;
    let key = app.login("alice", "s3cret-pass").await;
    let before = app.get("/metrics", None).await.text;

    // Any statement on the sessions table now waits for the lock and fails after a second.
    let mut locker = app.db.client().await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let r = app.check(&key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after = app.get("/metrics", None).await.text;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert!(moved("pgusers_cache_hits_total") >= 1.0, "{after}");
    // The control: a key that is not cached needs the database, and cannot have it.
    let r = app.check("a-key-that-is-not-cached-anywhere").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    lock.rollback().await.unwrap();
}
