//! `/healthz` (the process runs) and `/readyz` (the database answers and the schema is current;
//! it also tells whether the invalidation listener is subscribed).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::http::error::{ApiError, ApiResult};
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
    // Without the listener the daemon still answers correctly (its cache is bypassed), so it
    // stays ready; the body says so, as `pgusers_invalidation_listener_up` does.
    let listener = if state.services.core.cache.is_trusted() {
        "up"
    } else {
        "down"
    };
    Ok(HttpResponse::Ok().json(json!({
        "status": "ready",
        "schema_version": version,
        "invalidation_listener": listener,
    })))
}

/// `GET /metrics` on the main listeners, when enabled and not moved to its own address.
pub async fn metrics(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let m = &state.settings.metrics;
    if !m.enabled || m.listen.is_some() {
        return Err(ApiError::NotFound("metrics are not served here".into()));
    }
    Ok(render_metrics(&state))
}

/// The Prometheus exposition of this daemon's metrics.
pub fn render_metrics(state: &AppState) -> HttpResponse {
    let core = &state.services.core;
    let pool = core.pool.status();
    let gauges = crate::telemetry::metrics::Gauges {
        cache_entries: core.cache.len(),
        cache_bytes: core.cache.weighted_size(),
        hash_queue_depth: state.services.users.hash_queue_depth(),
        pool_size: pool.size,
        pool_available: pool.available,
        pool_waiting: pool.waiting,
        listener_up: core.cache.is_trusted(),
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::metrics::METRICS.render(&gauges))
}

/// `GET /v1/openapi.json`: the OpenAPI description of this API.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(include_str!("../../openapi/pgusers.json"))
}
