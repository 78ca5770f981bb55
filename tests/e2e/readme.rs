//! The README is a test: its commands run verbatim against the built binary, every ```sh block
//! is either run here or listed with the reason it cannot be, and its links stay inside the repo.
//!
//! The commands use the README's own address (`localhost:8080`). As root each scenario runs in a
//! private network namespace (`unshare -n`), so it cannot collide with anything on the machine;
//! otherwise it needs port 8080 to be free. `cargo run --release --` is served by a `cargo` shim on
//! `PATH` that runs the binary this test suite built, so the lines are typed exactly as written
//! without a release build inside the tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const README: &str = include_str!("../../README.md");

/// One fenced code block of the README, with the heading it stands under.
#[derive(Debug)]
struct Block {
    heading: String,
    info: String,
    body: String,
    line: usize,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut open: Option<Block> = None;
    for (n, line) in markdown.lines().enumerate() {
        if let Some(block) = open.as_mut() {
            if line.trim_start().starts_with("```") {
                out.push(open.take().unwrap());
            } else {
                block.body.push_str(line);
                block.body.push('\n');
            }
        } else if let Some(info) = line.trim_start().strip_prefix("```") {
            open = Some(Block {
                heading: heading.clone(),
                info: info.trim().to_string(),
                body: String::new(),
                line: n + 1,
            });
        } else if line.starts_with('#') {
            heading = line.trim_start_matches('#').trim().to_string();
        }
    }
    assert!(open.is_none(), "README.md has an unclosed code fence");
    out
}

fn sh_blocks_under(heading: &str) -> Vec<Block> {
    blocks(README)
        .into_iter()
        .filter(|b| b.info == "sh" && b.heading == heading)
        .collect()
}

/// The ```sh blocks that cannot run inside a test, by heading, each with the reason. Every other
/// ```sh block of the README must be run by a test of this file.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "Install",
        "installs into /usr and systemd's directories of the host",
    ),
    (
        "systemd",
        "needs systemd as the init process (the unit files are checked by tests/e2e/systemd_units.rs)",
    ),
    (
        "Reloading",
        "needs systemd as the init process (SIGHUP reloading is tested in tests/e2e/daemon_process.rs)",
    ),
    (
        "Docker",
        "needs a Docker engine, which the test machines do not have (the Dockerfile is linted)",
    ),
    ("Backups", "runs against an installed server's database"),
    (
        "Performance",
        "benchmarks take minutes and print figures rather than pass or fail",
    ),
];

/// The headings whose ```sh blocks this file runs.
const RUN: &[&str] = &[
    "The two commands",
    "Two minutes with curl",
    "Managing users from the command line",
];

#[test]
fn every_sh_block_of_the_readme_is_run_by_a_test_or_says_why_not() {
    for block in blocks(README).iter().filter(|b| b.info == "sh") {
        let listed = RUN.contains(&block.heading.as_str())
            || NOT_RUN.iter().any(|(h, _)| *h == block.heading);
        assert!(
            listed,
            "README.md line {}: the ```sh block under \"{}\" is neither run by tests/e2e/readme.rs nor \
             listed in its NOT_RUN with a reason",
            block.line, block.heading
        );
    }
    for heading in RUN {
        assert!(
            !sh_blocks_under(heading).is_empty(),
            "README.md has no ```sh block under \"{heading}\" any more"
        );
    }
}

#[test]
fn every_link_of_every_markdown_file_resolves_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap();
    let mut problems = Vec::new();
    let mut files = Vec::new();
    markdown_files(&root, &mut files);
    assert!(files.iter().any(|f| f.ends_with("README.md")));
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let dir = file.parent().unwrap();
        for target in relative_links(&text) {
            let path = target.split('#').next().unwrap_or_default();
            if path.is_empty() {
                continue;
            }
            let shown = format!("{}: {target}", file.strip_prefix(&root).unwrap().display());
            match dir.join(path).canonicalize() {
                Ok(p) if p.starts_with(&root) => {}
                Ok(_) => problems.push(format!("{shown}: points outside the repository")),
                Err(_) => problems.push(format!("{shown}: no such file in the repository")),
            }
        }
    }
    assert!(problems.is_empty(), "broken links: {problems:#?}");
}

/// The repository's Markdown files, outside build output and hidden folders.
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        if path.is_dir() {
            markdown_files(&path, out);
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// Targets of `[text](target)` links that are not URLs or in-page anchors.
fn relative_links(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            let target = rest[..end].trim().to_string();
            rest = &rest[end..];
            let external = target.contains("://") || target.starts_with("mailto:");
            if !external && !target.starts_with('#') && !target.is_empty() {
                out.push(target);
            }
        }
    }
    out
}

