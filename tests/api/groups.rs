//! Groups: managed through the admin API (`/v1/users/{id}/groups`, `/v1/groups*`), shown in
//! `/v1/me`, carried by forward auth (`X-User-Groups`) and required by `/v1/auth?group=`,
//! against a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{Reply, TestApp};

async fn set_groups(app: &TestApp, userid: i64, groups: Value) -> Reply {
    app.admin(
        Method::PUT,
        &format!("/v1/users/{userid}/groups"),
        Some(json!({ "groups": groups })),
    )
    .await
}

async fn groups_of(app: &TestApp, userid: i64) -> Value {
    let r = app
        .admin(Method::GET, &format!("/v1/users/{userid}/groups"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["groups"].clone()
}

/// Forward auth through `base` with a bearer key.
async fn auth_at(app: &TestApp, base: &str, path: &str, key: &str) -> Reply {
    let req = app
        .http
        .get(format!("{base}{path}"))
        .header("Authorization", format!("Bearer {key}"));
    Reply::of(req.send().await.unwrap()).await
}

async fn auth(app: &TestApp, path: &str, key: &str) -> Reply {
    auth_at(app, &app.base, path, key).await
}

#[actix_web::test]
async fn an_admin_replaces_a_users_groups_and_reads_them_back_sorted_lower_case_and_once() {
    let app = TestApp::start().await;
    let id = app.create_user("alice", "s3cret-pass", false).await;
    assert_eq!(groups_of(&app, id).await, json!([]));

    let r = set_groups(&app, id, json!(["ops", "Billing", "OPS", "a.b_c-9"])).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        groups_of(&app, id).await,
        json!(["a.b_c-9", "billing", "ops"])
    );

    let r = set_groups(&app, id, json!(["support"])).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        groups_of(&app, id).await,
        json!(["support"]),
        "PUT replaces the set"
    );

    set_groups(&app, id, json!([])).await;
    assert_eq!(groups_of(&app, id).await, json!([]));
}

