//! Forward auth for reverse proxies (`/v1/auth`, `/v1/auth/admin`, each with optional
//! `?group=` requirements): the per-request answer to "is this session valid, may it pass, and
//! who is it?", with the identity in response headers, and the way a request without a valid
//! session is sent to the login page.

use std::net::IpAddr;

use actix_web::http::header::{self, Accept, Header, HeaderValue, Quality};
use actix_web::{mime, web, HttpRequest, HttpResponse, ResponseError};

use super::cookies;
use super::credentials::{session_key, KeySource};
use super::login_page::safe_redirect;
use super::AppState;
use crate::domain::groups;
use crate::http::error::ApiError;
use crate::sessions;

pub async fn any_user(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    authorize(&req, &state, false).await
}

pub async fn admin_only(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    authorize(&req, &state, true).await
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_bytes(text.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The groups named by `?group=` (repeatable; any one of them admits), folded to lower case;
/// other parameters are ignored (the contract reads only `group`). A name that cannot be a
/// group is a mistake in the proxy's configuration: 400, never silently a group nobody is in.
fn wanted_groups(req: &HttpRequest) -> Result<Vec<String>, ApiError> {
    let query = req.query_string();
    if query.is_empty() {
        return Ok(Vec::new());
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad_call(format!("query string: {e}")))?;
    pairs
        .into_iter()
        .filter(|(key, _)| key == "group")
        .map(|(_, value)| Ok(groups::name(&value)?))
        .collect()
}

async fn authorize(req: &HttpRequest, state: &AppState, need_admin: bool) -> HttpResponse {
    let wanted = match wanted_groups(req) {
        Ok(wanted) => wanted,
        Err(e) => return e.error_response(),
    };
    let Some((key, source)) = session_key(req, &state.settings.session.cookie_name) else {
        return unauthorized(req, state, ApiError::Unauthenticated);
    };
    let session = match state.services.sessions.check(key).await {
        Ok(s) => s,
        Err(e @ (sessions::Error::NotFound | sessions::Error::Expired)) => {
            return unauthorized(req, state, e.into())
        }
        Err(other) => return ApiError::from(other).error_response(),
    };
    if need_admin && !session.admin {
        return ApiError::Forbidden("this resource needs an administrator".into()).error_response();
    }
    if !wanted.is_empty() && !groups::any_of(&session.groups, &wanted) {
        return ApiError::Forbidden("this resource needs membership of another group".into())
            .error_response();
    }
    let h = &state.identity_headers;
    let mut response = HttpResponse::Ok();
    response
        .insert_header((h.user.clone(), header_value(session.username())))
        .insert_header((h.user_id.clone(), HeaderValue::from(session.userid)))
        .insert_header((h.email.clone(), header_value(session.email())))
        .insert_header((
            h.admin.clone(),
            HeaderValue::from_static(if session.admin { "true" } else { "false" }),
        ))
        .insert_header((h.groups.clone(), header_value(&session.groups)))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    // A remembered session's persistent cookie follows its sliding expiry: re-issued when this
    // check wrote the expiry through (the proxy passes it on to the browser).
    if source == KeySource::Cookie {
        let s = &state.settings.session;
        if let Some(c) = cookies::refreshed(s, key, &session, &*state.services.core.clock) {
            response.insert_header((header::SET_COOKIE, c));
        }
    }
    response.finish()
}

/// No valid session: 401 with `WWW-Authenticate`, and `X-Login-Url` when a login page is
/// configured; or, with `forward_auth.redirect_browsers`, 302 to the login page for a browser,
/// the original URL as its return address when the redirect allow-list accepts it.
fn unauthorized(req: &HttpRequest, state: &AppState, err: ApiError) -> HttpResponse {
    let forward_auth = &state.settings.forward_auth;
    let Some(login_url) = &forward_auth.login_url else {
        return err.error_response();
    };
    let original = original_url(req, state);
    if forward_auth.redirect_browsers && accepts_html(req) {
        let rd = safe_redirect(
            original.as_deref(),
            &state.settings.login.allowed_redirect_hosts,
        );
        if let Ok(location) = HeaderValue::from_str(&with_return_address(login_url, &rd)) {
            return HttpResponse::Found()
                .insert_header((header::LOCATION, location))
                .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
                .finish();
        }
    }
    let mut response = err.error_response();
    let target = original.unwrap_or_else(|| "/".into());
    if let Ok(v) = HeaderValue::from_str(&with_return_address(login_url, &target)) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-login-url"), v);
    }
    response
}

/// `login_url` with `rd=<target>` added to its query.
fn with_return_address(login_url: &str, target: &str) -> String {
    let mut url = login_url.to_owned();
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str("rd=");
    url.push_str(&percent_encode(target));
    url
}

/// A browser: the request names `text/html` among the types it accepts. `*/*` alone, which
/// API clients (curl, HTTP libraries) send, does not count.
fn accepts_html(req: &HttpRequest) -> bool {
    Accept::parse(req).is_ok_and(|accept| {
        accept.iter().any(|q| {
            q.item.type_() == mime::TEXT
                && q.item.subtype() == mime::HTML
                && q.quality > Quality::ZERO
        })
    })
}

fn peer_is_trusted(req: &HttpRequest, state: &AppState) -> bool {
    match req.peer_addr() {
        // A Unix-socket peer is on this host.
        None => true,
        Some(addr) => {
            let ip: IpAddr = addr.ip();
            state
                .settings
                .forward_auth
                .trusted_proxies
                .iter()
                .any(|r| r.contains(ip))
        }
    }
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The URL the client originally asked the proxy for, from headers of a trusted proxy:
/// `X-Forwarded-Proto` + `X-Forwarded-Host` + `X-Forwarded-Uri`, or `X-Original-URI`
/// (a path, completed with the forwarded scheme and host when those are given).
pub fn original_url(req: &HttpRequest, state: &AppState) -> Option<String> {
    if !peer_is_trusted(req, state) {
        return None;
    }
    let path = header_str(req, "x-forwarded-uri").or_else(|| header_str(req, "x-original-uri"))?;
    if path.starts_with("http://") || path.starts_with("https://") {
        return Some(path.to_string());
    }
    match (
        header_str(req, "x-forwarded-proto"),
        header_str(req, "x-forwarded-host"),
    ) {
        (Some(proto), Some(host)) => Some(format!("{proto}://{host}{path}")),
        _ => Some(path.to_string()),
    }
}

/// Everything but RFC 3986's unreserved characters is encoded in a query parameter value.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but unreserved characters, for a query parameter value.
pub fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_fully_encoded() {
        assert_eq!(percent_encode("/a b?c=d&e"), "%2Fa%20b%3Fc%3Dd%26e");
        assert_eq!(percent_encode("https://x/y"), "https%3A%2F%2Fx%2Fy");
    }

    #[test]
    fn an_identity_value_with_a_line_break_becomes_empty_and_never_a_second_header() {
        for text in [
            "alice\r\nX-User-Admin: true",
            "alice\nX-User-Admin: true",
            "a\rb",
        ] {
            assert_eq!(header_value(text), HeaderValue::from_static(""), "{text:?}");
        }
        assert_eq!(header_value("ops,billing"), "ops,billing");
    }
}
