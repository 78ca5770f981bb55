//! The login page's redirect target (`rd`) against an allow-list of hosts.
//!
//! Input (lossy UTF-8): the first line is `rd` (an empty input means no `rd` at all), each
//! following line one allowed `host` or `host:port`.
//!
//! Property (no open redirect): the result is `/`; or a path on this site, i.e. `rd` itself,
//! starting with `/` but not `//`, with no backslash and no control character; or an absolute
//! http(s) URL without user info whose host (or host:port) is on the allow-list. In every case it
//! is a valid `Location` header value.
#![no_main]

use actix_web::http::header::HeaderValue;
use libfuzzer_sys::fuzz_target;
use pgusers::http::parse::safe_redirect;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let rd = if data.is_empty() { None } else { lines.next() };
    let allowed: Vec<String> = lines.map(str::to_string).collect();

    let out = safe_redirect(rd, &allowed);

    assert!(
        HeaderValue::from_str(&out).is_ok(),
        "not a valid Location header: {out:?}"
    );
    if out == "/" {
        return;
    }
    if out.starts_with('/') {
        assert!(
            !out.starts_with("//"),
            "protocol-relative redirect: {out:?}"
        );
        assert!(
            !out.contains('\\'),
            "backslash in a local redirect: {out:?}"
        );
        assert!(
            !out.chars().any(char::is_control),
            "control character in a local redirect: {out:?}"
        );
        assert_eq!(
            Some(out.as_str()),
            rd.map(str::trim),
            "a local redirect is rd itself"
        );
        return;
    }
    let url = url::Url::parse(&out)
        .unwrap_or_else(|e| panic!("neither local nor a URL ({e}): {out:?} from {rd:?}"));
    assert!(
        matches!(url.scheme(), "http" | "https"),
        "scheme {:?} in {out:?}",
        url.scheme()
    );
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "user info in {out:?}"
    );
    let host = url
        .host_str()
        .unwrap_or_else(|| panic!("no host in {out:?}"))
        .to_ascii_lowercase();
    let with_port = url.port().map(|p| format!("{host}:{p}"));
    assert!(
        allowed
            .iter()
            .any(|a| *a == host || Some(a) == with_port.as_ref()),
        "host {host:?} (port {:?}) not on the allow-list {allowed:?}: {out:?} from {rd:?}",
        url.port()
    );
});
