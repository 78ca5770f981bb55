//! Test support for the reverse-proxy and browser tests: the real daemon, an echoing
//! upstream, the proxies started from the configurations in `examples/`, and child
//! process guards that always clean up.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use tokio::net::TcpStream;

pub use crate::support::free_port;
use crate::support::ApiClient;

/// The placeholder addresses used by every file in `examples/`.
pub const DAEMON_PLACEHOLDER: &str = "127.0.0.1:8080";
pub const UPSTREAM_PLACEHOLDER: &str = "127.0.0.1:3000";
pub const PROXY_PLACEHOLDER: &str = "127.0.0.1:8000";
pub const CADDY_ADMIN_PLACEHOLDER: &str = "127.0.0.1:2019";
pub const HAPROXY_LUA_PLACEHOLDER: &str = "/etc/haproxy/pgusers-auth.lua";
pub const TRAEFIK_DYNAMIC_PLACEHOLDER: &str = "/etc/traefik/dynamic.yml";

pub const COOKIE: &str = "pgusers_session";

/// True when running under CI (`CI` set and not empty/false): missing tools then fail.
pub fn in_ci() -> bool {
    match std::env::var("CI") {
        Ok(v) => !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"),
        Err(_) => false,
    }
}

/// Finds an executable by name on PATH or at one of the given absolute paths.
pub fn which(name: &str, extra: &[&str]) -> Option<PathBuf> {
    for p in extra {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Some(p);
        }
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path).chain(
        ["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/bin"]
            .iter()
            .map(PathBuf::from),
    ) {
        let p = dir.join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

/// Looks for a tool the test needs. Missing: prints a SKIP line and returns None, except
/// under CI (`CI` set), where a missing tool is a failure so CI can never silently skip.
pub fn require_tool(test: &str, name: &str, extra: &[&str], package: &str) -> Option<PathBuf> {
    match which(name, extra) {
        Some(p) => Some(p),
        None => {
            if in_ci() {
                panic!(
                    "{test}: `{name}` not found but CI is set: install the package \
                     `{package}` in .ci/run (a CI run must not skip this test)"
                );
            }
            skip_line(&format!(
                "SKIP {test}: `{name}` not found (package `{package}`)"
            ));
            None
        }
    }
}

/// Prints a line that stays visible even when the test harness captures output (it only
/// captures the print macros, not direct writes to the stderr handle).
pub fn skip_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Replaces placeholder strings in one pass (so a replacement can never be replaced again).
pub fn substitute(text: &str, pairs: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (i, (from, _)) in pairs.iter().enumerate() {
        out = out.replace(from, &format!("\u{0}PLACEHOLDER{i}\u{0}"));
    }
    for (i, (_, to)) in pairs.iter().enumerate() {
        out = out.replace(&format!("\u{0}PLACEHOLDER{i}\u{0}"), to);
    }
    out
}

pub fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(rel)
}

fn send_signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

fn tail(path: &Path, lines: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let v: Vec<&str> = s.lines().collect();
    let start = v.len().saturating_sub(lines);
    v[start..].join("\n")
}

/// A child process that is stopped (TERM, then KILL) when the guard is dropped, also on
/// panic. On panic the tails of its log files are printed to help diagnose the failure.
pub struct ChildGuard {
    pub name: String,
    child: Option<Child>,
    pub logs: Vec<PathBuf>,
    /// Files holding the pid of a process started by this child (e.g. postmaster.pid):
    /// that process is stopped too if it outlives the child.
    pub pid_files: Vec<PathBuf>,
    pub stop_signal: &'static str,
}

