//! The Python client (`clients/python`) passes its test module, the library's own ported,
//! against the real daemon: a virtualenv gets `pip install ./clients/python pytest`, and pytest
//! runs with `PGUSERS_URL` and `PGUSERS_API_TOKEN` pointing at a daemon with the library's
//! password policy and 1 s refresh interval and cache age (for the short-TTL tests).
//!
//! Needs `python3` with `venv` and `pip` (Debian: `python3-venv`). Without them the test prints
//! a SKIP line, except under CI (`CI` set), where it fails. The virtualenv is kept in
//! `target/tmp/python-client-venv` between runs; the client is reinstalled every run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::{TestApp, TOKEN};

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python")
}

fn show(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `None` (SKIP, or a panic under CI) when this machine cannot make a virtualenv with pip.
fn missing(what: &str) -> Option<PathBuf> {
    if std::env::var_os("CI").is_some() {
        panic!("{what} but CI is set: install python3 and python3-venv");
    }
    println!("SKIP: {what} (install python3 and python3-venv to run this test)");
    None
}

/// A virtualenv holding the client as it is in this checkout, and pytest.
fn venv_with_client() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-client-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        match Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .output()
        {
            Err(_) => return missing("python3 not found"),
            Ok(out) if !out.status.success() => {
                let _ = std::fs::remove_dir_all(&venv);
                return missing(&format!("python3 -m venv failed: {}", show(&out)));
            }
            Ok(_) => {}
        }
    }
    let pip = |args: &[&str]| {
        let out = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("the virtualenv's python runs");
        assert!(out.status.success(), "pip install {args:?}: {}", show(&out));
    };
    pip(&["./clients/python", "pytest"]);
    // The same version number as the last run's: reinstall to test this checkout's code.
    pip(&["--force-reinstall", "--no-deps", "./clients/python"]);
    Some(python)
}

#[actix_web::test]
async fn the_python_client_passes_the_librarys_ported_test_module() {
    let Some(python) = tokio::task::spawn_blocking(venv_with_client).await.unwrap() else {
        return;
    };
    let app = TestApp::start_with(|s| {
        s.password.min_length = 1;
        s.password.check_common = false;
        s.session.refresh_interval = Duration::from_secs(1);
        s.session.cache_max_age = Duration::from_secs(1);
    })
    .await;
    let base = app.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
            .current_dir(client_dir())
            .env("PGUSERS_URL", base)
            .env("PGUSERS_API_TOKEN", TOKEN)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("pytest runs")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "pytest failed: {}", show(&out));
    let summary = String::from_utf8_lossy(&out.stdout);
    println!("{}", summary.lines().last().unwrap_or_default());
}
