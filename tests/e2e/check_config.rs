//! `pgusers check-config`: the effective configuration printed as TOML that `--config` reads
//! back to the same output, secrets masked (also those read from files), and problems on stderr
//! with nothing on stdout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

const DB_PASSWORD: &str = "db-password-never-shown";
const FILE_TOKEN: &str = "file-token-never-shown-0123";
const INLINE_TOKEN: &str = "inline-token-never-shown-0123";

fn check_config(dir: &Path, config: Option<&Path>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgusers"));
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.arg("check-config").current_dir(dir);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("PGUSERS_")) {
        cmd.env_remove(k);
    }
    cmd.env_remove("CREDENTIALS_DIRECTORY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

#[test]
fn check_config_prints_toml_that_reads_back_to_the_same_output_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("api-tokens");
    std::fs::write(&tokens, format!("# admin tools\n{FILE_TOKEN}\n")).unwrap();
    let config = dir.path().join("pgusers.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[database]
host = "/run/postgresql"
dbname = "pgusers"
sslmode = "verify-full"
connect_timeout = "1500ms"

[server]
listen = ["127.0.0.1:9000", "unix:/run/pgusers/pgusers.sock"]
unix_socket_mode = "0600"

[api]
tokens = ["{INLINE_TOKEN}"]
tokens_file = "{}"

[session]
ttl = "2h"
max_lifetime = "30d"
cookie_domain = "example.org"

[forward_auth]
trusted_proxies = ["10.0.0.0/8", "::1"]
login_url = "https://login.example.org/login"
"#,
            tokens.display()
        ),
    )
    .unwrap();

    let first = check_config(
        dir.path(),
        Some(&config),
        &[
            ("PGUSERS_PASSWORD", DB_PASSWORD),
            ("PGUSERS_JANITOR_INTERVAL", "90s"),
        ],
    );
    assert!(first.status.success(), "{}", text(&first.stderr));
    let printed = text(&first.stdout);
    for wanted in [
        "unix_socket_mode = \"0600\"",
        "listen = [\"127.0.0.1:9000\", \"unix:/run/pgusers/pgusers.sock\"]",
        "connect_timeout = \"1500ms\"",
        "ttl = \"2h\"",
        "max_lifetime = \"30d\"",
        "interval = \"90s\"",
        "sslmode = \"verify-full\"",
        "trusted_proxies = [\"10.0.0.0/8\", \"::1/128\"]",
        "password = \"<masked: not shown>\"",
        "tokens = [\"<masked: not shown>\"]",
    ] {
        assert!(printed.contains(wanted), "{wanted} missing from\n{printed}");
    }
    let everything = format!("{printed}{}", text(&first.stderr));
    for secret in [DB_PASSWORD, FILE_TOKEN, INLINE_TOKEN] {
        assert!(!everything.contains(secret), "a secret was printed");
    }
    assert!(!printed.contains("Settings {"), "not a debug dump");

    // The printed file, with nothing else set, is the same configuration.
    let printed_file = dir.path().join("printed.toml");
    std::fs::write(&printed_file, &printed).unwrap();
    let second = check_config(dir.path(), Some(&printed_file), &[]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(text(&second.stdout), printed);
}

#[test]
fn check_config_reports_every_problem_on_stderr_and_prints_no_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pgusers.toml");
    std::fs::write(
        &config,
        "[server]\nunix_socket_mode = \"0999\"\n[session]\nttl = \"ten days\"\n",
    )
    .unwrap();
    let out = check_config(dir.path(), Some(&config), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("server.unix_socket_mode"), "{stderr}");
    assert!(stderr.contains("session.ttl"), "{stderr}");
}
