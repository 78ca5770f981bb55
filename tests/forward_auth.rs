//! Forward auth (`/v1/auth`, `/v1/auth/admin`) and the browser login flow, over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::{header, Method, StatusCode};
use serde_json::json;
use support::TestApp;

async fn auth(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
) -> support::Reply {
    let mut req = app.http.request(method, format!("{}{path}", app.base));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    TestApp::reply(req.send().await.unwrap()).await
}

#[actix_web::test]
async fn a_valid_session_passes_with_every_identity_header_whatever_the_method() {
    let app = TestApp::start().await;
    let id = app.create_user("alice", "s3cret-pass", false).await;
    let key = app.login("alice", "s3cret-pass").await;
    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ] {
        let r = auth(
            &app,
            method.clone(),
            "/v1/auth?ignored=1",
            &[("Authorization", format!("Bearer {key}"))],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{method}");
        assert_eq!(r.headers["x-user"], "alice");
        assert_eq!(r.headers["x-user-id"], id.to_string().as_str());
        assert_eq!(r.headers["x-user-email"], "alice@example.org");
        assert_eq!(r.headers["x-user-admin"], "false");
        assert!(r.text.is_empty());
    }
    let by_cookie = auth(
        &app,
        Method::GET,
        "/v1/auth",
        &[("Cookie", format!("other=1; pgusers_session={key}"))],
    )
    .await;
    assert_eq!(by_cookie.status, StatusCode::OK);
    assert_eq!(by_cookie.headers["x-user"], "alice");
}

#[actix_web::test]
async fn missing_unknown_and_expired_keys_are_refused_with_www_authenticate() {
    let app = TestApp::start_with(|s| s.session.ttl = std::time::Duration::from_secs(60)).await;
    app.create_user("bob", "s3cret-pass", false).await;
    let key = app.login("bob", "s3cret-pass").await;
    let none = auth(&app, Method::GET, "/v1/auth", &[]).await;
    let bad = auth(
        &app,
        Method::GET,
        "/v1/auth",
        &[("Authorization", "Bearer nope".into())],
    )
    .await;
    app.clock.advance(chrono::Duration::seconds(61));
    let expired = auth(
        &app,
        Method::GET,
        "/v1/auth",
        &[("Authorization", format!("Bearer {key}"))],
    )
    .await;
    for r in [none, bad, expired] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"pgusers\""
        );
        assert!(r.headers.get("x-user").is_none());
        assert!(
            r.headers.get("x-login-url").is_none(),
            "no login URL is configured"
        );
    }
}

