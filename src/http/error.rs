//! The HTTP face of [`ApiError`]: one mapping from every failure to a status, the JSON envelope
//! with its stable code, and a correlation id for internal errors (logged with the cause chain).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::error::{cause_chain, ApiError};

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadCall(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated
            | ApiError::InvalidCredentials
            | ApiError::SessionNotFound
            | ApiError::Expired => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Rejected | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::TimedOut(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut correlation_id = None;
        match self {
            ApiError::Internal(cause) => {
                let id = crate::domain::keys::random_hex(8);
                tracing::error!(correlation_id = %id, error = %cause_chain(cause.as_ref()), "internal error");
                correlation_id = Some(id);
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = %cause_chain(cause.as_ref()), "database unavailable");
            }
            ApiError::TimedOut(after) => {
                tracing::warn!(
                    after_ms = after.as_millis(),
                    "request timed out waiting for the database"
                );
            }
            _ => {}
        }
        let message = match &correlation_id {
            Some(id) => format!("internal error (correlation id {id})"),
            None => self.to_string(),
        };
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::TooManyRequests { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if self.status_code() == StatusCode::UNAUTHORIZED
            && !matches!(self, ApiError::InvalidCredentials)
        {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"pgusers\""),
            ));
        }
        response.json(ErrorBody {
            error: self.code(),
            message,
            correlation_id,
        })
    }
}
