//! The admin CLI end to end: the real binary (`pgusers user …`, `pgusers sessions …`) against a
//! real database, with the real daemon running on the same database where the effect on it
//! matters; terminal prompts run under `script` (a pseudo-terminal).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{ApiClient, TestApp, TestDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What one run of the binary produced.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// How to run the binary: its environment and an empty configuration file (so that no
/// `/etc/pgusers/pgusers.toml` or inherited `PGUSERS_*` variable leaks in).
struct Cli {
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl Cli {
    /// Pointed at no database at all.
    fn bare() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pgusers-cli-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("pgusers.toml"), "").unwrap();
        let env = vec![
            ("PGUSERS_PASSWORD__ARGON2_MEMORY_KIB".into(), "256".into()),
            ("PGUSERS_PASSWORD__ARGON2_ITERATIONS".into(), "1".into()),
            ("PGUSERS_DATABASE__CONNECT_TIMEOUT".into(), "3s".into()),
        ];
        Self { env, dir }
    }

    /// Pointed at `cfg` through the original tool's environment variables.
    fn for_db(cfg: &tokio_postgres::Config) -> Self {
        let mut cli = Self::bare();
        let host = match &cfg.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        };
        cli.set("PGUSERS_HOST", &host);
        cli.set("PGUSERS_PORT", &cfg.get_ports()[0].to_string());
        cli.set("PGUSERS_USERSPACE", cfg.get_dbname().unwrap());
        cli.set("PGUSERS_ADMIN", cfg.get_user().unwrap());
        if let Some(pw) = cfg.get_password() {
            cli.set("PGUSERS_PASSWORD", &String::from_utf8_lossy(pw));
        }
        cli
    }

    fn set(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.into(), value.into()));
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        let config = self.dir.path().join("pgusers.toml");
        let mut all = vec!["--config".to_string(), config.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    fn command(&self, program: &str, args: &[String]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args).kill_on_drop(true);
        for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("PGUSERS_")) {
            cmd.env_remove(name);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs `pgusers ARGS` with `stdin` as its standard input (not a terminal).
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut child = self
            .command(env!("CARGO_BIN_EXE_pgusers"), &self.args(args))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            // The binary may exit before reading (bad input): a broken pipe is fine.
            let _ = input.write_all(text.as_bytes()).await;
        }
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("the command finished")
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `pgusers ARGS` on a pseudo-terminal, answering each prompt once it has appeared.
    /// `stdout` holds everything the terminal showed (standard output and error).
    async fn run_on_terminal(&self, args: &[&str], answers: &[(&str, &str)]) -> Out {
        self.run_on_terminal_then(args, answers, "").await
    }

    /// As [`Cli::run_on_terminal`], then the shell command `then` on the same terminal. An
    /// answer ending in Ctrl-C is typed as it is, without a newline.
    async fn run_on_terminal_then(
        &self,
        args: &[&str],
        answers: &[(&str, &str)],
        then: &str,
    ) -> Out {
        let line = std::iter::once(env!("CARGO_BIN_EXE_pgusers").to_string())
            .chain(self.args(args))
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect::<Vec<_>>()
            .join(" ");
        let line = format!("{line}{then}");
        let script_args = vec!["-qec".to_string(), line, "/dev/null".to_string()];
        let mut child = self
            .command("script", &script_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let mut output = child.stdout.take().unwrap();
        let mut seen = String::new();
        let mut from = 0;
        for (prompt, answer) in answers {
            let at = read_until(&mut output, &mut seen, from, prompt).await;
            from = at + prompt.len();
            let typed = match answer.strip_suffix('\x03') {
                // A person's Ctrl-C comes a moment after the prompt, not with it.
                Some(_) => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    answer.to_string()
                }
                None => format!("{answer}\n"),
            };
            input.write_all(typed.as_bytes()).await.unwrap();
            input.flush().await.unwrap();
        }
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), output.read_to_end(&mut rest))
            .await
            .expect("the command finished")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&rest));
        let status = child.wait().await.unwrap();
        drop(input);
        Out {
            code: status.code().unwrap_or(-1),
            stdout: seen,
            stderr: String::new(),
        }
    }
}

