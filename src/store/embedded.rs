//! The embedded PostgreSQL: a private cluster created and run by the daemon (or the tests) from
//! the installed server binaries, reachable only through a Unix socket in its directory, and
//! stopped when its owner exits, even when the owner is killed.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The role and database the embedded cluster serves.
pub const ROLE: &str = "pgusers";
pub const DATABASE: &str = "pgusers";
const PORT: u16 = 5432;

/// Why the embedded PostgreSQL cannot be set up or started; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found on PATH or under \
         /usr/lib/postgresql/*/bin: install the PostgreSQL server package"
    )]
    NoServerBinaries,
    #[error(
        "the '{0}' account has uid 0; the embedded PostgreSQL needs an unprivileged '{0}' account"
    )]
    PrivilegedAccount(&'static str),
    #[error(
        "running as root, the embedded PostgreSQL needs a dedicated account to run as, and there \
         is no '{0}' account: create one (`useradd --system --user-group --home-dir \
         /var/lib/postgresql {0}`; the PostgreSQL server package creates it), or run pgusers \
         as an unprivileged user. pgusers does not fall back to 'nobody', whose other services \
         could then reach the database as its superuser"
    )]
    NoDedicatedAccount(&'static str),
    #[error("cannot {action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is too long a path for a Unix socket; choose a shorter directory", .0.display())]
    SocketPathTooLong(PathBuf),
    #[error(
        "initdb failed in {}: {output}{}",
        .dir.display(),
        if *.as_root {
            " (as root, PostgreSQL runs as an unprivileged account: every parent directory must \
             be reachable by it)"
        } else {
            ""
        }
    )]
    Initdb {
        dir: PathBuf,
        output: String,
        as_root: bool,
    },
    #[error("the embedded PostgreSQL exited ({status}); see {}", .log.display())]
    Exited {
        status: std::process::ExitStatus,
        log: PathBuf,
    },
    #[error("the embedded PostgreSQL did not become ready within {0:?}")]
    NotReady(Duration),
    /// The thread that started it panicked or was cancelled.
    #[error("the start of the embedded PostgreSQL was interrupted")]
    Interrupted(#[source] tokio::task::JoinError),
    #[error("cannot create the database {name}")]
    CreateDatabase {
        name: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{}: {problem}", .path.display())]
    UntrustedTokenFile {
        path: PathBuf,
        problem: TokenFileProblem,
    },
}

/// Why an existing API token file is not trusted (see [`api_token`]).
#[derive(Debug, thiserror::Error)]
pub enum TokenFileProblem {
    #[error("a symbolic link, which the API token file must not be; delete it and pgusers makes a new token")]
    SymbolicLink,
    #[error("not a regular file; delete it and pgusers makes a new token")]
    NotARegularFile,
    #[error(
        "owned by uid {owner}, not by pgusers' own (uid {me}): another account may have planted \
         it; delete it and pgusers makes a new token (or chown it back if you wrote it)"
    )]
    ForeignOwner { owner: u32, me: u32 },
    #[error(
        "open to other accounts (mode {mode:o}); `chmod 600` it, or delete it and pgusers makes a \
         new token"
    )]
    OpenToOthers { mode: u32 },
    #[error("has other hard links; delete it and pgusers makes a new token")]
    HardLinked,
}

/// An I/O failure on `path` while trying to `action` it.
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    let path = path.to_owned();
    move |source| EmbeddedError::Io {
        action,
        path,
        source,
    }
}

/// Finds `initdb` and `postgres`: on PATH, else the newest `/usr/lib/postgresql/*/bin`.
pub fn find_binaries() -> Result<PathBuf, EmbeddedError> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
    });
    if let Some(dir) = on_path {
        // Follow symlinks (e.g. /usr/local/bin/initdb) to the directory with the other tools.
        let real = dir
            .join("initdb")
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        return Ok(real.unwrap_or(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").is_file().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or(EmbeddedError::NoServerBinaries)
}

/// Tuning for throwaway clusters (tests): durability traded for speed.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub durable: bool,
    /// Remove the whole directory once the cluster has stopped.
    pub remove_on_exit: bool,
    /// Also listen on 127.0.0.1 at this port (tests of TLS, which needs TCP).
    pub tcp_port: Option<u16>,
    /// Extra server settings, `name=value` (e.g. `ssl=on`).
    pub settings: Vec<String>,
}

/// A running embedded cluster. Dropping it stops the server.
pub struct EmbeddedPostgres {
    dir: PathBuf,
    supervisor: Option<Child>,
    stdin: Option<ChildStdin>,
    bin: PathBuf,
    options: Options,
    run_as: Option<(u32, u32)>,
}

/// The dedicated account PostgreSQL runs as when pgusers runs as root.
const DEDICATED_ACCOUNT: &str = "postgres";

/// The unprivileged account to run PostgreSQL as when we are root.
fn unprivileged_account() -> Result<Option<(u32, u32)>, EmbeddedError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    dedicated_account(DEDICATED_ACCOUNT).map(Some)
}

/// The uid and gid of `name`, which must exist and not be root. There is no fallback to
/// `nobody`: every service running as `nobody` could then reach the trust-authenticated socket
/// as the superuser role.
fn dedicated_account(name: &'static str) -> Result<(u32, u32), EmbeddedError> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) if !user.uid.is_root() => Ok((user.uid.as_raw(), user.gid.as_raw())),
        Ok(Some(_)) => Err(EmbeddedError::PrivilegedAccount(name)),
        _ => Err(EmbeddedError::NoDedicatedAccount(name)),
    }
}

/// Child processes must not speak systemd's protocols on our behalf.
fn scrub(cmd: &mut Command) -> &mut Command {
    for var in [
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "PGDATA",
        "PGHOST",
        "PGPORT",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

impl EmbeddedPostgres {
    /// Creates the cluster in `dir` if needed and starts it; blocks until it accepts connections.
    pub fn start(dir: &Path, options: Options) -> Result<Self, EmbeddedError> {
        let bin = find_binaries()?;
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let dir = dir.canonicalize().map_err(io("resolve", dir))?;
        if dir.join(format!(".s.PGSQL.{PORT}")).as_os_str().len() > 100 {
            return Err(EmbeddedError::SocketPathTooLong(dir));
        }
        let run_as = unprivileged_account()?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("set permissions on", &dir))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(io("hand over to the PostgreSQL account", &dir))?;
        }
        let mut pg = Self {
            dir,
            supervisor: None,
            stdin: None,
            bin,
            options,
            run_as,
        };
        if !pg.data_dir().join("PG_VERSION").exists() {
            pg.initdb()?;
        }
        pg.launch()?;
        pg.wait_until_ready(Duration::from_secs(60))?;
        Ok(pg)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The port the server answers on (its socket file is named after it too).
    pub fn port(&self) -> u16 {
        self.options.tcp_port.unwrap_or(PORT)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("pgdata")
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        scrub(&mut cmd);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.current_dir(&self.dir);
        cmd
    }

    fn initdb(&self) -> Result<(), EmbeddedError> {
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-U",
                ROLE,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            ])
            .args(if self.options.durable {
                &[][..]
            } else {
                &["--no-sync"][..]
            })
            .output()
            .map_err(io("run", &self.bin.join("initdb")))?;
        if !output.status.success() {
            return Err(EmbeddedError::Initdb {
                dir: self.dir.clone(),
                output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                as_root: self.run_as.is_some(),
            });
        }
        Ok(())
    }

    /// Starts `postgres` under a tiny shell supervisor that stops it (fast shutdown) when our
    /// end of its stdin closes, which happens when this process exits for any reason.
    fn launch(&mut self) -> Result<(), EmbeddedError> {
        const SUPERVISOR: &str = r#"
"$@" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null' TERM INT HUP
while read -r _; do :; done
kill -INT "$pid" 2>/dev/null
wait "$pid"
if [ -n "$PGUSERS_EMBEDDED_REMOVE" ]; then rm -rf "$PGUSERS_EMBEDDED_REMOVE"; fi
"#;
        let stale_pid = self.data_dir().join("postmaster.pid");
        if stale_pid.exists() {
            let _ = self
                .command("pg_ctl")
                .arg("stop")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w"])
                .output();
        }
        let mut cmd = Command::new("/bin/sh");
        scrub(&mut cmd);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.arg("-c")
            .arg(SUPERVISOR)
            .arg("pgusers-embedded-postgres")
            .arg(self.bin.join("postgres"))
            .arg("-D")
            .arg(self.data_dir())
            .arg("-k")
            .arg(&self.dir)
            .args([
                "-p",
                &self.port().to_string(),
                "-c",
                "unix_socket_permissions=0700",
            ])
            .arg("-c")
            .arg(if self.options.tcp_port.is_some() {
                "listen_addresses=127.0.0.1"
            } else {
                "listen_addresses="
            })
            .args(["-c", "max_connections=200", "-c", "shared_buffers=128MB"]);
        if !self.options.durable {
            cmd.args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]);
        }
        for setting in &self.options.settings {
            cmd.args(["-c", setting]);
        }
        if self.options.remove_on_exit {
            cmd.env("PGUSERS_EMBEDDED_REMOVE", &self.dir);
        }
        let log_path = self.dir.join("postgres.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io("open the PostgreSQL log", &log_path))?;
        let log_err = log
            .try_clone()
            .map_err(io("open the PostgreSQL log", &log_path))?;
        let mut child = cmd
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(io("start", &self.bin.join("postgres")))?;
        self.stdin = child.stdin.take();
        self.supervisor = Some(child);
        Ok(())
    }

    fn wait_until_ready(&mut self, timeout: Duration) -> Result<(), EmbeddedError> {
        let started = Instant::now();
        loop {
            let ready = self
                .command("pg_isready")
                .arg("-h")
                .arg(&self.dir)
                .args([
                    "-p",
                    &self.port().to_string(),
                    "-U",
                    ROLE,
                    "-d",
                    "postgres",
                    "-q",
                ])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if let Some(child) = self.supervisor.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(EmbeddedError::Exited {
                        status,
                        log: self.dir.join("postgres.log"),
                    });
                }
            }
            if started.elapsed() > timeout {
                return Err(EmbeddedError::NotReady(timeout));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A libpq configuration for `dbname` on this cluster.
    pub fn config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host_path(&self.dir)
            .port(self.port())
            .user(ROLE)
            .dbname(dbname);
        cfg
    }

    /// Stops the server (fast shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        if let Some(mut child) = self.supervisor.take() {
            let _ = child.wait();
        }
    }

    /// Starts a stopped server again on the same data (tests of outages).
    pub fn restart(&mut self) -> Result<(), EmbeddedError> {
        self.stop();
        self.launch()?;
        self.wait_until_ready(Duration::from_secs(60))
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Creates `name` on the server of `admin` (connected to another database) unless it exists.
pub async fn create_database_if_missing(
    admin: &tokio_postgres::Client,
    name: &str,
) -> Result<(), EmbeddedError> {
    let failed = |source| EmbeddedError::CreateDatabase {
        name: name.to_owned(),
        source,
    };
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(failed)?
        .is_some();
    if !exists {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(e) = admin.batch_execute(&sql).await {
            if e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) {
                return Err(failed(e));
            }
        }
    }
    Ok(())
}

/// Reads the API token stored in `dir`, or creates one (mode 0600) when there is none or it is
/// too short. As root the directory belongs to the PostgreSQL account, which could plant a file
/// there: an existing file is trusted only when it is a regular file (not a link), owned by this
/// process's user, readable by nobody else, and has no other hard link; anything else is refused
/// with what to do. A new file is created without following links and never over an existing one.
pub fn api_token(dir: &Path) -> Result<(PathBuf, String), EmbeddedError> {
    let path = dir.join("api-token");
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(mut file) => {
            let meta = file.metadata().map_err(io("inspect", &path))?;
            trusted_token_file(&path, &meta)?;
            let mut text = String::new();
            file.read_to_string(&mut text).map_err(io("read", &path))?;
            let token = text.trim().to_string();
            if token.len() >= 16 {
                return Ok((path, token));
            }
            std::fs::remove_file(&path).map_err(io("replace", &path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(EmbeddedError::UntrustedTokenFile {
                path,
                problem: TokenFileProblem::SymbolicLink,
            })
        }
        Err(e) => return Err(io("read", &path)(e)),
    }
    let token = crate::domain::keys::random_hex(32);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .map_err(io("create", &path))?;
    file.write_all(token.as_bytes())
        .map_err(io("write", &path))?;
    Ok((path, token))
}

/// Refuses an API token file that another account could have written or can read.
fn trusted_token_file(path: &Path, meta: &std::fs::Metadata) -> Result<(), EmbeddedError> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let problem = if !meta.is_file() {
        TokenFileProblem::NotARegularFile
    } else if meta.uid() != me {
        TokenFileProblem::ForeignOwner {
            owner: meta.uid(),
            me,
        }
    } else if meta.mode() & 0o077 != 0 {
        TokenFileProblem::OpenToOthers {
            mode: meta.mode() & 0o777,
        }
    } else if meta.nlink() != 1 {
        TokenFileProblem::HardLinked
    } else {
        return Ok(());
    };
    Err(EmbeddedError::UntrustedTokenFile {
        path: path.to_owned(),
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_root_without_a_dedicated_account_the_error_names_the_fix_and_nobody_is_not_used() {
        let err = dedicated_account("pgusers-no-such-account")
            .unwrap_err()
            .to_string();
        assert!(err.contains("useradd --system"), "{err}");
        assert!(err.contains("does not fall back to 'nobody'"), "{err}");
        assert!(
            dedicated_account("root").is_err(),
            "root is not unprivileged"
        );
    }
}
