//! Request bodies and queries parsed strictly, with errors in the API's envelope that never echo
//! a value; the `Json` and `Query` extractors (`extract.rs`) and the fuzz targets parse with these.

use actix_web::{web, HttpRequest};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::http::error::{ApiError, ApiResult};

/// A request body as read (at most `server.max_body_bytes`).
pub struct Body(pub web::Bytes);

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
