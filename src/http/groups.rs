//! Groups in the admin API (admin only): a user's groups (`/v1/users/{userid}/groups`), every
//! group with its member count (`/v1/groups`), and one group's members (`/v1/groups/{name}`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::extract::{Admin, Json, Query, UserId};
use super::paging::Page;
use super::requests::{PageQuery, UserGroupsRequest};
use super::views::UserView;
use super::AppState;
use crate::http::error::{ApiError, ApiResult};

/// `GET /v1/users/{userid}/groups`: `{"groups": [...]}`, sorted.
pub async fn of_user(
    _: Admin,
    UserId(userid): UserId,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let users = &state.services.users;
    users.find_by_id(userid).await?;
    let groups = users.groups_of(userid).await?;
    Ok(HttpResponse::Ok().json(json!({ "groups": groups })))
}

/// `PUT /v1/users/{userid}/groups` with `{"groups": [...]}`: replaces the set (204), and records
/// `groups_changed` in the audit trail.
pub async fn set_of_user(
    _: Admin,
    UserId(userid): UserId,
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(r): Json<UserGroupsRequest>,
) -> ApiResult<HttpResponse> {
    let origin = super::client::origin(&req, &state);
    state
        .services
        .users
        .set_groups(userid, &r.groups, origin)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/groups`: `{"groups": [{"name": ..., "members": N}, ...]}`, by name.
pub async fn list(_: Admin, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let groups: Vec<_> = state
        .services
        .users
        .list_groups()
        .await?
        .into_iter()
        .map(|g| json!({ "name": g.name, "members": g.members }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "groups": groups })))
}

/// `GET /v1/groups/{name}?after=&limit=`: the members, paged like `GET /v1/users`.
pub async fn members(
    _: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    Query(q): Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    // The route has a `{name}` segment, so a matched request always carries one.
    let name = req
        .match_info()
        .get("name")
        .ok_or_else(|| ApiError::bad_call("a group name is required"))?;
    let p = Page::new(q.after, q.limit)?;
    let page = state
        .services
        .users
        .group_members(name, p.after, p.limit)
        .await?;
    let next_after = p.next_after(&page, |u| u.userid);
    let views: Vec<UserView> = page.into_iter().map(UserView::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "users": views, "next_after": next_after })))
}
