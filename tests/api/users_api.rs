//! Account administration over HTTP: `/v1/users*`, against a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{Reply, TestApp, TestDb, TOKEN};

#[actix_web::test]
async fn an_admin_creates_a_user_and_finds_it_by_id_name_and_email_in_any_case() {
    let app = TestApp::start().await;
    let r = app
        .admin(Method::POST, "/v1/users", Some(json!({"username": "Alice", "password": "correct horse", "email": "Alice@Example.org", "extra_data": {"team": 7}})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["userid"].as_i64().unwrap();
    assert!(id > 0);

    let by_id = app
        .admin(Method::GET, &format!("/v1/users/{id}"), None)
        .await;
    assert_eq!(by_id.status, StatusCode::OK);
    assert_eq!(
        by_id.body["username"], "Alice",
        "the stored spelling is kept"
    );
    assert_eq!(by_id.body["email"], "Alice@Example.org");
    assert_eq!(by_id.body["admin"], false);
    assert_eq!(by_id.body["extra_data"], json!({"team": 7}));
    assert!(by_id.body["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(by_id.body.get("password_hash").is_none() && !by_id.text.contains("argon2"));

    let by_name = app
        .admin(Method::GET, "/v1/users?username=aLiCe", None)
        .await;
    assert_eq!(by_name.body["userid"], id);
    let by_email = app
        .admin(Method::GET, "/v1/users?email=alice%40example.ORG", None)
        .await;
    assert_eq!(by_email.body["userid"], id);
}

#[actix_web::test]
async fn usernames_and_emails_are_unique_regardless_of_case() {
    let app = TestApp::start().await;
    app.create_user("bob", "s3cret-pass", false).await;
    let same_name = app
        .admin(
            Method::POST,
            "/v1/users",
            Some(
                json!({"username": "BOB", "password": "s3cret-pass", "email": "other@example.org"}),
            ),
        )
        .await;
    assert_eq!(same_name.status, StatusCode::CONFLICT);
    assert_eq!(same_name.code(), "CONFLICT");
    assert!(same_name.body["message"]
        .as_str()
        .unwrap()
        .contains("username"));
    let same_email = app
        .admin(
            Method::POST,
            "/v1/users",
            Some(
                json!({"username": "robert", "password": "s3cret-pass", "email": "BOB@example.org"}),
            ),
        )
        .await;
    assert_eq!(same_email.status, StatusCode::CONFLICT);
    assert!(same_email.body["message"]
        .as_str()
        .unwrap()
        .contains("email"));
}

#[actix_web::test]
async fn of_many_simultaneous_creates_of_one_username_exactly_one_wins() {
    let app = TestApp::start().await;
    let attempts = (0..12).map(|i| {
        app.admin(
            Method::POST,
            "/v1/users",
            Some(json!({"username": if i % 2 == 0 { "Racer" } else { "racer" }, "password": "s3cret-pass", "email": format!("r{i}@example.org")})),
        )
    });
    let replies = futures_util::future::join_all(attempts).await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let conflicts = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 11));
    let rows = app
        .db
        .client()
        .await
        .query("SELECT 1 FROM users", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
}

#[actix_web::test]
async fn bad_input_is_refused_with_bad_call_and_nothing_is_written() {
    let app = TestApp::start().await;
    let cases = [
        json!({"username": "", "password": "s3cret-pass", "email": "a@b"}),
        json!({"username": " lead", "password": "s3cret-pass", "email": "a@b"}),
        json!({"username": "x".repeat(65), "password": "s3cret-pass", "email": "a@b"}),
        json!({"username": "tab\tname", "password": "s3cret-pass", "email": "a@b"}),
        json!({"username": "ok", "password": "short", "email": "a@b"}),
        json!({"username": "ok", "password": "p".repeat(1025), "email": "a@b"}),
        json!({"username": "ok", "password": "s3cret-pass", "email": "no-at-sign"}),
        json!({"username": "ok", "password": "s3cret-pass", "email": "a@b@c"}),
        json!({"username": "ok", "password": "s3cret-pass"}),
        json!({"username": "ok", "password": "s3cret-pass", "email": "a@b", "admn": true}),
        json!({"username": "ok", "password": "s3cret-pass", "email": "a@b", "extra_data": "x".repeat(17 * 1024)}),
        json!({"username": 5, "password": "s3cret-pass", "email": "a@b"}),
        json!(["not", "an", "object"]),
    ];
    for body in cases {
        let r = app
            .admin(Method::POST, "/v1/users", Some(body.clone()))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.code(), "BAD_CALL");
        assert!(!r.body["message"].as_str().unwrap().is_empty());
    }
    let malformed = app
        .http
        .post(format!("{}/v1/users", app.base))
        .bearer_auth(TOKEN)
        .body("{\"username\": ")
        .send()
        .await
        .unwrap();
    let r = Reply::of(malformed).await;
    assert_eq!(r.code(), "BAD_CALL");
    let rows = app
        .db
        .client()
        .await
        .query("SELECT 1 FROM users", &[])
        .await
        .unwrap();
    assert!(rows.is_empty(), "nothing was written");
}

#[actix_web::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let app = TestApp::start().await;
    let big = json!({"username": "big", "password": "s3cret-pass", "email": "a@b", "extra_data": "x".repeat(70 * 1024)});
    let r = app.admin(Method::POST, "/v1/users", Some(big)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "PAYLOAD_TOO_LARGE");
}

#[actix_web::test]
async fn management_needs_an_admin_credential() {
    let app = TestApp::start().await;
    app.create_user("plain", "s3cret-pass", false).await;
    app.create_user("boss", "s3cret-pass", true).await;
    let none = app.get("/v1/users", None).await;
    assert_eq!(
        (none.status, none.code()),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
    );
    let wrong = app.get("/v1/users", Some("not-a-token-or-key")).await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
    );
    let plain = app.login("plain", "s3cret-pass").await;
    let forbidden = app.get("/v1/users", Some(&plain)).await;
    assert_eq!(
        (forbidden.status, forbidden.code()),
        (StatusCode::FORBIDDEN, "FORBIDDEN")
    );
    let boss = app.login("boss", "s3cret-pass").await;
    let ok = app.get("/v1/users", Some(&boss)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["users"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn users_are_listed_in_pages_ordered_by_id() {
    let app = TestApp::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            app.create_user(&format!("u{i}"), "s3cret-pass", false)
                .await,
        );
    }
    let first = app.admin(Method::GET, "/v1/users?limit=2", None).await;
    let page: Vec<i64> = first.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userid"].as_i64().unwrap())
        .collect();
    assert_eq!(page, ids[..2]);
    assert_eq!(first.body["next_after"], ids[1]);
    let rest = app
        .admin(
            Method::GET,
            &format!("/v1/users?after={}&limit=10", ids[1]),
            None,
        )
        .await;
    assert_eq!(rest.body["users"].as_array().unwrap().len(), 3);
    assert_eq!(rest.body["next_after"], serde_json::Value::Null);
    for bad in [
        "/v1/users?limit=0",
        "/v1/users?limit=1001",
        "/v1/users?after=-1",
        "/v1/users?username=a&email=b",
        "/v1/users?limit=x",
        "/v1/users?colour=red",
        "/v1/users?username=u1&limit=3",
    ] {
        let r = app.admin(Method::GET, bad, None).await;
        assert_eq!(r.code(), "BAD_CALL", "{bad}");
    }
}

#[actix_web::test]
async fn unknown_users_are_not_found() {
    let app = TestApp::start().await;
    for (method, path, body) in [
        (Method::GET, "/v1/users/999", None),
        (Method::GET, "/v1/users?username=ghost", None),
        (Method::GET, "/v1/users?email=ghost@x", None),
        (
            Method::PATCH,
            "/v1/users/999",
            Some(json!({"username": "x"})),
        ),
        (Method::DELETE, "/v1/users/999", None),
        (
            Method::PUT,
            "/v1/users/999/password",
            Some(json!({"new_password": "password2"})),
        ),
        (Method::GET, "/v1/users/999/admin", None),
        (
            Method::PUT,
            "/v1/users/999/admin",
            Some(json!({"admin": true})),
        ),
    ] {
        let r = app.admin(method.clone(), path, body).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "NOT_FOUND"),
            "{method} {path}"
        );
    }
    let r = app.admin(Method::GET, "/v1/users/abc", None).await;
    assert_eq!(r.code(), "BAD_CALL");
    let r = app.admin(Method::GET, "/v1/nothing-here", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "NOT_FOUND"));
}

