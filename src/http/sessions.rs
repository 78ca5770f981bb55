//! `/v1/login`, `/v1/logout`, `/v1/sessions*` and `/v1/settings*`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::credentials::{session_key, KeySource};
use super::extract::{Admin, Json, Query, SessionId};
use super::paging::Page;
use super::requests::*;
use super::views::SessionList;
use super::AppState;
use crate::accounts::NewLogin;
use crate::config::MAX_TTL_SECS;
use crate::domain::validate;
use crate::http::error::{ApiError, ApiResult};

/// Checks the shape of login input without touching the database; too-long input cannot
/// belong to any account, so refusing it early reveals nothing.
pub fn validate_login_input(username: &str, password: &str) -> ApiResult<()> {
    if username.chars().count() > validate::MAX_USERNAME_CHARS
        || password.len() > validate::MAX_PASSWORD_BYTES
    {
        return Err(ApiError::bad_call("username or password is too long"));
    }
    Ok(())
}

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(r): Json<SessionLoginRequest>,
) -> ApiResult<HttpResponse> {
    validate_login_input(&r.username, &r.password)?;
    if let Some(extra) = &r.extra_data {
        validate::extra_data(extra, state.settings.server.max_extra_data_bytes)?;
    }
    let outcome = state
        .services
        .users
        .login(NewLogin {
            username: r.username,
            password: r.password,
            extra_data: r.extra_data.filter(|v| !v.is_null()),
            client: super::client::client_addr(&req, &state),
            user_agent: super::client::user_agent(&req),
            remember: r.remember,
        })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "key": outcome.key.expose(),
            "userid": outcome.userid,
            "admin": outcome.admin,
            "expires_at": outcome.expires_at,
        })))
}

pub async fn check(
    state: web::Data<AppState>,
    Json(r): Json<SessionCheckRequest>,
) -> ApiResult<HttpResponse> {
    let s = state.services.sessions.check(&r.key).await?;
    Ok(HttpResponse::Ok().json(CheckAnswer {
        userid: s.userid,
        username: s.username(),
        email: s.email(),
        admin: s.admin,
        extra_data: s.extra_data.as_deref(),
        expires_at: s.expires_at(),
    }))
}

/// The answer to a session check, serialized straight from the cached session (the extra
/// data is written as the JSON text it is kept as).
#[derive(serde::Serialize)]
struct CheckAnswer<'a> {
    userid: i64,
    username: &'a str,
    email: &'a str,
    admin: bool,
    extra_data: Option<&'a serde_json::value::RawValue>,
    expires_at: chrono::DateTime<chrono::Utc>,
}

pub async fn logout(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let (key, source) =
        session_key(&req, &state.settings.session.cookie_name).ok_or(ApiError::Unauthenticated)?;
    if !state.services.sessions.logout(key).await? {
        return Err(ApiError::SessionNotFound);
    }
    let mut response = HttpResponse::NoContent();
    if source == KeySource::Cookie {
        response.insert_header((
            header::SET_COOKIE,
            super::cookies::clearing_cookie(&state.settings.session),
        ));
    }
    Ok(response.finish())
}

/// Whose sessions a `/v1/sessions` call covers: `userid` is required, 0 means every user.
fn whose(userid: Option<i64>) -> ApiResult<i64> {
    let userid =
        userid.ok_or_else(|| ApiError::bad_call("userid is required (0 means every user)"))?;
    if userid < 0 {
        return Err(ApiError::bad_call("userid must not be negative"));
    }
    Ok(userid)
}

/// `GET /v1/sessions?userid=&expired=&after=&limit=`: a page of sessions, by session_id.
pub async fn list(
    _: Admin,
    state: web::Data<AppState>,
    Query(q): Query<SessionsQuery>,
) -> ApiResult<HttpResponse> {
    let userid = whose(q.userid)?;
    let page = Page::new(q.after, q.limit)?;
    let rows = state
        .services
        .sessions
        .list(userid, q.expired, page.after, page.limit)
        .await?;
    Ok(HttpResponse::Ok().json(SessionList::page(rows, &page)))
}

pub async fn kill_many(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    Query(q): Query<SessionsKillQuery>,
) -> ApiResult<HttpResponse> {
    let (userid, expired) = (whose(q.userid)?, q.expired);
    let killed = state
        .services
        .sessions
        .kill_many(userid, expired, None)
        .await?;
    let detail = json!({ "killed": killed, "expired_only": expired });
    super::audit::note(
        &state,
        &req,
        "sessions_killed",
        (userid > 0).then_some(userid),
        Some(detail),
    )
    .await;
    Ok(HttpResponse::Ok().json(json!({ "killed": killed })))
}

pub async fn kill_one(
    _: Admin,
    SessionId(session_id): SessionId,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    if !state.services.sessions.kill_by_id(session_id).await? {
        return Err(ApiError::NotFound("no such session".into()));
    }
    super::audit::note(
        &state,
        &req,
        "session_killed",
        None,
        Some(json!({ "session_id": session_id })),
    )
    .await;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn get_settings(_: Admin, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let (ttl, source) = state.services.sessions.ttl();
    let t = &state.services.core.tunables;
    Ok(HttpResponse::Ok().json(json!({
        "session_ttl": { "seconds": ttl, "source": source.as_str() },
        "session_max_lifetime": { "seconds": t.max_lifetime().map(|d| d.num_seconds()) },
        "session_refresh_interval": { "seconds": t.refresh_interval().num_seconds() },
        "janitor_interval": { "seconds": t.janitor_interval().as_secs() },
    })))
}

pub async fn set_ttl(
    _: Admin,
    state: web::Data<AppState>,
    Json(r): Json<SessionTtlRequest>,
) -> ApiResult<HttpResponse> {
    let seconds = u64::try_from(r.seconds)
        .ok()
        .filter(|s| (1..=MAX_TTL_SECS).contains(s))
        .ok_or_else(|| {
            ApiError::bad_call(format!(
                "seconds must be between 1 and {MAX_TTL_SECS} (10 years)"
            ))
        })?;
    state.services.sessions.set_ttl(Some(seconds)).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn clear_ttl(_: Admin, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state.services.sessions.set_ttl(None).await?;
    Ok(HttpResponse::NoContent().finish())
}
