//! The daemon's settings: one field per key, carrying its type, its checks (`de`, `duration`) and
//! its default (`#[default]`); `load` fills them from the layers through serde.

mod de;
pub mod duration;
mod keys;
pub mod live;
mod load;
mod print;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize, Serializer};
use smart_default::SmartDefault;

pub use duration::MAX_TTL_SECS;
pub use keys::{changes, Change};
pub use load::{discover_config_file, load, Sources};
pub use print::{to_toml, MASKED};

/// A secret string (password, token). Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub struct Secret(String);

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

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

/// `host:port` (it must resolve) or `unix:/path`.
impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a path".into());
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        use std::net::ToSocketAddrs;
        match text.to_socket_addrs() {
            Ok(_) => Ok(Self::Tcp(text.to_string())),
            Err(_) => Err(format!("'{text}' is not host:port or unix:/path")),
        }
    }
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

/// An address range of trusted proxies (`127.0.0.1/32`, `::1`, `10.0.0.0/8`): an `IpNet` that
/// also reads a bare address (as a single host) and matches IPv4-mapped IPv6 peers
/// (`::ffff:127.0.0.1`, as a dual-stack listener sees IPv4 clients) as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange(pub IpNet);

impl IpRange {
    /// `127.0.0.0/8`, written `127.0.0.1/8`.
    pub const LOOPBACK_V4: Self = Self(IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::LOCALHOST, 8)));
    /// `::1/128`.
    pub const LOOPBACK_V6: Self = Self(IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)));

    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(Self(net));
        }
        match text.split_once('/') {
            None => text
                .parse::<IpAddr>()
                .map(|addr| Self(IpNet::from(addr)))
                .map_err(|_| format!("'{text}' is not an IP address or range")),
            Some((addr, _)) if addr.trim().parse::<IpAddr>().is_ok() => {
                Err(format!("'{text}' has an invalid prefix length"))
            }
            Some(_) => Err(format!("'{text}' is not an IP address or range")),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl FromStr for IpRange {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for IpRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Debug, Clone, SmartDefault, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    #[serde(deserialize_with = "de::non_blank")]
    pub url: Option<Secret>,
    #[serde(deserialize_with = "de::non_blank")]
    pub dbname: Option<String>,
    #[serde(deserialize_with = "de::non_blank")]
    pub user: Option<String>,
    #[serde(deserialize_with = "de::non_blank")]
    pub password: Option<Secret>,
    #[serde(deserialize_with = "de::non_blank")]
    pub password_file: Option<PathBuf>,
    #[serde(deserialize_with = "de::non_blank")]
    pub host: Option<String>,
    pub port: Option<u16>,
    #[serde(deserialize_with = "de::at_least::<1, _, _>")]
    #[default(16)]
    pub pool_size: usize,
    /// The schema holding the daemon's tables; every connection's `search_path` is pinned to it.
    #[serde(deserialize_with = "de::schema_name")]
    #[default = "pgusers_daemon"]
    pub schema: String,
    #[serde(with = "duration")]
    #[default(Duration::from_secs(5))]
    pub connect_timeout: Duration,
    /// PostgreSQL's `statement_timeout` on the daemon's connections (0: none).
    #[serde(with = "duration")]
    #[default(Duration::from_secs(5))]
    pub statement_timeout: Duration,
    /// PostgreSQL's `lock_timeout` on the daemon's connections (0: none).
    #[serde(with = "duration")]
    #[default(Duration::from_secs(2))]
    pub lock_timeout: Duration,
    /// TCP keepalive idle time (and user timeout) of the connections to PostgreSQL.
    #[serde(with = "duration::non_zero")]
    #[default(Duration::from_secs(10))]
    pub tcp_keepalive: Duration,
    /// libpq's sslmode; `None` keeps what the URL says (default `prefer`).
    pub sslmode: Option<SslPolicy>,
    #[serde(deserialize_with = "de::non_blank")]
    pub sslrootcert: Option<PathBuf>,
    pub embedded: bool,
    #[default(PathBuf::from(".pgusers"))]
    pub embedded_dir: PathBuf,
    /// Whether `password` was read from a file (check-config then names the file only).
    #[serde(skip)]
    pub password_from_file: bool,
}

#[derive(Debug, Clone, SmartDefault, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    #[serde(deserialize_with = "de::listen_addrs")]
    #[default(vec![ListenAddr::Tcp("127.0.0.1:8080".into())])]
    pub listen: Vec<ListenAddr>,
    /// Permissions of Unix-socket listeners (e.g. 0o660: owner and group may connect).
    #[serde(serialize_with = "de::as_octal", deserialize_with = "de::octal_mode")]
    #[default(0o660)]
    pub unix_socket_mode: u32,
    /// Addresses served over HTTPS with `tls_cert_file` / `tls_key_file`.
    #[serde(deserialize_with = "de::socket_addrs")]
    pub tls_listen: Vec<String>,
    #[serde(deserialize_with = "de::non_blank")]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(deserialize_with = "de::non_blank")]
    pub tls_key_file: Option<PathBuf>,
    #[serde(deserialize_with = "de::not_blank")]
    #[default(default_instance_name())]
    pub instance_name: String,
    #[serde(deserialize_with = "de::at_least::<1024, _, _>")]
    #[default(64 * 1024)]
    pub max_body_bytes: usize,
    #[serde(deserialize_with = "de::at_least::<2, _, _>")]
    #[default(16 * 1024)]
    pub max_extra_data_bytes: usize,
    pub workers: usize,
    #[serde(with = "duration")]
    #[default(Duration::from_secs(30))]
    pub shutdown_timeout: Duration,
    /// The longest any request may take; past it the answer is 503 UNAVAILABLE.
    #[serde(with = "duration::non_zero")]
    #[default(Duration::from_secs(8))]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// The configured tokens, then those read from files.
    #[serde(deserialize_with = "de::tokens")]
    pub tokens: Vec<Secret>,
    /// How many of `tokens` (the last ones) were read from files.
    #[serde(skip)]
    pub tokens_from_files: usize,
    #[serde(deserialize_with = "de::non_blank")]
    pub tokens_file: Option<PathBuf>,
}

