//! fail2ban against the daemon's own log: a scripted run of failed, throttled and successful
//! logins (direct and through a trusted proxy's X-Forwarded-For, API and browser form, IPv4
//! and IPv6, a username built to forge a line) plus other traffic, in the human and the JSON
//! log format; the real `fail2ban-regex` with `examples/fail2ban/filter.d/pgusers.conf`
//! matches exactly the refused logins, with their client addresses, and nothing else; the
//! shipped jail passes `fail2ban-client --test`.
//!
//! Without fail2ban installed the tests print a SKIP line, except under CI (`CI` set), where
//! they fail. CI installs it: `apt-get install fail2ban`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support_proxy;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support_proxy::*;

const FILTER: &str = "fail2ban/filter.d/pgusers.conf";
const JAIL: &str = "fail2ban/jail.d/pgusers.local";

/// A username that tries to end its field, start a new log line and name another client.
const FORGER: &str = "\"\r\n WARN pgusers::login: login failed client=6.6.6.7 username=\"";

/// The scripted traffic: sends it, checks each answer, and returns the client address of every
/// refused login (401 or 429), in order.
async fn scripted_traffic(d: &Daemon) -> Vec<String> {
    d.create_user("alice", "alice-password-1", false).await;
    let mut refused = Vec::new();
    let http = &d.http;

    // The API, from a client behind the (trusted, loopback) proxy, or directly.
    let api = |username: &str, password: &str, forwarded: Option<&str>| {
        let mut r = http
            .post(format!("{}/v1/login", d.base))
            .json(&json!({"username": username, "password": password}));
        if let Some(f) = forwarded {
            r = r.header("X-Forwarded-For", f);
        }
        r.send()
    };
    // The browser form.
    let form = |username: &str, password: &str, forwarded: &str| {
        http.post(format!("{}/login", d.base))
            .header("X-Forwarded-For", forwarded)
            .form(&[("username", username), ("password", password), ("rd", "/")])
            .send()
    };

    // Wrong passwords and unknown users from three addresses (v4, v6, and loopback itself).
    for (user, addr) in [
        ("alice", "203.0.113.7"),
        ("alice", "203.0.113.7"),
        ("nobody", "203.0.113.7"),
        ("nobody", "2001:db8::9"),
        (FORGER, "198.51.100.23"),
    ] {
        let r = api(user, "wrong-password-XYZ", Some(addr)).await.unwrap();
        assert_eq!(r.status(), 401, "{user} from {addr}");
        refused.push(addr.to_string());
    }
    // The first untrusted address from the right is the client: a client cannot pick its own.
    let r = api(
        "nobody",
        "wrong-password-XYZ",
        Some("192.0.2.200, 203.0.113.8"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    refused.push("203.0.113.8".into());
    let r = api("dave", "wrong-password-XYZ", None).await.unwrap();
    assert_eq!(r.status(), 401);
    refused.push("127.0.0.1".into());
    let r = form("carol", "wrong-password-XYZ", "2001:db8::9")
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    refused.push("2001:db8::9".into());

    // Successes, and traffic that is not a login at all.
    let r = api("alice", "alice-password-1", Some("198.51.100.1"))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = form("alice", "alice-password-1", "198.51.100.1")
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    for path in [
        "/healthz",
        "/readyz",
        "/v1/auth",
        "/nowhere",
        "/login?rd=/x",
    ] {
        http.get(format!("{}{path}", d.base))
            .header("X-Forwarded-For", "203.0.113.99")
            .send()
            .await
            .unwrap();
    }
    let r = http
        .post(format!("{}/v1/sessions/check", d.base))
        .json(&json!({"key": "not-a-key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{}/v1/login", d.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "malformed input is not a login attempt");

    // An account attacked until the throttle locks it (3 failures), then refused with 429.
    for (status, addr) in [
        (401, "192.0.2.10"),
        (401, "192.0.2.10"),
        (401, "192.0.2.11"),
        (429, "192.0.2.11"),
        (429, "192.0.2.12"),
    ] {
        let r = api("bob", "wrong-password-XYZ", Some(addr)).await.unwrap();
        assert_eq!(r.status(), status, "bob from {addr}");
        refused.push(addr.to_string());
    }
    let r = form("bob", "wrong-password-XYZ", "192.0.2.13")
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    refused.push("192.0.2.13".into());
    refused
}

/// What `fail2ban-regex` made of a log: the address of every matched line, and its summary.
struct Verdict {
    addresses: Vec<String>,
    matched: usize,
    lines: usize,
}

fn fail2ban_regex(tool: &Path, log: &Path) -> Verdict {
    let run = |extra: &[&str]| {
        let out = Command::new(tool)
            .args(extra)
            .arg(log)
            .arg(example(FILTER))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "fail2ban-regex failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let addresses = run(&["--out", "ip"])
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let summary = run(&[]);
    // "Lines: 63 lines, 0 ignored, 14 matched, 49 missed"
    let line = summary
        .lines()
        .find(|l| l.starts_with("Lines:"))
        .unwrap_or_else(|| panic!("no summary in {summary}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    Verdict {
        addresses,
        matched: numbers[2],
        lines: numbers[0],
    }
}

async fn the_filter_matches_exactly_the_refused_logins(format: &str) {
    let test = format!("fail2ban_{format}");
    let Some(tool) = require_tool(&test, "fail2ban-regex", &[], "fail2ban") else {
        return;
    };
    let mut d = Daemon::start(&[
        ("PGUSERS_LOG__FORMAT", format),
        ("PGUSERS_THROTTLE__ACCOUNT_FAILURES", "3"),
        ("PGUSERS_PASSWORD__ARGON2_MEMORY_KIB", "1024"),
        ("PGUSERS_PASSWORD__ARGON2_ITERATIONS", "1"),
    ])
    .await;
    let refused = scripted_traffic(&d).await;
    d.guard.stop(Duration::from_secs(20));
    let log = d.guard.logs[1].clone();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("wrong-password-XYZ") && !text.contains("alice-password-1"),
        "no password is ever logged"
    );

    let verdict = fail2ban_regex(&tool, &log);
    skip_line(&format!(
        "{test}: fail2ban-regex matched {} of {} log lines; {} refused logins were sent",
        verdict.matched,
        verdict.lines,
        refused.len()
    ));
    assert_eq!(
        verdict.matched,
        refused.len(),
        "one match per refused login"
    );
    let mut found = verdict.addresses.clone();
    let mut wanted = refused.clone();
    found.sort();
    wanted.sort();
    assert_eq!(found, wanted, "the banned addresses are the clients'");
    assert!(!found.iter().any(|a| a.starts_with("6.6.6.")), "no forgery");
}

#[tokio::test]
async fn fail2ban_matches_every_refused_login_in_the_human_log_and_nothing_else() {
    the_filter_matches_exactly_the_refused_logins("human").await;
}

#[tokio::test]
async fn fail2ban_matches_every_refused_login_in_the_json_log_and_nothing_else() {
    the_filter_matches_exactly_the_refused_logins("json").await;
}

#[test]
fn the_shipped_jail_passes_fail2ban_clients_configuration_test() {
    let Some(client) = require_tool("fail2ban_jail", "fail2ban-client", &[], "fail2ban") else {
        return;
    };
    // fail2ban's own configuration, with our filter and jail in place of the distribution's
    // jails (whose log files may not exist here); the file jail reads an existing log.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("fail2ban");
    let copied = Command::new("cp")
        .args(["-r", "/etc/fail2ban"])
        .arg(&conf)
        .status()
        .unwrap();
    assert!(copied.success());
    for entry in std::fs::read_dir(conf.join("jail.d")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    std::fs::copy(example(FILTER), conf.join("filter.d/pgusers.conf")).unwrap();
    let log = dir.path().join("pgusers.log");
    std::fs::write(&log, "").unwrap();
    let jail = std::fs::read_to_string(example(JAIL))
        .unwrap()
        .replace("/var/log/pgusers/pgusers.log", log.to_str().unwrap())
        .replace("enabled  = false", "enabled  = true");
    std::fs::write(conf.join("jail.d/pgusers.local"), jail).unwrap();
    let out = Command::new(client)
        .arg("-c")
        .arg(&conf)
        .arg("--test")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("OK"),
        "fail2ban-client --test: {text}"
    );
}
