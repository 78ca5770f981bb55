//! The expiry write-behind against a real PostgreSQL: a batch that loses a deadlock to another
//! transaction is tried again and lands, and shutdown waits for a flush already running.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pgusers::domain::KeyDigest;
use pgusers::sessions::refresh::{self, PendingRefresh};
use reqwest::StatusCode;
use support::TestApp;

/// Waits until one of the daemon's expiry writes is waiting for a row lock.
async fn until_a_refresh_waits_for_a_lock(app: &TestApp) {
    let watcher = app.db.client().await;
    let started = Instant::now();
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE 'WITH v AS%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no expiry write ever waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

#[actix_web::test]
async fn a_refresh_batch_that_loses_a_deadlock_is_tried_again_and_lands() {
    let app = TestApp::start().await;
    app.create_user("locked", "s3cret-pass", false).await;
    let mut keys = vec![
        app.login("locked", "s3cret-pass").await,
        app.login("locked", "s3cret-pass").await,
    ];
    keys.sort_by_key(|k| KeyDigest::of(k).as_bytes().to_vec());
    let (first, second) = (KeyDigest::of(&keys[0]), KeyDigest::of(&keys[1]));

    // Another transaction (an admin in psql, say) holds the row the batch locks second ...
    let other = app.db.client().await;
    other.batch_execute("BEGIN").await.unwrap();
    other
        .execute(
            "SELECT 1 FROM sessions WHERE key_digest = $1 FOR UPDATE",
            &[&second.as_bytes()],
        )
        .await
        .unwrap();
    let later = whole_seconds(Utc::now() + chrono::Duration::days(30));
    let refresh = PendingRefresh {
        expires_at: later,
        seen_at: Utc::now(),
    };
    let pool = app.daemon.pool.clone();
    let write = actix_web::rt::spawn(async move {
        let mut batch = vec![(second, refresh), (first, refresh)];
        refresh::write(&pool, &mut batch).await
    });
    until_a_refresh_waits_for_a_lock(&app).await;
    // ... and then asks for the row the batch holds: a deadlock, which PostgreSQL breaks by
    // aborting the batch (it has waited longest). Getting the row shows the batch let go.
    other
        .execute(
            "SELECT 1 FROM sessions WHERE key_digest = $1 FOR UPDATE",
            &[&first.as_bytes()],
        )
        .await
        .expect("the other transaction wins the deadlock");
    other.batch_execute("COMMIT").await.unwrap();

    let found = write
        .await
        .unwrap()
        .expect("the batch is tried again and lands");
    assert_eq!(found.len(), 2);
    for key in &keys {
        assert_eq!(app.stored_expiry(key).await, Some(later));
    }
}

#[actix_web::test]
async fn shutdown_waits_for_a_flush_already_running_before_it_closes_the_pool() {
    let app = TestApp::start_with(|s| {
        s.database.lock_timeout = Duration::from_secs(20);
    })
    .await;
    app.create_user("late", "s3cret-pass", false).await;
    let key = app.login("late", "s3cret-pass").await;
    let before = app.stored_expiry(&key).await.unwrap();

    // The session's row is locked, so the next periodic flush stalls on it ...
    let other = app.db.client().await;
    other.batch_execute("BEGIN").await.unwrap();
    other
        .execute(
            "SELECT 1 FROM sessions WHERE key_digest = $1 FOR UPDATE",
            &[&KeyDigest::of(&key).as_bytes()],
        )
        .await
        .unwrap();
    // ... a check a day later slides the expiry far enough to be written behind ...
    app.clock.advance(chrono::Duration::days(1));
    assert_eq!(app.check(&key).await.status, StatusCode::OK);
    // ... and the periodic flush has taken it and waits for the row.
    until_a_refresh_waits_for_a_lock(&app).await;

    let released = actix_web::rt::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        other.batch_execute("COMMIT").await.unwrap();
        Instant::now()
    });
    app.daemon.shutdown().await;
    let shut = Instant::now();
    let released = released.await.unwrap();
    assert!(
        shut >= released,
        "shutdown returned while the flush still ran"
    );
    let after = app.stored_expiry(&key).await.unwrap();
    assert!(
        after >= before + chrono::Duration::hours(23),
        "the refresh taken by the running flush was written before shutdown returned \
         (stored {before} then {after})"
    );
}
