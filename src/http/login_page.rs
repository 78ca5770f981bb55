//! The browser login flow: `GET/POST /login` (a small HTML form that sets the session cookie,
//! persistent with "Remember me") and `GET/POST /logout`, with redirects restricted to relative
//! paths and allowed hosts, and cross-site form posts refused (login CSRF); and the page
//! plumbing the other browser pages share (escaping, headers, provenance).

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::cookies::{self, Lifetime};
use super::credentials::session_key;
use super::sessions::validate_login_input;
use super::AppState;
use crate::accounts::NewLogin;
use crate::http::error::ApiError;

#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    rd: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    rd: Option<String>,
    /// The "Remember me" checkbox: present (any value) when ticked.
    #[serde(default)]
    remember: Option<String>,
}

/// Where to send the browser after login: a relative path, or an absolute http(s) URL whose
/// host is allowed; anything else (`//host`, backslashes, other schemes, control characters) → `/`.
pub fn safe_redirect(rd: Option<&str>, allowed_hosts: &[String]) -> String {
    let Some(rd) = rd.map(str::trim).filter(|r| !r.is_empty()) else {
        return "/".into();
    };
    if rd.chars().any(|c| c.is_control() || c == '\\') {
        return "/".into();
    }
    if rd.starts_with('/') {
        return if rd.starts_with("//") {
            "/".into()
        } else {
            rd.to_string()
        };
    }
    let Ok(url) = url::Url::parse(rd) else {
        return "/".into();
    };
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return "/".into();
    }
    let Some(host) = url.host_str() else {
        return "/".into();
    };
    let host = host.to_ascii_lowercase();
    let with_port = url.port().map(|p| format!("{host}:{p}"));
    let allowed = allowed_hosts
        .iter()
        .any(|a| *a == host || Some(a) == with_port.as_ref());
    if allowed {
        url.to_string()
    } else {
        "/".into()
    }
}

pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const PAGE: &str = include_str!("login_page.html");

fn page(
    status: StatusCode,
    rd: &str,
    username: &str,
    remember: bool,
    message: Option<&str>,
) -> HttpResponse {
    let message = match message {
        Some(m) => format!(
            "<p class=\"error\" role=\"alert\" id=\"message\">{}</p>",
            escape(m)
        ),
        None => String::new(),
    };
    let html = PAGE
        .replace("{{rd}}", &escape(rd))
        .replace("{{username}}", &escape(username))
        .replace("{{remember}}", if remember { " checked" } else { "" })
        .replace("{{message}}", &message);
    html_response(status, html)
}

pub(super) fn html_response(status: StatusCode, html: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(html)
}

/// How the browser says a request relates to this site: `Sec-Fetch-Site` when it is sent
/// (every current browser), else `Origin` compared with the request's own host.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Provenance {
    /// From this origin's own pages, typed or bookmarked, or not from a browser at all
    /// (no `Sec-Fetch-Site` and no `Origin`: scripts, curl).
    OwnPages,
    /// From another site, or another origin of this site.
    Elsewhere,
}

pub(super) fn provenance(req: &HttpRequest) -> Provenance {
    if let Some(site) = req.headers().get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Provenance::OwnPages,
            _ => Provenance::Elsewhere,
        };
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Provenance::OwnPages;
    };
    let own = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .is_some_and(|(_, host)| host.eq_ignore_ascii_case(req.connection_info().host()));
    if own {
        Provenance::OwnPages
    } else {
        Provenance::Elsewhere
    }
}

const CROSS_SITE: &str = "This form was sent from another site. Sign in from this page instead.";

pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let q: LoginQuery =
        serde_urlencoded::from_str(req.query_string()).unwrap_or(LoginQuery { rd: None });
    let rd = safe_redirect(
        q.rd.as_deref(),
        &state.settings.login.allowed_redirect_hosts,
    );
    page(StatusCode::OK, &rd, "", false, None)
}

pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Bytes,
) -> HttpResponse {
    if provenance(&req) == Provenance::Elsewhere {
        return page(StatusCode::FORBIDDEN, "/", "", false, Some(CROSS_SITE));
    }
    let form: LoginForm = serde_urlencoded::from_bytes(&form).unwrap_or(LoginForm {
        username: String::new(),
        password: String::new(),
        rd: None,
        remember: None,
    });
    let remember = form.remember.is_some();
    let rd = safe_redirect(
        form.rd.as_deref(),
        &state.settings.login.allowed_redirect_hosts,
    );
    let failed = |username: &str| {
        page(
            StatusCode::UNAUTHORIZED,
            &rd,
            username,
            remember,
            Some("Wrong username or password."),
        )
    };
    if form.username.is_empty()
        || form.password.is_empty()
        || validate_login_input(&form.username, &form.password).is_err()
    {
        return failed(&form.username);
    }
    let username = form.username.clone();
    match state
        .services
        .users
        .login(NewLogin {
            username: form.username,
            password: form.password,
            extra_data: None,
            client: super::client::client_addr(&req, &state),
            user_agent: super::client::user_agent(&req),
            remember,
        })
        .await
        .map_err(ApiError::from)
    {
        Ok(outcome) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, rd.as_str()))
            .insert_header((
                header::SET_COOKIE,
                cookies::set_cookie(
                    &state.settings.session,
                    outcome.key.expose(),
                    Lifetime::of(
                        remember,
                        state.services.core.clock.now(),
                        outcome.expires_at,
                    ),
                ),
            ))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish(),
        Err(ApiError::InvalidCredentials) => failed(&username),
        Err(ApiError::TooManyRequests { retry_after_secs }) => {
            let mut r = page(
                StatusCode::TOO_MANY_REQUESTS,
                &rd,
                &username,
                remember,
                Some("Too many attempts; please wait and try again."),
            );
            if let Ok(v) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Err(_) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            &rd,
            &username,
            remember,
            Some("The service is unavailable; please try again later."),
        ),
    }
}

const LOGOUT_CONFIRM: &str =
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign out</title></head>\
<body><form method=\"post\" action=\"/logout\" id=\"logout-form\"><p>Sign out of this site?</p>\
<button type=\"submit\" id=\"logout\">Sign out</button></form></body></html>";

/// `GET /logout` from this site's own pages (or typed) ends the session; a navigation from
/// elsewhere only shows a button that posts, so other sites cannot sign users out.
pub async fn logout_link(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if provenance(&req) == Provenance::Elsewhere {
        return html_response(StatusCode::OK, LOGOUT_CONFIRM.to_string());
    }
    logout(req, state).await
}

/// `POST /logout`: ends the session, unless the form was posted from another site (403).
pub async fn logout(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if provenance(&req) == Provenance::Elsewhere {
        return html_response(
            StatusCode::FORBIDDEN,
            LOGOUT_CONFIRM.replace(
                "<p>",
                &format!("<p id=\"message\">{}</p><p>", escape(CROSS_SITE)),
            ),
        );
    }
    if let Some((key, _)) = session_key(&req, &state.settings.session.cookie_name) {
        if let Err(e) = state.services.sessions.logout(key).await {
            tracing::warn!(error = %e, "logout could not end the session");
        }
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .insert_header((
            header::SET_COOKIE,
            cookies::clearing_cookie(&state.settings.session),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["app.example.com".into(), "localhost:9000".into()]
    }

    #[test]
    fn relative_paths_are_kept() {
        assert_eq!(
            safe_redirect(Some("/app/page?x=1"), &allowed()),
            "/app/page?x=1"
        );
    }

    #[test]
    fn allowed_hosts_are_kept() {
        assert_eq!(
            safe_redirect(Some("https://app.example.com/x"), &allowed()),
            "https://app.example.com/x"
        );
        assert_eq!(
            safe_redirect(Some("http://localhost:9000/x"), &allowed()),
            "http://localhost:9000/x"
        );
    }

    #[test]
    fn everything_else_goes_home() {
        for evil in [
            "//evil.com/x",
            "/\\evil.com",
            "\\\\evil.com",
            "https://evil.com/",
            "https://app.example.com.evil.com/",
            "https://app.example.com@evil.com/",
            "https://user@app.example.com/",
            "javascript:alert(1)",
            "http://localhost:9001/",
            "/x\r\nSet-Cookie: a=b",
            "evil.com",
            "",
        ] {
            assert_eq!(safe_redirect(Some(evil), &allowed()), "/", "{evil}");
        }
        assert_eq!(safe_redirect(None, &allowed()), "/");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
