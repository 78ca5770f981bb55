//! The daemon's own PostgreSQL schema: it lives beside the Python library's `users`/`sessions`
//! tables without touching them, and a database of the older layout (everything in `public`)
//! moves into the schema with nothing lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{library_fingerprint, TestApp, TestDb, LIBRARY_DDL};

#[actix_web::test]
async fn a_database_holding_the_librarys_tables_runs_the_daemon_and_keeps_them_untouched() {
    let db = TestDb::create_empty().await;
    let library = db.plain_client().await;
    library.batch_execute(LIBRARY_DDL).await.unwrap();
    library
        .batch_execute(
            "insert into users (username, email, salt, kpasswd, admin, extra_data)
             values ('alice', 'alice@example.com', repeat('a', 32), repeat('b', 128), true, '\\x80044e2e'),
                    ('bob', 'bob@example.com', repeat('c', 32), repeat('d', 128), false, null);
             insert into sessions values (1, repeat('e', 32), 1e10, '\\x80044e2e');",
        )
        .await
        .unwrap();
    let before = library_fingerprint(&library).await;

    let app = TestApp::start_on(db, |_| {}).await;
    let alice = app.create_user("alice", "s3cret-pass", true).await;
    assert_eq!(alice, 1, "the daemon's users are its own, numbered from 1");
    let key = app.login("alice", "s3cret-pass").await;
    assert_eq!(app.check(&key).await.status, StatusCode::OK);
    let gone = app
        .admin(Method::DELETE, &format!("/v1/users/{alice}"), None)
        .await;
    assert!(gone.status.is_success(), "{gone:?}");
    assert_eq!(app.check(&key).await.status, StatusCode::UNAUTHORIZED);

    assert_eq!(library_fingerprint(&library).await, before);
    let count: i64 = library
        .query_one("select count(*) from users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2, "the library still sees its own users table");
}

/// Builds the layout of schema version 4, the last before the schema existed.
async fn old_layout(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .unwrap();
    for m in &pgusers::store::migrate::MIGRATIONS[..4] {
        client.batch_execute(m.sql).await.unwrap();
        client
            .execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&m.version, &m.name],
            )
            .await
            .unwrap();
    }
}

#[actix_web::test]
async fn a_database_of_the_older_layout_moves_into_the_schema_with_nothing_lost() {
    let db = TestDb::create_empty().await;
    let plain = db.plain_client().await;
    old_layout(&plain).await;
    let key = "an-old-session-key-of-the-older-layout";
    let digest = pgusers::domain::KeyDigest::of(key);
    plain
        .execute(
            "WITH u AS (
                INSERT INTO users (username, email, password_hash, admin, extra_data)
                VALUES ('carol', 'carol@example.com', 'not-a-hash', true, '{\"team\": 7}')
                RETURNING userid)
             INSERT INTO sessions (key_digest, userid, created_at, last_seen_at, expires_at)
             SELECT $1, userid, now(), now(), now() + interval '1 day' FROM u",
            &[&digest.as_bytes()],
        )
        .await
        .unwrap();
    plain
        .batch_execute(
            "INSERT INTO settings (name, value) VALUES ('session_ttl', '3600');
             INSERT INTO audit_events (at, kind, instance) VALUES (now(), 'login', 'old')",
        )
        .await
        .unwrap();

    let app = TestApp::start_on(db, |_| {}).await;

    let checked = app.check(key).await;
    assert_eq!(checked.status, StatusCode::OK, "{checked:?}");
    assert_eq!(checked.body["username"], "carol");
    let user = app.admin(Method::GET, "/v1/users/1", None).await;
    assert_eq!(user.body["extra_data"], json!({"team": 7}));
    let dave = app.create_user("dave", "s3cret-pass", false).await;
    assert_eq!(dave, 2, "the identity continues");

    let left_in_public: i64 = plain
        .query_one(
            "SELECT count(*) FROM pg_class
             WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left_in_public, 0, "every table and sequence moved");
    let versions: Vec<i32> = plain
        .query(
            "SELECT version FROM pgusers_daemon.schema_migrations ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        versions,
        (1..=pgusers::store::migrate::latest_version()).collect::<Vec<_>>()
    );
    let kept: i64 = plain
        .query_one(
            "SELECT (SELECT count(*) FROM pgusers_daemon.audit_events)
                  + (SELECT count(*) FROM pgusers_daemon.settings)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 2);

    // SQL typed in psql (default search_path) still reaches the daemon's cache through the
    // invalidation triggers, which find their functions in the schema.
    plain
        .execute("DELETE FROM pgusers_daemon.sessions", &[])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while app.check(key).await.status == StatusCode::OK {
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
