//! Every configuration key: its short environment variable, whether it is a secret or a list,
//! one line of meaning, and how its value is applied to `Settings`.

use std::path::PathBuf;

use super::{duration, IpRange, ListenAddr, Secret, Settings};

/// A configuration key as documented in `config/pgusers.toml`.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    pub key: &'static str,
    pub short_env: Option<&'static str>,
    pub secret: bool,
    pub list: bool,
    pub meaning: &'static str,
}

const fn key(key: &'static str, meaning: &'static str) -> KeyDef {
    KeyDef {
        key,
        short_env: None,
        secret: false,
        list: false,
        meaning,
    }
}

const fn env(mut def: KeyDef, var: &'static str) -> KeyDef {
    def.short_env = Some(var);
    def
}

const fn secret(mut def: KeyDef) -> KeyDef {
    def.secret = true;
    def
}

const fn list(mut def: KeyDef) -> KeyDef {
    def.list = true;
    def
}

pub const KEYS: &[KeyDef] = &[
    secret(env(
        key("database.url", "libpq connection string or postgres:// URL"),
        "PGUSERS_CONNECTION_STRING",
    )),
    env(
        key("database.dbname", "the userspace, i.e. the database"),
        "PGUSERS_USERSPACE",
    ),
    env(
        key(
            "database.user",
            "the PostgreSQL role the daemon connects as",
        ),
        "PGUSERS_ADMIN",
    ),
    secret(env(
        key("database.password", "that role's password"),
        "PGUSERS_PASSWORD",
    )),
    key(
        "database.password_file",
        "file holding the password (default: $CREDENTIALS_DIRECTORY/db-password when present)",
    ),
    env(
        key("database.host", "host name or Unix socket directory"),
        "PGUSERS_HOST",
    ),
    env(key("database.port", "port"), "PGUSERS_PORT"),
    key("database.pool_size", "connections in the pool"),
    key(
        "database.schema",
        "the PostgreSQL schema holding the daemon's tables (created if missing)",
    ),
    key(
        "database.sslmode",
        "disable, prefer, require, verify-ca or verify-full (TLS through rustls)",
    ),
    key(
        "database.sslrootcert",
        "CA certificate file (PEM) for verify-ca and verify-full",
    ),
    key(
        "database.connect_timeout",
        "how long to wait for a connection before answering UNAVAILABLE",
    ),
    key(
        "database.statement_timeout",
        "PostgreSQL statement_timeout on the daemon's connections (0: none)",
    ),
    key(
        "database.lock_timeout",
        "PostgreSQL lock_timeout on the daemon's connections (0: none)",
    ),
    key(
        "database.tcp_keepalive",
        "TCP keepalive idle time and user timeout of connections to PostgreSQL",
    ),
    key(
        "database.embedded",
        "run a private PostgreSQL managed by the daemon",
    ),
    key(
        "database.embedded_dir",
        "directory of the embedded PostgreSQL (data, socket, generated API token)",
    ),
    list(env(
        key(
            "server.listen",
            "addresses to listen on; unix:/path for a Unix socket",
        ),
        "PGUSERS_LISTEN",
    )),
    key(
        "server.unix_socket_mode",
        "permissions of unix: listeners, in octal",
    ),
    list(key(
        "server.tls_listen",
        "addresses served over HTTPS (host:port)",
    )),
    key(
        "server.tls_cert_file",
        "PEM certificate chain of the HTTPS listener (re-read on SIGHUP)",
    ),
    key(
        "server.tls_key_file",
        "PEM private key of the HTTPS listener (re-read on SIGHUP)",
    ),
    key(
        "server.instance_name",
        "this instance's name in the audit trail (default: the host name)",
    ),
    key(
        "server.max_body_bytes",
        "largest request body accepted (413 above)",
    ),
    key(
        "server.max_extra_data_bytes",
        "largest serialised extra_data accepted (400 above)",
    ),
    key("server.workers", "HTTP worker threads (0 = one per core)"),
    key(
        "server.shutdown_timeout",
        "how long in-flight requests may take to finish on shutdown",
    ),
    key(
        "server.request_timeout",
        "the longest any request may take; past it 503 UNAVAILABLE",
    ),
    secret(list(env(
        key("api.tokens", "API tokens with admin rights"),
        "PGUSERS_API_TOKENS",
    ))),
    key("api.tokens_file", "file with one API token per line"),
    env(
        key("session.ttl", "sliding session lifetime"),
        "PGUSERS_SESSION_TTL",
    ),
    key(
        "session.remember_ttl",
        "sliding lifetime of a \"remember me\" session",
    ),
    key(
        "session.max_lifetime",
        "optional absolute session lifetime (0 = none)",
    ),
    key(
        "session.refresh_interval",
        "most the stored expiry may lag the true one",
    ),
    key(
        "session.cache_capacity",
        "hot sessions kept in memory (0 disables the cache)",
    ),
    key(
        "session.cache_max_bytes",
        "most memory the cached sessions may take, in bytes (estimated)",
    ),
    key(
        "session.max_per_user",
        "most sessions one user may hold; a login beyond it ends the oldest (0 = no cap)",
    ),
    key(
        "session.cache_max_age",
        "longest a cached session is trusted before it is re-read",
    ),
    key("session.cookie_name", "name of the session cookie"),
    env(
        key("session.cookie_secure", "mark the session cookie Secure"),
        "PGUSERS_COOKIE_SECURE",
    ),
    key(
        "session.cookie_domain",
        "Domain attribute of the session cookie (none = host only)",
    ),
    env(
        key("janitor.interval", "how often expired sessions are purged"),
        "PGUSERS_JANITOR_INTERVAL",
    ),
    key(
        "janitor.batch_size",
        "rows deleted per statement by the janitor",
    ),
    key(
        "password.min_length",
        "shortest password accepted, in characters",
    ),
    key(
        "password.check_common",
        "refuse the most common passwords for new passwords",
    ),
    key("password.argon2_memory_kib", "argon2id memory cost in KiB"),
    key("password.argon2_iterations", "argon2id time cost"),
    key("password.argon2_parallelism", "argon2id lanes"),
    key(
        "password.hash_threads",
        "password hashing threads (0 = cores - 1, at least 1)",
    ),
    key(
        "password.hash_queue_limit",
        "hashing requests allowed to wait before 429",
    ),
    key(
        "forward_auth.header_user",
        "response header carrying the username",
    ),
    key(
        "forward_auth.header_user_id",
        "response header carrying the user id",
    ),
    key(
        "forward_auth.header_email",
        "response header carrying the email",
    ),
    key(
        "forward_auth.header_admin",
        "response header carrying true/false for admin",
    ),
    key(
        "forward_auth.header_groups",
        "response header carrying the user's groups, sorted, comma-separated",
    ),
    key(
        "forward_auth.login_url",
        "login page URL announced in X-Login-Url on 401",
    ),
    key(
        "forward_auth.redirect_browsers",
        "answer browsers without a session with 302 to login_url instead of 401",
    ),
    list(key(
        "forward_auth.trusted_proxies",
        "peers whose X-Forwarded-* / X-Original-URI headers are believed",
    )),
    list(key(
        "login.allowed_redirect_hosts",
        "hosts (host or host:port) the login page may redirect to",
    )),
    key(
        "throttle.account_failures",
        "failed logins of one account before it is locked",
    ),
    key(
        "throttle.address_failures",
        "failed logins from one client address before it is locked",
    ),
    key("throttle.window", "failures older than this are forgotten"),
    key(
        "throttle.base_lock",
        "first lock duration; doubles with each further failure",
    ),
    key("throttle.max_lock", "longest lock"),
    key("audit.retention", "how long security events are kept"),
    key(
        "log.level",
        "log filter: error, warn, info, debug, trace, or a tracing directive",
    ),
    key(
        "log.format",
        "auto (human on a terminal, JSON otherwise), human or json",
    ),
    key(
        "log.access",
        "one INFO line per request: method, path (no query), status, duration, request id",
    ),
    key("metrics.enabled", "serve /metrics"),
    key(
        "metrics.listen",
        "separate address for /metrics (none = the main listeners)",
    ),
];

