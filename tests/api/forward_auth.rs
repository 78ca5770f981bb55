//! Forward auth (`/v1/auth`, `/v1/auth/admin`) and the browser login flow, over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use reqwest::{header, Method, StatusCode};
use serde_json::json;
use support::{Reply, TestApp};

async fn auth(app: &TestApp, method: Method, path: &str, headers: &[(&str, String)]) -> Reply {
    let mut req = app.http.request(method, format!("{}{path}", app.base));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    Reply::of(req.send().await.unwrap()).await
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
    ] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(
        !cookie.contains("Max-Age") && !cookie.contains("Expires"),
        "without \"remember me\" the cookie lasts the browser session: {cookie}"
    );
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
    let r = app.try_login("gil", "s3cret-pass").await;
    assert_eq!(r.status, StatusCode::CREATED);
}

/// What a browser sends (Firefox's and Chromium's default `Accept` for a page).
const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// The headers Traefik sets on the forward-auth request for `https://app.example.com/private/page?x=1`.
fn traefik_forwarded() -> Vec<(&'static str, String)> {
    vec![
        ("X-Forwarded-Method", "GET".to_string()),
        ("X-Forwarded-Proto", "https".to_string()),
        ("X-Forwarded-Host", "app.example.com".to_string()),
        ("X-Forwarded-Uri", "/private/page?x=1".to_string()),
    ]
}

async fn redirecting_app(allowed_hosts: &[&str]) -> TestApp {
    let allowed: Vec<String> = allowed_hosts.iter().map(|h| h.to_string()).collect();
    TestApp::start_with(|s| {
        s.session.ttl = std::time::Duration::from_secs(60);
        s.forward_auth.login_url = Some("https://auth.example.com/login".into());
        s.forward_auth.redirect_browsers = true;
        s.login.allowed_redirect_hosts = allowed;
    })
    .await
}

#[actix_web::test]
async fn in_redirect_mode_a_browser_without_a_valid_session_is_sent_to_the_login_page() {
    let app = redirecting_app(&["app.example.com"]).await;
    app.create_user("bob", "s3cret-pass", false).await;
    let key = app.login("bob", "s3cret-pass").await;
    let expected =
        "https://auth.example.com/login?rd=https%3A%2F%2Fapp.example.com%2Fprivate%2Fpage%3Fx%3D1";

    let mut no_session = traefik_forwarded();
    no_session.push(("Accept", BROWSER_ACCEPT.to_string()));
    let mut unknown_cookie = no_session.clone();
    unknown_cookie.push((
        "Cookie",
        "pgusers_session=AAAAunknownunknownunknownunknown".into(),
    ));
    let none = auth(&app, Method::GET, "/v1/auth", &no_session).await;
    let unknown = auth(&app, Method::GET, "/v1/auth", &unknown_cookie).await;
    let admin_area = auth(&app, Method::GET, "/v1/auth/admin", &no_session).await;
    app.clock.advance(chrono::Duration::seconds(61));
    let mut expired_cookie = no_session.clone();
    expired_cookie.push(("Cookie", format!("pgusers_session={key}")));
    let expired = auth(&app, Method::GET, "/v1/auth", &expired_cookie).await;

    for (what, r) in [
        ("no session", none),
        ("unknown cookie", unknown),
        ("admin area, no session", admin_area),
        ("expired cookie", expired),
    ] {
        assert_eq!(r.status, StatusCode::FOUND, "{what}: {r:?}");
        assert_eq!(r.headers[header::LOCATION], expected, "{what}");
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store", "{what}");
        assert!(r.headers.get("x-user").is_none(), "{what}");
    }
}

#[actix_web::test]
async fn in_redirect_mode_api_clients_still_get_401_json() {
    let app = redirecting_app(&["app.example.com"]).await;
    for accept in [
        None,
        Some("*/*"),
        Some("application/json"),
        Some("text/html;q=0, application/json"),
        Some("not a media type"),
    ] {
        let mut headers = traefik_forwarded();
        if let Some(a) = accept {
            headers.push(("Accept", a.to_string()));
        }
        let r = auth(&app, Method::GET, "/v1/auth", &headers).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "Accept {accept:?}");
        assert_eq!(r.code(), "UNAUTHENTICATED", "Accept {accept:?}");
        assert_eq!(
            r.headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"pgusers\""
        );
        assert!(r.headers.get(header::LOCATION).is_none());
        assert_eq!(
            r.headers["x-login-url"],
            "https://auth.example.com/login?rd=https%3A%2F%2Fapp.example.com%2Fprivate%2Fpage%3Fx%3D1",
            "the login hint stays for API clients"
        );
    }
}

