//! `/v1/me*`: what a session holder may do with their own account and sessions.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::extract::{Json, Query, SessionHolder};
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

pub async fn get(me: SessionHolder, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let users = &state.services.users;
    let user = users.find_by_id(me.session.userid).await?;
    let groups = users.groups_of(me.session.userid).await?;
    Ok(HttpResponse::Ok().json(MeView {
        user: UserView::from(user),
        groups,
    }))
}

pub async fn change_password(
    me: SessionHolder,
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(r): Json<MePasswordRequest>,
) -> ApiResult<HttpResponse> {
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
    me: SessionHolder,
    state: web::Data<AppState>,
    Query(q): Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let page = Page::new(q.after, q.limit)?;
    let rows = state
        .services
        .sessions
        .list(me.session.userid, false, page.after, page.limit)
        .await?;
    Ok(HttpResponse::Ok().json(SessionList::page(rows, &page)))
}

pub async fn kill_other_sessions(
    me: SessionHolder,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
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
