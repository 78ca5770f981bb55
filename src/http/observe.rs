//! Per-request observation: a request id (taken from a sane `X-Request-Id` or generated) on every
//! log line of the request and on the response, the request's route, status and latency, and
//! the opt-in access log (`log.access`); and the request deadline: no request takes longer than
//! `server.request_timeout`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error};
use tracing::Instrument;

use super::AppState;
use crate::telemetry::metrics::METRICS;

/// The target of the access-log lines.
pub const ACCESS_TARGET: &str = "pgusers::access";

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static PREFIX: LazyLock<String> = LazyLock::new(|| crate::domain::keys::random_hex(3));
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn request_id(req: &ServiceRequest) -> String {
    let given = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    match given {
        Some(id) => id.to_string(),
        None => format!("{}-{:x}", *PREFIX, COUNTER.fetch_add(1, Ordering::Relaxed)),
    }
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let id = request_id(&req);
    let access_log = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.settings.log.access);
    let span = tracing::info_span!("request", request_id = %id);
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.server.request_timeout);
    let call = next.call(req).instrument(span.clone());
    let mut res = match limit {
        Some(limit) => match tokio::time::timeout(limit, call).await {
            Ok(res) => res?,
            Err(_) => {
                // actix renders the error as the answer; the route is not known here.
                METRICS.request("timed_out", 503, started.elapsed());
                let _entered = span.enter();
                return Err(crate::http::error::ApiError::TimedOut(limit).into());
            }
        },
        None => call.await?,
    };
    let elapsed = started.elapsed();
    let route = res.request().match_name().unwrap_or("unmatched");
    METRICS.request(route, res.status().as_u16(), elapsed);
    if access_log {
        // The path only: a query string may carry secrets (a redirect target, a token).
        tracing::info!(
            target: ACCESS_TARGET,
            method = %res.request().method(),
            path = res.request().path(),
            status = res.status().as_u16(),
            duration_ms = %format_args!("{:.3}", elapsed.as_secs_f64() * 1000.0),
            request_id = %id,
            "request"
        );
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    Ok(res)
}