#[actix_web::test]
async fn in_redirect_mode_a_browser_that_is_no_admin_gets_403_not_a_redirect() {
    let app = redirecting_app(&["app.example.com"]).await;
    app.create_user("plain", "s3cret-pass", false).await;
    let plain = app.login("plain", "s3cret-pass").await;
    let mut headers = traefik_forwarded();
    headers.push(("Accept", BROWSER_ACCEPT.to_string()));
    headers.push(("Cookie", format!("pgusers_session={plain}")));
    let r = auth(&app, Method::GET, "/v1/auth/admin", &headers).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "FORBIDDEN");
    let r = auth(&app, Method::GET, "/v1/auth", &headers).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a valid session is never redirected"
    );
    assert_eq!(r.headers["x-user"], "plain");
}

#[actix_web::test]
async fn the_return_address_of_the_redirect_must_pass_the_allow_list_and_come_from_a_trusted_proxy()
{
    let mut browser = traefik_forwarded();
    browser.push(("Accept", BROWSER_ACCEPT.to_string()));

    // app.example.com is not an allowed host: the login page would refuse it, so it is not sent.
    let app = redirecting_app(&["other.example.com"]).await;
    let r = auth(&app, Method::GET, "/v1/auth", &browser).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        r.headers[header::LOCATION],
        "https://auth.example.com/login?rd=%2F"
    );

    // A forged host from the client (Traefik copies the Host header) is not carried either.
    let app = redirecting_app(&["app.example.com"]).await;
    let mut forged = browser.clone();
    forged[2].1 = "evil.example".into();
    let r = auth(&app, Method::GET, "/v1/auth", &forged).await;
    assert_eq!(
        r.headers[header::LOCATION],
        "https://auth.example.com/login?rd=%2F"
    );

    // A path alone (X-Original-URI, no host) is relative and always allowed.
    let r = auth(
        &app,
        Method::GET,
        "/v1/auth",
        &[
            ("Accept", BROWSER_ACCEPT.to_string()),
            ("X-Original-URI", "/docs/a b".to_string()),
        ],
    )
    .await;
    assert_eq!(
        r.headers[header::LOCATION],
        "https://auth.example.com/login?rd=%2Fdocs%2Fa%20b"
    );

    // Headers from a peer that is not a trusted proxy are ignored.
    let untrusting = TestApp::start_with(|s| {
        s.forward_auth.login_url = Some("https://auth.example.com/login".into());
        s.forward_auth.redirect_browsers = true;
        s.login.allowed_redirect_hosts = vec!["app.example.com".into()];
        s.forward_auth.trusted_proxies = vec![pgusers::config::IpRange::parse("10.9.9.9").unwrap()];
    })
    .await;
    let r = auth(&untrusting, Method::GET, "/v1/auth", &browser).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        r.headers[header::LOCATION],
        "https://auth.example.com/login?rd=%2F"
    );
}

#[actix_web::test]
async fn without_redirect_mode_a_browser_gets_the_401() {
    let app = TestApp::start_with(|s| {
        s.forward_auth.login_url = Some("https://auth.example.com/login".into());
        s.login.allowed_redirect_hosts = vec!["app.example.com".into()];
    })
    .await;
    let mut browser = traefik_forwarded();
    browser.push(("Accept", BROWSER_ACCEPT.to_string()));
    let r = auth(&app, Method::GET, "/v1/auth", &browser).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.get(header::LOCATION).is_none());
}

