//! The real daemon's log: with `log.access = true` one line per request with method, path
//! without the query string, status, duration and request id (none by default); a client's
//! malformed HTTP is answered 400 and logged at DEBUG, never at ERROR.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support_proxy;

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{json, Value};
use support_proxy::*;

/// Sends a few requests; returns (method, path, status, request id) of each.
async fn traffic(d: &Daemon) -> Vec<(&'static str, &'static str, u16, String)> {
    let mut sent = Vec::new();
    let r = d
        .http
        .get(format!("{}/healthz?token=query-secret", d.base))
        .header("X-Request-Id", "trace-42")
        .send()
        .await
        .unwrap();
    sent.push((
        "GET",
        "/healthz",
        r.status().as_u16(),
        "trace-42".to_string(),
    ));
    let r = d
        .http
        .post(format!("{}/v1/login", d.base))
        .json(&json!({"username": "nobody", "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    sent.push(("POST", "/v1/login", r.status().as_u16(), id));
    let r = d
        .http
        .delete(format!("{}/no/such/path?rd=https://x", d.base))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    sent.push(("DELETE", "/no/such/path", r.status().as_u16(), id));
    sent
}

fn access_lines(d: &mut Daemon) -> Vec<Value> {
    d.guard.stop(Duration::from_secs(20));
    std::fs::read_to_string(&d.guard.logs[1])
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "pgusers::access")
        .collect()
}

#[tokio::test]
async fn with_log_access_every_request_gets_one_line_without_its_query_string() {
    let mut d = Daemon::start(&[
        ("PGUSERS_LOG__FORMAT", "json"),
        ("PGUSERS_LOG__ACCESS", "true"),
    ])
    .await;
    let sent = traffic(&d).await;
    assert_eq!(
        sent.iter().map(|s| s.2).collect::<Vec<_>>(),
        [200, 401, 404]
    );
    let lines = access_lines(&mut d);
    for (method, path, status, id) in &sent {
        let found: Vec<_> = lines
            .iter()
            .filter(|l| l["request_id"] == id.as_str())
            .collect();
        assert_eq!(found.len(), 1, "one line for {method} {path}: {lines:?}");
        let line = found[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["method"], *method);
        assert_eq!(line["path"], *path);
        assert_eq!(line["status"], *status);
        let ms: f64 = line["duration_ms"].as_str().unwrap().parse().unwrap();
        assert!((0.0..20_000.0).contains(&ms), "{line}");
    }
    let all = serde_json::to_string(&lines).unwrap();
    assert!(
        !all.contains("query-secret") && !all.contains("rd="),
        "{all}"
    );
}

#[tokio::test]
async fn without_log_access_there_is_no_access_log() {
    let mut d = Daemon::start(&[("PGUSERS_LOG__FORMAT", "json")]).await;
    traffic(&d).await;
    assert_eq!(access_lines(&mut d), Vec::<Value>::new());
}

/// Sends raw bytes on a new connection; returns the first line of the answer.
fn raw(port: u16, bytes: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn malformed_http_from_a_client_is_logged_at_debug_not_error() {
    let mut d = Daemon::start(&[
        ("PGUSERS_LOG__FORMAT", "json"),
        ("PGUSERS_LOG__LEVEL", "info,pgusers::client=debug"),
    ])
    .await;
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000));
    let huge_head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(100_000)
    );
    for garbage in [
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: \x01\r\n\r\n".as_slice(),
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        long_uri.as_bytes(),
        huge_head.as_bytes(),
    ] {
        let answer = raw(d.port, garbage);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
            "{answer}"
        );
    }
    // The daemon still serves.
    let r = http().get(format!("{}/healthz", d.base)).send().await;
    assert_eq!(r.unwrap().status(), 200);
    d.guard.stop(Duration::from_secs(20));
    let log = std::fs::read_to_string(&d.guard.logs[1]).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let errors: Vec<_> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert!(errors.is_empty(), "ERROR lines: {errors:?}");
    let demoted = lines
        .iter()
        .filter(|l| l["target"] == "pgusers::client" && l["level"] == "DEBUG")
        .count();
    assert!(
        demoted >= 1,
        "the protocol errors are kept at DEBUG:\n{log}"
    );
}
