//! The daemon's settings: their defaults, the keys that set them, and validation of the whole.

pub mod duration;
mod keys;
pub mod live;
mod load;
mod print;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

pub use keys::{KeyDef, KEYS, MAX_TTL_SECS};
pub use load::{discover_config_file, load, Sources};
pub use print::{to_toml, MASKED};

/// A secret string (password, token). Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Serialized as the mask, never the value (the mask is long enough to be read back as a token).
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASKED)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(String),
    Unix(PathBuf),
}

/// As the configuration writes it: `host:port` or `unix:/path`.
impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Tcp(addr) => serializer.serialize_str(addr),
            Self::Unix(path) => serializer.collect_str(&format_args!("unix:{}", path.display())),
        }
    }
}

/// An address range of trusted proxies (`127.0.0.1/32`, `::1`, `10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpRange {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not an IP address or range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{text}' has an invalid prefix length"))?,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Durations as the configuration writes them (`"10d"`, `"90s"`, `"500ms"`).
fn as_duration<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&duration::format(*d))
}

/// An optional duration where zero means none (`session.max_lifetime`).
fn as_optional_duration<S: Serializer>(
    d: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => as_duration(d, serializer),
        None => serializer.serialize_str("0"),
    }
}

/// File permissions in octal, as `"0660"`.
fn as_octal<S: Serializer>(mode: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{mode:04o}"))
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dbname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub pool_size: usize,
    /// The schema holding the daemon's tables; every connection's `search_path` is pinned to it.
    pub schema: String,
    #[serde(serialize_with = "as_duration")]
    pub connect_timeout: Duration,
    /// PostgreSQL's `statement_timeout` on the daemon's connections (0: none).
    #[serde(serialize_with = "as_duration")]
    pub statement_timeout: Duration,
    /// PostgreSQL's `lock_timeout` on the daemon's connections (0: none).
    #[serde(serialize_with = "as_duration")]
    pub lock_timeout: Duration,
    /// TCP keepalive idle time (and user timeout) of the connections to PostgreSQL.
    #[serde(serialize_with = "as_duration")]
    pub tcp_keepalive: Duration,
    /// libpq's sslmode; `None` keeps what the URL says (default `prefer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sslmode: Option<SslPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sslrootcert: Option<PathBuf>,
    pub embedded: bool,
    pub embedded_dir: PathBuf,
    /// Whether `password` was read from a file (check-config then names the file only).
    #[serde(skip)]
    pub password_from_file: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerSettings {
    pub listen: Vec<ListenAddr>,
    /// Permissions of Unix-socket listeners (e.g. 0o660: owner and group may connect).
    #[serde(serialize_with = "as_octal")]
    pub unix_socket_mode: u32,
    /// Addresses served over HTTPS with `tls_cert_file` / `tls_key_file`.
    pub tls_listen: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    pub instance_name: String,
    pub max_body_bytes: usize,
    pub max_extra_data_bytes: usize,
    pub workers: usize,
    #[serde(serialize_with = "as_duration")]
    pub shutdown_timeout: Duration,
    /// The longest any request may take; past it the answer is 503 UNAVAILABLE.
    #[serde(serialize_with = "as_duration")]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiSettings {
    /// The configured tokens, then those read from files.
    pub tokens: Vec<Secret>,
    /// How many of `tokens` (the last ones) were read from files.
    #[serde(skip)]
    pub tokens_from_files: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionSettings {
    #[serde(serialize_with = "as_duration")]
    pub ttl: Duration,
    /// The sliding lifetime of a "remember me" session.
    #[serde(serialize_with = "as_duration")]
    pub remember_ttl: Duration,
    #[serde(serialize_with = "as_optional_duration")]
    pub max_lifetime: Option<Duration>,
    #[serde(serialize_with = "as_duration")]
    pub refresh_interval: Duration,
    pub cache_capacity: u64,
    pub cache_max_bytes: u64,
    /// 0 means no cap.
    pub max_per_user: u64,
    #[serde(serialize_with = "as_duration")]
    pub cache_max_age: Duration,
    pub cookie_name: String,
    pub cookie_secure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie_domain: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JanitorSettings {
    #[serde(serialize_with = "as_duration")]
    pub interval: Duration,
    pub batch_size: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PasswordSettings {
    pub min_length: usize,
    pub check_common: bool,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub hash_threads: usize,
    pub hash_queue_limit: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForwardAuthSettings {
    pub header_user: String,
    pub header_user_id: String,
    pub header_email: String,
    pub header_admin: String,
    pub header_groups: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_url: Option<String>,
    /// Answer browsers (requests accepting `text/html`) without a valid session with a 302 to
    /// `login_url` instead of a 401.
    pub redirect_browsers: bool,
    pub trusted_proxies: Vec<IpRange>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoginSettings {
    pub allowed_redirect_hosts: Vec<String>,
}

/// Brute-force protection: failed logins per account and per client address.
#[derive(Debug, Clone, Serialize)]
pub struct ThrottleSettings {
    pub account_failures: u32,
    pub address_failures: u32,
    #[serde(serialize_with = "as_duration")]
    pub window: Duration,
    #[serde(serialize_with = "as_duration")]
    pub base_lock: Duration,
    #[serde(serialize_with = "as_duration")]
    pub max_lock: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditSettings {
    #[serde(serialize_with = "as_duration")]
    pub retention: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogSettings {
    pub level: String,
    pub format: String,
    /// The access log: one line per request (target `pgusers::access`).
    pub access: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricsSettings {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// The effective configuration after every layer has been applied and validated.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub server: ServerSettings,
    pub api: ApiSettings,
    pub session: SessionSettings,
    pub janitor: JanitorSettings,
    pub password: PasswordSettings,
    pub forward_auth: ForwardAuthSettings,
    pub login: LoginSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub throttle: ThrottleSettings,
    pub audit: AuditSettings,
    /// The file the settings were read from, if any (re-read on SIGHUP).
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

/// The host name (from /etc/hostname or $HOSTNAME), else "pgusers".
pub fn default_instance_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "pgusers".into())
}

/// One fewer hashing thread than cores, at least one.
pub fn default_hash_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .saturating_sub(1)
        .max(1)
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database: DatabaseSettings {
                url: None,
                dbname: None,
                user: None,
                password: None,
                password_file: None,
                host: None,
                port: None,
                pool_size: 16,
                schema: "pgusers_daemon".into(),
                sslmode: None,
                sslrootcert: None,
                connect_timeout: Duration::from_secs(5),
                statement_timeout: Duration::from_secs(5),
                lock_timeout: Duration::from_secs(2),
                tcp_keepalive: Duration::from_secs(10),
                embedded: false,
                embedded_dir: PathBuf::from(".pgusers"),
                password_from_file: false,
            },
            server: ServerSettings {
                listen: vec![ListenAddr::Tcp("127.0.0.1:8080".into())],
                unix_socket_mode: 0o660,
                tls_listen: Vec::new(),
                tls_cert_file: None,
                tls_key_file: None,
                instance_name: default_instance_name(),
                max_body_bytes: 64 * 1024,
                max_extra_data_bytes: 16 * 1024,
                workers: 0,
                shutdown_timeout: Duration::from_secs(30),
                request_timeout: Duration::from_secs(8),
            },
            api: ApiSettings {
                tokens: Vec::new(),
                tokens_from_files: 0,
                tokens_file: None,
            },
            session: SessionSettings {
                ttl: Duration::from_secs(864_000),
                remember_ttl: Duration::from_secs(30 * 86_400),
                max_lifetime: None,
                refresh_interval: Duration::from_secs(60),
                cache_capacity: 1_000_000,
                cache_max_bytes: 1 << 30,
                max_per_user: 100,
                cache_max_age: Duration::from_secs(30),
                cookie_name: "pgusers_session".into(),
                cookie_secure: true,
                cookie_domain: None,
            },
            janitor: JanitorSettings {
                interval: Duration::from_secs(60),
                batch_size: 1000,
            },
            password: PasswordSettings {
                min_length: 8,
                check_common: true,
                argon2_memory_kib: 19_456,
                argon2_iterations: 2,
                argon2_parallelism: 1,
                hash_threads: 0,
                hash_queue_limit: 64,
            },
            forward_auth: ForwardAuthSettings {
                header_user: "X-User".into(),
                header_user_id: "X-User-Id".into(),
                header_email: "X-User-Email".into(),
                header_admin: "X-User-Admin".into(),
                header_groups: "X-User-Groups".into(),
                login_url: None,
                redirect_browsers: false,
                trusted_proxies: vec![
                    IpRange {
                        addr: IpAddr::from([127, 0, 0, 1]),
                        prefix: 8,
                    },
                    IpRange {
                        addr: IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
                        prefix: 128,
                    },
                ],
            },
            login: LoginSettings {
                allowed_redirect_hosts: Vec::new(),
            },
            log: LogSettings {
                level: "info".into(),
                format: "auto".into(),
                access: false,
            },
            metrics: MetricsSettings {
                enabled: false,
                listen: None,
            },
            throttle: ThrottleSettings {
                account_failures: 5,
                address_failures: 50,
                window: Duration::from_secs(15 * 60),
                base_lock: Duration::from_secs(30),
                max_lock: Duration::from_secs(15 * 60),
            },
            audit: AuditSettings {
                retention: Duration::from_secs(90 * 86_400),
            },
            config_file: None,
        }
    }
}

impl PasswordSettings {
    /// The rules a new password must satisfy.
    pub fn policy(&self) -> crate::domain::validate::PasswordPolicy {
        crate::domain::validate::PasswordPolicy {
            min_chars: self.min_length,
            refuse_common: self.check_common,
        }
    }
}

impl Settings {
    /// True when some database location was configured; otherwise `serve` runs embedded.
    pub fn database_configured(&self) -> bool {
        let d = &self.database;
        d.url.is_some() || d.host.is_some() || d.dbname.is_some()
    }

    /// The number of password-hashing threads after applying the default.
    pub fn hash_threads(&self) -> usize {
        if self.password.hash_threads == 0 {
            default_hash_threads()
        } else {
            self.password.hash_threads
        }
    }
}

/// How the connection to PostgreSQL is protected (serialized as libpq's name for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslPolicy {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslPolicy {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(format!(
                "'{other}' is not disable, prefer, require, verify-ca or verify-full"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_ranges_match_their_members() {
        let lo = IpRange::parse("127.0.0.0/8").unwrap_or_else(|e| panic!("{e}"));
        assert!(lo.contains("127.1.2.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        assert!(!lo.contains(IpAddr::from([10, 0, 0, 1])));
        let one = IpRange::parse("::1").unwrap_or_else(|e| panic!("{e}"));
        assert!(one.contains("::1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        assert!(IpRange::parse("10.0.0.0/33").is_err());
        assert!(IpRange::parse("nope").is_err());
        let all = IpRange::parse("0.0.0.0/0").unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains(IpAddr::from([8, 8, 8, 8])));
    }
}
