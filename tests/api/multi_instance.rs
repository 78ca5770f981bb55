//! Several daemons on one database: a change made anywhere (another instance, SQL typed in psql)
//! reaches every instance's cache through PostgreSQL NOTIFY, and a cache that may have missed a
//! notification is not trusted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

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

#[actix_web::test]
async fn with_a_five_second_ttl_a_session_in_use_lives_on_and_a_logout_is_heard_everywhere() {
    // Every other setting as shipped: refresh_interval 60 s and cache_max_age 30 s are both
    // longer than the TTL.
    let five_seconds = |s: &mut pgusers::config::Settings| {
        s.session.ttl = Duration::from_secs(5);
    };
    let a = TestApp::start_with(five_seconds).await;
    let b = a.another_instance(five_seconds).await;
    a.create_user("brief", "s3cret-pass", false).await;
    let key = a.login("brief", "s3cret-pass").await;
    for second in 1..=8 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            a.check_on(&b, &key).await,
            StatusCode::OK,
            "checked on B every second, refused after {second} s"
        );
    }
    // Used every second for longer than its TTL: every instance accepts it, not only the one
    // whose cache slid it, and the janitor leaves it alone.
    let on_a = a.check(&key).await;
    assert_eq!(on_a.status, StatusCode::OK, "{}", on_a.text);
    assert_eq!(a.daemon.services.janitor.run_now().await.unwrap(), 0);
    a.request(Method::POST, "/v1/logout", Some(&key), None)
        .await;
    refused_within(&a, &b, &key, Duration::from_secs(1)).await;
}

#[actix_web::test]
async fn a_logout_is_heard_by_the_other_instance_when_the_database_clock_runs_ahead() {
    let short = |s: &mut pgusers::config::Settings| {
        s.session.ttl = Duration::from_secs(30);
    };
    let a = TestApp::start_with(short).await;
    let b = a.another_instance(short).await;
    // The daemons' clocks (one shared test clock) run a minute behind PostgreSQL's: every
    // stored expiry is already past by the database's clock.
    a.clock.advance(chrono::Duration::minutes(-1));
    a.create_user("skew", "s3cret-pass", false).await;
    for _ in 0..3 {
        let key = a.login("skew", "s3cret-pass").await;
        assert_eq!(a.check_on(&b, &key).await, StatusCode::OK, "cached on B");
        a.request(Method::POST, "/v1/logout", Some(&key), None)
            .await;
        refused_within(&a, &b, &key, Duration::from_secs(1)).await;
    }
    // The same for an admin's kill of every session of a user.
    let key = a.login("skew", "s3cret-pass").await;
    assert_eq!(a.check_on(&b, &key).await, StatusCode::OK, "cached on B");
    let id = a.check(&key).await.body["userid"].as_i64().unwrap();
    let r = a
        .admin(Method::DELETE, &format!("/v1/sessions?userid={id}"), None)
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    refused_within(&a, &b, &key, Duration::from_secs(1)).await;
}

/// A connection that listens on the invalidation channel, and what it hears.
async fn overhear(
    db: &support::TestDb,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (client, mut connection) = db.config.connect(tokio_postgres::NoTls).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) =
            futures_util::future::poll_fn(|cx| connection.poll_message(cx)).await
        {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    client
        .batch_execute("LISTEN pgusers_invalidate")
        .await
        .unwrap();
    (client, rx)
}

/// Everything heard within `wait`.
async fn heard(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    wait: Duration,
) -> Vec<String> {
    let mut all = Vec::new();
    while let Ok(Some(payload)) = tokio::time::timeout(wait, rx.recv()).await {
        all.push(payload);
    }
    all
}

#[actix_web::test]
async fn the_janitors_purge_is_silent_and_a_mass_delete_sends_one_star() {
    let a = TestApp::start().await;
    a.create_user("old", "s3cret-pass", false).await;
    for _ in 0..3 {
        a.login("old", "s3cret-pass").await;
    }
    let (_client, mut rx) = overhear(&a.db).await;
    // Past the TTL and a whole refresh interval by the daemon's clock (still live by the
    // database's own clock, which the janitor does not ask).
    a.clock.advance(chrono::Duration::days(11));
    assert_eq!(a.daemon.services.janitor.run_now().await.unwrap(), 3);
    assert_eq!(
        heard(&mut rx, Duration::from_millis(500)).await,
        Vec::<String>::new()
    );

    // 1001 sessions deleted in one statement: "*" alone, not 11 payloads of keys.
    a.db.client()
        .await
        .batch_execute(
            "INSERT INTO sessions (key_digest, userid, created_at, last_seen_at, expires_at)
             SELECT sha256(i::text::bytea), u.userid, now(), now(), now() + interval '1 hour'
             FROM generate_series(1, 1001) i, users u WHERE u.username = 'old';
             DELETE FROM sessions",
        )
        .await
        .unwrap();
    assert_eq!(heard(&mut rx, Duration::from_millis(500)).await, vec!["*"]);
}