impl ChildGuard {
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> ChildGuard {
        let out = log_dir.join(format!("{name}.stdout.log"));
        let err = log_dir.join(format!("{name}.stderr.log"));
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e} ({cmd:?})"));
        ChildGuard {
            name: name.to_string(),
            child: Some(child),
            logs: vec![out, err],
            pid_files: vec![],
            stop_signal: "TERM",
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Panics with the logs if the process has already exited.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                panic!(
                    "{} exited early with {status}\n{}",
                    self.name,
                    self.log_tails(60)
                );
            }
        }
    }

    pub fn log_tails(&self, lines: usize) -> String {
        let mut s = String::new();
        for l in &self.logs {
            s.push_str(&format!("---- {} ----\n{}\n", l.display(), tail(l, lines)));
        }
        s
    }

    /// Sends SIGKILL and waits: an abrupt crash, nothing is cleaned up by the process.
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process: the stop signal, up to `grace`, then SIGKILL; then any process
    /// named in `pid_files` that is still alive.
    pub fn stop(&mut self, grace: Duration) {
        if let Some(mut c) = self.child.take() {
            if let Ok(None) = c.try_wait() {
                send_signal(c.id(), self.stop_signal);
                let deadline = Instant::now() + grace;
                loop {
                    match c.try_wait() {
                        Ok(Some(_)) => break,
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(50))
                        }
                        _ => {
                            let _ = c.kill();
                            let _ = c.wait();
                            break;
                        }
                    }
                }
            }
        }
        for f in &self.pid_files {
            let pid = std::fs::read_to_string(f)
                .ok()
                .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()));
            if let Some(pid) = pid {
                if pid_alive(pid) {
                    // PostgreSQL: SIGINT is a fast shutdown.
                    send_signal(pid, "INT");
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while pid_alive(pid) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    if pid_alive(pid) {
                        send_signal(pid, "KILL");
                    }
                }
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("==== logs of {} ====\n{}", self.name, self.log_tails(40));
        }
        self.stop(Duration::from_secs(10));
    }
}