/// Reads the terminal until `wanted` shows up at or after `from`; returns where.
async fn read_until(
    output: &mut tokio::process::ChildStdout,
    seen: &mut String,
    from: usize,
    wanted: &str,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(at) = seen.get(from..).and_then(|s| s.find(wanted)) {
            return from + at;
        }
        let mut buf = [0u8; 1024];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, output.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no prompt {wanted:?}; the terminal showed {seen:?}"))
            .unwrap();
        assert!(n > 0, "the terminal closed before {wanted:?}: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

fn json_of(out: &Out) -> Value {
    assert_eq!(out.code, 0, "{out:?}");
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// Lines of a table after its header.
fn rows(out: &Out) -> Vec<&str> {
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout.lines().skip(1).collect()
}

async fn session_count(db: &TestDb, userid: i64) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM sessions WHERE userid = $1",
            &[&userid],
        )
        .await
        .unwrap()
        .get(0)
}

async fn expire_one_session(db: &TestDb, userid: i64) {
    db.client()
        .await
        .execute(
            "UPDATE sessions SET expires_at = now() - interval '1 hour'
             WHERE session_id = (SELECT min(session_id) FROM sessions WHERE userid = $1)",
            &[&userid],
        )
        .await
        .unwrap();
}

async fn login_fails(app: &TestApp, username: &str, password: &str) -> bool {
    let r = app.try_login(username, password).await;
    r.status == StatusCode::UNAUTHORIZED
}

#[actix_web::test]
async fn a_user_added_with_a_password_on_stdin_can_log_in_through_the_daemon() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    let cli = Cli::for_db(&app.db.config);
    let out = cli
        .run(
            &[
                "user",
                "add",
                "alice",
                "--email",
                "alice@example.org",
                "--admin",
                "--extra-data",
                r#"{"team":"ops"}"#,
            ],
            Some("correct horse\n"),
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("userid"), "{out:?}");
    assert!(!out.stdout.contains("correct horse") && !out.stderr.contains("correct horse"));

    let key = app.login("alice", "correct horse").await;
    let check = app.check(&key).await;
    assert_eq!(check.status, StatusCode::OK);
    assert_eq!(check.body["admin"], true);
    assert_eq!(check.body["email"], "alice@example.org");
    let userid = check.body["userid"].as_i64().unwrap();
    let user = app
        .admin(Method::GET, &format!("/v1/users/{userid}"), None)
        .await;
    assert_eq!(user.body["extra_data"], json!({"team": "ops"}), "{user:?}");

    let hash: String = app
        .db
        .client()
        .await
        .query_one(
            "SELECT password_hash FROM users WHERE username = 'alice'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        hash.starts_with("$argon2id$") && hash.contains("m=256,t=1"),
        "hashed with the configured parameters: {hash}"
    );

    // A CRLF line ending (a script written on Windows) is not part of the password.
    let out = cli
        .run(
            &["user", "add", "bob", "--email", "bob@example.org"],
            Some("battery staple\r\n"),
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    app.login("bob", "battery staple").await;
}

#[actix_web::test]
async fn bad_input_to_user_add_is_refused_with_exit_2() {
    let db = TestDb::create().await;
    let cli = Cli::for_db(&db.config);
    let add = |name: &'static str, email: &'static str| vec!["user", "add", name, "--email", email];
    let out = cli
        .run(&add("alice", "alice@example.org"), Some("short\n"))
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("at least 8"), "{out:?}");
    assert!(!out.stderr.contains("short"), "the password is not echoed");

    let out = cli.run(&add("alice", "alice@example.org"), None).await;
    assert_eq!(out.code, 2, "no password at all: {out:?}");

    let out = cli
        .run(&add("alice", "not-an-email"), Some("long enough\n"))
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("email"), "{out:?}");

    let out = cli
        .run(&add(" alice", "a@example.org"), Some("long enough\n"))
        .await;
    assert_eq!(out.code, 2, "{out:?}");

    let mut args = add("alice", "alice@example.org");
    args.extend(["--extra-data", "{not json"]);
    let out = cli.run(&args, Some("long enough\n")).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--extra-data"), "{out:?}");

    let users: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0, "nothing was created");

    // The minimum length is the configured one.
    let mut strict = Cli::for_db(&db.config);
    strict.set("PGUSERS_PASSWORD__MIN_LENGTH", "20");
    let out = strict
        .run(&add("alice", "alice@example.org"), Some("long enough\n"))
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("at least 20"), "{out:?}");

    // A taken username or email is a rejection (1), whatever its letter case.
    let out = cli
        .run(&add("alice", "alice@example.org"), Some("long enough\n"))
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = cli
        .run(&add("ALICE", "other@example.org"), Some("long enough\n"))
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("username already taken"), "{out:?}");
    let out = cli
        .run(&add("other", "Alice@Example.org"), Some("long enough\n"))
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("email already taken"), "{out:?}");
    let out = cli
        .run(
            &add("\u{0430}lice", "cyrillic@example.org"),
            Some("long enough\n"),
        )
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("looks like an existing username"),
        "{out:?}"
    );
}

#[actix_web::test]
async fn on_a_terminal_the_password_is_asked_twice_without_echo() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    let cli = Cli::for_db(&app.db.config);
    let args = ["user", "add", "alice", "--email", "alice@example.org"];
    let out = cli
        .run_on_terminal(
            &args,
            &[
                ("New password: ", "first-secret"),
                ("Repeat the new password: ", "second-secret"),
            ],
        )
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stdout.contains("do not match"), "{out:?}");
    for secret in ["first-secret", "second-secret"] {
        assert!(!out.stdout.contains(secret), "echoed: {out:?}");
    }

    let out = cli
        .run_on_terminal(
            &args,
            &[
                ("New password: ", "terminal-secret"),
                ("Repeat the new password: ", "terminal-secret"),
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("terminal-secret"), "echoed: {out:?}");
    app.login("alice", "terminal-secret").await;
}

#[actix_web::test]
async fn ctrl_c_at_the_password_prompt_ends_the_command_and_gives_the_terminal_its_echo_back() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    let cli = Cli::for_db(&app.db.config);
    let out = cli
        .run_on_terminal_then(
            &["user", "add", "alice", "--email", "alice@example.org"],
            &[("New password: ", "half-typed\x03")],
            "; echo \"exit $?\"; stty -a",
        )
        .await;
    assert!(out.stdout.contains("interrupted"), "{out:?}");
    assert!(out.stdout.contains("exit 1"), "{out:?}");
    assert!(!out.stdout.contains("half-typed"), "echoed: {out:?}");
    let modes: Vec<&str> = out.stdout.split_whitespace().collect();
    for mode in ["echo", "icanon", "isig"] {
        assert!(modes.contains(&mode), "{mode} is back on: {out:?}");
    }
    let users: i64 = app
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0, "nothing was created");
}