#[test]
fn the_first_command_serves_a_ready_daemon_from_an_empty_directory() {
    let block = &sh_blocks_under("The two commands")[0];
    let first = command_line(block.body.lines().next().unwrap());
    assert_eq!(
        first, "cargo run --release -- serve --embedded",
        "the README's first command changed: update this test with it"
    );
    let second = command_line(block.body.lines().nth(1).unwrap());
    assert_eq!(
        second, "cargo test",
        "the README's test command must be what .ci/run runs"
    );

    let script = format!(
        "{first} &\n\
         for _ in $(seq 1 600); do\n\
           curl -sf localhost:8080/readyz && exit 0\n\
           kill -0 $! 2>/dev/null || {{ echo 'the daemon exited'; exit 1; }}\n\
           sleep 0.1\n\
         done\n\
         echo 'not ready after 60 s'; exit 1\n"
    );
    let run = Scenario::new().run(&script);
    assert!(
        run.ok && run.stdout.contains(r#""status":"ready""#),
        "`{first}` did not serve /readyz = ready:\n{run}"
    );
}

#[test]
fn the_two_minutes_with_curl_run_as_written() {
    let blocks = sh_blocks_under("Two minutes with curl");
    let script: String = blocks.iter().map(|b| b.body.as_str()).collect();
    let run = Scenario::new().run(&script);
    assert!(run.ok, "the curl walk-through failed:\n{run}");
    let out = &run.stdout;
    for expected in [
        r#""status":"ready""#,
        r#""userid":"#,
        r#""username":"alice""#,
        "HTTP/1.1 200 OK",
    ] {
        assert!(
            out.contains(expected),
            "the walk-through printed no {expected}:\n{run}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.to_ascii_lowercase().starts_with("x-user: alice")),
        "forward auth named no user:\n{run}"
    );
}

#[test]
fn the_operators_command_line_session_runs_as_written_beside_an_embedded_daemon() {
    let blocks = sh_blocks_under("Managing users from the command line");
    let session: String = blocks.iter().map(|b| b.body.as_str()).collect();
    let script = format!(
        "pgusers serve --embedded &\n\
         until curl -sf localhost:8080/readyz >/dev/null; do\n\
           kill -0 $! 2>/dev/null || {{ echo 'the daemon exited'; exit 1; }}\n\
           sleep 0.1\n\
         done\n\
         {session}"
    );
    let run = Scenario::new().run(&script);
    assert!(run.ok, "the command-line session failed:\n{run}");
    let out = &run.stdout;
    for expected in [
        "created user 'alice'",
        r#""username": "alice""#,
        "email alice@example.com",
        "is now an administrator",
        "alice: billing,ops",
        "ops      1",
        "session TTL is now 43200 s",
        "killed 1 session(s)",
        "deleted user 'alice'",
    ] {
        assert!(
            out.contains(expected),
            "the session printed no {expected}:\n{run}"
        );
    }
    assert!(
        !out.contains("correct horse battery") && !run.stderr.contains("correct horse battery"),
        "the password was printed:\n{run}"
    );
}

/// A line of a ```sh block without its trailing `# comment`.
fn command_line(line: &str) -> String {
    line.split(" #")
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A temporary working directory, a `PATH` with the `cargo` shim and `pgusers`, and (as root) a
/// private network namespace, in which README lines run under `bash -e`.
struct Scenario {
    dir: tempfile::TempDir,
}

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        )
    }
}

impl Scenario {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pgusers-readme-")
            .tempdir()
            .unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_pgusers"));
        std::os::unix::fs::symlink(&binary, bin.join("pgusers")).unwrap();
        let shim = format!(
            "#!/bin/sh\n\
             # `cargo run --release -- ARGS` as typed in the README, served by the built binary.\n\
             if [ \"$1 $2 $3\" = 'run --release --' ]; then shift 3; exec '{}' \"$@\"; fi\n\
             echo \"cargo shim: only 'cargo run --release -- ...' is served here, not: $*\" >&2\n\
             exit 127\n",
            binary.display()
        );
        std::fs::write(bin.join("cargo"), shim).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("cargo"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        Self { dir }
    }

    /// Runs `lines` in the scenario's working directory; every process it started in the
    /// background is stopped (SIGTERM, then waited for) when it ends, however it ends.
    fn run(&self, lines: &str) -> Outcome {
        let script = format!(
            "set -e -o pipefail\n\
             trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n\
             {isolate}\
             {lines}\n",
            isolate = if running_as_root() {
                "ip link set lo up\n"
            } else {
                ""
            },
        );
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = if running_as_root() {
            let mut c = Command::new("unshare");
            c.args(["--net", "--", "timeout", "240", "bash", "-c", &script]);
            c
        } else {
            let mut c = Command::new("timeout");
            c.args(["240", "bash", "-c", &script]);
            c
        };
        // A new user's shell: none of the test environment's PGUSERS_* settings.
        for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("PGUSERS_")) {
            command.env_remove(name);
        }
        let output = command
            .current_dir(self.dir.path().join("work"))
            .env("PATH", path)
            .stdin(Stdio::null())
            .output()
            .expect("bash and unshare (util-linux) must be installed");
        Outcome {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

fn running_as_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}
