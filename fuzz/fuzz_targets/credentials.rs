//! Arbitrary `Authorization` and `Cookie` headers through the credential parsers.
//!
//! Input: the bytes up to the first `\n` are the `Authorization` value, each following line one
//! `Cookie` header (a request may carry several). Values `HeaderValue::from_bytes` refuses are
//! left out, as the HTTP layer would refuse them before any handler.
//!
//! Properties: nothing panics; a bearer credential is non-empty, trimmed and part of the header;
//! `session_key` is the bearer credential, else the cookie; `KeyDigest::of_presented` gives a
//! digest exactly for keys of 1 to `MAX_KEY_LEN` bytes, and that digest is SHA-256 of the key.
#![no_main]

use actix_web::http::header::{self, HeaderValue};
use actix_web::test::TestRequest;
use libfuzzer_sys::fuzz_target;
use pgusers::domain::keys::MAX_KEY_LEN;
use pgusers::domain::KeyDigest;
use pgusers::http::parse;

const COOKIE_NAME: &str = "pgusers_session";

fn presented(key: &str) {
    let digest = KeyDigest::of_presented(key);
    assert_eq!(
        digest.is_some(),
        !key.is_empty() && key.len() <= MAX_KEY_LEN,
        "of_presented accepts exactly keys of 1..={MAX_KEY_LEN} bytes"
    );
    if let Some(d) = digest {
        assert!(d == KeyDigest::of(key));
    }
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|b| *b == b'\n');
    let mut req = TestRequest::default();
    let mut authorization = None;
    if let Some(value) = lines.next().and_then(|v| HeaderValue::from_bytes(v).ok()) {
        authorization = Some(value.clone());
        req = req.insert_header((header::AUTHORIZATION, value));
    }
    for line in lines {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            req = req.append_header((header::COOKIE, value));
        }
    }
    let req = req.to_http_request();

    let bearer = parse::bearer(&req);
    if let Some(credential) = bearer {
        assert!(!credential.is_empty());
        assert_eq!(credential, credential.trim());
        let header = authorization.as_ref().and_then(|v| v.to_str().ok());
        assert!(header.is_some_and(|h| h.contains(credential)));
        presented(credential);
    }

    let cookie = parse::session_cookie(&req, COOKIE_NAME);
    if let Some(value) = cookie {
        presented(value);
    }
    // An empty cookie name must not match anything odd or panic either.
    if let Some(value) = parse::session_cookie(&req, "") {
        presented(value);
    }

    let key = parse::session_key(&req, COOKIE_NAME);
    match (bearer, cookie, key) {
        (Some(b), _, Some((k, _))) => assert_eq!(b, k, "the bearer credential comes first"),
        (None, Some(c), Some((k, _))) => assert_eq!(c, k, "then the cookie"),
        (None, None, None) => {}
        other => panic!("session_key disagrees with bearer/session_cookie: {other:?}"),
    }
    if let Some((k, _)) = key {
        presented(k);
    }
});
