//! A real browser (headless Chromium driven through chromedriver, W3C WebDriver spoken
//! directly over HTTP) logs in through nginx with the daemon's login page, sees the
//! protected page with its identity, logs out and is refused again; two browsers, one ending
//! the other's session on `/sessions`; and "Remember me" as the browser keeps the cookie.
//! Saves screenshots of the login page and the sessions page in `docs/`.
//!
//! Needs the Debian packages `chromium`, `chromium-driver` and `nginx`. Without them the
//! test prints a SKIP line, except under CI (`CI` set), where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support_proxy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use base64::Engine as _;
use serde_json::{json, Value};
use support_proxy::*;

const PASSWORD: &str = "correct horse battery";
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

struct WebDriver {
    client: reqwest::Client,
    base: String,
    port: u16,
    session: String,
}

/// Closing the WebDriver session closes the browser, also when a step panicked. Plain
/// blocking HTTP because Drop cannot await.
impl Drop for WebDriver {
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
            let req = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session, self.port
            );
            let _ = s.write_all(req.as_bytes());
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    }
}

impl WebDriver {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        call(&self.client, method, &url, body).await
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn current_url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None).await["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None).await["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v["value"][ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("element {css} not found: {v}"))
            .to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn screenshot(&self, path: &Path) {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap_or_default())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Polls until the current URL satisfies `pred` (navigation after a click is async).
    async fn wait_url(&self, what: &str, pred: impl Fn(&url::Url) -> bool) -> url::Url {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let u = self.current_url().await;
            if let Ok(parsed) = url::Url::parse(&u) {
                if pred(&parsed) {
                    return parsed;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "browser: waited for {what}, still at {u}\n{}",
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Value {
    let mut rb = client.request(method.clone(), url);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("webdriver {method} {url}: {e}"));
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    assert!(status == 200, "webdriver {method} {url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Chromium and chromedriver, or `None` (after saying so; a failure under CI) when one is missing.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = require_tool("browser", "chromium", &["/usr/bin/chromium"], "chromium")?;
    let chromedriver = require_tool(
        "browser",
        "chromedriver",
        &["/usr/bin/chromedriver"],
        "chromium-driver",
    )?;
    Some((chromium, chromedriver))
}

/// A browser session; fields drop in order: the browser closes, then chromedriver stops, then
/// its directory goes.
struct Browser {
    wd: WebDriver,
    _driver: ChildGuard,
    _dir: tempfile::TempDir,
}

/// chromedriver on a free port, headless Chromium with a throwaway profile; the guards close
/// the browser (WebDriver first), then chromedriver, then remove the directory.
async fn open_browser(chromium: &Path, chromedriver: &Path) -> Browser {
    let wd_dir = tempfile::Builder::new()
        .prefix("pgusers-chromedriver-")
        .tempdir()
        .unwrap();
    let wd_port = free_port();
    let mut cmd = Command::new(chromedriver);
    cmd.arg(format!("--port={wd_port}"))
        .arg(format!(
            "--log-path={}",
            wd_dir.path().join("chromedriver.log").display()
        ))
        .env("HOME", wd_dir.path());
    let mut driver = ChildGuard::spawn("chromedriver", cmd, wd_dir.path());
    driver.logs.push(wd_dir.path().join("chromedriver.log"));
    wait_port(&mut driver, wd_port, Duration::from_secs(30)).await;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let wd_base = format!("http://127.0.0.1:{wd_port}");
    let profile = wd_dir.path().join("profile");
    let caps = json!({
        "capabilities": {
            "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium.display().to_string(),
                    "args": [
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-quic",
                        "--no-first-run",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--disable-dev-shm-usage",
                        "--window-size=900,700",
                        format!("--user-data-dir={}", profile.display()),
                    ]
                }
            }
        }
    });
    let v = call(
        &client,
        reqwest::Method::POST,
        &format!("{wd_base}/session"),
        Some(caps),
    )
    .await;
    let session = v["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no sessionId: {v}"))
        .to_string();
    let wd = WebDriver {
        client: client.clone(),
        base: wd_base.clone(),
        port: wd_port,
        session,
    };

    Browser {
        wd,
        _driver: driver,
        _dir: wd_dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_logs_in_through_nginx_and_out_again() {
    let Some(nginx) = require_tool("browser", "nginx", &["/usr/sbin/nginx"], "nginx") else {
        return;
    };
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };

    // The daemon announces its login page through nginx (X-Login-Url), so the example's
    // preferred branch is used: the original URL, query and all, percent-encoded by the
    // daemon, and an absolute rd that the daemon must accept because the host is allowed.
    let proxy_port = free_port();
    let login_url = format!("http://127.0.0.1:{proxy_port}/login");
    let allowed = format!("127.0.0.1:{proxy_port}");
    let daemon = Daemon::start(&[
        (
            "PGUSERS_FORWARD_AUTH__TRUSTED_PROXIES",
            "127.0.0.1/32,::1/128",
        ),
        ("PGUSERS_FORWARD_AUTH__LOGIN_URL", login_url.as_str()),
        ("PGUSERS_LOGIN__ALLOWED_REDIRECT_HOSTS", allowed.as_str()),
    ])
    .await;
    let up = Upstream::start().await;
    let alice = daemon.create_user("alice", PASSWORD, false).await;
    let proxy = start_proxy_on(ProxyKind::Nginx, &nginx, daemon.port, up.port, proxy_port).await;

    let browser = open_browser(&chromium, &chromedriver).await;
    let wd = &browser.wd;

    {
        let p = &proxy.base;
        // 1. A protected page sends the browser to the daemon's login page.
        let before = up.requests_to("/app/");
        wd.goto(&format!("{p}/app/page?x=1&y=a%20b")).await;
        let at = wd
            .wait_url("the login page", |u| u.path() == "/login")
            .await;
        assert_eq!(
            up.requests_to("/app/"),
            before,
            "the protected page was served without login"
        );
        let rd = at
            .query_pairs()
            .find(|(k, _)| k == "rd")
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        assert_eq!(
            rd,
            format!("{p}/app/page?x=1&y=a%20b"),
            "login page rd ({at})"
        );
        let html = wd.source().await;
        assert!(html.contains("login-form"), "not the login form: {html}");
        wd.screenshot(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/login-page.png"))
            .await;
        println!("browser: ok   redirected to {at}, screenshot saved to docs/login-page.png");

        // 2. A wrong password: still on the login page, nothing reached the upstream.
        wd.type_into("#username", "alice").await;
        wd.type_into("#password", "not the password").await;
        wd.click("#submit").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        wd.wait_url("the login page again", |u| u.path() == "/login")
            .await;
        assert_eq!(
            up.requests_to("/app/"),
            before,
            "a wrong password reached the upstream"
        );
        println!("browser: ok   wrong password stays on the login page");

        // 3. The right password: back on the protected page, with the identity.
        wd.type_into("#username", "alice").await;
        wd.type_into("#password", PASSWORD).await;
        wd.click("#submit").await;
        let at = wd
            .wait_url("the protected page", |u| u.path() == "/app/page")
            .await;
        assert_eq!(at.query(), Some("x=1&y=a%20b"), "landed on {at}");
        let html = wd.source().await;
        assert!(
            html.contains("\"x-user\":[\"alice\"]"),
            "the upstream did not see X-User alice: {html}"
        );
        assert!(
            html.contains(&format!("\"x-user-id\":[\"{alice}\"]")),
            "the upstream did not see X-User-Id {alice}: {html}"
        );
        assert_eq!(up.requests_to("/app/"), before + 1);
        println!("browser: ok   logged in, the upstream saw X-User alice");

        // 4. Log out: back on the login page, and the protected page is refused again.
        wd.goto(&format!("{p}/logout")).await;
        wd.wait_url("the login page after logout", |u| u.path() == "/login")
            .await;
        let before = up.requests_to("/app/");
        wd.goto(&format!("{p}/app/page?x=1")).await;
        wd.wait_url("the login page after logout", |u| u.path() == "/login")
            .await;
        assert_eq!(
            up.requests_to("/app/"),
            before,
            "the protected page was served after logout"
        );
        println!("browser: ok   logged out, refused again");
    }
    // Close the browser, then stop chromedriver, nginx and the daemon (also on panic, by
    // the guards' Drop in reverse order of creation).
    drop(browser);
    drop(proxy);
    drop(daemon);
}

/// Serves `html` to every request on a free port of 127.0.0.1 (another origin than the
/// daemon's when reached as `localhost`), while the server is kept.
fn serve_page(html: String) -> TestServer {
    TestServer::start(move |routes| {
        let html = html.clone();
        routes.default_service(web::to(move || {
            let html = html.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body(html)
            }
        }));
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_site_cannot_log_the_browser_into_another_account() {
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    let daemon = Daemon::start(&[]).await;
    daemon.create_user("mallory", PASSWORD, false).await;
    let login = format!("http://127.0.0.1:{}/login", daemon.port);
    let attacker = serve_page(format!(
        "<!doctype html><form id=\"f\" method=\"post\" action=\"{login}\">\
         <input name=\"username\" value=\"mallory\"><input name=\"password\" value=\"{PASSWORD}\">\
         <input name=\"rd\" value=\"/login\"></form>\
         <script>document.getElementById('f').submit()</script>"
    ));
    let browser = open_browser(&chromium, &chromedriver).await;
    let wd = &browser.wd;

    wd.goto(&format!("http://localhost:{}/", attacker.port))
        .await;
    wd.wait_url("the daemon's answer to the forged post", |u| {
        u.host_str() == Some("127.0.0.1") && u.path() == "/login"
    })
    .await;
    let html = wd.source().await;
    assert!(
        html.contains("from another site"),
        "the cross-site post was not refused: {html}"
    );
    let cookies = wd.call(reqwest::Method::GET, "/cookie", None).await;
    assert!(
        !cookies.to_string().contains(COOKIE),
        "the browser got a session cookie from another site's form: {cookies}"
    );
    println!("browser: ok   a form on another site cannot log the browser in");

    // The daemon's own form still works in the same browser.
    wd.goto(&login).await;
    wd.type_into("#username", "mallory").await;
    wd.type_into("#password", PASSWORD).await;
    wd.click("#submit").await;
    wd.wait_url("the redirect after login", |u| u.path() != "/login")
        .await;
    let cookies = wd.call(reqwest::Method::GET, "/cookie", None).await;
    assert!(
        cookies.to_string().contains(COOKIE),
        "the daemon's own form did not log in: {cookies}"
    );
    println!("browser: ok   the daemon's own form logs in");
    drop(browser);
    drop(daemon);
}

/// Signs `user` in on the login page at `base` (ticking "Remember me" when asked) and waits
/// for the protected page `rd`.
async fn sign_in(wd: &WebDriver, base: &str, user: &str, remember: bool, rd: &str) {
    wd.goto(&format!("{base}/login?rd={rd}")).await;
    wd.wait_url("the login page", |u| u.path() == "/login")
        .await;
    wd.type_into("#username", user).await;
    wd.type_into("#password", PASSWORD).await;
    if remember {
        wd.click("#remember").await;
    }
    wd.click("#submit").await;
    wd.wait_url("the page after login", |u| u.path() == rd)
        .await;
}

/// The browser's session cookie as WebDriver describes it (`expiry` only for a persistent one).
async fn session_cookie(wd: &WebDriver) -> Value {
    wd.call(reqwest::Method::GET, &format!("/cookie/{COOKIE}"), None)
        .await["value"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_ends_another_browsers_session_on_the_sessions_page_and_it_is_refused_at_once() {
    let Some(nginx) = require_tool("browser", "nginx", &["/usr/sbin/nginx"], "nginx") else {
        return;
    };
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    let daemon = Daemon::start(&[(
        "PGUSERS_FORWARD_AUTH__TRUSTED_PROXIES",
        "127.0.0.1/32,::1/128",
    )])
    .await;
    let up = Upstream::start().await;
    daemon.create_user("alice", PASSWORD, false).await;
    let proxy = start_proxy(ProxyKind::Nginx, &nginx, daemon.port, up.port).await;
    let one = open_browser(&chromium, &chromedriver).await;
    let two = open_browser(&chromium, &chromedriver).await;
    {
        let p = &proxy.base;
        sign_in(&one.wd, p, "alice", false, "/app/page").await;
        sign_in(&two.wd, p, "alice", false, "/app/page").await;

        // 1. Browser one sees both sessions, itself marked, with the browser's user agent.
        one.wd.goto(&format!("{p}/sessions")).await;
        one.wd
            .wait_url("the sessions page", |u| u.path() == "/sessions")
            .await;
        let html = one.wd.source().await;
        assert_eq!(html.matches("id=\"session-").count(), 2, "{html}");
        assert_eq!(html.matches("class=\"this-device\"").count(), 1, "{html}");
        assert!(html.contains("HeadlessChrome"), "the user agent: {html}");
        one.wd
            .screenshot(&Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/sessions-page.png"))
            .await;
        println!("browser: ok   the sessions page lists both browsers, this one marked");

        // 2. It ends the other one.
        one.wd
            .click("tr:not(.this-device) button[name=\"end\"]")
            .await;
        one.wd
            .wait_url("the page after ending", |u| u.query() == Some("ended=1"))
            .await;
        let html = one.wd.source().await;
        assert!(html.contains("Ended 1 session."), "{html}");
        assert_eq!(html.matches("id=\"session-").count(), 1, "{html}");

        // 3. Browser two's very next request is refused: back to the login page.
        let before = up.requests_to("/app/");
        two.wd.goto(&format!("{p}/app/page")).await;
        two.wd
            .wait_url("the login page for the ended browser", |u| {
                u.path() == "/login"
            })
            .await;
        assert_eq!(
            up.requests_to("/app/"),
            before,
            "the ended session reached the app"
        );
        println!("browser: ok   the other browser's session ended, its next request refused");

        // 4. Browser one is still signed in.
        one.wd.goto(&format!("{p}/app/page")).await;
        one.wd
            .wait_url("the protected page", |u| u.path() == "/app/page")
            .await;
        assert_eq!(up.requests_to("/app/"), before + 1);
    }
    drop(two);
    drop(one);
    drop(proxy);
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remember_me_gives_the_browser_a_persistent_cookie_that_follows_the_session() {
    let Some(nginx) = require_tool("browser", "nginx", &["/usr/sbin/nginx"], "nginx") else {
        return;
    };
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    let daemon = Daemon::start(&[
        (
            "PGUSERS_FORWARD_AUTH__TRUSTED_PROXIES",
            "127.0.0.1/32,::1/128",
        ),
        ("PGUSERS_SESSION__REMEMBER_TTL", "3600"),
        ("PGUSERS_SESSION__REFRESH_INTERVAL", "1s"),
    ])
    .await;
    let up = Upstream::start().await;
    daemon.create_user("bea", PASSWORD, false).await;
    let proxy = start_proxy(ProxyKind::Nginx, &nginx, daemon.port, up.port).await;
    let browser = open_browser(&chromium, &chromedriver).await;
    let wd = &browser.wd;
    {
        let p = &proxy.base;
        sign_in(wd, p, "bea", false, "/app/page").await;
        let cookie = session_cookie(wd).await;
        assert!(
            cookie["value"].is_string() && cookie.get("expiry").is_none(),
            "without remember me, a browser-session cookie: {cookie}"
        );
        println!("browser: ok   no remember me: a session cookie (no expiry)");

        wd.goto(&format!("{p}/logout")).await;
        wd.wait_url("the login page after logout", |u| u.path() == "/login")
            .await;
        sign_in(wd, p, "bea", true, "/app/page").await;
        let cookie = session_cookie(wd).await;
        let expiry = cookie["expiry"]
            .as_i64()
            .unwrap_or_else(|| panic!("with remember me, a persistent cookie: {cookie}"));
        let left = expiry - chrono::Utc::now().timestamp();
        assert!(
            (3600 - 120..=3600 + 5).contains(&left),
            "expires in {left} s"
        );
        println!("browser: ok   remember me: a persistent cookie, expiring in {left} s");

        // The session slides; nginx passes the re-issued cookie on, so its expiry moves too.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        wd.goto(&format!("{p}/app/page?again=1")).await;
        wd.wait_url("the protected page", |u| u.query() == Some("again=1"))
            .await;
        let later = session_cookie(wd).await["expiry"].as_i64().unwrap_or(0);
        assert!(
            later > expiry,
            "the cookie's expiry follows the sliding session: {expiry} then {later}"
        );
        println!("browser: ok   the persistent cookie's expiry follows the session ({expiry} -> {later})");
    }
    drop(browser);
    drop(proxy);
    drop(daemon);
}
