//! `pgusers import`: the real binary brings the Python library's users (passwords and all) and
//! live sessions into the daemon's tables beside the untouched library tables, reports the dirt
//! it left out, changes nothing on a dry run or a second run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{library_fingerprint, Reply, TestApp, TestDb, LIBRARY_DDL};

/// pickle.dumps({"phone": "123", "n": [1, 2.5, None, True], "t": (1, "a"), "d": {"x": {}}})
const NESTED: &str = "gASVQQAAAAAAAAB9lCiMBXBob25llIwDMTIzlIwBbpRdlChLAUdABAAAAAAAAE6IZYwBdJRLAYwBYZSGlIwBZJR9lIwBeJR9lHN1Lg==";
/// pickle.dumps({"when": datetime.datetime(2024, 1, 2, 3, 4, 5)})
const DATETIME: &str =
    "gASVNAAAAAAAAAB9lIwEd2hlbpSMCGRhdGV0aW1llIwIZGF0ZXRpbWWUk5RDCgfoAQIDBAUAAACUhZRSlHMu";
/// hashlib.pbkdf2_hmac("sha512", b"pass1", bytes(range(16)), 100000).hex()
const PASS1: &str = "47b09c5d03d2b9f16297f30fc43fe1cf05695beb978a2d062e6477f410dd14560c7a36592d67cfc2aff7d3cfd0623c4c1295774c4b993f78b3f6e7a28353c5c0";
/// hashlib.pbkdf2_hmac("sha512", b"pw1", bytes(range(16, 32)), 100000).hex()
const PW1: &str = "4ce9fba924aba3a1a5d8a703b0dc5bac52f619d2ab60abdb097011c08229e228c74b9a4d07f68b8ae6edaf409f6800183bc52cd8ef502c0a6fdaee6efbd733ce";
const ALICE_KEY: &str = "0123456789abcdef0123456789abcdef";
const DUP_KEY: &str = "fedcba9876543210fedcba9876543210";

