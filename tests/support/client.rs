//! The one API client of the tests: a running daemon's base URL (in-process or the spawned
//! binary) and its API token, with the calls tests make again and again (create a user, log in,
//! check, log out, kill sessions, set groups), each asserting the status it expects.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A response as a test sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// Reads the whole response; `body` is its JSON, or `Null` when it is not JSON.
    pub async fn of(resp: reqwest::Response) -> Self {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
            text,
        }
    }

    /// The stable error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

/// The e-mail address `create_user` gives a user.
pub fn email_of(username: &str) -> String {
    format!("{username}@example.org")
}

/// The daemon's API at `base`, with `token` for the admin calls. Its HTTP client never follows
/// redirects and keeps no cookies: tests send credentials explicitly.
#[derive(Clone)]
pub struct ApiClient {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        Self::with_http(base, token, http)
    }

    /// Same, over the given HTTP client (e.g. one with a timeout).
    pub fn with_http(
        base: impl Into<String>,
        token: impl Into<String>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            base: base.into(),
            token: token.into(),
            http,
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Reply::of(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        self.request(Method::GET, path, bearer, None).await
    }

    pub async fn post(&self, path: &str, bearer: Option<&str>, body: Value) -> Reply {
        self.request(Method::POST, path, bearer, Some(body)).await
    }

    /// A call with the API token.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.request(method, path, Some(&self.token), body).await
    }

    /// `POST /v1/users` (e-mail `email_of(username)`); returns the new user's id.
    pub async fn create_user(&self, username: &str, password: &str, admin: bool) -> i64 {
        let r = self
            .admin(
                Method::POST,
                "/v1/users",
                Some(json!({
                    "username": username,
                    "password": password,
                    "email": email_of(username),
                    "admin": admin,
                })),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "POST /v1/users {username}: {}",
            r.text
        );
        r.body["userid"]
            .as_i64()
            .unwrap_or_else(|| panic!("no userid in {}", r.text))
    }

    /// `PUT /v1/users/{userid}/groups`.
    pub async fn set_groups(&self, userid: i64, groups: &[&str]) {
        let path = format!("/v1/users/{userid}/groups");
        let r = self
            .admin(Method::PUT, &path, Some(json!({ "groups": groups })))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "PUT {path}: {}", r.text);
    }

    /// `POST /v1/login`, whatever the answer.
    pub async fn try_login(&self, username: &str, password: &str) -> Reply {
        self.post(
            "/v1/login",
            None,
            json!({"username": username, "password": password}),
        )
        .await
    }

    /// `POST /v1/login`, which must succeed; returns the session key.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let r = self.try_login(username, password).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "POST /v1/login {username}: {}",
            r.text
        );
        r.body["key"]
            .as_str()
            .unwrap_or_else(|| panic!("no key in {}", r.text))
            .to_string()
    }

    /// `POST /v1/sessions/check`, whatever the answer.
    pub async fn check(&self, key: &str) -> Reply {
        self.post("/v1/sessions/check", None, json!({ "key": key }))
            .await
    }

    /// `POST /v1/logout` with the key as bearer.
    pub async fn logout(&self, key: &str) {
        let r = self
            .request(Method::POST, "/v1/logout", Some(key), None)
            .await;
        assert_eq!(
            r.status,
            StatusCode::NO_CONTENT,
            "POST /v1/logout: {}",
            r.text
        );
    }

    /// `DELETE /v1/sessions?userid=N`; returns how many were killed.
    pub async fn kill_sessions(&self, userid: i64) -> i64 {
        let path = format!("/v1/sessions?userid={userid}");
        let r = self.admin(Method::DELETE, &path, None).await;
        assert_eq!(r.status, StatusCode::OK, "DELETE {path}: {}", r.text);
        r.body["killed"]
            .as_i64()
            .unwrap_or_else(|| panic!("no killed in {}", r.text))
    }
}