/// A raw value from any layer, ready to be read as the key's type.
pub(super) struct Raw(pub config::Value);

impl Raw {
    fn string(&self) -> Result<String, String> {
        self.0.clone().into_string().map_err(|e| e.to_string())
    }
    fn opt_string(&self) -> Result<Option<String>, String> {
        let s = self.string()?;
        Ok(if s.trim().is_empty() { None } else { Some(s) })
    }
    fn int(&self) -> Result<i64, String> {
        self.0
            .clone()
            .into_int()
            .map_err(|_| "must be a whole number".to_string())
    }
    fn positive<T: TryFrom<i64>>(&self) -> Result<T, String> {
        let n = self.int()?;
        if n < 0 {
            return Err("must not be negative".into());
        }
        T::try_from(n).map_err(|_| "is out of range".to_string())
    }
    fn bool(&self) -> Result<bool, String> {
        self.0
            .clone()
            .into_bool()
            .map_err(|_| "must be true or false".to_string())
    }
    fn duration(&self) -> Result<std::time::Duration, String> {
        match self.0.clone().into_int() {
            Ok(n) if n >= 0 => Some(std::time::Duration::from_secs(n.unsigned_abs()))
                .filter(|d| *d <= duration::LONGEST)
                .ok_or_else(|| format!("{n} seconds is too long (at most 3650d)")),
            _ => duration::parse(&self.string()?),
        }
    }
    fn list(&self) -> Result<Vec<String>, String> {
        match self.0.clone().into_array() {
            Ok(items) => items
                .into_iter()
                .map(|v| v.into_string().map_err(|e| e.to_string()))
                .collect(),
            Err(_) => Ok(split_list(&self.string()?)),
        }
    }
}

