//! `/healthz` (the process runs) and `/readyz` (the database answers and the schema is current).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::error::{ApiError, ApiResult};
use crate::store::migrate;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let db = state.services.core.db().await?;
    let version = migrate::current_version(&db)
        .await
        .map_err(ApiError::from)?;
    if version != Some(migrate::latest_version()) {
        return Err(ApiError::Unavailable(
            format!(
                "schema version {version:?}, expected {}",
                migrate::latest_version()
            )
            .into(),
        ));
    }
    Ok(HttpResponse::Ok().json(json!({ "status": "ready", "schema_version": version })))
}
