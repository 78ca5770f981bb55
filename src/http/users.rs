//! `/v1/users*`: account administration (admin only).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::extract::{Admin, Json, Query, UserId};
use super::paging::Page;
use super::requests::*;
use super::views::UserView;
use super::AppState;
use crate::accounts::{NewAccount, PasswordChange};
use crate::domain::validate;
use crate::http::error::{ApiError, ApiResult};

pub async fn create(
    _: Admin,
    state: web::Data<AppState>,
    Json(r): Json<UserCreateRequest>,
) -> ApiResult<HttpResponse> {
    if let Some(extra) = &r.extra_data {
        validate::extra_data(extra, state.settings.server.max_extra_data_bytes)?;
    }
    let userid = state
        .services
        .users
        .create(NewAccount {
            username: r.username,
            email: r.email,
            password: r.password,
            admin: r.admin,
            extra_data: r.extra_data.filter(|v| !v.is_null()),
        })
        .await?;
    Ok(HttpResponse::Created().json(json!({ "userid": userid })))
}

pub async fn get(
    _: Admin,
    UserId(userid): UserId,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let user = state.services.users.find_by_id(userid).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// `?username=` or `?email=` finds one user; otherwise `?after=&limit=` lists a page.
pub async fn find_or_list(
    _: Admin,
    state: web::Data<AppState>,
    Query(q): Query<UserFindQuery>,
) -> ApiResult<HttpResponse> {
    let users = &state.services.users;
    match (q.username, q.email) {
        (Some(_), Some(_)) => Err(ApiError::bad_call(
            "give one selector: username or email, not both",
        )),
        (Some(_), None) | (None, Some(_)) if q.after.is_some() || q.limit.is_some() => {
            Err(ApiError::bad_call(
                "after and limit page a listing; they do not combine with a selector",
            ))
        }
        (Some(name), None) => {
            Ok(HttpResponse::Ok().json(UserView::from(users.find_by_username(&name).await?)))
        }
        (None, Some(email)) => {
            Ok(HttpResponse::Ok().json(UserView::from(users.find_by_email(&email).await?)))
        }
        (None, None) => {
            let p = Page::new(q.after, q.limit)?;
            let page = users.list(p.after, p.limit).await?;
            let next_after = p.next_after(&page, |u| u.userid);
            let views: Vec<UserView> = page.into_iter().map(UserView::from).collect();
            Ok(HttpResponse::Ok().json(json!({ "users": views, "next_after": next_after })))
        }
    }
}

pub async fn modify(
    _: Admin,
    UserId(userid): UserId,
    state: web::Data<AppState>,
    Json(r): Json<UserModifyRequest>,
) -> ApiResult<HttpResponse> {
    if matches!(r.username, Some(None)) || matches!(r.email, Some(None)) {
        return Err(ApiError::bad_call("username and email cannot be null"));
    }
    let (username, email) = (r.username.flatten(), r.email.flatten());
    if username.is_none() && email.is_none() && r.extra_data.is_none() {
        return Err(ApiError::bad_call(
            "nothing to change: give username, email or extra_data",
        ));
    }
    if let Some(Some(extra)) = &r.extra_data {
        validate::extra_data(extra, state.settings.server.max_extra_data_bytes)?;
    }
    let extra = r.extra_data.map(|v| v.filter(|v| !v.is_null()));
    let user = state
        .services
        .users
        .modify(userid, username, email, extra)
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

pub async fn delete(
    _: Admin,
    UserId(userid): UserId,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let origin = super::client::origin(&req, &state);
    state.services.users.delete(userid, origin).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn change_password(
    admin: Admin,
    UserId(userid): UserId,
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(r): Json<UserPasswordRequest>,
) -> ApiResult<HttpResponse> {
    if matches!(r.old_password, Some(None)) {
        return Err(ApiError::bad_call(
            "old_password cannot be null (leave it out instead)",
        ));
    }
    state
        .services
        .users
        .change_password(PasswordChange {
            userid,
            new_password: r.new_password,
            old_password: r.old_password.flatten(),
            keep: admin.own_session_of(userid),
            origin: super::client::origin(&req, &state),
            by_self: false,
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn get_admin(
    _: Admin,
    UserId(userid): UserId,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let user = state.services.users.find_by_id(userid).await?;
    Ok(HttpResponse::Ok().json(json!({ "admin": user.admin })))
}

pub async fn set_admin(
    _: Admin,
    UserId(userid): UserId,
    req: HttpRequest,
    state: web::Data<AppState>,
    Json(r): Json<UserAdminRequest>,
) -> ApiResult<HttpResponse> {
    let origin = super::client::origin(&req, &state);
    state
        .services
        .users
        .set_admin(userid, r.admin, origin)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
