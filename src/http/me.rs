//! `/v1/me*`: what a session holder may do with their own account and sessions.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::body::{query, Body};
use super::credentials::require_session;
use super::paging::Page;
use super::requests::*;
use super::views::{SessionList, UserView};
use super::AppState;
use crate::accounts::PasswordChange;
use crate::http::error::ApiResult;

/// The user object of the session's holder, with the user's groups (sorted).
#[derive(serde::Serialize)]
struct MeView {
    #[serde(flatten)]
    user: UserView,
    groups: Vec<String>,
}

pub async fn get(req: HttpRequest, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let me = require_session(&req, &state).await?;
    let users = &state.services.users;
    let user = users.find_by_id(me.session.userid).await?;
    let groups = users.groups_of(me.session.userid).await?;
    Ok(HttpResponse::Ok().json(MeView {
        user: UserView::from(user),
        groups,
    }))
}

pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Body,
) -> ApiResult<HttpResponse> {
    let me = require_session(&req, &state).await?;
    let r: MePasswordRequest = body.json()?;
    state
        .services
        .users
        .change_password(PasswordChange {
            userid: me.session.userid,
            new_password: r.new_password,
            old_password: Some(r.old_password),
            keep: Some(me.digest),
            origin: super::client::origin(&req, &state),
            by_self: true,
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/me/sessions?after=&limit=`: a page of the caller's sessions, by session_id.
pub async fn list_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let me = require_session(&req, &state).await?;
    let q: PageQuery = query(&req)?;
    let page = Page::new(q.after, q.limit)?;
    let rows = state
        .services
        .sessions
        .list(me.session.userid, false, page.after, page.limit)
        .await?;
    Ok(HttpResponse::Ok().json(SessionList::page(rows, &page)))
}

pub async fn kill_other_sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let me = require_session(&req, &state).await?;
    let killed = state
        .services
        .sessions
        .kill_many(me.session.userid, false, Some(me.digest))
        .await?;
    let detail = json!({ "killed": killed, "by": "self" });
    super::audit::note(
        &state,
        &req,
        "sessions_killed",
        Some(me.session.userid),
        Some(detail),
    )
    .await;
    Ok(HttpResponse::Ok().json(json!({ "killed": killed })))
}