/// Waits until something accepts TCP connections on the port, or panics with the logs.
pub async fn wait_port(guard: &mut ChildGuard, port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        guard.assert_running();
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "{} did not listen on 127.0.0.1:{port} within {timeout:?}\n{}",
                guard.name,
                guard.log_tails(60)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An HTTP client that never follows redirects and keeps no cookies (tests send the
/// Cookie header explicitly).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// The daemon
// ---------------------------------------------------------------------------------------

/// The spawned daemon; its API client (base URL, the token from `api-token`) is the
/// daemon's own methods and fields (`daemon.login(..)`, `daemon.base`) through `Deref`.
pub struct Daemon {
    pub guard: ChildGuard,
    pub port: u16,
    pub api: ApiClient,
    pub dir: tempfile::TempDir,
}

impl std::ops::Deref for Daemon {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

impl Daemon {
    /// Starts `pgusers serve --embedded <tmp>/pg --listen 127.0.0.1:<free port>` with
    /// `PGUSERS_COOKIE_SECURE=false` and the given extra environment, and waits for
    /// `/readyz`.
    pub async fn start(env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("pgusers-proxytest-")
            .tempdir()
            .unwrap();
        // The embedded PostgreSQL may run as an unprivileged user: let it traverse.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let port = free_port();
        let embedded = dir.path().join("pg");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgusers"));
        cmd.arg("serve")
            .arg("--embedded")
            .arg(&embedded)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("PGUSERS_COOKIE_SECURE", "false")
            .env("PGUSERS_LOG__LEVEL", "info")
            // Debug builds hash passwords slowly, and the proxy tests log in side by side: the
            // request deadline is not what these tests are about (tests/api/stalled_database.rs is).
            .env("PGUSERS_SERVER__REQUEST_TIMEOUT", "60s")
            .env_remove("PGUSERS_API_TOKENS")
            .env_remove("PGUSERS_CONFIG")
            .env_remove("PGUSERS_CONNECTION_STRING")
            .env_remove("PGUSERS_LISTEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let mut guard = ChildGuard::spawn("pgusers", cmd, &logs);
        guard
            .pid_files
            .push(embedded.join("pgdata").join("postmaster.pid"));
        let base = format!("http://127.0.0.1:{port}");
        let client = http();
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            guard.assert_running();
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                if r.status().as_u16() == 200 {
                    break;
                }
            }
            if Instant::now() > deadline {
                panic!("daemon not ready within 180 s\n{}", guard.log_tails(80));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let token = std::fs::read_to_string(embedded.join("api-token"))
            .unwrap_or_else(|e| panic!("reading {}/api-token: {e}", embedded.display()))
            .trim()
            .to_string();
        assert!(!token.is_empty(), "empty api-token file");
        Daemon {
            guard,
            port,
            api: ApiClient::with_http(base, token, client),
            dir,
        }
    }

    /// Stops the embedded PostgreSQL under the running daemon (fast shutdown of the
    /// postmaster named in `pgdata/postmaster.pid`), to see the daemon without its database.
    pub fn stop_database(&self) {
        let pidfile = self
            .dir
            .path()
            .join("pg")
            .join("pgdata")
            .join("postmaster.pid");
        let pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
            .unwrap_or_else(|| panic!("no pid in {}", pidfile.display()));
        send_signal(pid, "INT");
        let deadline = Instant::now() + Duration::from_secs(20);
        while pid_alive(pid) {
            assert!(Instant::now() < deadline, "postmaster {pid} did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Small web applications: the upstream behind the proxies, a page on another site
// ---------------------------------------------------------------------------------------

/// An actix-web application on a free port of 127.0.0.1, one worker, stopped on drop.
pub struct TestServer {
    pub port: u16,
    handle: actix_web::dev::ServerHandle,
}

impl TestServer {
    /// Serves the routes that `routes` configures; call it inside a Tokio runtime.
    pub fn start(routes: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static) -> TestServer {
        let server = HttpServer::new(move || App::new().configure(routes.clone()))
            .workers(1)
            .disable_signals()
            .shutdown_timeout(0)
            .bind(("127.0.0.1", 0))
            .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        TestServer { port, handle }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // The stop command is sent at once; there is no need to wait for it here.
        drop(self.handle.stop(false));
    }
}

/// The application behind the proxies: answers every request with what it received as JSON
/// (`method`, `path` with the query, `headers` as name → list of values, `body_len`), and
/// remembers each.
pub struct Upstream {
    pub port: u16,
    seen: Arc<Mutex<Vec<Value>>>,
    _server: TestServer,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let data = web::Data::from(seen.clone());
        let server = TestServer::start(move |routes| {
            routes.app_data(data.clone()).default_service(web::to(echo));
        });
        Upstream {
            port: server.port,
            seen,
            _server: server,
        }
    }

    /// How many requests reached the application.
    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Requests seen whose path starts with `prefix` (a browser also fetches
    /// /favicon.ico on its own).
    pub fn requests_to(&self, prefix: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r["path"].as_str().unwrap_or_default().starts_with(prefix))
            .count()
    }
}

async fn echo(
    req: HttpRequest,
    body: web::Bytes,
    seen: web::Data<Mutex<Vec<Value>>>,
) -> HttpResponse {
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers().iter() {
        if let Some(values) = headers
            .entry(name.as_str())
            .or_insert_with(|| Value::Array(vec![]))
            .as_array_mut()
        {
            values.push(Value::String(
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
    }
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let record = json!({
        "method": req.method().as_str(),
        "path": path,
        "headers": headers,
        "body_len": body.len(),
    });
    seen.lock().unwrap().push(record.clone());
    HttpResponse::Ok().json(record)
}

// ---------------------------------------------------------------------------------------
// The proxies, started from the example configurations (only addresses/paths substituted)
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    Nginx,
    Caddy,
    Haproxy,
    Traefik,
}

impl ProxyKind {
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Nginx => "nginx",
            ProxyKind::Caddy => "caddy",
            ProxyKind::Haproxy => "haproxy",
            ProxyKind::Traefik => "traefik",
        }
    }

    pub fn binary(self) -> (&'static str, &'static [&'static str]) {
        match self {
            ProxyKind::Nginx => ("nginx", &["/usr/sbin/nginx"]),
            ProxyKind::Caddy => ("caddy", &["/usr/bin/caddy"]),
            ProxyKind::Haproxy => ("haproxy", &["/usr/sbin/haproxy"]),
            ProxyKind::Traefik => ("traefik", &[]),
        }
    }
}

pub struct Proxy {
    pub kind: ProxyKind,
    pub port: u16,
    pub base: String,
    pub guard: ChildGuard,
    pub dir: tempfile::TempDir,
}

/// Starts the proxy with its example configuration in a fresh temp directory.
pub async fn start_proxy(
    kind: ProxyKind,
    bin: &Path,
    daemon_port: u16,
    upstream_port: u16,
) -> Proxy {
    start_proxy_on(kind, bin, daemon_port, upstream_port, free_port()).await
}

/// Same, on a port chosen by the caller (e.g. one announced to the daemon beforehand).
pub async fn start_proxy_on(
    kind: ProxyKind,
    bin: &Path,
    daemon_port: u16,
    upstream_port: u16,
    port: u16,
) -> Proxy {
    let dir = tempfile::Builder::new()
        .prefix(&format!("pgusers-{}-", kind.name()))
        .tempdir()
        .unwrap();
    let d = dir.path();
    let mut pairs: Vec<(&str, String)> = vec![
        (DAEMON_PLACEHOLDER, format!("127.0.0.1:{daemon_port}")),
        (UPSTREAM_PLACEHOLDER, format!("127.0.0.1:{upstream_port}")),
        (PROXY_PLACEHOLDER, format!("127.0.0.1:{port}")),
    ];
    let guard = match kind {
        ProxyKind::Nginx => {
            let conf = std::fs::read_to_string(example("nginx/pgusers.conf")).unwrap();
            std::fs::write(d.join("pgusers.conf"), substitute(&conf, &pairs)).unwrap();
            for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
                std::fs::create_dir_all(d.join(t)).unwrap();
            }
            // The example is an http{}-level snippet; this is the minimal main file a
            // distribution would provide around it, with every path in the temp dir.
            let main = format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\n\
                 pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log {d}/access.log;\n\
                 client_body_temp_path {d}/client_body;\n  proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
                 scgi_temp_path {d}/scgi;\n  include {d}/pgusers.conf;\n}}\n",
                d = d.display()
            );
            std::fs::write(d.join("nginx.conf"), main).unwrap();
            let mut cmd = Command::new(bin);
            cmd.arg("-p")
                .arg(d)
                .arg("-e")
                .arg(d.join("error.log"))
                .arg("-c")
                .arg(d.join("nginx.conf"));
            let mut g = ChildGuard::spawn("nginx", cmd, d);
            g.logs.push(d.join("error.log"));
            g.logs.push(d.join("access.log"));
            g
        }
        ProxyKind::Caddy => {
            let admin = free_port();
            pairs.push((CADDY_ADMIN_PLACEHOLDER, format!("127.0.0.1:{admin}")));
            let conf = std::fs::read_to_string(example("caddy/Caddyfile")).unwrap();
            std::fs::write(d.join("Caddyfile"), substitute(&conf, &pairs)).unwrap();
            let mut cmd = Command::new(bin);
            cmd.arg("run")
                .arg("--config")
                .arg(d.join("Caddyfile"))
                .arg("--adapter")
                .arg("caddyfile")
                .env("HOME", d)
                .env("XDG_DATA_HOME", d.join("data"))
                .env("XDG_CONFIG_HOME", d.join("config"));
            ChildGuard::spawn("caddy", cmd, d)
        }
        ProxyKind::Haproxy => {
            let lua = d.join("pgusers-auth.lua");
            std::fs::copy(example("haproxy/pgusers-auth.lua"), &lua).unwrap();
            pairs.push((HAPROXY_LUA_PLACEHOLDER, lua.display().to_string()));
            let conf = std::fs::read_to_string(example("haproxy/haproxy.cfg")).unwrap();
            std::fs::write(d.join("haproxy.cfg"), substitute(&conf, &pairs)).unwrap();
            let mut cmd = Command::new(bin);
            cmd.arg("-f").arg(d.join("haproxy.cfg")).arg("-db");
            ChildGuard::spawn("haproxy", cmd, d)
        }
        ProxyKind::Traefik => {
            let dynamic = d.join("dynamic.yml");
            pairs.push((TRAEFIK_DYNAMIC_PLACEHOLDER, dynamic.display().to_string()));
            for file in ["traefik.yml", "dynamic.yml"] {
                let conf = std::fs::read_to_string(example(&format!("traefik/{file}"))).unwrap();
                std::fs::write(d.join(file), substitute(&conf, &pairs)).unwrap();
            }
            let mut cmd = Command::new(bin);
            cmd.arg(format!("--configFile={}", d.join("traefik.yml").display()))
                .env("HOME", d);
            ChildGuard::spawn("traefik", cmd, d)
        }
    };
    let mut proxy = Proxy {
        kind,
        port,
        base: format!("http://127.0.0.1:{port}"),
        guard,
        dir,
    };
    wait_port(&mut proxy.guard, port, Duration::from_secs(30)).await;
    proxy
}