#[actix_web::test]
async fn the_admin_endpoint_refuses_non_admins_with_403() {
    let app = TestApp::start().await;
    app.create_user("plain", "s3cret-pass", false).await;
    app.create_user("boss", "s3cret-pass", true).await;
    let plain = app.login("plain", "s3cret-pass").await;
    let boss = app.login("boss", "s3cret-pass").await;
    let r = auth(
        &app,
        Method::GET,
        "/v1/auth/admin",
        &[("Authorization", format!("Bearer {plain}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = auth(
        &app,
        Method::GET,
        "/v1/auth/admin",
        &[("Authorization", format!("Bearer {boss}"))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-user-admin"], "true");
    let r = auth(&app, Method::GET, "/v1/auth/admin", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn a_killed_session_is_refused_on_the_very_next_request() {
    let app = TestApp::start().await;
    let id = app.create_user("cid", "s3cret-pass", false).await;
    let key = app.login("cid", "s3cret-pass").await;
    let bearer = [("Authorization", format!("Bearer {key}"))];
    assert_eq!(
        auth(&app, Method::GET, "/v1/auth", &bearer).await.status,
        StatusCode::OK
    );
    app.admin(Method::DELETE, &format!("/v1/sessions?userid={id}"), None)
        .await;
    assert_eq!(
        auth(&app, Method::GET, "/v1/auth", &bearer).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[actix_web::test]
async fn forward_auth_slides_the_expiry_like_a_check() {
    let app = TestApp::start_with(|s| s.session.ttl = std::time::Duration::from_secs(100)).await;
    app.create_user("dee", "s3cret-pass", false).await;
    let key = app.login("dee", "s3cret-pass").await;
    let bearer = [("Authorization", format!("Bearer {key}"))];
    for _ in 0..4 {
        app.clock.advance(chrono::Duration::seconds(60));
        assert_eq!(
            auth(&app, Method::GET, "/v1/auth", &bearer).await.status,
            StatusCode::OK
        );
    }
}

#[actix_web::test]
async fn identity_header_names_are_configurable() {
    let app = TestApp::start_with(|s| {
        s.forward_auth.header_user = "Remote-User".into();
        s.forward_auth.header_email = "Remote-Email".into();
    })
    .await;
    app.create_user("eve", "s3cret-pass", false).await;
    let key = app.login("eve", "s3cret-pass").await;
    let r = auth(
        &app,
        Method::GET,
        "/v1/auth",
        &[("Authorization", format!("Bearer {key}"))],
    )
    .await;
    assert_eq!(r.headers["remote-user"], "eve");
    assert_eq!(r.headers["remote-email"], "eve@example.org");
    assert!(r.headers.get("x-user").is_none());
}

#[actix_web::test]
async fn the_login_url_carries_the_original_url_from_a_trusted_proxy_only() {
    let app = TestApp::start_with(|s| {
        s.forward_auth.login_url = Some("https://auth.example.com/login".into())
    })
    .await;
    let forwarded = [
        ("X-Forwarded-Proto", "https".to_string()),
        ("X-Forwarded-Host", "app.example.com".to_string()),
        ("X-Forwarded-Uri", "/private/page?x=1".to_string()),
    ];
    let r = auth(&app, Method::GET, "/v1/auth", &forwarded).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers["x-login-url"],
        "https://auth.example.com/login?rd=https%3A%2F%2Fapp.example.com%2Fprivate%2Fpage%3Fx%3D1"
    );
    let r = auth(
        &app,
        Method::GET,
        "/v1/auth",
        &[("X-Original-URI", "/docs/a b".to_string())],
    )
    .await;
    assert_eq!(
        r.headers["x-login-url"],
        "https://auth.example.com/login?rd=%2Fdocs%2Fa%20b"
    );

    let untrusting = TestApp::start_with(|s| {
        s.forward_auth.login_url = Some("https://auth.example.com/login".into());
        s.forward_auth.trusted_proxies = vec![pgusers::config::IpRange::parse("10.9.9.9").unwrap()];
    })
    .await;
    let r = auth(&untrusting, Method::GET, "/v1/auth", &forwarded).await;
    assert_eq!(
        r.headers["x-login-url"], "https://auth.example.com/login?rd=%2F",
        "headers from an untrusted peer are ignored"
    );
}

#[actix_web::test]
async fn the_login_page_sets_a_hardened_cookie_and_redirects_only_where_allowed() {
    let app = TestApp::start_with(|s| {
        s.session.cookie_secure = true;
        s.login.allowed_redirect_hosts = vec!["app.example.com".into()];
    })
    .await;
    app.create_user("fred", "s3cret-pass", false).await;
    let page = app
        .http
        .get(format!("{}/login?rd=/private", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"login-form\"") && html.contains("value=\"/private\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no third-party assets"
    );

    let submit = |rd: &'static str, password: &'static str| {
        app.http
            .post(format!("{}/login", app.base))
            .form(&[("username", "fred"), ("password", password), ("rd", rd)])
            .send()
    };
    let ok = submit("/private?a=1", "s3cret-pass").await.unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()[header::LOCATION], "/private?a=1");
    let cookie = ok.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    for attr in [
        "pgusers_session=",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Secure",
        "Max-Age=864000",
    ] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    let key = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("pgusers_session=")
        .to_string();
    assert_eq!(app.check(&key).await.status, StatusCode::OK);

    for (rd, expected) in [
        ("https://app.example.com/x", "https://app.example.com/x"),
        ("https://evil.example.net/", "/"),
        ("//evil.example.net/", "/"),
        ("/\\evil.example.net", "/"),
    ] {
        let r = app
            .http
            .post(format!("{}/login", app.base))
            .form(&[
                ("username", "fred"),
                ("password", "s3cret-pass"),
                ("rd", rd),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()[header::LOCATION], expected, "{rd}");
    }

    let failed = submit("/private", "wrong-password").await.unwrap();
    assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    assert!(failed.headers().get(header::SET_COOKIE).is_none());
    let html = failed.text().await.unwrap();
    assert!(html.contains("Wrong username or password") && !html.contains("wrong-password"));

    let out = app
        .http
        .get(format!("{}/logout", app.base))
        .header("Cookie", format!("pgusers_session={key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(out.headers()[header::LOCATION], "/login");
    assert!(out.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(app.check(&key).await.code(), "NOT_FOUND");
}

#[actix_web::test]
async fn json_logout_with_the_cookie_clears_it() {
    let app = TestApp::start().await;
    app.create_user("gil", "s3cret-pass", false).await;
    let key = app.login("gil", "s3cret-pass").await;
    let r = app
        .http
        .post(format!("{}/v1/logout", app.base))
        .header("Cookie", format!("pgusers_session={key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let r = app
        .post(
            "/v1/login",
            None,
            json!({"username": "gil", "password": "s3cret-pass"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}