#[actix_web::test]
async fn the_login_form_refuses_posts_from_other_sites_and_other_sites_cannot_sign_users_out() {
    let app = TestApp::start().await;
    app.create_user("ivy", "s3cret-pass", false).await;
    let own_origin = app.base.clone();
    let post_login = |headers: Vec<(&'static str, String)>| {
        let mut req = app
            .http
            .post(format!("{}/login", app.base))
            .form(&[("username", "ivy"), ("password", "s3cret-pass")]);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    for refused in [
        vec![("Sec-Fetch-Site", "cross-site".to_string())],
        vec![("Sec-Fetch-Site", "same-site".to_string())],
        vec![
            ("Sec-Fetch-Site", "cross-site".to_string()),
            ("Origin", own_origin.clone()),
        ],
        vec![("Origin", "https://evil.example".to_string())],
        vec![("Origin", "null".to_string())],
    ] {
        let r = post_login(refused.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{refused:?}");
        assert!(r.headers().get(header::SET_COOKIE).is_none(), "{refused:?}");
        assert!(r.text().await.unwrap().contains("from another site"));
    }
    for accepted in [
        vec![("Sec-Fetch-Site", "same-origin".to_string())],
        vec![("Origin", own_origin.clone())],
        vec![],
    ] {
        let r = post_login(accepted.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{accepted:?}");
    }

    let key = app.login("ivy", "s3cret-pass").await;
    let cookie = format!("pgusers_session={key}");
    let from_elsewhere = app
        .http
        .get(format!("{}/logout", app.base))
        .header("Cookie", &cookie)
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(from_elsewhere.status(), StatusCode::OK);
    assert!(from_elsewhere.headers().get(header::SET_COOKIE).is_none());
    assert!(from_elsewhere
        .text()
        .await
        .unwrap()
        .contains("method=\"post\" action=\"/logout\""));
    let posted_from_elsewhere = app
        .http
        .post(format!("{}/logout", app.base))
        .header("Cookie", &cookie)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(posted_from_elsewhere.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.check(&key).await.status,
        StatusCode::OK,
        "the session survived both"
    );
    let confirmed = app
        .http
        .post(format!("{}/logout", app.base))
        .header("Cookie", &cookie)
        .header("Sec-Fetch-Site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.check(&key).await.code(), "NOT_FOUND");
}

/// The `Set-Cookie` value of a response, if any.
fn set_cookie(r: &Reply) -> Option<String> {
    r.headers
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_string())
}

/// The attributes of a `Set-Cookie` value.
fn attrs(cookie: &str) -> Vec<&str> {
    cookie.split(';').map(str::trim).collect()
}

/// Logs in through the login form, remembered or not; returns the `Set-Cookie` value and key.
async fn form_login(app: &TestApp, user: &str, remember: bool) -> (String, String) {
    let mut form = vec![("username", user), ("password", "s3cret-pass"), ("rd", "/")];
    if remember {
        form.push(("remember", "1"));
    }
    let r = app
        .http
        .post(format!("{}/login", app.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    let key = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("pgusers_session=")
        .to_string();
    (cookie, key)
}

fn seconds_until(at: &serde_json::Value) -> i64 {
    let at: chrono::DateTime<chrono::Utc> = at.as_str().unwrap().parse().unwrap();
    (at - chrono::Utc::now()).num_seconds()
}

#[actix_web::test]
async fn remember_me_on_the_login_form_sets_a_persistent_cookie_for_the_remember_ttl() {
    let app = TestApp::start_with(|s| {
        s.session.ttl = std::time::Duration::from_secs(3600);
        s.session.remember_ttl = std::time::Duration::from_secs(7 * 86_400);
    })
    .await;
    app.create_user("rita", "s3cret-pass", false).await;
    let page = app.get("/login", None).await;
    assert!(
        page.text.contains("name=\"remember\"") && page.text.contains("Remember me"),
        "the form has a Remember me box: {}",
        page.text
    );

    let (cookie, key) = form_login(&app, "rita", true).await;
    assert!(
        attrs(&cookie).contains(&"Max-Age=604800")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "a remembered login keeps its cookie for remember_ttl: {cookie}"
    );
    let left = seconds_until(&app.check(&key).await.body["expires_at"]);
    assert!((7 * 86_400 - 60..=7 * 86_400).contains(&left), "{left}");

    let (cookie, key) = form_login(&app, "rita", false).await;
    assert!(!cookie.contains("Max-Age"), "{cookie}");
    let left = seconds_until(&app.check(&key).await.body["expires_at"]);
    assert!((3600 - 60..=3600).contains(&left), "{left}");

    // A failed remembered login shows the form again with the box still ticked.
    let r = app
        .http
        .post(format!("{}/login", app.base))
        .form(&[
            ("username", "rita"),
            ("password", "wrong-pass"),
            ("remember", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let html = r.text().await.unwrap();
    assert!(html.contains("value=\"1\" checked"), "{html}");
}

#[actix_web::test]
async fn a_remembered_api_login_slides_by_the_remember_ttl_whatever_the_api_ttl() {
    let app = TestApp::start_with(|s| {
        s.session.ttl = std::time::Duration::from_secs(3600);
        s.session.remember_ttl = std::time::Duration::from_secs(86_400);
    })
    .await;
    app.create_user("remy", "s3cret-pass", false).await;
    let login = |remember: serde_json::Value| {
        app.post(
            "/v1/login",
            None,
            json!({"username": "remy", "password": "s3cret-pass", "remember": remember}),
        )
    };
    let remembered = login(json!(true)).await;
    assert_eq!(remembered.status, StatusCode::CREATED);
    assert!(
        set_cookie(&remembered).is_none(),
        "the JSON login sets no cookie"
    );
    let left = seconds_until(&remembered.body["expires_at"]);
    assert!((86_400 - 60..=86_400).contains(&left), "{left}");
    let plain = login(json!(false)).await;
    let left = seconds_until(&plain.body["expires_at"]);
    assert!((3600 - 60..=3600).contains(&left), "{left}");
    assert_eq!(login(json!("yes")).await.code(), "BAD_CALL");

    // The API override of session.ttl applies to the sessions that were not remembered.
    let r = app
        .admin(
            Method::PUT,
            "/v1/settings/session_ttl",
            Some(json!({"seconds": 600})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let remembered_key = remembered.body["key"].as_str().unwrap();
    let plain_key = plain.body["key"].as_str().unwrap();
    let left = seconds_until(&app.check(remembered_key).await.body["expires_at"]);
    assert!((86_400 - 60..=86_400).contains(&left), "remembered: {left}");
    let left = seconds_until(&app.check(plain_key).await.body["expires_at"]);
    assert!((600 - 60..=600).contains(&left), "not remembered: {left}");

    let mine = app.get("/v1/me/sessions", Some(plain_key)).await;
    let flags: Vec<bool> = mine.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["remember"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, vec![true, false], "{}", mine.text);
}

#[actix_web::test]
async fn forward_auth_reissues_a_remembered_cookie_only_when_the_expiry_moved() {
    let app = TestApp::start_with(|s| {
        s.session.remember_ttl = std::time::Duration::from_secs(3600);
        s.session.refresh_interval = std::time::Duration::from_secs(60);
    })
    .await;
    app.create_user("sam", "s3cret-pass", false).await;
    let (_, remembered) = form_login(&app, "sam", true).await;
    let (_, plain) = form_login(&app, "sam", false).await;
    let with_cookie = |key: &str| vec![("Cookie", format!("pgusers_session={key}"))];

    let r = auth(&app, Method::GET, "/v1/auth", &with_cookie(&remembered)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        set_cookie(&r),
        None,
        "the expiry has not moved since the login"
    );

    app.clock.advance(chrono::Duration::seconds(120));
    let r = auth(&app, Method::GET, "/v1/auth", &with_cookie(&remembered)).await;
    let cookie = set_cookie(&r).expect("the slid cookie is re-issued");
    assert!(
        cookie.starts_with(&format!("pgusers_session={remembered};"))
            && attrs(&cookie).contains(&"Max-Age=3600")
            && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r = auth(&app, Method::GET, "/v1/auth", &with_cookie(&remembered)).await;
    assert_eq!(set_cookie(&r), None, "not on every request");

    // Not for a browser-session cookie, nor for a key presented as a bearer credential.
    let r = auth(&app, Method::GET, "/v1/auth", &with_cookie(&plain)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(set_cookie(&r), None);
    app.clock.advance(chrono::Duration::seconds(120));
    let bearer = vec![("Authorization", format!("Bearer {remembered}"))];
    let r = auth(&app, Method::GET, "/v1/auth", &bearer).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(set_cookie(&r), None);
}