#[actix_web::test]
async fn list_and_info_print_tables_or_the_apis_json() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    let alice = app.create_user("alice", "s3cret-pass", true).await;
    let bob = app
        .create_user("bob-the-builder", "s3cret-pass", false)
        .await;
    let cli = Cli::for_db(&app.db.config);

    let out = cli.run(&["user", "list"], None).await;
    let header = out.stdout.lines().next().unwrap();
    assert!(header.starts_with("USERID"), "{out:?}");
    let lines = rows(&out);
    assert_eq!(lines.len(), 2, "{out:?}");
    assert!(lines[0].starts_with(&format!("{alice} ")) && lines[0].contains("alice@example.org"));
    assert!(lines[1].contains("bob-the-builder") && lines[1].contains(" no "));
    let email_col = header.find("EMAIL").unwrap();
    for line in &lines {
        assert!(
            line[email_col..].starts_with("alice@") || line[email_col..].starts_with("bob-the"),
            "columns are aligned: {out:?}"
        );
    }

    let listed = json_of(&cli.run(&["user", "list", "--json"], None).await);
    let users = listed["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    let api = app
        .admin(Method::GET, &format!("/v1/users/{alice}"), None)
        .await;
    assert_eq!(api.status, StatusCode::OK);
    assert_eq!(users[0], api.body, "the API's user object");
    assert_eq!(users[1]["userid"], bob);
    assert!(!listed.to_string().contains("argon2"), "never a hash");

    for spec in ["alice", "ALICE", "Alice@Example.org", &format!("#{alice}")] {
        let info = json_of(&cli.run(&["user", "info", spec, "--json"], None).await);
        assert_eq!(info, api.body, "info {spec}");
        assert_eq!(keys(&info), keys(&api.body));
    }

    app.login("alice", "s3cret-pass").await;
    let out = cli.run(&["user", "info", "alice"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    for expected in [
        format!("userid      {alice}"),
        "username    alice".into(),
        "email       alice@example.org".into(),
        "admin       yes".into(),
        "sessions    1 active, 0 expired".into(),
    ] {
        assert!(out.stdout.contains(&expected), "{expected:?} in {out:?}");
    }
    assert!(!out.stdout.contains("argon2"));
}

#[actix_web::test]
async fn a_username_that_looks_like_another_users_email_is_found_first() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    let cli = Cli::for_db(&app.db.config);
    let out = cli
        .run(
            &[
                "user",
                "add",
                "x@example.org",
                "--email",
                "real@example.org",
            ],
            Some("s3cret-pass\n"),
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = cli
        .run(
            &["user", "add", "other", "--email", "x@example.org"],
            Some("s3cret-pass\n"),
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let info = json_of(
        &cli.run(&["user", "info", "x@example.org", "--json"], None)
            .await,
    );
    assert_eq!(info["username"], "x@example.org");
    let info = json_of(
        &cli.run(&["user", "info", "REAL@example.org", "--json"], None)
            .await,
    );
    assert_eq!(info["username"], "x@example.org");
}

#[actix_web::test]
async fn passwd_changes_the_password_and_ends_every_session() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    let alice = app.create_user("alice", "s3cret-pass", false).await;
    let bob = app.create_user("bob", "s3cret-pass", false).await;
    let first = app.login("alice", "s3cret-pass").await;
    app.login("alice", "s3cret-pass").await;
    app.login("bob", "s3cret-pass").await;
    let cli = Cli::for_db(&app.db.config);

    let out = cli
        .run(&["user", "passwd", "alice"], Some("brand new password\n"))
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("ended 2 session(s)"), "{out:?}");
    assert_eq!(session_count(&app.db, alice).await, 0);
    assert_eq!(
        session_count(&app.db, bob).await,
        1,
        "other users keep theirs"
    );
    assert_eq!(app.check(&first).await.status, StatusCode::UNAUTHORIZED);
    assert!(login_fails(&app, "alice", "s3cret-pass").await);
    app.login("alice", "brand new password").await;

    let out = cli.run(&["user", "passwd", "alice"], Some("short\n")).await;
    assert_eq!(out.code, 2, "{out:?}");
    app.login("alice", "brand new password").await;
}

#[actix_web::test]
async fn admin_and_remove_show_in_info_and_in_the_daemons_check() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    app.create_user("alice", "s3cret-pass", false).await;
    let cli = Cli::for_db(&app.db.config);
    let info = || async { json_of(&cli.run(&["user", "info", "alice", "--json"], None).await) };
    assert_eq!(info().await["admin"], false);

    let out = cli.run(&["user", "admin", "alice"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("is now an administrator"), "{out:?}");
    assert_eq!(info().await["admin"], true);
    let key = app.login("alice", "s3cret-pass").await;
    let check = app.check(&key).await;
    assert_eq!(check.body["admin"], true, "{check:?}");

    let out = cli.run(&["user", "admin", "alice", "--remove"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("no longer"), "{out:?}");
    assert_eq!(info().await["admin"], false);
    let fresh = app.login("alice", "s3cret-pass").await;
    assert_eq!(app.check(&fresh).await.body["admin"], false);
}

#[actix_web::test]
async fn delete_asks_refuses_without_a_terminal_and_removes_the_sessions() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    let alice = app.create_user("alice", "s3cret-pass", false).await;
    app.login("alice", "s3cret-pass").await;
    let cli = Cli::for_db(&app.db.config);

    let out = cli.run(&["user", "delete", "alice"], None).await;
    assert_eq!(out.code, 2, "no terminal and no --yes: {out:?}");
    assert!(out.stderr.contains("--yes"), "{out:?}");

    let out = cli
        .run_on_terminal(&["user", "delete", "alice"], &[("[y/N] ", "n")])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("not deleted"), "{out:?}");
    assert_eq!(cli.run(&["user", "info", "alice"], None).await.code, 0);

    let out = cli
        .run_on_terminal(&["user", "delete", "alice"], &[("[y/N] ", "y")])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("ended 1 session(s)"), "{out:?}");
    assert_eq!(session_count(&app.db, alice).await, 0);
    assert_eq!(cli.run(&["user", "info", "alice"], None).await.code, 1);
    assert!(login_fails(&app, "alice", "s3cret-pass").await);
    let r = app
        .admin(Method::GET, &format!("/v1/users/{alice}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    app.create_user("bob", "s3cret-pass", false).await;
    let out = cli
        .run(&["user", "delete", "bob@example.org", "--yes"], None)
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("deleted user 'bob'"), "{out:?}");
}