#[actix_web::test]
async fn revocations_are_applied_while_the_ttl_cannot_be_reread_and_the_ttl_follows_later() {
    let a = TestApp::start().await;
    let b = a.another_instance(|_| {}).await;
    a.create_user("busy", "s3cret-pass", false).await;
    let key = a.login("busy", "s3cret-pass").await;
    assert_eq!(a.check_on(&b, &key).await, StatusCode::OK, "cached on B");
    // Every connection of B's pool is taken: B cannot re-read a setting for now.
    let mut held = Vec::new();
    for _ in 0..b.daemon.pool.status().max_size {
        held.push(b.daemon.pool.get().await.unwrap());
    }
    let r = a
        .admin(
            Method::PUT,
            "/v1/settings/session_ttl",
            Some(json!({"seconds": 4321})),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    a.request(Method::POST, "/v1/logout", Some(&key), None)
        .await;
    // The logout, announced after the TTL change, does not wait behind its re-read.
    let digest = pgusers::domain::KeyDigest::of(&key);
    let started = Instant::now();
    while b.daemon.services.core.cache.get(&digest).is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "B still had the logged-out session cached"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Longer than a pool wait (2 s in the tests): a re-read tried once has given up by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        b.daemon.services.sessions.ttl().0,
        864_000,
        "not re-read yet"
    );
    drop(held);
    let started = Instant::now();
    while b.daemon.services.sessions.ttl().0 != 4321 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "B never picked up the TTL change once its pool was free"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What `/readyz` and `/metrics` of an instance say about its invalidation listener.
async fn listener_as_reported(app: &TestApp, b: &Instance) -> (StatusCode, String, String) {
    let ready = a_get(app, &format!("{}/readyz", b.base)).await;
    let metrics = a_get(app, &format!("{}/metrics", b.base)).await;
    let up = metrics
        .1
        .lines()
        .find(|l| l.starts_with("pgusers_invalidation_listener_up "))
        .unwrap_or_default()
        .to_string();
    let body: serde_json::Value = serde_json::from_str(&ready.1).unwrap_or_default();
    (
        ready.0,
        body["invalidation_listener"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        up,
    )
}

async fn a_get(app: &TestApp, url: &str) -> (StatusCode, String) {
    let r = app.http.get(url).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

#[actix_web::test]
async fn readyz_and_the_listener_metric_say_when_the_listener_is_not_subscribed() {
    let a = TestApp::start().await;
    let client = a.db.client().await;
    let role = format!("pgusers_b_{}", a.db.name);
    client
        .batch_execute(&format!("CREATE ROLE \"{role}\" LOGIN SUPERUSER"))
        .await
        .unwrap();
    let b = a
        .another_instance(|s| {
            s.database.user = Some(role.clone());
            s.metrics.enabled = true;
        })
        .await;
    let mut status = b.daemon.listener.clone();
    assert!(status.wait_listening(Duration::from_secs(5)).await);
    assert_eq!(
        listener_as_reported(&a, &b).await,
        (
            StatusCode::OK,
            "up".into(),
            "pgusers_invalidation_listener_up 1".into()
        )
    );
    // B's listener is cut and cannot come back (its role may not log in); B's pool keeps the
    // connections it has, so it still answers, from the database.
    client
        .batch_execute(&format!(
            "ALTER ROLE \"{role}\" NOLOGIN;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = 'pgusers-listener' AND usename = '{role}'"
        ))
        .await
        .unwrap();
    assert!(
        status
            .wait_for(Duration::from_secs(5), |s| !s.listening)
            .await
    );
    assert_eq!(
        listener_as_reported(&a, &b).await,
        (
            StatusCode::OK,
            "down".into(),
            "pgusers_invalidation_listener_up 0".into()
        ),
        "ready (it answers correctly without its cache), and says the listener is down"
    );
    client
        .batch_execute(&format!("ALTER ROLE \"{role}\" LOGIN"))
        .await
        .unwrap();
    assert!(status.wait_listening(Duration::from_secs(10)).await);
    assert_eq!(listener_as_reported(&a, &b).await.1, "up");
    b.daemon.shutdown().await;
    let _ = client.batch_execute(&format!("DROP ROLE \"{role}\"")).await;
}
