//! Per-request observation: a request id (taken from a sane `X-Request-Id` or generated) on every
//! log line of the request and on the response, and the request's route, status and latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::Error;
use tracing::Instrument;

use crate::metrics::METRICS;

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
    let span = tracing::info_span!("request", request_id = %id);
    let mut res = next.call(req).instrument(span).await?;
    let route = res.request().match_name().unwrap_or("unmatched");
    METRICS.request(route, res.status().as_u16(), started.elapsed());
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    Ok(res)
}
