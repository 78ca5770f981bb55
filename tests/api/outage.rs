//! The database going away and coming back: 503 UNAVAILABLE with nothing changed (failing closed
//! even for sessions cached before, whose revocation could not be heard), and recovery without a
//! restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{TestApp, TestDb};

#[actix_web::test]
async fn the_daemon_answers_unavailable_while_the_database_is_down_and_recovers_after() {
    let (_dir, mut pg) = support::private_cluster("pgusers-outage-").await;
    let db = TestDb::create_on(&pg.config("postgres")).await;
    let app = TestApp::start_on(db, |_| {}).await;
    app.create_user("alice", "s3cret-pass", false).await;
    let cached = app.login("alice", "s3cret-pass").await;
    assert_eq!(app.check(&cached).await.status, StatusCode::OK);
    let uncached = app.login("alice", "s3cret-pass").await;

    pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();

    let r = app
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"username": "bob", "password": "s3cret-pass", "email": "b@x"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
    );
    let r = app.try_login("alice", "s3cret-pass").await;
    assert_eq!(r.code(), "UNAVAILABLE");
    let r = app.check(&uncached).await;
    assert_eq!(
        r.code(),
        "UNAVAILABLE",
        "an uncached key cannot be judged without the database"
    );
    let r = app.check(&cached).await;
    assert_eq!(
        r.code(),
        "UNAVAILABLE",
        "a cached session is not trusted while invalidations may be missed: fail closed"
    );
    assert_eq!(
        app.get("/readyz", None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);

    let pg = tokio::task::spawn_blocking(move || {
        pg.restart().unwrap();
        pg
    })
    .await
    .unwrap();

    let mut ready = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        ready = app.get("/readyz", None).await.status;
        if ready == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ready, StatusCode::OK, "the daemon recovers by itself");
    assert_eq!(app.check(&uncached).await.status, StatusCode::OK);
    app.create_user("bob", "s3cret-pass", false).await;
    let users = app
        .db
        .client()
        .await
        .query("SELECT username FROM users ORDER BY userid", &[])
        .await
        .unwrap();
    assert_eq!(
        users.len(),
        2,
        "the refused create wrote nothing; the retry did"
    );
    drop(app);
    drop(pg);
}