fn b64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// What the library left behind: two good users (one admin), a case-only duplicate, a live and
/// an expired session, and a session of the duplicate.
async fn library_data(client: &tokio_postgres::Client) {
    client.batch_execute(LIBRARY_DDL).await.unwrap();
    let salt1 = "000102030405060708090a0b0c0d0e0f";
    let salt2 = "101112131415161718191a1b1c1d1e1f";
    let insert = "insert into users (username, email, salt, kpasswd, admin, extra_data)
                  values ($1, $2, $3, $4, $5, $6)";
    for (name, email, salt, hash, admin, extra) in [
        (
            "alice",
            "alice@example.com",
            salt1,
            PASS1,
            true,
            b64(NESTED),
        ),
        ("bob", "bob@example.com", salt2, PW1, false, b64(DATETIME)),
        (
            "ALICE",
            "other@example.com",
            salt1,
            PASS1,
            false,
            vec![0x80, 4, b'N', b'.'],
        ),
    ] {
        client
            .execute(insert, &[&name, &email, &salt, &hash, &admin, &extra])
            .await
            .unwrap();
    }
    // A `real` holds an epoch to within 128 s, like the library's own expirations.
    let now = chrono::Utc::now().timestamp() as f32;
    let session = "insert into sessions values ($1, $2, $3, $4)";
    let none = vec![0x80u8, 4, b'N', b'.'];
    for (userid, key, expiration) in [
        (1, ALICE_KEY, now + 600.0),
        (1, "00000000000000000000000000000000", now - 1000.0),
        (3, DUP_KEY, now + 3600.0),
    ] {
        client
            .execute(session, &[&userid, &key, &expiration, &none])
            .await
            .unwrap();
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `pgusers ARGS` with the library's own environment variables pointing at `db`.
async fn pgusers(db: &tokio_postgres::Config, args: &[&str]) -> Out {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pgusers.toml");
    std::fs::write(&config, "").unwrap();
    let host = match &db.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgusers"));
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("PGUSERS_")) {
        cmd.env_remove(name);
    }
    cmd.arg("--config")
        .arg(&config)
        .args(args)
        .env("PGUSERS_HOST", host)
        .env("PGUSERS_PORT", db.get_ports()[0].to_string())
        .env("PGUSERS_USERSPACE", db.get_dbname().unwrap())
        .env("PGUSERS_ADMIN", db.get_user().unwrap())
        .kill_on_drop(true);
    if let Some(pw) = db.get_password() {
        cmd.env("PGUSERS_PASSWORD", String::from_utf8_lossy(pw).as_ref());
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the import finished")
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn auth(app: &TestApp, header: (&str, String)) -> support::Reply {
    let resp = app
        .http
        .get(format!("{}/v1/auth", app.base))
        .header(header.0, header.1)
        .send()
        .await
        .unwrap();
    Reply::of(resp).await
}

#[actix_web::test]
async fn the_librarys_users_and_live_sessions_come_over_and_keep_working() {
    let db = TestDb::create_empty().await;
    let library = db.plain_client().await;
    library_data(&library).await;
    let untouched = library_fingerprint(&library).await;
    let app = TestApp::start_on(db, |s| s.session.ttl = Duration::from_secs(200)).await;
    let cfg = app.db.config.clone();

    let dry = pgusers(&cfg, &["import", "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("would import 2 users and 1 sessions"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("nothing was changed"), "{}", dry.stdout);
    assert!(
        dry.stdout
            .contains("user #3 \"ALICE\": left out, username already used by user #1"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("a session of user #3"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("user #2 \"bob\": extra_data kept"),
        "{}",
        dry.stdout
    );
    assert!(!dry.stdout.contains(ALICE_KEY) && !dry.stdout.contains(DUP_KEY));
    let nobody = app.admin(Method::GET, "/v1/users/1", None).await;
    assert_eq!(
        nobody.status,
        StatusCode::NOT_FOUND,
        "the dry run wrote nothing"
    );

    let run = pgusers(&cfg, &["import"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("imported 2 users and 1 sessions"),
        "{}",
        run.stdout
    );

    // The library's session key passes forward auth (bearer and cookie) and slides: 750 s on
    // it is still good, though imported to expire in about 600.
    for _ in 0..5 {
        app.clock.advance(chrono::Duration::seconds(150));
        let bearer = auth(&app, ("Authorization", format!("Bearer {ALICE_KEY}"))).await;
        assert_eq!(bearer.status, StatusCode::OK, "{bearer:?}");
        assert_eq!(bearer.headers["x-user"], "alice");
        assert_eq!(bearer.headers["x-user-id"], "1");
        assert_eq!(bearer.headers["x-user-admin"], "true");
        let cookie = auth(&app, ("Cookie", format!("pgusers_session={ALICE_KEY}"))).await;
        assert_eq!(cookie.status, StatusCode::OK, "{cookie:?}");
    }
    let checked = app.check(ALICE_KEY).await;
    assert_eq!(checked.status, StatusCode::OK, "{checked:?}");
    assert_eq!(checked.body["username"], "alice");

    // The old passwords log in, policy or not, and become argon2id.
    app.login("alice", "pass1").await;
    app.login("bob", "pw1").await;
    let wrong = app.try_login("bob", "pw2").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let hashes: Vec<String> = app
        .db
        .client()
        .await
        .query("SELECT password_hash FROM users ORDER BY userid", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(hashes.len(), 2);
    assert!(
        hashes.iter().all(|h| h.starts_with("$argon2id$")),
        "{hashes:?}"
    );

    let alice = app.admin(Method::GET, "/v1/users/1", None).await;
    assert_eq!(
        alice.body["extra_data"],
        json!({"phone": "123", "n": [1, 2.5, null, true], "t": [1, "a"], "d": {"x": {}}})
    );
    assert_eq!(alice.body["admin"], true);
    let bob = app.admin(Method::GET, "/v1/users/2", None).await;
    assert_eq!(bob.body["extra_data"], json!({"$pickle": DATETIME}));
    let carol = app.create_user("carol", "s3cret-pass", false).await;
    assert_eq!(
        carol, 3,
        "the identity continues after the highest imported userid"
    );

    let again = pgusers(&cfg, &["import"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("nothing to import, nothing changed"),
        "{}",
        again.stdout
    );

    let logout = app
        .request(Method::POST, "/v1/logout", Some(ALICE_KEY), None)
        .await;
    assert!(logout.status.is_success(), "{logout:?}");
    assert_eq!(app.check(ALICE_KEY).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(library_fingerprint(&library).await, untouched);
}

#[actix_web::test]
async fn without_the_librarys_tables_the_import_says_so_and_writes_nothing() {
    let app = TestApp::start().await;
    let out = pgusers(&app.db.config, &["import"]).await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stderr.contains("no tables of the Python library"),
        "{}",
        out.stderr
    );
}

#[actix_web::test]
async fn a_library_username_that_looks_like_another_is_left_out_like_a_duplicate() {
    let db = TestDb::create_empty().await;
    let library = db.plain_client().await;
    library.batch_execute(LIBRARY_DDL).await.unwrap();
    for (userid, name, email) in [
        (10, "paul", "paul@example.com"),
        (11, "p\u{0430}ul", "paul2@example.com"), // Cyrillic a
        (12, "rnary", "rnary@example.com"),       // r n for m
    ] {
        library
            .execute(
                "insert into users (userid, username, email, salt, kpasswd)
                 values ($1, $2, $3, '101112131415161718191a1b1c1d1e1f', $4)",
                &[&userid, &name, &email, &PW1],
            )
            .await
            .unwrap();
    }
    let app = TestApp::start_on(db, |_| {}).await;
    let mary = app.create_user("mary", "s3cret-pass", false).await;

    let run = pgusers(&app.db.config, &["import"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("imported 1 users"),
        "only paul: {}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("user #11 \"p\u{0430}ul\": left out, username looks like user #10's"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "user #12 \"rnary\": left out, username looks like user #{mary}'s"
        )),
        "{}",
        run.stdout
    );

    // The imported name holds its skeleton: a look-alike made afterwards is refused.
    let later = app
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"username": "pauI", "password": "s3cret-pass", "email": "i@example.com"})),
        )
        .await;
    assert_eq!(later.status, StatusCode::CONFLICT, "{later:?}");
    assert_eq!(later.code(), "CONFLICT");
}
