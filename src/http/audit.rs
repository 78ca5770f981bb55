//! The audit trail at the API's edge: recording administrative security events with the
//! caller's address, listing events (`GET /v1/audit`), and unlocking a throttled account
//! (`DELETE /v1/users/{userid}/lock`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::extract::{Admin, Query, UserId};
use super::paging::Page;
use super::AppState;
use crate::http::error::ApiResult;
use crate::store::security as store;

/// Records a security event caused by this request; failures are logged, never fatal.
pub async fn note(
    state: &AppState,
    req: &HttpRequest,
    kind: &str,
    userid: Option<i64>,
    detail: Option<Value>,
) {
    state
        .services
        .users
        .audit(kind, userid, super::client::origin(req, state), detail)
        .await;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    after: Option<i64>,
    limit: Option<i64>,
    userid: Option<i64>,
}

#[derive(Serialize)]
struct EventView {
    event_id: i64,
    at: chrono::DateTime<chrono::Utc>,
    kind: String,
    userid: Option<i64>,
    username: Option<String>,
    client_addr: Option<String>,
    instance: String,
    detail: Option<Value>,
}

/// `GET /v1/audit?after=ID&limit=N&userid=U`: security events, oldest first.
pub async fn list(
    _: Admin,
    state: web::Data<AppState>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<HttpResponse> {
    let page = Page::new(q.after, q.limit)?;
    let db = state.services.core.db().await?;
    let events = store::list_events(&db, page.after, page.limit, q.userid).await?;
    let next_after = page.next_after(&events, |e| e.event_id);
    let views: Vec<EventView> = events
        .into_iter()
        .map(|e| EventView {
            event_id: e.event_id,
            at: e.at,
            kind: e.kind,
            userid: e.userid,
            username: e.username,
            client_addr: e.client_addr,
            instance: e.instance,
            detail: e.detail,
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "events": views, "next_after": next_after })))
}

/// `DELETE /v1/users/{userid}/lock`: lifts a brute-force lock of the account.
pub async fn unlock(
    _: Admin,
    UserId(userid): UserId,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let origin = super::client::origin(&req, &state);
    state.services.users.unlock(userid, origin).await?;
    Ok(HttpResponse::NoContent().finish())
}
