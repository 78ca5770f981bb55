//! Who is calling: API tokens, session keys from `Authorization: Bearer` or the session cookie,
//! and the admin and session-holder checks built on them.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest};

use super::AppState;
use crate::config::Secret;
use crate::domain::keys::secrets_equal;
use crate::domain::KeyDigest;
use crate::http::error::{ApiError, ApiResult};
use crate::sessions;
use crate::sessions::cache::CachedSession;

/// The configured API tokens, compared in constant time.
pub struct ApiTokens(Vec<Secret>);

impl ApiTokens {
    pub fn new(tokens: Vec<Secret>) -> Self {
        Self(tokens)
    }

    /// True when `presented` equals one of the tokens (every token is compared).
    pub fn accepts(&self, presented: &str) -> bool {
        self.0.iter().fold(false, |found, t| {
            secrets_equal(t.expose().as_bytes(), presented.as_bytes()) | found
        })
    }
}

/// The bearer credential of a request, if any (`Authorization: Bearer <credential>`).
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
        .filter(|c| !c.is_empty())
}

/// The session cookie's value, if the request carries one.
pub fn session_cookie<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    for value in req.headers().get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                let v = v.trim_matches('"');
                if k == name && !v.is_empty() {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// Where a session key was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Bearer,
    Cookie,
}

/// The session key of a request: the bearer credential first, then the session cookie.
pub fn session_key<'a>(req: &'a HttpRequest, cookie_name: &str) -> Option<(&'a str, KeySource)> {
    bearer(req)
        .map(|k| (k, KeySource::Bearer))
        .or_else(|| session_cookie(req, cookie_name).map(|k| (k, KeySource::Cookie)))
}

/// An authorised administrator.
pub enum Admin {
    Token,
    User { digest: KeyDigest, userid: i64 },
}

impl Admin {
    /// The caller's own session, when the caller is an admin user acting on themself.
    pub fn own_session_of(&self, userid: i64) -> Option<KeyDigest> {
        match self {
            Admin::User { digest, userid: me } if *me == userid => Some(*digest),
            _ => None,
        }
    }
}

/// Admin calls take an API token or an admin user's session key, as a bearer credential only
/// (never the cookie, so a browser cannot be tricked into making admin calls); the [`Admin`]
/// extractor (`extract.rs`) runs this.
pub(super) async fn require_admin(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<Admin> {
    let credential = bearer(&req).ok_or(ApiError::Unauthenticated)?;
    if state.api_tokens.accepts(credential) {
        return Ok(Admin::Token);
    }
    let digest = KeyDigest::of_presented(credential).ok_or(ApiError::Unauthenticated)?;
    let session = match state.services.sessions.check_digest(digest).await {
        Ok(s) => s,
        Err(sessions::Error::NotFound | sessions::Error::Expired) => {
            return Err(ApiError::Unauthenticated)
        }
        Err(other) => return Err(other.into()),
    };
    if !session.admin {
        return Err(ApiError::Forbidden(
            "this call needs an administrator".into(),
        ));
    }
    Ok(Admin::User {
        digest,
        userid: session.userid,
    })
}

/// A session holder: their checked session and its key digest.
pub struct SessionHolder {
    pub digest: KeyDigest,
    pub session: Arc<CachedSession>,
}

/// `/v1/me*` take the session key from the bearer credential or the cookie; the
/// [`SessionHolder`] extractor (`extract.rs`) runs this.
pub(super) async fn require_session(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<SessionHolder> {
    let (key, _) =
        session_key(&req, &state.settings.session.cookie_name).ok_or(ApiError::Unauthenticated)?;
    let digest = KeyDigest::of_presented(key).ok_or(ApiError::SessionNotFound)?;
    let session = state.services.sessions.check_digest(digest).await?;
    Ok(SessionHolder { digest, session })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn bearer_credentials_are_read_case_insensitively() {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "bearer abc"))
            .to_http_request();
        assert_eq!(bearer(&req), Some("abc"));
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Basic abc"))
            .to_http_request();
        assert_eq!(bearer(&req), None);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let req = TestRequest::default()
            .insert_header((header::COOKIE, "a=1; pgusers_session=KEY; b=2"))
            .to_http_request();
        assert_eq!(session_cookie(&req, "pgusers_session"), Some("KEY"));
        assert_eq!(session_cookie(&req, "other"), None);
    }

    #[test]
    fn the_bearer_wins_over_the_cookie() {
        let req = TestRequest::default()
            .insert_header((header::COOKIE, "pgusers_session=C"))
            .insert_header((header::AUTHORIZATION, "Bearer B"))
            .to_http_request();
        assert_eq!(
            session_key(&req, "pgusers_session"),
            Some(("B", KeySource::Bearer))
        );
    }

    #[test]
    fn api_tokens_match_exactly() {
        let tokens = ApiTokens::new(vec![
            Secret::new("0123456789abcdef"),
            Secret::new("fedcba9876543210"),
        ]);
        assert!(tokens.accepts("fedcba9876543210"));
        assert!(!tokens.accepts("fedcba987654321"));
        assert!(!tokens.accepts(""));
    }
}
