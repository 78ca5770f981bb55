//! The daemon as systemd runs it: the notification sequence on a real `NOTIFY_SOCKET`
//! (READY, WATCHDOG, RELOADING … READY, STOPPING), SIGHUP reloading the TTL without ending a
//! session, a bad configuration refused on reload, and SIGTERM finishing in-flight requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::free_port;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use support::{ApiClient, TestDb, TOKEN};

fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), sig).unwrap();
}

/// Drains the notification socket on a thread, as the service manager does.
fn collect(sock: UnixDatagram) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            if tx
                .send(String::from_utf8_lossy(&buf[..n]).to_string())
                .is_err()
            {
                break;
            }
        }
    });
    rx
}

/// Takes notifications until one has the line `wanted` (or times out); returns all taken.
fn read_until(
    rx: &std::sync::mpsc::Receiver<String>,
    wanted: &str,
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Ok(msg) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let done = msg.lines().any(|l| l == wanted);
        seen.push(msg);
        if done {
            return seen;
        }
    }
    panic!("{wanted} did not arrive; saw {seen:?}");
}

fn write_config(path: &Path, ttl: &str, extra: &str) {
    std::fs::write(path, format!("[session]\nttl = \"{ttl}\"\n{extra}\n[password]\nargon2_memory_kib = 32768\nargon2_iterations = 3\nhash_threads = 2\n[server]\n# the deliberately slow hashes of a debug build queue longer than the default\nrequest_timeout = \"60s\"\n")).unwrap();
}

#[tokio::test]
async fn the_daemon_speaks_sd_notify_reloads_on_sighup_and_drains_on_sigterm() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = collect(UnixDatagram::bind(&notify_path).unwrap());
    let config = dir.path().join("pgusers.toml");
    write_config(&config, "100s", "");
    let port = free_port();
    let host = match &db.config.get_hosts()[0] {
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
    };
    let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pgusers"))
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "400000")
        .env("PGUSERS_HOST", host)
        .env("PGUSERS_PORT", db.config.get_ports()[0].to_string())
        .env("PGUSERS_ADMIN", db.config.get_user().unwrap())
        .env("PGUSERS_USERSPACE", &db.name)
        .env("PGUSERS_API_TOKENS", TOKEN)
        .env_remove("PGUSERS_CONFIG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();

    // READY only once the listener is bound: the API answers right after it.
    let start = read_until(&notify, "READY=1", Duration::from_secs(30));
    assert!(start.iter().any(|m| m.starts_with("STATUS=")), "{start:?}");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // The watchdog is petted at half of WATCHDOG_USEC while healthy.
    let t0 = Instant::now();
    read_until(&notify, "WATCHDOG=1", Duration::from_secs(2));
    read_until(&notify, "WATCHDOG=1", Duration::from_secs(2));
    let two_pets = t0.elapsed();
    assert!(
        two_pets < Duration::from_millis(1000),
        "two watchdog pets took {two_pets:?}"
    );

    let api = ApiClient::with_http(&base, TOKEN, http.clone());
    api.create_user("alice", "s3cret-pass", false).await;
    let key = api.login("alice", "s3cret-pass").await;
    let ttl = |v: Value| v["session_ttl"]["seconds"].as_u64().unwrap();
    let settings = || async {
        api.admin(reqwest::Method::GET, "/v1/settings", None)
            .await
            .body
    };
    assert_eq!(ttl(settings().await), 100);

    // SIGHUP: RELOADING=1 … READY=1, the new TTL applies, the session lives on.
    write_config(&config, "200s", "");
    signal(&child, Signal::SIGHUP);
    let reload = read_until(&notify, "READY=1", Duration::from_secs(5));
    assert!(
        reload.iter().any(|m| m.lines().any(|l| l == "RELOADING=1")
            && m.lines().any(|l| l.starts_with("MONOTONIC_USEC="))),
        "RELOADING=1 says when (MONOTONIC_USEC): {reload:?}"
    );
    assert_eq!(ttl(settings().await), 200);
    assert_eq!(
        api.check(&key).await.status,
        200,
        "no session ends on reload"
    );

    // A bad configuration is refused; the old one stays and the daemon keeps serving.
    write_config(&config, "300s", "colour = \"blue\"");
    signal(&child, Signal::SIGHUP);
    read_until(&notify, "READY=1", Duration::from_secs(5));
    assert_eq!(ttl(settings().await), 200);
    let logs = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    assert!(logs.contains("session.colour"), "the refusal names the key");

    // SIGTERM with slow requests in flight: they complete, then STOPPING=1 and exit 0.
    let in_flight: Vec<_> = (0..4)
        .map(|_| {
            let http = http.clone();
            let url = format!("{base}/v1/login");
            tokio::spawn(async move {
                http.post(url)
                    .json(&json!({"username": "alice", "password": "s3cret-pass"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    signal(&child, Signal::SIGTERM);
    for request in in_flight {
        assert_eq!(
            request.await.unwrap().unwrap(),
            201,
            "in-flight requests complete"
        );
    }
    read_until(&notify, "STOPPING=1", Duration::from_secs(10));
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    for secret in [key.as_str(), "s3cret-pass", TOKEN] {
        assert!(
            !std::fs::read_to_string(dir.path().join("daemon.log"))
                .unwrap()
                .contains(secret),
            "secret in log"
        );
    }
}

#[tokio::test]
async fn socket_activation_serves_on_the_inherited_listener() {
    let Some(activate) = [
        "/usr/bin/systemd-socket-activate",
        "/bin/systemd-socket-activate",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-socket-activate is missing (apt install systemd)"
        );
        eprintln!("SKIP: systemd-socket-activate is not installed");
        return;
    };
    let db = TestDb::create().await;
    let port = free_port();
    let host = match &db.config.get_hosts()[0] {
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
    };
    let mut child = Command::new(activate)
        .args(["-l", &format!("127.0.0.1:{port}")])
        .args([
            "-E",
            "PGUSERS_HOST",
            "-E",
            "PGUSERS_PORT",
            "-E",
            "PGUSERS_ADMIN",
            "-E",
            "PGUSERS_USERSPACE",
            "-E",
            "PGUSERS_LISTEN",
        ])
        .arg(env!("CARGO_BIN_EXE_pgusers"))
        .arg("serve")
        .env("PGUSERS_HOST", host)
        .env("PGUSERS_PORT", db.config.get_ports()[0].to_string())
        .env("PGUSERS_ADMIN", db.config.get_user().unwrap())
        .env("PGUSERS_USERSPACE", &db.name)
        // Ignored: the inherited socket replaces server.listen.
        .env("PGUSERS_LISTEN", "127.0.0.1:1")
        .env_remove("PGUSERS_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let status = loop {
        match http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => break 200,
            _ if started.elapsed() > Duration::from_secs(30) => break 0,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    signal(&child, Signal::SIGTERM);
    let _ = child.wait();
    assert_eq!(
        status, 200,
        "the daemon served on the socket systemd handed it"
    );
}