#[actix_web::test]
async fn bad_names_and_too_many_groups_are_refused_with_bad_call_and_nothing_changes() {
    let app = TestApp::start().await;
    let id = app.create_user("bob", "s3cret-pass", false).await;
    set_groups(&app, id, json!(["ops"])).await;
    let too_many: Vec<String> = (0..65).map(|i| format!("g{i}")).collect();
    for bad in [
        json!(["ops", ""]),
        json!(["has space"]),
        json!(["comma,name"]),
        json!(["café"]),
        json!(["x".repeat(65)]),
        json!(too_many),
        json!("ops"),
        json!([7]),
    ] {
        let r = set_groups(&app, id, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert_eq!(r.code(), "BAD_CALL", "{bad}");
        assert_eq!(groups_of(&app, id).await, json!(["ops"]), "{bad}");
    }
    let exactly_64: Vec<String> = (0..64).map(|i| format!("g{i:02}")).collect();
    assert_eq!(
        set_groups(&app, id, json!(exactly_64)).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        groups_of(&app, id).await.as_array().unwrap().len(),
        64,
        "64 groups are allowed"
    );
    let r = app
        .admin(
            Method::PUT,
            &format!("/v1/users/{id}/groups"),
            Some(json!({"groups": [], "extra": 1})),
        )
        .await;
    assert_eq!(r.code(), "BAD_CALL", "unknown fields are refused");
}

#[actix_web::test]
async fn an_unknown_user_is_404_and_only_admins_may_manage_groups() {
    let app = TestApp::start().await;
    let r = app.admin(Method::GET, "/v1/users/999/groups", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "NOT_FOUND");
    let r = set_groups(&app, 999, json!(["ops"])).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let id = app.create_user("carol", "s3cret-pass", false).await;
    let key = app.login("carol", "s3cret-pass").await;
    for (method, path) in [
        (Method::GET, format!("/v1/users/{id}/groups")),
        (Method::PUT, format!("/v1/users/{id}/groups")),
        (Method::GET, "/v1/groups".to_string()),
        (Method::GET, "/v1/groups/ops".to_string()),
    ] {
        let anonymous = app
            .request(
                method.clone(),
                &path,
                None,
                Some(json!({"groups": ["ops"]})),
            )
            .await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        let plain = app
            .request(
                method.clone(),
                &path,
                Some(&key),
                Some(json!({"groups": ["ops"]})),
            )
            .await;
        assert_eq!(plain.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    assert_eq!(groups_of(&app, id).await, json!([]));
}

#[actix_web::test]
async fn groups_are_listed_with_member_counts_and_members_are_paged_like_users() {
    let app = TestApp::start().await;
    let mut ops = Vec::new();
    for name in ["u1", "u2", "u3"] {
        let id = app.create_user(name, "s3cret-pass", false).await;
        set_groups(&app, id, json!(["ops"])).await;
        ops.push(id);
    }
    set_groups(&app, ops[0], json!(["ops", "billing"])).await;
    app.create_user("outsider", "s3cret-pass", false).await;

    let r = app.admin(Method::GET, "/v1/groups", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body,
        json!({"groups": [{"name": "billing", "members": 1}, {"name": "ops", "members": 3}]})
    );

    let first = app.admin(Method::GET, "/v1/groups/OPS?limit=2", None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let names: Vec<&str> = first.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["u1", "u2"]);
    assert_eq!(first.body["next_after"], ops[1]);
    assert!(first.text.contains("\"email\"") && !first.text.contains("argon2"));
    let rest = app
        .admin(
            Method::GET,
            &format!("/v1/groups/ops?limit=2&after={}", ops[1]),
            None,
        )
        .await;
    assert_eq!(rest.body["users"][0]["userid"], ops[2]);
    assert_eq!(rest.body["next_after"], Value::Null);

    let none = app.admin(Method::GET, "/v1/groups/nobody-here", None).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert_eq!(none.code(), "NOT_FOUND");
    let bad = app.admin(Method::GET, "/v1/groups/no%20way", None).await;
    assert_eq!(bad.code(), "BAD_CALL");
    let bad = app.admin(Method::GET, "/v1/groups/ops?limit=0", None).await;
    assert_eq!(bad.code(), "BAD_CALL");
}

#[actix_web::test]
async fn deleting_a_user_ends_their_memberships() {
    let app = TestApp::start().await;
    let a = app.create_user("a", "s3cret-pass", false).await;
    let b = app.create_user("b", "s3cret-pass", false).await;
    set_groups(&app, a, json!(["ops"])).await;
    set_groups(&app, b, json!(["ops", "solo"])).await;
    app.admin(Method::DELETE, &format!("/v1/users/{b}"), None)
        .await;
    let r = app.admin(Method::GET, "/v1/groups", None).await;
    assert_eq!(r.body, json!({"groups": [{"name": "ops", "members": 1}]}));
}

#[actix_web::test]
async fn me_shows_ones_own_groups_sorted() {
    let app = TestApp::start().await;
    let id = app.create_user("dora", "s3cret-pass", false).await;
    let key = app.login("dora", "s3cret-pass").await;
    let r = app.get("/v1/me", Some(&key)).await;
    assert_eq!(r.body["groups"], json!([]));
    assert_eq!(r.body["username"], "dora");
    set_groups(&app, id, json!(["ops", "billing"])).await;
    let r = app.get("/v1/me", Some(&key)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["groups"], json!(["billing", "ops"]));
    assert_eq!(r.body["userid"], id);
}

#[actix_web::test]
async fn forward_auth_carries_the_groups_and_admits_members_of_any_required_group_only() {
    let app = TestApp::start().await;
    let id = app.create_user("erin", "s3cret-pass", false).await;
    app.create_user("frank", "s3cret-pass", false).await;
    set_groups(&app, id, json!(["ops", "billing"])).await;
    let erin = app.login("erin", "s3cret-pass").await;
    let frank = app.login("frank", "s3cret-pass").await;

    let r = auth(&app, "/v1/auth", &erin).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-user-groups"], "billing,ops");
    let r = auth(&app, "/v1/auth", &frank).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers["x-user-groups"], "",
        "the header is always there, empty without groups"
    );

    for path in [
        "/v1/auth?group=ops",
        "/v1/auth?group=OPS",
        "/v1/auth?group=nope&group=billing",
        "/v1/auth?other=1&group=ops",
    ] {
        let member = auth(&app, path, &erin).await;
        assert_eq!(member.status, StatusCode::OK, "{path}");
        assert_eq!(member.headers["x-user"], "erin", "{path}");
        let outsider = auth(&app, path, &frank).await;
        assert_eq!(outsider.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(outsider.code(), "FORBIDDEN", "{path}");
        assert!(outsider.headers.get("x-user").is_none());
    }
    let r = auth(&app, "/v1/auth?group=op", &erin).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "names match whole");

    let r = auth(&app, "/v1/auth?group=ops", "not-a-key").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "401 stays 401");
    let r = app
        .http
        .get(format!("{}/v1/auth?group=ops", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let r = auth(&app, "/v1/auth?group=no%20such", &erin).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a malformed group is a mistake"
    );
    assert_eq!(r.code(), "BAD_CALL");
}

#[actix_web::test]
async fn the_admin_endpoint_with_a_group_needs_both() {
    let app = TestApp::start().await;
    let boss = app.create_user("boss", "s3cret-pass", true).await;
    let member = app.create_user("member", "s3cret-pass", false).await;
    set_groups(&app, member, json!(["ops"])).await;
    let boss_key = app.login("boss", "s3cret-pass").await;
    let member_key = app.login("member", "s3cret-pass").await;
    let path = "/v1/auth/admin?group=ops";
    assert_eq!(
        auth(&app, path, &boss_key).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        auth(&app, path, &member_key).await.status,
        StatusCode::FORBIDDEN
    );
    set_groups(&app, boss, json!(["ops"])).await;
    assert_eq!(auth(&app, path, &boss_key).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_group_change_reaches_the_cached_answer_at_once_and_every_other_instance_within_a_second()
{
    let a = TestApp::start().await;
    let b = a.another_instance(|_| {}).await;
    let id = a.create_user("gina", "s3cret-pass", false).await;
    set_groups(&a, id, json!(["ops"])).await;
    let key = a.login("gina", "s3cret-pass").await;
    // Both instances cache the session with its groups.
    for base in [&a.base, &b.base] {
        for _ in 0..3 {
            assert_eq!(
                auth_at(&a, base, "/v1/auth?group=ops", &key).await.status,
                StatusCode::OK
            );
        }
    }

    set_groups(&a, id, json!(["billing"])).await;
    let r = auth(&a, "/v1/auth?group=ops", &key).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the instance that made the change"
    );
    let started = Instant::now();
    loop {
        let r = auth_at(&a, &b.base, "/v1/auth?group=ops", &key).await;
        if r.status == StatusCode::FORBIDDEN {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "instance B still admitted the removed member"
        );
    }
    let r = auth_at(&a, &b.base, "/v1/auth", &key).await;
    assert_eq!(r.headers["x-user-groups"], "billing");

    // A change by hand in SQL reaches both as well.
    a.db.client()
        .await
        .execute(
            "INSERT INTO user_groups (userid, name) VALUES ($1, 'ops')",
            &[&id],
        )
        .await
        .unwrap();
    let started = Instant::now();
    for base in [&a.base, &b.base] {
        loop {
            let r = auth_at(&a, base, "/v1/auth?group=ops", &key).await;
            if r.status == StatusCode::OK {
                assert_eq!(r.headers["x-user-groups"], "billing,ops");
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(1), "{base}");
        }
    }
}

#[actix_web::test]
async fn a_group_change_is_in_the_audit_trail_with_what_was_added_and_removed() {
    let app = TestApp::start().await;
    let id = app.create_user("hank", "s3cret-pass", false).await;
    set_groups(&app, id, json!(["ops", "billing"])).await;
    set_groups(&app, id, json!(["ops", "support"])).await;
    let r = app
        .admin(Method::GET, &format!("/v1/audit?userid={id}"), None)
        .await;
    let changes: Vec<&Value> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "groups_changed")
        .collect();
    assert_eq!(changes.len(), 2, "{}", r.text);
    assert_eq!(
        changes[1]["detail"],
        json!({"groups": ["ops", "support"], "added": ["support"], "removed": ["billing"]})
    );
    assert_eq!(changes[1]["userid"], id);
}

#[actix_web::test]
async fn the_groups_header_name_is_configurable() {
    let app = TestApp::start_with(|s| s.forward_auth.header_groups = "Remote-Groups".into()).await;
    let id = app.create_user("ivy", "s3cret-pass", false).await;
    set_groups(&app, id, json!(["ops"])).await;
    let key = app.login("ivy", "s3cret-pass").await;
    let r = auth(&app, "/v1/auth", &key).await;
    assert_eq!(r.headers["remote-groups"], "ops");
    assert!(r.headers.get("x-user-groups").is_none());
}