#[actix_web::test]
async fn sessions_are_listed_and_killed_by_user_by_expiry_and_all() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    let alice = app.create_user("alice", "s3cret-pass", false).await;
    let bob = app.create_user("bob", "s3cret-pass", false).await;
    for user in ["alice", "alice", "bob", "bob"] {
        app.login(user, "s3cret-pass").await;
    }
    expire_one_session(&app.db, alice).await;
    expire_one_session(&app.db, bob).await;
    let cli = Cli::for_db(&app.db.config);

    let out = cli.run(&["sessions", "list"], None).await;
    let lines = rows(&out);
    assert_eq!(lines.len(), 4, "{out:?}");
    assert!(out.stdout.starts_with("SESSION"), "{out:?}");
    assert_eq!(lines.iter().filter(|l| l.ends_with("expired")).count(), 2);
    assert_eq!(lines.iter().filter(|l| l.ends_with("active")).count(), 2);

    let listed = json_of(
        &cli.run(&["sessions", "list", "alice", "--json"], None)
            .await,
    );
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| s["userid"] == alice));
    let api = app
        .admin(Method::GET, &format!("/v1/sessions?userid={alice}"), None)
        .await;
    assert_eq!(api.status, StatusCode::OK, "{api:?}");
    assert_eq!(
        listed["sessions"], api.body["sessions"],
        "the API's session objects"
    );
    for s in sessions {
        assert_eq!(keys(s), keys(&api.body["sessions"][0]));
        assert!(s.get("key").is_none() && s.get("key_digest").is_none());
    }

    let expired = json_of(
        &cli.run(&["sessions", "list", "--expired", "--json"], None)
            .await,
    );
    assert_eq!(expired["sessions"].as_array().unwrap().len(), 2);
    let out = cli
        .run(&["sessions", "list", "--expired", "bob"], None)
        .await;
    assert_eq!(rows(&out).len(), 1, "{out:?}");

    let out = cli
        .run(&["sessions", "kill", "--expired", "alice"], None)
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), "killed 1 session(s)");
    assert_eq!(session_count(&app.db, alice).await, 1);
    assert_eq!(session_count(&app.db, bob).await, 2);

    let out = cli
        .run(&["sessions", "kill", "--expired", "--all"], None)
        .await;
    assert_eq!(out.stdout.trim(), "killed 1 session(s)", "{out:?}");
    assert_eq!(session_count(&app.db, bob).await, 1);

    let out = cli.run(&["sessions", "kill", "#"], None).await;
    assert_eq!(out.code, 2, "'#' alone is not a user id: {out:?}");
    let out = cli
        .run(&["sessions", "kill", &format!("#{bob}")], None)
        .await;
    assert_eq!(out.stdout.trim(), "killed 1 session(s)", "{out:?}");

    let out = cli.run(&["sessions", "kill", "alice", "--all"], None).await;
    assert_eq!(out.code, 2, "USER and --all together: {out:?}");
    let out = cli.run(&["sessions", "kill"], None).await;
    assert_eq!(out.code, 2, "neither USER nor --all: {out:?}");

    let out = cli.run(&["sessions", "kill", "--all"], None).await;
    assert_eq!(out.stdout.trim(), "killed 1 session(s)", "{out:?}");
    assert!(rows(&cli.run(&["sessions", "list"], None).await).is_empty());
}

#[actix_web::test]
async fn unknown_users_exit_1() {
    let db = TestDb::create().await;
    let cli = Cli::for_db(&db.config);
    let commands: [&[&str]; 8] = [
        &["user", "info", "nobody"],
        &["user", "info", "nobody@example.org", "--json"],
        &["user", "info", "#424242"],
        &["user", "admin", "nobody"],
        &["user", "delete", "nobody", "--yes"],
        &["sessions", "list", "nobody"],
        &["sessions", "kill", "nobody"],
        &["user", "passwd", "nobody"],
    ];
    for args in commands {
        let out = cli.run(args, Some("long enough\n")).await;
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(out.stderr.contains("no such user"), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    let out = cli.run(&["user", "info", "#abc"], None).await;
    assert_eq!(out.code, 2, "{out:?}");
}

#[actix_web::test]
async fn bad_configuration_exits_2_and_an_unreachable_database_exits_3() {
    let db = TestDb::create().await;

    let mut cli = Cli::for_db(&db.config);
    cli.set("PGUSERS_PORT", "not-a-port");
    let out = cli.run(&["user", "list"], None).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("database.port"), "{out:?}");

    let cli = Cli::for_db(&db.config);
    let out = cli
        .run(&["--replace", "no.such_key=1", "user", "list"], None)
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    let out = cli
        .run(
            &["--config", "/nonexistent/pgusers.toml", "user", "list"],
            None,
        )
        .await;
    assert_eq!(out.code, 2, "{out:?}");

    // A schema that is not current is refused, not migrated.
    let empty = format!("{}_empty", db.name);
    let admin = db.client().await;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{empty}\""))
        .await
        .unwrap();
    let mut cli = Cli::for_db(&db.config);
    cli.set("PGUSERS_USERSPACE", &empty);
    let out = cli.run(&["user", "list"], None).await;
    let mut cfg = db.config.clone();
    cfg.dbname(&empty);
    let tables: i64 = support::connect(&cfg)
        .await
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    admin
        .batch_execute(&format!("DROP DATABASE \"{empty}\" WITH (FORCE)"))
        .await
        .unwrap();
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("pgusers migrate"), "{out:?}");
    assert_eq!(tables, 0, "nothing was created");

    // Nothing listening: exit 3 with a message naming where it tried.
    let dir = tempfile::tempdir().unwrap();
    let mut cli = Cli::for_db(&db.config);
    cli.set("PGUSERS_HOST", &dir.path().display().to_string());
    let out = cli.run(&["user", "list"], None).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("cannot connect"), "{out:?}");

    // No database configured and no embedded daemon running in the directory.
    let mut cli = Cli::bare();
    cli.set(
        "PGUSERS_DATABASE__EMBEDDED_DIR",
        &dir.path().display().to_string(),
    );
    let out = cli.run(&["sessions", "list"], None).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("not running"), "{out:?}");
}

