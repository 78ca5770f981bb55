//! The real binary: `pgusers serve --embedded DIR` starts its own PostgreSQL, writes an API token
//! file (0600) without logging the token, serves the walk-through, and stops cleanly on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, ApiClient};

#[tokio::test]
async fn the_first_command_of_the_readme_works_from_nothing() {
    let dir = tempfile::Builder::new()
        .prefix("pgusers-bin-")
        .tempdir()
        .unwrap();
    let data = dir.path().join("embedded");
    let port = free_port();
    let log_path = dir.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgusers"))
        .args(["serve", "--embedded"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("PGUSERS_CONFIG")
        .env("PGUSERS_LOG__LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the daemon did not become ready"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the daemon exited: {}",
            std::fs::read_to_string(&log_path).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let token_file = data.join("api-token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    let api = ApiClient::with_http(&base, &token, http.clone());
    api.create_user("alice", "correct horse", false).await;
    let key = api.login("alice", "correct horse").await;
    assert_eq!(api.check(&key).await.status, 200);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "SIGTERM is a clean exit: {status}");
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logs.contains("api-token"),
        "the token file is named in the log"
    );
    for secret in [token.as_str(), key.as_str(), "correct horse"] {
        assert!(!logs.contains(secret), "a secret reached the log");
    }
    let pid_file = data.join("pgdata/postmaster.pid");
    for _ in 0..100 {
        if !pid_file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !pid_file.exists(),
        "the embedded PostgreSQL stopped with the daemon"
    );
}
