//! Arbitrary bytes as the JSON body of every request type, then the validation each handler
//! runs on what parsed; plus the same bytes as a query string for the query types.
//!
//! Properties: nothing panics; a refused body gives a 400 `BadCall` whose message (and JSON
//! error envelope) renders; and the message never repeats the value of a secret field
//! (`password`, `new_password`, `old_password`, `key`).
#![no_main]

use actix_web::http::Uri;
use actix_web::test::TestRequest;
use actix_web::web::Bytes;
use actix_web::ResponseError;
use libfuzzer_sys::fuzz_target;
use pgusers::domain::validate;
use pgusers::http::error::ApiError;
use pgusers::http::parse::{self, Body};
use pgusers::http::requests::*;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The defaults of `server.max_extra_data_bytes` and the password minimum.
const MAX_EXTRA_DATA_BYTES: usize = 16 * 1024;
const POLICY: validate::PasswordPolicy = validate::PasswordPolicy {
    min_chars: 8,
    refuse_common: true,
};

const SECRET_FIELDS: [&str; 4] = ["password", "new_password", "old_password", "key"];

/// Secret values of the document and every key in it (keys may be echoed, values must not).
fn secrets_and_keys(doc: &Value, secrets: &mut Vec<String>, keys: &mut Vec<String>) {
    match doc {
        Value::Object(map) => {
            for (k, v) in map {
                keys.push(k.clone());
                if let Value::String(s) = v {
                    if SECRET_FIELDS.contains(&k.as_str()) {
                        secrets.push(s.clone());
                    }
                }
                secrets_and_keys(v, secrets, keys);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| secrets_and_keys(v, secrets, keys)),
        _ => {}
    }
}

/// A secret distinctive enough that finding it in a message means it was echoed: at least six
/// characters, one of them not a lower-case letter, space, `_`, `` ` `` or `,` (the alphabet of
/// serde's own wording), and not part of any key of the document (unknown keys are named).
fn distinctive(secret: &str, keys: &[String]) -> bool {
    secret.chars().count() >= 6
        && secret
            .chars()
            .any(|c| !(c.is_ascii_lowercase() || " _`,".contains(c)))
        && !keys.iter().any(|k| k.contains(secret))
}

fn check_error(err: &ApiError, data: &[u8]) {
    assert!(
        matches!(err, ApiError::BadCall(_)),
        "a refused body is a bad call, got {err:?}"
    );
    let message = err.to_string();
    assert_eq!(err.status_code().as_u16(), 400);
    let _ = err.error_response();
    if let Ok(doc) = serde_json::from_slice::<Value>(data) {
        let (mut secrets, mut keys) = (Vec::new(), Vec::new());
        secrets_and_keys(&doc, &mut secrets, &mut keys);
        for secret in secrets.iter().filter(|s| distinctive(s, &keys)) {
            assert!(
                !message.contains(secret.as_str()),
                "the error message echoes a secret value: {message:?}"
            );
        }
    }
}

fn parse<T: DeserializeOwned>(body: &Body, data: &[u8]) -> Option<T> {
    match body.json::<T>() {
        Ok(v) => Some(v),
        Err(e) => {
            check_error(&e, data);
            None
        }
    }
}

fn extra(value: &Option<Value>) {
    if let Some(v) = value {
        let _ = validate::extra_data(v, MAX_EXTRA_DATA_BYTES);
    }
}

fn bodies(data: &[u8]) {
    let body = Body(Bytes::copy_from_slice(data));
    if let Some(r) = parse::<UserCreateRequest>(&body, data) {
        let _ = validate::username(&r.username);
        let _ = validate::email(&r.email);
        let _ = validate::new_password(&r.password, POLICY);
        extra(&r.extra_data);
    }
    if let Some(r) = parse::<UserModifyRequest>(&body, data) {
        if let Some(Some(name)) = &r.username {
            let _ = validate::username(name);
        }
        if let Some(Some(address)) = &r.email {
            let _ = validate::email(address);
        }
        if let Some(value) = &r.extra_data {
            extra(value);
        }
    }
    if let Some(r) = parse::<UserPasswordRequest>(&body, data) {
        let _ = validate::new_password(&r.new_password, POLICY);
    }
    let _ = parse::<UserAdminRequest>(&body, data);
    if let Some(r) = parse::<SessionLoginRequest>(&body, data) {
        let _ = validate::username(&r.username);
        extra(&r.extra_data);
    }
    if let Some(r) = parse::<SessionCheckRequest>(&body, data) {
        let _ = pgusers::domain::KeyDigest::of_presented(&r.key);
    }
    let _ = parse::<SessionTtlRequest>(&body, data);
    if let Some(r) = parse::<MePasswordRequest>(&body, data) {
        let _ = validate::new_password(&r.new_password, POLICY);
    }
}

/// The same bytes as a query string, when they make a valid request target.
fn queries(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let target = format!("/v1/users?{text}");
    if Uri::try_from(target.as_str()).is_err() {
        return;
    }
    let req = TestRequest::with_uri(&target).to_http_request();
    if let Ok(q) = parse::query::<UserFindQuery>(&req) {
        if let Some(name) = &q.username {
            let _ = validate::username(name);
        }
        if let Some(address) = &q.email {
            let _ = validate::email(address);
        }
    }
    let _ = parse::query::<SessionsQuery>(&req);
    let _ = parse::query::<SessionsKillQuery>(&req);
    let _ = parse::query::<PageQuery>(&req);
}

fuzz_target!(|data: &[u8]| {
    bodies(data);
    queries(data);
});