/// `a, b,c` → `["a", "b", "c"]`, empty items dropped.
pub(super) fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn listen_addr(text: &str) -> Result<ListenAddr, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("unix: needs a path".into());
        }
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    use std::net::ToSocketAddrs;
    match text.to_socket_addrs() {
        Ok(_) => Ok(ListenAddr::Tcp(text.to_string())),
        Err(_) => Err(format!("'{text}' is not host:port or unix:/path")),
    }
}

fn header_name(text: String) -> Result<String, String> {
    actix_web::http::header::HeaderName::from_bytes(text.as_bytes())
        .map(|_| text.clone())
        .map_err(|_| format!("'{text}' is not a valid header name"))
}

/// Applies one key's raw value to the settings, or says what is wrong with it.
pub(super) fn apply(s: &mut Settings, key: &str, raw: &Raw) -> Result<(), String> {
    match key {
        "database.url" => s.database.url = raw.opt_string()?.map(Secret::new),
        "database.dbname" => s.database.dbname = raw.opt_string()?,
        "database.user" => s.database.user = raw.opt_string()?,
        "database.password" => s.database.password = raw.opt_string()?.map(Secret::new),
        "database.password_file" => s.database.password_file = raw.opt_string()?.map(PathBuf::from),
        "database.host" => s.database.host = raw.opt_string()?,
        "database.port" => s.database.port = Some(raw.positive()?),
        "database.sslmode" => s.database.sslmode = Some(super::SslPolicy::parse(&raw.string()?)?),
        "database.sslrootcert" => s.database.sslrootcert = raw.opt_string()?.map(PathBuf::from),
        "database.pool_size" => s.database.pool_size = at_least(raw.positive()?, 1)?,
        "database.schema" => s.database.schema = schema_name(&raw.string()?)?,
        "database.connect_timeout" => s.database.connect_timeout = raw.duration()?,
        "database.statement_timeout" => s.database.statement_timeout = raw.duration()?,
        "database.lock_timeout" => s.database.lock_timeout = raw.duration()?,
        "database.tcp_keepalive" => s.database.tcp_keepalive = non_zero(raw.duration()?)?,
        "database.embedded" => s.database.embedded = raw.bool()?,
        "database.embedded_dir" => s.database.embedded_dir = PathBuf::from(raw.string()?),
        "server.listen" => {
            let addrs = raw
                .list()?
                .iter()
                .map(|a| listen_addr(a))
                .collect::<Result<Vec<_>, _>>()?;
            if addrs.is_empty() {
                return Err("needs at least one address".into());
            }
            s.server.listen = addrs;
        }
        "server.tls_listen" => {
            let addrs = raw.list()?;
            for a in &addrs {
                use std::net::ToSocketAddrs;
                a.to_socket_addrs()
                    .map_err(|_| format!("'{a}' is not host:port"))?;
            }
            s.server.tls_listen = addrs;
        }
        "server.tls_cert_file" => s.server.tls_cert_file = raw.opt_string()?.map(PathBuf::from),
        "server.tls_key_file" => s.server.tls_key_file = raw.opt_string()?.map(PathBuf::from),
        "server.unix_socket_mode" => {
            let text = raw.string()?;
            s.server.unix_socket_mode =
                u32::from_str_radix(text.trim().trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or_else(|| format!("'{text}' is not an octal mode such as 0660"))?;
        }
        "server.instance_name" => {
            let name = raw.string()?;
            if name.trim().is_empty() {
                return Err("must not be empty".into());
            }
            s.server.instance_name = name;
        }
        "server.max_body_bytes" => s.server.max_body_bytes = at_least(raw.positive()?, 1024)?,
        "server.max_extra_data_bytes" => {
            s.server.max_extra_data_bytes = at_least(raw.positive()?, 2)?
        }
        "server.workers" => s.server.workers = raw.positive()?,
        "server.shutdown_timeout" => s.server.shutdown_timeout = raw.duration()?,
        "server.request_timeout" => s.server.request_timeout = non_zero(raw.duration()?)?,
        "api.tokens" => {
            let tokens = raw.list()?;
            if tokens.iter().any(|t| t.len() < 16) {
                return Err("every API token must be at least 16 characters".into());
            }
            s.api.tokens = tokens.into_iter().map(Secret::new).collect();
        }
        "api.tokens_file" => s.api.tokens_file = raw.opt_string()?.map(PathBuf::from),
        "session.ttl" => s.session.ttl = ttl(raw.duration()?)?,
        "session.remember_ttl" => s.session.remember_ttl = ttl(raw.duration()?)?,
        "session.max_lifetime" => {
            let d = raw.duration()?;
            s.session.max_lifetime = if d.is_zero() { None } else { Some(d) };
        }
        "session.refresh_interval" => s.session.refresh_interval = raw.duration()?,
        "session.cache_capacity" => s.session.cache_capacity = raw.positive()?,
        "session.cache_max_bytes" => {
            s.session.cache_max_bytes = at_least(raw.positive()?, 1024 * 1024)?
        }
        "session.max_per_user" => s.session.max_per_user = raw.positive()?,
        "session.cache_max_age" => s.session.cache_max_age = non_zero(raw.duration()?)?,
        "session.cookie_name" => {
            let name = raw.string()?;
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err("must be letters, digits, '_' or '-'".into());
            }
            s.session.cookie_name = name;
        }
        "session.cookie_secure" => s.session.cookie_secure = raw.bool()?,
        "session.cookie_domain" => s.session.cookie_domain = raw.opt_string()?,
        "janitor.interval" => s.janitor.interval = non_zero(raw.duration()?)?,
        "janitor.batch_size" => s.janitor.batch_size = at_least(raw.positive()?, 1)?,
        "password.min_length" => s.password.min_length = at_least(raw.positive()?, 1)?,
        "password.check_common" => s.password.check_common = raw.bool()?,
        "password.argon2_memory_kib" => {
            s.password.argon2_memory_kib = at_least(raw.positive()?, 8)?
        }
        "password.argon2_iterations" => {
            s.password.argon2_iterations = at_least(raw.positive()?, 1)?
        }
        "password.argon2_parallelism" => {
            s.password.argon2_parallelism = at_least(raw.positive()?, 1)?
        }
        "password.hash_threads" => s.password.hash_threads = raw.positive()?,
        "password.hash_queue_limit" => s.password.hash_queue_limit = at_least(raw.positive()?, 1)?,
        "forward_auth.header_user" => s.forward_auth.header_user = header_name(raw.string()?)?,
        "forward_auth.header_user_id" => {
            s.forward_auth.header_user_id = header_name(raw.string()?)?
        }
        "forward_auth.header_email" => s.forward_auth.header_email = header_name(raw.string()?)?,
        "forward_auth.header_admin" => s.forward_auth.header_admin = header_name(raw.string()?)?,
        "forward_auth.header_groups" => s.forward_auth.header_groups = header_name(raw.string()?)?,
        "forward_auth.login_url" => {
            s.forward_auth.login_url = match raw.opt_string()? {
                None => None,
                Some(u) => {
                    url::Url::parse(&u).map_err(|_| format!("'{u}' is not an absolute URL"))?;
                    Some(u)
                }
            }
        }
        "forward_auth.redirect_browsers" => s.forward_auth.redirect_browsers = raw.bool()?,
        "forward_auth.trusted_proxies" => {
            s.forward_auth.trusted_proxies = raw
                .list()?
                .iter()
                .map(|r| IpRange::parse(r))
                .collect::<Result<_, _>>()?
        }
        "login.allowed_redirect_hosts" => {
            s.login.allowed_redirect_hosts = raw
                .list()?
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect()
        }
        "throttle.account_failures" => s.throttle.account_failures = at_least(raw.positive()?, 1)?,
        "throttle.address_failures" => s.throttle.address_failures = at_least(raw.positive()?, 1)?,
        "throttle.window" => s.throttle.window = non_zero(raw.duration()?)?,
        "throttle.base_lock" => s.throttle.base_lock = non_zero(raw.duration()?)?,
        "throttle.max_lock" => s.throttle.max_lock = non_zero(raw.duration()?)?,
        "audit.retention" => s.audit.retention = non_zero(raw.duration()?)?,
        "log.level" => {
            let level = raw.string()?;
            tracing_subscriber::EnvFilter::try_new(&level)
                .map_err(|_| format!("'{level}' is not a log filter"))?;
            s.log.level = level;
        }
        "log.format" => {
            let format = raw.string()?;
            if !["auto", "human", "json"].contains(&format.as_str()) {
                return Err("must be auto, human or json".into());
            }
            s.log.format = format;
        }
        "log.access" => s.log.access = raw.bool()?,
        "metrics.enabled" => s.metrics.enabled = raw.bool()?,
        "metrics.listen" => s.metrics.listen = raw.opt_string()?,
        other => return Err(format!("{other} has no handler (a bug)")),
    }
    Ok(())
}

/// A schema name the daemon can put in `search_path` and SQL without quoting surprises.
fn schema_name(text: &str) -> Result<String, String> {
    let mut chars = text.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let valid_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid_start && valid_rest && text.len() <= 63 && !text.starts_with("pg_") {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "'{text}' is not a usable schema name: 1 to 63 lowercase letters, digits and \
             underscores, not starting with a digit or pg_"
        ))
    }
}

fn at_least<T: PartialOrd + std::fmt::Display>(value: T, min: T) -> Result<T, String> {
    if value < min {
        Err(format!("must be at least {min}"))
    } else {
        Ok(value)
    }
}

fn non_zero(d: std::time::Duration) -> Result<std::time::Duration, String> {
    if d.is_zero() {
        Err("must be longer than zero".into())
    } else {
        Ok(d)
    }
}

/// 1 second to 10 years.
pub const MAX_TTL_SECS: u64 = 10 * 365 * 86_400;

fn ttl(d: std::time::Duration) -> Result<std::time::Duration, String> {
    if d.as_secs() < 1 || d.as_secs() > MAX_TTL_SECS {
        Err("must be between 1 second and 10 years".into())
    } else {
        Ok(d)
    }
}