#[actix_web::test]
async fn a_kill_here_ends_a_cached_session_in_the_running_daemon() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    app.create_user("alice", "s3cret-pass", false).await;
    let key = app.login("alice", "s3cret-pass").await;
    assert_eq!(app.check(&key).await.status, StatusCode::OK);
    assert_eq!(app.check(&key).await.status, StatusCode::OK, "now cached");

    let cli = Cli::for_db(&app.db.config);
    let out = cli.run(&["sessions", "kill", "alice"], None).await;
    assert_eq!(out.stdout.trim(), "killed 1 session(s)", "{out:?}");
    // The database notifies the daemon; that takes a moment across processes (bounded: 1 s).
    let started = Instant::now();
    let mut r = app.check(&key).await;
    while r.status != StatusCode::UNAUTHORIZED && started.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        r = app.check(&key).await;
    }
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the daemon still accepts a session killed from the CLI: {r:?}"
    );
}

#[actix_web::test]
async fn an_admin_change_here_is_seen_by_the_running_daemon_on_the_next_check() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    app.create_user("alice", "s3cret-pass", false).await;
    let key = app.login("alice", "s3cret-pass").await;
    assert_eq!(app.check(&key).await.body["admin"], false);

    let cli = Cli::for_db(&app.db.config);
    let out = cli.run(&["user", "admin", "alice"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    let started = Instant::now();
    let mut r = app.check(&key).await;
    while r.body["admin"] != true && started.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        r = app.check(&key).await;
    }
    assert_eq!(r.body["admin"], true, "stale admin flag: {r:?}");
}