#[derive(Debug, Clone, SmartDefault, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    #[serde(with = "duration::ttl")]
    #[default(Duration::from_secs(864_000))]
    pub ttl: Duration,
    /// The sliding lifetime of a "remember me" session.
    #[serde(with = "duration::ttl")]
    #[default(Duration::from_secs(30 * 86_400))]
    pub remember_ttl: Duration,
    #[serde(with = "duration::zero_is_none")]
    pub max_lifetime: Option<Duration>,
    #[serde(with = "duration")]
    #[default(Duration::from_secs(60))]
    pub refresh_interval: Duration,
    #[default(1_000_000)]
    pub cache_capacity: u64,
    #[serde(deserialize_with = "de::at_least::<{ 1024 * 1024 }, _, _>")]
    #[default(1 << 30)]
    pub cache_max_bytes: u64,
    /// 0 means no cap.
    #[default(100)]
    pub max_per_user: u64,
    #[serde(with = "duration::non_zero")]
    #[default(Duration::from_secs(30))]
    pub cache_max_age: Duration,
    #[serde(deserialize_with = "de::cookie_name")]
    #[default = "pgusers_session"]
    pub cookie_name: String,
    #[default(true)]
    pub cookie_secure: bool,
    #[serde(deserialize_with = "de::non_blank")]
    pub cookie_domain: Option<String>,
}

#[derive(Debug, Clone, SmartDefault, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JanitorSettings {
    #[serde(with = "duration::non_zero")]
    #[default(Duration::from_secs(60))]
    pub interval: Duration,
    #[serde(deserialize_with = "de::at_least::<1, _, _>")]
    #[default(1000)]
    pub batch_size: i64,
}