#[actix_web::test]
async fn modifying_a_user_changes_only_what_is_given() {
    let app = TestApp::start().await;
    let id = app.create_user("carol", "s3cret-pass", false).await;
    app.create_user("dave", "s3cret-pass", false).await;
    let path = format!("/v1/users/{id}");
    let r = app
        .admin(Method::PATCH, &path, Some(json!({"extra_data": {"a": 1}})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["extra_data"], json!({"a": 1}));
    assert_eq!(r.body["username"], "carol");
    let r = app
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"username": "caroline", "email": "c@x.org"})),
        )
        .await;
    assert_eq!(
        (r.body["username"].as_str(), r.body["email"].as_str()),
        (Some("caroline"), Some("c@x.org"))
    );
    assert_eq!(
        r.body["extra_data"],
        json!({"a": 1}),
        "untouched fields stay"
    );
    let r = app
        .admin(Method::PATCH, &path, Some(json!({"extra_data": null})))
        .await;
    assert_eq!(
        r.body["extra_data"],
        serde_json::Value::Null,
        "null clears extra_data"
    );
    let r = app.admin(Method::PATCH, &path, Some(json!({}))).await;
    assert_eq!(r.code(), "BAD_CALL", "an empty change is refused");
    let r = app
        .admin(Method::PATCH, &path, Some(json!({"username": "DAVE"})))
        .await;
    assert_eq!(r.code(), "CONFLICT");
    let r = app
        .admin(Method::PATCH, &path, Some(json!({"email": "bad"})))
        .await;
    assert_eq!(r.code(), "BAD_CALL");
}