/// The fallback with no database configured: the embedded daemon's cluster, found through
/// `database.embedded_dir`, with the daemon (`pgusers serve --embedded DIR`) running.
#[tokio::test]
async fn with_no_database_configured_the_running_embedded_cluster_is_used() {
    let cli = Cli::bare();
    let data = cli.dir.path().join("embedded");
    let port = support::free_port();
    let log_path = cli.dir.path().join("daemon.log");
    let args = cli.args(&[
        "serve",
        "--embedded",
        &data.display().to_string(),
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    let mut daemon = cli
        .command(env!("CARGO_BIN_EXE_pgusers"), &args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while !matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status() == 200) {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the daemon did not become ready: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        assert!(daemon.try_wait().unwrap().is_none(), "the daemon exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut here = Cli::bare();
    here.set(
        "PGUSERS_DATABASE__EMBEDDED_DIR",
        &data.display().to_string(),
    );
    let out = here
        .run(
            &["user", "add", "alice", "--email", "alice@example.org"],
            Some("correct horse\n"),
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let token = std::fs::read_to_string(data.join("api-token")).unwrap();
    ApiClient::with_http(&base, token.trim(), http.clone())
        .login("alice", "correct horse")
        .await;
    let listed = json_of(
        &here
            .run(&["sessions", "list", "alice", "--json"], None)
            .await,
    );
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), daemon.wait())
        .await
        .expect("the daemon stops on SIGTERM")
        .unwrap();
    assert!(status.success());
    let out = here.run(&["user", "list"], None).await;
    assert_eq!(
        out.code, 3,
        "the embedded cluster stopped with the daemon: {out:?}"
    );
}

#[actix_web::test]
async fn an_admin_unlocks_an_account_and_reads_the_audit_trail_from_the_command_line() {
    let app = TestApp::start_on(TestDb::create().await, |s| s.throttle.account_failures = 2).await;
    let cli = Cli::for_db(&app.db.config);
    let id = app.create_user("locked", "s3cret-pass", false).await;
    for _ in 0..2 {
        app.try_login("locked", "nope-nope").await;
    }
    let r = app.try_login("locked", "s3cret-pass").await;
    assert_eq!(r.code(), "TOO_MANY_REQUESTS");

    let out = cli.run(&["user", "unlock", "locked"], None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("unlocked"), "{}", out.stdout);
    app.login("locked", "s3cret-pass").await;
    let out = cli.run(&["user", "unlock", "nobody-at-all"], None).await;
    assert_eq!(out.code, 1);

    let out = cli.run(&["audit", "list", "locked", "--json"], None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let events: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"login_failure")
            && kinds.contains(&"lockout")
            && kinds.contains(&"login_success"),
        "{kinds:?}"
    );
    assert!(events["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["userid"] == id));
    let table = cli.run(&["audit", "list"], None).await;
    assert!(
        table.stdout.starts_with("ID") && table.stdout.contains("lockout"),
        "{}",
        table.stdout
    );
}

/// Polls `probe` until it holds or a second has passed (the database notifies daemons across
/// processes); returns whether it held.
async fn within_a_second<F, Fut>(mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if probe().await {
            return true;
        }
        if started.elapsed() > Duration::from_secs(1) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[actix_web::test]
async fn modify_renames_and_changes_email_and_extra_data_as_patch_does_and_the_daemon_sees_it() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    let alice = app.create_user("alice", "s3cret-pass", false).await;
    let key = app.login("alice", "s3cret-pass").await;
    assert_eq!(
        app.check(&key).await.body["username"],
        "alice",
        "now cached"
    );
    let cli = Cli::for_db(&app.db.config);

    let out = cli
        .run(
            &[
                "user",
                "modify",
                "alice",
                "--username",
                "alicia",
                "--email",
                "alicia@example.org",
                "--extra-data",
                r#"{"team": {"name": "ops"}}"#,
                "--json",
            ],
            None,
        )
        .await;
    let printed = json_of(&out);
    let api = app
        .admin(Method::GET, &format!("/v1/users/{alice}"), None)
        .await;
    assert_eq!(printed, api.body, "the API's user object, after the change");
    assert_eq!(api.body["username"], "alicia");
    assert_eq!(api.body["email"], "alicia@example.org");
    assert_eq!(api.body["extra_data"], json!({"team": {"name": "ops"}}));
    assert!(
        within_a_second(|| async { app.check(&key).await.body["username"] == "alicia" }).await,
        "the running daemon still answers with the old name"
    );

    let out = cli
        .run(&["user", "modify", "alicia", "--extra-data", "null"], None)
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("extra_data -"), "{out:?}");
    let api = app
        .admin(Method::GET, &format!("/v1/users/{alice}"), None)
        .await;
    assert_eq!(api.body["extra_data"], Value::Null, "null clears it");
    assert_eq!(api.body["email"], "alicia@example.org", "the rest is kept");
}

#[actix_web::test]
async fn modify_refuses_bad_input_and_taken_names_with_the_apis_codes_and_writes_nothing() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    let alice = app.create_user("alice", "s3cret-pass", false).await;
    app.create_user("bob", "s3cret-pass", false).await;
    let cli = Cli::for_db(&app.db.config);
    let before = app
        .admin(Method::GET, &format!("/v1/users/{alice}"), None)
        .await
        .body;

    for (args, code) in [
        (vec!["user", "modify", "alice"], 2),
        (vec!["user", "modify", "alice", "--username", " alice"], 2),
        (vec!["user", "modify", "alice", "--email", "no-at-sign"], 2),
        (vec!["user", "modify", "alice", "--extra-data", "{nope"], 2),
        (vec!["user", "modify", "nobody", "--username", "x"], 1),
        // Taken without regard to case; the rename in the same command is not applied either.
        (
            vec![
                "user",
                "modify",
                "alice",
                "--username",
                "alice2",
                "--email",
                "BOB@example.org",
            ],
            1,
        ),
        (vec!["user", "modify", "alice", "--username", "BOB"], 1),
        // A name that looks like another (Cyrillic o) is taken too.
        (
            vec!["user", "modify", "alice", "--username", "b\u{043E}b"],
            1,
        ),
    ] {
        let out = cli.run(&args, None).await;
        assert_eq!(out.code, code, "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?} says why: {out:?}");
        let patch = app
            .admin(Method::GET, &format!("/v1/users/{alice}"), None)
            .await;
        assert_eq!(patch.body, before, "{args:?} changed nothing");
    }
    let out = cli
        .run(
            &["user", "modify", "alice", "--email", "BOB@example.org"],
            None,
        )
        .await;
    assert!(out.stderr.contains("taken"), "{out:?}");
}

#[actix_web::test]
async fn the_session_ttl_is_shown_set_and_reset_here_and_running_daemons_use_it_at_once() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    app.create_user("alice", "s3cret-pass", false).await;
    let cli = Cli::for_db(&app.db.config);
    let configured = app.admin(Method::GET, "/v1/settings", None).await.body["session_ttl"]
        ["seconds"]
        .as_u64()
        .unwrap();

    let shown = json_of(&cli.run(&["settings", "session-ttl", "--json"], None).await);
    assert_eq!(
        shown,
        json!({"session_ttl": {"seconds": configured, "source": "config"}})
    );

    let out = cli.run(&["settings", "session-ttl", "2h"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("7200"), "{out:?}");
    assert!(
        within_a_second(|| async {
            app.admin(Method::GET, "/v1/settings", None).await.body["session_ttl"]
                == json!({"seconds": 7200, "source": "api"})
        })
        .await,
        "the running daemon did not pick up the new TTL"
    );
    let key = app.login("alice", "s3cret-pass").await;
    let expires = app.stored_expiry(&key).await.unwrap();
    let left = (expires - chrono::Utc::now()).num_seconds();
    assert!(
        (7100..=7200).contains(&left),
        "a new session gets the new TTL: {left} s"
    );

    let reset = json_of(
        &cli.run(&["settings", "session-ttl", "--reset", "--json"], None)
            .await,
    );
    assert_eq!(reset["session_ttl"]["source"], "config");
    assert!(
        within_a_second(|| async {
            app.admin(Method::GET, "/v1/settings", None).await.body["session_ttl"]["source"]
                == "config"
        })
        .await,
        "the running daemon did not go back to the configured TTL"
    );

    for bad in [
        vec!["settings", "session-ttl", "0"],
        vec!["settings", "session-ttl", "3651d"],
        vec!["settings", "session-ttl", "soon"],
        vec!["settings", "session-ttl", "1h", "--reset"],
    ] {
        let out = cli.run(&bad, None).await;
        assert_eq!(out.code, 2, "{bad:?}: {out:?}");
    }
    let shown = json_of(&cli.run(&["settings", "session-ttl", "--json"], None).await);
    assert_eq!(shown["session_ttl"]["source"], "config", "nothing was set");
}

#[actix_web::test]
async fn every_command_prints_what_it_did_as_json_with_json() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    let cli = Cli::for_db(&app.db.config);

    let added = json_of(
        &cli.run(
            &[
                "user",
                "add",
                "carol",
                "--email",
                "carol@example.org",
                "--json",
            ],
            Some("s3cret-pass\n"),
        )
        .await,
    );
    let carol = added["userid"].as_i64().unwrap();
    let api = app
        .admin(Method::GET, &format!("/v1/users/{carol}"), None)
        .await;
    assert_eq!(added, api.body, "add prints the new user object");

    let admin = json_of(&cli.run(&["user", "admin", "carol", "--json"], None).await);
    assert_eq!(admin["admin"], true, "{admin}");
    assert_eq!(keys(&admin), keys(&api.body));

    app.login("carol", "s3cret-pass").await;
    let passwd = json_of(
        &cli.run(
            &["user", "passwd", "carol", "--json"],
            Some("new-s3cret-pass\n"),
        )
        .await,
    );
    assert_eq!(passwd["userid"], carol);
    assert_eq!(passwd["sessions_ended"], 1);

    let unlock = json_of(&cli.run(&["user", "unlock", "carol", "--json"], None).await);
    assert_eq!(unlock["was_locked"], false);

    app.login("carol", "new-s3cret-pass").await;
    // The flag may come before the subcommand too.
    let killed = json_of(
        &cli.run(&["sessions", "--json", "kill", "--all"], None)
            .await,
    );
    assert_eq!(killed, json!({"killed": 1}));

    let audit = json_of(&cli.run(&["audit", "list", "--json"], None).await);
    assert!(audit["events"].is_array(), "{audit}");

    let deleted = json_of(
        &cli.run(&["user", "delete", "carol", "--yes", "--json"], None)
            .await,
    );
    assert_eq!(deleted["userid"], carol);
    assert_eq!(deleted["deleted"], true);

    for printed in [&added, &admin, &passwd, &unlock, &deleted] {
        let text = printed.to_string();
        assert!(
            !text.contains("argon2") && !text.contains("s3cret") && !text.contains("password_hash"),
            "never a secret: {text}"
        );
    }
}

#[actix_web::test]
async fn dash_v_logs_what_was_done_to_stderr_and_never_a_secret() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    app.create_user("dave", "s3cret-pass", false).await;
    let cli = Cli::for_db(&app.db.config);

    let quiet = cli
        .run(&["user", "passwd", "dave"], Some("first-new-pass\n"))
        .await;
    assert_eq!(quiet.code, 0, "{quiet:?}");
    assert_eq!(quiet.stderr, "", "silent without -v");

    let info = cli
        .run(&["user", "passwd", "dave", "-v"], Some("second-new-pass\n"))
        .await;
    assert_eq!(info.code, 0, "{info:?}");
    assert!(info.stderr.contains("password changed"), "{info:?}");
    assert!(!info.stderr.contains("DEBUG"), "-v is info: {info:?}");

    let debug = cli
        .run(&["user", "passwd", "dave", "-vv"], Some("third-new-pass\n"))
        .await;
    assert_eq!(debug.code, 0, "{debug:?}");
    assert!(debug.stderr.contains("DEBUG"), "-vv is debug: {debug:?}");
    assert!(debug.stderr.contains("password changed"), "{debug:?}");
    let db_password = app
        .db
        .config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    for secret in ["third-new-pass", "argon2", &db_password] {
        if !secret.is_empty() {
            assert!(
                !debug.stderr.contains(secret),
                "{secret:?} logged: {debug:?}"
            );
        }
    }
    app.login("dave", "third-new-pass").await;
}

