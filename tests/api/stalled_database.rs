//! A database that stops answering (a table lock held elsewhere, a frozen cluster) makes requests
//! answer 503 UNAVAILABLE within their documented bound instead of hanging as long as it does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::{Duration, Instant};

use pgusers::clock::Clock;
use reqwest::{Method, StatusCode};
use support::{TestApp, TestDb};

/// What the runner's load may add to a bound before a test calls it a hang.
const SLACK: Duration = Duration::from_millis(2500);

/// Runs a request and measures it; a request still waiting after 20 s is given up on (a hang).
async fn timed<T>(what: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(20), what)
        .await
        .unwrap_or_else(|_| panic!("no answer after 20 s: the request hangs"));
    (out, started.elapsed())
}

#[actix_web::test]
async fn a_table_lock_held_elsewhere_answers_unavailable_within_the_lock_timeout() {
    let app = TestApp::start_with(|s| {
        s.database.lock_timeout = Duration::from_secs(1);
        s.server.request_timeout = Duration::from_secs(30);
    })
    .await;
    app.create_user("alice", "s3cret-pass", false).await;

    let mut locker = app.db.client().await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let (r, took) = timed(app.try_login("alice", "s3cret-pass")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
    );
    eprintln!("locked table: login answered {} in {took:?}", r.status);
    assert!(took < Duration::from_secs(1) + SLACK, "login took {took:?}");

    let (r, took) = timed(app.check("an-unknown-key-that-must-be-looked-up")).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
    );
    eprintln!("locked table: check answered {} in {took:?}", r.status);
    assert!(took < Duration::from_secs(1) + SLACK, "check took {took:?}");

    lock.commit().await.unwrap();
    let key = app.login("alice", "s3cret-pass").await;
    assert_eq!(
        app.check(&key).await.status,
        StatusCode::OK,
        "recovered at once"
    );
}

/// Thaws the cluster when dropped, so a failing test never leaves it frozen.
struct Thaw<'a>(&'a std::path::Path);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        signal_cluster(self.0, "CONT");
    }
}

/// Sends SIGSTOP or SIGCONT to the postmaster and every backend of a cluster.
fn signal_cluster(dir: &std::path::Path, signal: &str) {
    let pidfile = std::fs::read_to_string(dir.join("pgdata/postmaster.pid")).unwrap();
    let postmaster = pidfile.lines().next().unwrap().trim().to_string();
    let children = std::process::Command::new("pgrep")
        .args(["-P", &postmaster])
        .output()
        .unwrap();
    let mut pids = vec![postmaster];
    pids.extend(
        String::from_utf8_lossy(&children.stdout)
            .split_whitespace()
            .map(String::from),
    );
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .args(&pids)
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pids:?}");
}

#[actix_web::test]
async fn a_frozen_database_answers_unavailable_within_the_request_timeout() {
    let (dir, pg) = support::private_cluster("pgusers-frozen-").await;
    let db = TestDb::create_on(&pg.config("postgres")).await;
    let bound = Duration::from_secs(2);
    let app = TestApp::start_on(db, |s| s.server.request_timeout = bound).await;
    let alice = app.create_user("alice", "s3cret-pass", false).await;

    signal_cluster(dir.path(), "STOP");
    let thaw = Thaw(dir.path());
    let (login, login_took) = timed(app.try_login("alice", "s3cret-pass")).await;
    let (check, check_took) = timed(app.check("an-unknown-key-that-must-be-looked-up")).await;
    let (admin, admin_took) =
        timed(app.admin(Method::GET, &format!("/v1/users/{alice}"), None)).await;
    let (ready, ready_took) = timed(app.get("/readyz", None)).await;
    drop(thaw);

    for (what, r, took) in [
        ("login", &login, login_took),
        ("check", &check, check_took),
        ("admin", &admin, admin_took),
        ("readyz", &ready, ready_took),
    ] {
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            "{what}"
        );
        eprintln!("frozen database: {what} answered {} in {took:?}", r.status);
        assert!(took < bound + SLACK, "{what} took {took:?}");
    }

    let mut ready = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..100 {
        ready = app.get("/readyz", None).await.status;
        if ready == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, StatusCode::OK, "ready again once the database thaws");
    drop(app);
    drop(pg);
}

#[actix_web::test]
async fn a_late_expiry_refresh_never_moves_a_session_expiry_backwards() {
    let app = TestApp::start().await;
    app.create_user("alice", "s3cret-pass", false).await;
    let key = app.login("alice", "s3cret-pass").await;
    let stored = app.stored_expiry(&key).await.unwrap();

    // A batch computed an hour ago (a flush that stalled, another instance) arrives now.
    let digest = pgusers::domain::KeyDigest::of(&key);
    let hour_ago = app.clock.now() - chrono::Duration::hours(1);
    let settings = support::settings_for(&app.db.config);
    let pool = pgusers::store::build_pool(
        pgusers::store::connect_config(&settings.database).unwrap(),
        1,
        pgusers::store::tls_connector(&settings.database).unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    let client = pool.get().await.unwrap();
    let found = pgusers::store::sessions::refresh_many(
        &client,
        &[digest.as_bytes()],
        &[stored - chrono::Duration::hours(1)],
        &[hour_ago],
    )
    .await
    .unwrap();

    assert_eq!(found, vec![digest], "the session still exists");
    assert_eq!(app.stored_expiry(&key).await, Some(stored), "not shortened");
}

#[actix_web::test]
async fn expiry_refreshes_are_written_by_one_flush_at_a_time_while_the_table_is_locked() {
    let app = TestApp::start_with(|s| {
        s.database.lock_timeout = Duration::ZERO;
        s.database.pool_size = 8;
        s.session.refresh_interval = Duration::from_secs(1);
        s.session.cache_max_age = Duration::from_secs(3600);
    })
    .await;
    app.create_user("alice", "s3cret-pass", false).await;
    let mut keys = Vec::new();
    for _ in 0..4 {
        let key = app.login("alice", "s3cret-pass").await;
        assert_eq!(app.check(&key).await.status, StatusCode::OK, "now cached");
        keys.push(key);
    }

    let mut locker = app.db.client().await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let watcher = app.db.client().await;
    let mut most_blocked = 0i64;
    for _ in 0..15 {
        app.clock.advance(chrono::Duration::seconds(2));
        for key in &keys {
            assert_eq!(
                app.check(key).await.status,
                StatusCode::OK,
                "cached checks go on"
            );
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        let blocked: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE '%UPDATE sessions s SET expires_at%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        most_blocked = most_blocked.max(blocked);
    }
    lock.commit().await.unwrap();

    assert_eq!(
        most_blocked, 1,
        "one flush waits; the others do not pile up behind it"
    );
    let last_seen = app.clock.now();
    let mut written = false;
    for _ in 0..50 {
        let stored = app.stored_expiry(&keys[0]).await.unwrap();
        if stored > last_seen {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        written,
        "the pending refreshes are written once the lock is gone"
    );
}

#[actix_web::test]
async fn a_request_body_that_never_completes_is_cut_off_at_the_request_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start_with(|s| s.server.request_timeout = Duration::from_secs(2)).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"username\": \"a",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut answer))
        .await
        .expect("an answer, not a connection held open")
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(started.elapsed() < Duration::from_secs(2) + SLACK);
}
