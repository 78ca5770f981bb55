//! Request bodies, queries and path ids, parsed strictly with errors in the API's envelope.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::http::error::{ApiError, ApiResult};

/// The raw request body, limited to `server.max_body_bytes` (413 beyond).
pub struct Body(pub web::Bytes);

impl FromRequest for Body {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<super::AppState>>()
            .map(|s| s.settings.server.max_body_bytes)
            .unwrap_or(64 * 1024);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            match bytes.await {
                Ok(b) => Ok(Body(b)),
                Err(e)
                    if e.as_response_error().status_code()
                        == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE =>
                {
                    Err(ApiError::PayloadTooLarge(limit))
                }
                Err(_) => Err(ApiError::bad_call("could not read the request body")),
            }
        })
    }
}

/// A serde error described without echoing the offending value (it may be a secret).
fn describe(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let head = text.split(" at line ").next().unwrap_or(&text);
    if head.starts_with("invalid type")
        || head.starts_with("invalid value")
        || head.starts_with("invalid length")
    {
        match head.split_once("expected ") {
            Some((_, expected)) => format!("invalid value: expected {expected}"),
            None => "invalid value".into(),
        }
    } else if err.is_syntax() || err.is_eof() {
        format!("malformed JSON ({})", err.classify_name())
    } else {
        head.to_string()
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        if self.is_eof() {
            "unexpected end of input"
        } else {
            "syntax error"
        }
    }
}

impl Body {
    /// Parses the body as a JSON document of type `T`; unknown fields are refused by `T`.
    pub fn json<T: DeserializeOwned>(&self) -> ApiResult<T> {
        if self.0.is_empty() {
            return Err(ApiError::bad_call("a JSON request body is required"));
        }
        serde_json::from_slice(&self.0)
            .map_err(|e| ApiError::bad_call(format!("request body: {}", describe(&e))))
    }
}

/// Parses the query string strictly (unknown parameters refused by `T`).
pub fn query<T: DeserializeOwned>(req: &HttpRequest) -> ApiResult<T> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::bad_call(format!("query string: {e}")))
}

/// A positive 64-bit id from the path.
pub fn path_id(req: &HttpRequest, name: &str) -> ApiResult<i64> {
    req.match_info()
        .get(name)
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_call(format!("{name} must be a positive integer")))
}

/// For `Option<Option<T>>` fields: absent → `None`, `null` → `Some(None)`.
pub fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        username: String,
        password: String,
    }

    #[test]
    fn type_errors_do_not_echo_values() {
        let body = Body(web::Bytes::from_static(
            br#"{"username": "a", "password": 12345678}"#,
        ));
        let err = body.json::<Login>().unwrap_err().to_string();
        assert!(!err.contains("12345678"), "{err}");
        assert!(err.contains("expected a string"), "{err}");
    }

    #[test]
    fn unknown_fields_are_named() {
        let body = Body(web::Bytes::from_static(
            br#"{"username": "a", "password": "b", "pasword": "c"}"#,
        ));
        let err = body.json::<Login>().unwrap_err().to_string();
        assert!(err.contains("unknown field `pasword`"), "{err}");
    }

    #[test]
    fn malformed_json_is_a_bad_call() {
        let body = Body(web::Bytes::from_static(b"{\"username\": "));
        assert!(matches!(body.json::<Login>(), Err(ApiError::BadCall(_))));
        assert!(matches!(
            Body(web::Bytes::new()).json::<Login>(),
            Err(ApiError::BadCall(_))
        ));
    }
}