#[actix_web::test]
async fn the_usermgr_command_names_work_with_the_librarys_arguments() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    let cli = Cli::for_db(&app.db.config);

    // adduser [-a] EMAIL [USERID]: the username defaults to the email.
    let out = cli
        .run(
            &["adduser", "-a", "erin@example.org"],
            Some("s3cret-pass\n"),
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = cli
        .run(
            &["adduser", "frank@example.org", "frank"],
            Some("s3cret-pass\n"),
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let erin = app
        .check(&app.login("erin@example.org", "s3cret-pass").await)
        .await;
    assert_eq!(erin.body["admin"], true);
    let frank_key = app.login("frank", "s3cret-pass").await;
    assert_eq!(app.check(&frank_key).await.body["admin"], false);

    let listed = cli.run(&["list"], None).await;
    assert_eq!(rows(&listed).len(), 2, "{listed:?}");
    let info = json_of(
        &cli.run(&["info", "frank@example.org", "--json"], None)
            .await,
    );
    assert_eq!(info["username"], "frank");

    assert_eq!(cli.run(&["setadmin", "frank"], None).await.code, 0);
    assert_eq!(
        json_of(&cli.run(&["info", "frank", "--json"], None).await)["admin"],
        true
    );
    assert_eq!(cli.run(&["setadmin", "-r", "frank"], None).await.code, 0);
    assert_eq!(
        json_of(&cli.run(&["info", "frank", "--json"], None).await)["admin"],
        false
    );

    // listsessions / killsessions: USER or -a, -x for the expired ones only.
    assert_eq!(
        cli.run(&["listsessions"], None).await.code,
        2,
        "USER or --all"
    );
    assert_eq!(
        cli.run(&["listsessions", "-a", "frank"], None).await.code,
        2
    );
    let all = cli.run(&["listsessions", "-a"], None).await;
    assert_eq!(rows(&all).len(), 2, "{all:?}");
    let franks = json_of(&cli.run(&["listsessions", "frank", "--json"], None).await);
    assert_eq!(franks["sessions"].as_array().unwrap().len(), 1);
    let none_expired = cli.run(&["killsessions", "-x", "-a"], None).await;
    assert_eq!(
        none_expired.stdout.trim(),
        "killed 0 session(s)",
        "{none_expired:?}"
    );
    let killed = cli.run(&["killsessions", "frank"], None).await;
    assert_eq!(killed.stdout.trim(), "killed 1 session(s)", "{killed:?}");
    assert_eq!(
        cli.run(&["killsessions"], None).await.code,
        2,
        "USER or --all"
    );

    let out = cli
        .run(&["cpasswd", "frank"], Some("new-s3cret-pass\n"))
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    app.login("frank", "new-s3cret-pass").await;

    assert_eq!(
        cli.run(&["delete", "frank"], None).await.code,
        2,
        "--yes without a terminal"
    );
    assert_eq!(cli.run(&["delete", "frank", "--yes"], None).await.code, 0);
    assert_eq!(cli.run(&["info", "frank"], None).await.code, 1);
}

#[actix_web::test]
async fn groups_are_set_shown_listed_and_audited_here_and_the_running_daemon_sees_them() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    let id = app.create_user("alice", "s3cret-pass", false).await;
    app.create_user("bob", "s3cret-pass", false).await;
    let key = app.login("alice", "s3cret-pass").await;
    let auth_ops = || async {
        app.http
            .get(format!("{}/v1/auth?group=ops", app.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(auth_ops().await, StatusCode::FORBIDDEN);

    let cli = Cli::for_db(&app.db.config);
    let out = cli
        .run(
            &["user", "groups", "alice", "--replace", "ops,Billing,ops"],
            None,
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "alice: billing,ops\n");
    assert!(
        within_a_second(|| async { auth_ops().await == StatusCode::OK }).await,
        "the daemon still refused the new member"
    );
    cli.run(&["user", "groups", "bob", "--replace", "ops"], None)
        .await;

    let shown = json_of(&cli.run(&["user", "groups", "#1", "--json"], None).await);
    assert_eq!(
        shown,
        json!({"userid": id, "username": "alice", "groups": ["billing", "ops"]})
    );
    let listed = json_of(&cli.run(&["groups", "list", "--json"], None).await);
    assert_eq!(
        listed,
        json!({"groups": [{"name": "billing", "members": 1}, {"name": "ops", "members": 2}]})
    );
    let table = cli.run(&["groups", "list"], None).await;
    assert_eq!(table.stdout, "GROUP    MEMBERS\nbilling  1\nops      2\n");
    let members = json_of(&cli.run(&["groups", "members", "OPS", "--json"], None).await);
    let names: Vec<&str> = members["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    let r = app
        .admin(Method::GET, &format!("/v1/audit?userid={id}"), None)
        .await;
    let change = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "groups_changed")
        .cloned()
        .unwrap_or_else(|| panic!("no groups_changed event: {}", r.text));
    assert_eq!(change["detail"]["added"], json!(["billing", "ops"]));
    assert_eq!(change["detail"]["by"], "cli");

    let cleared = cli
        .run(&["user", "groups", "alice", "--replace", ""], None)
        .await;
    assert_eq!(cleared.stdout, "alice: (none)\n");
    assert!(within_a_second(|| async { auth_ops().await == StatusCode::FORBIDDEN }).await);
}

#[actix_web::test]
async fn bad_group_names_exit_2_and_unknown_users_and_groups_exit_1_changing_nothing() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    app.create_user("alice", "s3cret-pass", false).await;
    let cli = Cli::for_db(&app.db.config);
    cli.run(&["user", "groups", "alice", "--replace", "ops"], None)
        .await;
    for bad in ["has space", "a/b", &"x".repeat(65)] {
        let out = cli
            .run(&["user", "groups", "alice", "--replace", bad], None)
            .await;
        assert_eq!(out.code, 2, "{bad}: {out:?}");
        assert!(out.stderr.contains("group names"), "{out:?}");
    }
    let many: Vec<String> = (0..65).map(|i| format!("g{i}")).collect();
    let out = cli
        .run(
            &["user", "groups", "alice", "--replace", &many.join(",")],
            None,
        )
        .await;
    assert_eq!(out.code, 2, "{out:?}");
    let out = cli
        .run(&["user", "groups", "nobody", "--replace", "ops"], None)
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    let out = cli.run(&["groups", "members", "nope"], None).await;
    assert_eq!(out.code, 1, "{out:?}");
    let out = cli.run(&["user", "groups", "alice"], None).await;
    assert_eq!(out.stdout, "alice: ops\n", "nothing changed");
}

#[actix_web::test]
async fn a_password_change_a_deletion_and_a_kill_from_the_command_line_are_in_the_audit_trail() {
    let app = TestApp::start_on(TestDb::create().await, |_| {}).await;
    let cli = Cli::for_db(&app.db.config);
    let id = app.create_user("alice", "s3cret-pass", false).await;
    let other = app.create_user("bob", "s3cret-pass", false).await;
    app.login("bob", "s3cret-pass").await;

    let out = cli
        .run(&["user", "passwd", "alice"], Some("brand new password\n"))
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = cli.run(&["sessions", "kill", "bob"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = cli.run(&["user", "delete", "alice", "--yes"], None).await;
    assert_eq!(out.code, 0, "{out:?}");

    let r = app.admin(Method::GET, "/v1/audit?limit=100", None).await;
    let events = r.body["events"].as_array().unwrap();
    let event = |kind: &str, userid: i64| {
        events
            .iter()
            .find(|e| e["kind"] == kind && e["userid"] == userid)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} event of user {userid}: {}", r.text))
    };
    assert_eq!(event("password_changed", id)["detail"]["by"], "cli");
    assert_eq!(event("user_deleted", id)["detail"]["by"], "cli");
    let killed = event("sessions_killed", other);
    assert_eq!(killed["detail"]["by"], "cli");
    assert_eq!(killed["detail"]["killed"], 1);
}