#[derive(Debug, Clone, SmartDefault, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordSettings {
    #[serde(deserialize_with = "de::at_least::<1, _, _>")]
    #[default(8)]
    pub min_length: usize,
    #[default(true)]
    pub check_common: bool,
    #[serde(deserialize_with = "de::at_least::<8, _, _>")]
    #[default(19_456)]
    pub argon2_memory_kib: u32,
    #[serde(deserialize_with = "de::at_least::<1, _, _>")]
    #[default(2)]
    pub argon2_iterations: u32,
    #[serde(deserialize_with = "de::at_least::<1, _, _>")]
    #[default(1)]
    pub argon2_parallelism: u32,
    pub hash_threads: usize,
    #[serde(deserialize_with = "de::at_least::<1, _, _>")]
    #[default(64)]
    pub hash_queue_limit: usize,
}

#[derive(Debug, Clone, SmartDefault, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardAuthSettings {
    #[serde(deserialize_with = "de::header_name")]
    #[default = "X-User"]
    pub header_user: String,
    #[serde(deserialize_with = "de::header_name")]
    #[default = "X-User-Id"]
    pub header_user_id: String,
    #[serde(deserialize_with = "de::header_name")]
    #[default = "X-User-Email"]
    pub header_email: String,
    #[serde(deserialize_with = "de::header_name")]
    #[default = "X-User-Admin"]
    pub header_admin: String,
    #[serde(deserialize_with = "de::header_name")]
    #[default = "X-User-Groups"]
    pub header_groups: String,
    #[serde(deserialize_with = "de::absolute_url")]
    pub login_url: Option<String>,
    /// Answer browsers (requests accepting `text/html`) without a valid session with a 302 to
    /// `login_url` instead of a 401.
    pub redirect_browsers: bool,
    #[serde(deserialize_with = "de::list")]
    #[default(vec![IpRange::LOOPBACK_V4, IpRange::LOOPBACK_V6])]
    pub trusted_proxies: Vec<IpRange>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginSettings {
    #[serde(deserialize_with = "de::lowercase_list")]
    pub allowed_redirect_hosts: Vec<String>,
}

/// Brute-force protection: failed logins per account and per client address.
#[derive(Debug, Clone, SmartDefault, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleSettings {
    #[serde(deserialize_with = "de::at_least::<1, _, _>")]
    #[default(5)]
    pub account_failures: u32,
    #[serde(deserialize_with = "de::at_least::<1, _, _>")]
    #[default(50)]
    pub address_failures: u32,
    #[serde(with = "duration::non_zero")]
    #[default(Duration::from_secs(15 * 60))]
    pub window: Duration,
    #[serde(with = "duration::non_zero")]
    #[default(Duration::from_secs(30))]
    pub base_lock: Duration,
    #[serde(with = "duration::non_zero")]
    #[default(Duration::from_secs(15 * 60))]
    pub max_lock: Duration,
}

#[derive(Debug, Clone, SmartDefault, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    #[serde(with = "duration::non_zero")]
    #[default(Duration::from_secs(90 * 86_400))]
    pub retention: Duration,
}

#[derive(Debug, Clone, SmartDefault, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    #[serde(deserialize_with = "de::log_filter")]
    #[default = "info"]
    pub level: String,
    #[serde(deserialize_with = "de::log_format")]
    #[default = "auto"]
    pub format: String,
    /// The access log: one line per request (target `pgusers::access`).
    pub access: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    pub enabled: bool,
    #[serde(deserialize_with = "de::non_blank")]
    pub listen: Option<String>,
}

/// The effective configuration after every layer has been applied and validated. Printed as
/// TOML (`check-config`), which leaves out the keys that are unset (`None`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", try_from = "String")]
pub enum SslPolicy {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TryFrom<String> for SslPolicy {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
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
        assert!(IpRange::parse("10.0.0.0/33")
            .unwrap_err()
            .contains("invalid prefix length"));
        assert!(IpRange::parse("nope")
            .unwrap_err()
            .contains("not an IP address"));
        let mapped = "::ffff:127.0.0.1"
            .parse()
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert!(lo.contains(mapped), "an IPv4-mapped peer matches as IPv4");
        assert_eq!(one.to_string(), "::1/128");
        assert_eq!(lo.to_string(), "127.0.0.0/8");
    }
}