#[actix_web::test]
async fn the_admin_flag_can_be_read_and_set() {
    let app = TestApp::start().await;
    let id = app.create_user("erin", "s3cret-pass", false).await;
    let path = format!("/v1/users/{id}/admin");
    assert_eq!(
        app.admin(Method::GET, &path, None).await.body,
        json!({"admin": false})
    );
    let r = app
        .admin(Method::PUT, &path, Some(json!({"admin": true})))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.admin(Method::GET, &path, None).await.body,
        json!({"admin": true})
    );
    let r = app
        .admin(Method::PUT, &path, Some(json!({"admin": "yes"})))
        .await;
    assert_eq!(r.code(), "BAD_CALL");
}

#[actix_web::test]
async fn an_admin_changes_a_password_with_or_without_the_old_one() {
    let app = TestApp::start().await;
    let id = app.create_user("frank", "s3cret-pass", false).await;
    let session = app.login("frank", "s3cret-pass").await;
    let path = format!("/v1/users/{id}/password");
    let r = app
        .admin(
            Method::PUT,
            &path,
            Some(json!({"new_password": "password2", "old_password": "wrong-one"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "REJECTED"));
    assert_eq!(
        app.check(&session).await.status,
        StatusCode::OK,
        "a rejected change ends nothing"
    );
    let r = app
        .admin(
            Method::PUT,
            &path,
            Some(json!({"new_password": "password2", "old_password": "s3cret-pass"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.check(&session).await.code(),
        "NOT_FOUND",
        "a password change ends every session"
    );
    let r = app
        .admin(
            Method::PUT,
            &path,
            Some(json!({"new_password": "password3"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.login("frank", "password3").await;
    let r = app.try_login("frank", "password2").await;
    assert_eq!(r.code(), "INVALID_CREDENTIALS");
    let r = app
        .admin(Method::PUT, &path, Some(json!({"new_password": "short"})))
        .await;
    assert_eq!(r.code(), "BAD_CALL");
}

#[actix_web::test]
async fn deleting_a_user_ends_their_sessions() {
    let app = TestApp::start().await;
    let id = app.create_user("gina", "s3cret-pass", false).await;
    let key = app.login("gina", "s3cret-pass").await;
    assert_eq!(app.check(&key).await.status, StatusCode::OK);
    let r = app
        .admin(Method::DELETE, &format!("/v1/users/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.check(&key).await.code(), "NOT_FOUND");
    let r = app
        .admin(Method::DELETE, &format!("/v1/users/{id}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let left = app
        .db
        .client()
        .await
        .query("SELECT 1 FROM sessions", &[])
        .await
        .unwrap();
    assert!(left.is_empty());
}

#[actix_web::test]
async fn nul_characters_are_refused_or_not_found_never_a_server_error() {
    let app = TestApp::start().await;
    let id = app.create_user("nul", "s3cret-pass", false).await;
    let r = app
        .admin(
            Method::PATCH,
            &format!("/v1/users/{id}"),
            Some(json!({"extra_data": {"k": "a\u{0}b"}})),
        )
        .await;
    assert_eq!(r.code(), "BAD_CALL");
    let r = app.admin(Method::POST, "/v1/users", Some(json!({"username": "n2", "password": "s3cret-pass", "email": "n2@x", "extra_data": {"\u{0}": 1}}))).await;
    assert_eq!(r.code(), "BAD_CALL");
    let r = app
        .post(
            "/v1/login",
            None,
            json!({"username": "nul", "password": "s3cret-pass", "extra_data": ["\u{0}"]}),
        )
        .await;
    assert_eq!(r.code(), "BAD_CALL");
    let r = app.try_login("n\u{0}ul", "s3cret-pass").await;
    assert_eq!(r.code(), "INVALID_CREDENTIALS");
    assert_eq!(
        app.admin(Method::GET, "/v1/users?username=a%00b", None)
            .await
            .code(),
        "NOT_FOUND"
    );
    assert_eq!(
        app.admin(Method::GET, "/v1/users?email=a%00b", None)
            .await
            .code(),
        "NOT_FOUND"
    );
    let form = app
        .http
        .post(format!("{}/login", app.base))
        .form(&[("username", "a\u{0}b"), ("password", "s3cret-pass")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn null_is_not_a_username_email_or_old_password() {
    let app = TestApp::start().await;
    let id = app.create_user("nully", "s3cret-pass", false).await;
    let r = app
        .admin(
            Method::PATCH,
            &format!("/v1/users/{id}"),
            Some(json!({"email": null, "extra_data": {"a": 1}})),
        )
        .await;
    assert_eq!(r.code(), "BAD_CALL");
    let r = app
        .admin(
            Method::PUT,
            &format!("/v1/users/{id}/password"),
            Some(json!({"new_password": "n3w-secret", "old_password": null})),
        )
        .await;
    assert_eq!(r.code(), "BAD_CALL");
}

#[actix_web::test]
async fn with_the_library_policy_any_non_empty_password_is_accepted() {
    let app = TestApp::start_with(|s| {
        s.password.min_length = 1;
        s.password.check_common = false;
    })
    .await;
    let id = app.create_user("user1", "pass1", false).await;
    app.login("user1", "pass1").await;
    let r = app
        .admin(
            Method::PUT,
            &format!("/v1/users/{id}/password"),
            Some(json!({"new_password": "pw1", "old_password": "pass1"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    app.login("user1", "pw1").await;
    app.create_user("user2", "12345678", false).await;
    let r = app
        .admin(
            Method::POST,
            "/v1/users",
            Some(json!({"username": "user3", "password": "", "email": "user3@example.org"})),
        )
        .await;
    assert_eq!(r.code(), "BAD_CALL", "an empty password is still refused");
}

#[actix_web::test]
async fn by_default_short_and_common_passwords_are_refused() {
    let app = TestApp::start().await;
    for password in ["pass1", "12345678"] {
        let r = app
            .admin(
                Method::POST,
                "/v1/users",
                Some(json!({"username": "user1", "password": password, "email": "user1@example.org"})),
            )
            .await;
        assert_eq!(r.code(), "BAD_CALL", "{password}: {}", r.text);
    }
}

#[actix_web::test]
async fn a_username_that_looks_like_an_existing_one_is_refused_at_creation_and_rename() {
    let app = TestApp::start().await;
    app.create_user("paul", "s3cret-pass", false).await;
    app.create_user("kim", "s3cret-pass", false).await;
    app.create_user("file", "s3cret-pass", false).await;
    let create = |name: &str| json!({"username": name, "password": "s3cret-pass", "email": format!("{}@example.org", pgusers::domain::keys::random_hex(4))});
    for look_alike in ["p\u{0430}ul", "\u{0440}aul", "pauI", "PAU\u{0406}"] {
        let r = app
            .admin(Method::POST, "/v1/users", Some(create(look_alike)))
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{look_alike:?}: {r:?}");
        assert_eq!(r.code(), "CONFLICT");
        assert!(
            r.body["message"].as_str().unwrap().contains("looks like"),
            "{r:?}"
        );
    }
    // Fullwidth letters, the Kelvin sign and ligatures are not even valid names (not NFKC).
    for not_nfkc in ["\u{FF50}aul", "\u{212A}im", "\u{FB01}le"] {
        let r = app
            .admin(Method::POST, "/v1/users", Some(create(not_nfkc)))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{not_nfkc:?}: {r:?}");
        assert_eq!(r.code(), "BAD_CALL");
    }

    let mary = app.create_user("mary", "s3cret-pass", false).await;
    let path = format!("/v1/users/{mary}");
    let rename = app
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"username": "p\u{0430}ul", "email": "new@example.org"})),
        )
        .await;
    assert_eq!(rename.status, StatusCode::CONFLICT, "{rename:?}");
    assert!(rename.body["message"]
        .as_str()
        .unwrap()
        .contains("looks like"));
    let unchanged = app.admin(Method::GET, &path, None).await;
    assert_eq!(unchanged.body["username"], "mary", "nothing half-written");
    assert_eq!(unchanged.body["email"], "mary@example.org");
    let own_case = app
        .admin(Method::PATCH, &path, Some(json!({"username": "Mary"})))
        .await;
    assert_eq!(
        own_case.status,
        StatusCode::OK,
        "a name may look like itself"
    );
    let listed = app.admin(Method::GET, "/v1/users?limit=100", None).await;
    assert_eq!(listed.body["users"].as_array().unwrap().len(), 4);
}

#[actix_web::test]
async fn a_look_alike_name_never_logs_into_the_account_it_imitates() {
    let app = TestApp::start().await;
    app.create_user("paul", "s3cret-pass", false).await;
    for look_alike in ["p\u{0430}ul", "pauI", "\u{FF50}aul"] {
        let r = app.try_login(look_alike, "s3cret-pass").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{look_alike:?}: {r:?}");
        assert_eq!(r.code(), "INVALID_CREDENTIALS");
    }
}

#[actix_web::test]
async fn look_alike_users_from_before_the_rule_keep_working_and_are_reported_at_every_start() {
    let db = TestDb::create().await;
    let client = db.client().await;
    for (name, email) in [
        ("paul", "paul@example.org"),
        ("p\u{0430}ul", "paul2@example.org"),
        ("zed", "zed@example.org"),
    ] {
        client
            .execute(
                "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, 'x')",
                &[&name, &email],
            )
            .await
            .unwrap();
    }
    let settings = support::settings_for(&db.config);
    let pool = pgusers::daemon::startup::connect_and_migrate(&settings)
        .await
        .expect("colliding rows do not stop the start");
    let skeletons: Vec<(String, Option<String>)> = client
        .query(
            "SELECT username, username_skeleton FROM users ORDER BY userid",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        skeletons[0].1.is_some() && skeletons[2].1.is_some(),
        "{skeletons:?}"
    );
    assert_eq!(skeletons[1].1, None, "the later look-alike keeps none");

    let again = pgusers::store::users::fill_skeletons(&pool.get().await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        again,
        vec![pgusers::store::users::LookAlike {
            userid: 2,
            username: "p\u{0430}ul".into(),
            like_userid: 1,
            like_username: "paul".into(),
        }]
    );
    drop(pool);
    let app = TestApp::start_on(db, |_| {}).await;
    let r = app
        .admin(
            Method::PATCH,
            "/v1/users/3",
            Some(json!({"username": "pauI"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    let r = app
        .admin(
            Method::PATCH,
            "/v1/users/2",
            Some(json!({"username": "p\u{0430}ula"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "renaming the look-alike resolves it"
    );
}
