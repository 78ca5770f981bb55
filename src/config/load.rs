//! Layering: built-in defaults → TOML file → `PGUSERS_*` environment → command line, merged by
//! the `config` crate and read into `Settings` by serde, with every problem collected and
//! reported at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use config::{Config, ConfigError, File, FileFormat, Value, ValueKind};
use serde_path_to_error::Segment;

use super::keys::{all_keys, SHORT_ENV};
use super::{Secret, Settings};

/// The inputs to one load: everything outside the process is passed in, so tests stay pure.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// `section.key` → value, from flags such as `--listen` or `--set KEY=VALUE`.
    pub cli: Vec<(String, String)>,
}

impl Sources {
    /// The process environment's `PGUSERS_*` variables and the discovered file.
    pub fn from_process(explicit_file: Option<PathBuf>, cli: Vec<(String, String)>) -> Self {
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("PGUSERS_"))
            .collect();
        let file = discover_config_file(explicit_file, &env);
        Self { file, env, cli }
    }
}

/// `--config PATH`, else `PGUSERS_CONFIG`, else `/etc/pgusers/pgusers.toml` if it exists.
pub fn discover_config_file(
    explicit: Option<PathBuf>,
    env: &[(String, String)],
) -> Option<PathBuf> {
    explicit
        .or_else(|| {
            env.iter()
                .find(|(k, _)| k == "PGUSERS_CONFIG")
                .map(|(_, v)| PathBuf::from(v))
        })
        .or_else(|| {
            let default = Path::new("/etc/pgusers/pgusers.toml");
            default.exists().then(|| default.to_path_buf())
        })
}

/// Environment variables that are not configuration keys but are ours.
fn is_auxiliary_env(name: &str) -> bool {
    name == "PGUSERS_CONFIG"
        || name.starts_with("PGUSERS_TEST_")
        || name.starts_with("PGUSERS_BENCH_")
}

/// Maps an environment variable to its key: a short form, or `PGUSERS_<SECTION>__<KEY>` (whether
/// that key exists is for the settings to say).
fn env_key(name: &str) -> Result<Option<String>, String> {
    if is_auxiliary_env(name) {
        return Ok(None);
    }
    if let Some((_, key)) = SHORT_ENV.iter().find(|(var, _)| *var == name) {
        return Ok(Some(key.to_string()));
    }
    let key = match name.trim_start_matches("PGUSERS_").split_once("__") {
        Some((section, key)) => format!("{section}.{key}").to_ascii_lowercase(),
        None => return Err(not_a_setting(name)),
    };
    if is_key_shaped(&key) {
        Ok(Some(key))
    } else {
        Err(not_a_setting(name))
    }
}

/// `section.key` in lowercase letters, digits and `_`, as every key is (anything else would not
/// even parse as a path for the layers).
fn is_key_shaped(key: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    key.split_once('.')
        .is_some_and(|(section, name)| part(section) && part(name))
}

fn not_a_setting(name: &str) -> String {
    format!(
        "environment variable {name} is not a pgusers setting (use PGUSERS_<SECTION>__<KEY>, see config/pgusers.toml)"
    )
}

/// Where a key set outside the file came from, to name it in a problem.
#[derive(Debug, Clone)]
enum Origin {
    Env(String),
    Cli,
}

/// Loads and validates the settings; on failure returns every problem found.
pub fn load(sources: &Sources) -> Result<Settings, Vec<String>> {
    let mut problems = Vec::new();
    let mut builder = Config::builder();
    if let Some(path) = &sources.file {
        if path.exists() {
            builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
        } else {
            problems.push(format!(
                "configuration file {} does not exist",
                path.display()
            ));
        }
    }

    // Later layers win: environment, then command line. The same key given twice in one
    // layer (a short and a long environment variable) takes the long form.
    let mut overrides: Vec<(String, String, Origin)> = Vec::new();
    let mut env_sorted = sources.env.clone();
    env_sorted.sort_by_key(|(k, _)| k.contains("__"));
    for (name, value) in &env_sorted {
        match env_key(name) {
            Ok(Some(key)) => overrides.push((key, value.clone(), Origin::Env(name.clone()))),
            Ok(None) => {}
            Err(problem) => problems.push(problem),
        }
    }
    for (key, value) in &sources.cli {
        if is_key_shaped(key) {
            overrides.push((key.clone(), value.clone(), Origin::Cli));
        } else {
            problems.push(format!(
                "--set {key}: unknown key (see config/pgusers.toml for every key)"
            ));
        }
    }
    let mut origins = HashMap::new();
    for (key, value, origin) in overrides {
        builder = match builder.set_override(key.as_str(), value) {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!("{key}: {e}"));
                return Err(problems);
            }
        };
        origins.insert(key, origin);
    }

    let config = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!("cannot read the configuration: {e}"));
            return Err(problems);
        }
    };

    let mut settings = deserialize(config.cache, &origins, &mut problems);
    settings.config_file = sources.file.clone();
    read_secret_files(&mut settings, &mut problems);
    if settings.forward_auth.redirect_browsers && settings.forward_auth.login_url.is_none() {
        problems.push(
            "forward_auth.redirect_browsers: set forward_auth.login_url too (the page browsers \
             are sent to)"
                .into(),
        );
    }

    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(problems)
    }
}

/// The settings from the merged layers. serde stops at the first bad key, so each bad key is
/// reported, taken out (its default stands in) and the rest read again, until all is read.
fn deserialize(
    merged: Value,
    origins: &HashMap<String, Origin>,
    problems: &mut Vec<String>,
) -> Settings {
    let mut table = match merged.into_table() {
        Ok(table) => table,
        Err(e) => {
            problems.push(format!("cannot read the configuration: {e}"));
            return Settings::default();
        }
    };
    let mut found = Vec::new();
    // Each round takes out a key or a section, so the rounds are bounded by their number.
    let rounds = 1 + table.len() + table.values().map(table_len).sum::<usize>();
    for _ in 0..rounds {
        let value = Value::new(None, ValueKind::Table(table.clone()));
        let error = match serde_path_to_error::deserialize::<_, Settings>(value) {
            Ok(settings) => {
                problems.extend(in_key_order(found));
                return settings;
            }
            Err(e) => e,
        };
        let path: Vec<&str> = error
            .path()
            .iter()
            .filter_map(|segment| match segment {
                Segment::Map { key } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        let message = describe(error.inner());
        let unknown = message.starts_with("unknown field");
        match path[..] {
            [section, key, ..] => {
                let key = format!("{section}.{key}");
                found.push((key.clone(), problem(&key, unknown, &message, origins)));
                if let Some(ValueKind::Table(keys)) = table.get_mut(section).map(|v| &mut v.kind) {
                    keys.remove(key.split_once('.').map_or("", |(_, k)| k));
                } else {
                    table.remove(section);
                }
            }
            [section] => {
                let section = section.to_string();
                match table.remove(&section).map(|v| v.kind) {
                    // An unknown section: each of its keys is unknown.
                    Some(ValueKind::Table(keys)) if unknown => {
                        for name in keys.keys() {
                            let key = format!("{section}.{name}");
                            found.push((key.clone(), problem(&key, true, &message, origins)));
                        }
                    }
                    _ if unknown => found.push((
                        section.clone(),
                        format!(
                            "unknown key '{section}' (keys live in sections such as [session])"
                        ),
                    )),
                    _ => found.push((section.clone(), format!("{section}: {message}"))),
                }
            }
            [] => {
                found.push((
                    String::new(),
                    format!("cannot read the configuration: {message}"),
                ));
                break;
            }
        }
    }
    problems.extend(in_key_order(found));
    Settings::default()
}

/// Problems of unknown keys first, then the others in the order of the keys (and of the file).
fn in_key_order(mut found: Vec<(String, String)>) -> impl Iterator<Item = String> {
    let keys = all_keys();
    found.sort_by_key(|(key, _)| (keys.iter().position(|k| k == key), key.clone()));
    found.into_iter().map(|(_, problem)| problem)
}

fn table_len(value: &Value) -> usize {
    match &value.kind {
        ValueKind::Table(t) => t.len(),
        _ => 0,
    }
}

/// The problem with one key, naming where it was set when that was not the file.
fn problem(key: &str, unknown: bool, message: &str, origins: &HashMap<String, Origin>) -> String {
    match (origins.get(key), unknown) {
        (Some(Origin::Env(name)), true) => not_a_setting(name),
        (Some(Origin::Cli), true) => {
            format!("--set {key}: unknown key (see config/pgusers.toml for every key)")
        }
        (None, true) => format!("unknown key '{key}' (see config/pgusers.toml for every key)"),
        (Some(Origin::Env(name)), false) => format!("{key} (from {name}): {message}"),
        (Some(Origin::Cli), false) => format!("{key} (from --set): {message}"),
        (None, false) => format!("{key}: {message}"),
    }
}

/// A value's problem without the configuration crate's decoration (the file's name, which the
/// key already locates).
fn describe(error: &ConfigError) -> String {
    match error {
        ConfigError::Type {
            unexpected,
            expected,
            ..
        } => format!("expected {expected}, not {unexpected}"),
        ConfigError::At { error, .. } => describe(error),
        other => other.to_string(),
    }
}

/// Reads `*_file` secrets, and the systemd credential `db-password` when no password is set.
fn read_secret_files(settings: &mut Settings, problems: &mut Vec<String>) {
    let credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    if settings.database.password.is_none() {
        let file = settings.database.password_file.clone().or_else(|| {
            credentials_dir
                .as_ref()
                .map(|d| d.join("db-password"))
                .filter(|p| p.exists())
        });
        if let Some(path) = file {
            match std::fs::read_to_string(&path) {
                // An empty file (e.g. the placeholder systemd-tmpfiles creates) means no password.
                Ok(text) => {
                    let password = text.trim_end_matches(['\r', '\n']);
                    settings.database.password =
                        (!password.is_empty()).then(|| Secret::new(password));
                    settings.database.password_from_file = true;
                }
                Err(e) => problems.push(format!(
                    "database.password_file: cannot read {}: {e}",
                    path.display()
                )),
            }
        }
    }
    let tokens_file = settings.api.tokens_file.clone().or_else(|| {
        credentials_dir
            .map(|d| d.join("api-tokens"))
            .filter(|p| p.exists())
    });
    if let Some(path) = tokens_file {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                {
                    if line.len() < 16 {
                        problems.push(format!(
                            "api.tokens_file: a token in {} is shorter than 16 characters",
                            path.display()
                        ));
                    } else {
                        settings.api.tokens.push(Secret::new(line));
                        settings.api.tokens_from_files += 1;
                    }
                }
            }
            Err(e) => problems.push(format!(
                "api.tokens_file: cannot read {}: {e}",
                path.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> Sources {
        Sources {
            env: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Sources::default()
        }
    }

    fn file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("pgusers.toml");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        (dir, path)
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = load(&Sources::default()).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(s.session.ttl, Duration::from_secs(864_000));
        assert_eq!(s.database.pool_size, 16);
        assert_eq!(s.janitor.interval, Duration::from_secs(60));
    }

    #[test]
    fn short_environment_variables_work() {
        let s = load(&env(&[
            ("PGUSERS_SESSION_TTL", "1h"),
            ("PGUSERS_USERSPACE", "space"),
            ("PGUSERS_ADMIN", "boss"),
            ("PGUSERS_PORT", "5433"),
            ("PGUSERS_API_TOKENS", "aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb"),
            ("PGUSERS_LISTEN", "127.0.0.1:1,unix:/tmp/x.sock"),
            ("PGUSERS_COOKIE_SECURE", "false"),
        ]))
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(s.session.ttl, Duration::from_secs(3600));
        assert_eq!(s.database.dbname.as_deref(), Some("space"));
        assert_eq!(s.database.user.as_deref(), Some("boss"));
        assert_eq!(s.database.port, Some(5433));
        assert_eq!(s.api.tokens.len(), 2);
        assert_eq!(s.server.listen.len(), 2);
        assert!(!s.session.cookie_secure);
    }

    #[test]
    fn long_environment_variables_reach_any_key() {
        let s = load(&env(&[("PGUSERS_SESSION__REFRESH_INTERVAL", "5m")]))
            .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(s.session.refresh_interval, Duration::from_secs(300));
    }

    #[test]
    fn the_environment_beats_the_file_and_the_command_line_beats_both() {
        let (_dir, path) = file_with("[session]\nttl = 100\nrefresh_interval = 7\n");
        let mut sources = env(&[("PGUSERS_SESSION_TTL", "200")]);
        sources.file = Some(path);
        let s = load(&sources).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(s.session.ttl, Duration::from_secs(200));
        assert_eq!(s.session.refresh_interval, Duration::from_secs(7));
        sources.cli.push(("session.ttl".into(), "300".into()));
        let s = load(&sources).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(s.session.ttl, Duration::from_secs(300));
    }

    #[test]
    fn every_problem_is_reported_at_once_naming_the_key() {
        let (_dir, path) = file_with("[session]\nttl = \"ten days\"\ncolour = 1\n[janitor]\ninterval = 0\n[nonsense]\nx = 1\n");
        let mut sources = env(&[("PGUSERS_SESION__TTL", "1")]);
        sources.file = Some(path);
        let problems = load(&sources).err().unwrap_or_default();
        let all = problems.join("\n");
        assert!(all.contains("session.ttl"), "{all}");
        assert!(all.contains("session.colour"), "{all}");
        assert!(all.contains("janitor.interval"), "{all}");
        assert!(all.contains("nonsense.x"), "{all}");
        assert!(all.contains("PGUSERS_SESION__TTL"), "{all}");
        assert_eq!(problems.len(), 5, "{all}");
    }

    #[test]
    fn problems_say_where_a_value_came_from_and_what_is_expected() {
        let (_dir, path) =
            file_with("[database]\nport = \"x\"\n[session]\ncookie_secure = \"maybe\"\n");
        let mut sources = env(&[
            ("PGUSERS_SESSION_TTL", "ten days"),
            ("PGUSERS_FOO", "1"),
            ("PGUSERS_CONFIG", "/ignored"),
        ]);
        sources.file = Some(path.clone());
        sources.cli.push(("no.such_key".into(), "1".into()));
        sources.cli.push(("Not A Key".into(), "1".into()));
        sources
            .env
            .push(("PGUSERS_SESSION__TTL-X".into(), "1".into()));
        sources.cli.push(("janitor.batch_size".into(), "0".into()));
        let problems = load(&sources).err().unwrap_or_default();
        let all = problems.join("\n");
        assert_eq!(problems.len(), 8, "{all}");
        assert!(all.contains("--set Not A Key: unknown key"), "{all}");
        assert!(
            all.contains("PGUSERS_SESSION__TTL-X is not a pgusers setting"),
            "{all}"
        );
        assert!(
            all.contains("environment variable PGUSERS_FOO is not a pgusers setting"),
            "{all}"
        );
        assert!(all.contains("--set no.such_key: unknown key"), "{all}");
        assert!(
            all.contains("janitor.batch_size (from --set): must be at least 1"),
            "{all}"
        );
        assert!(
            all.contains("session.ttl (from PGUSERS_SESSION_TTL): 'ten days' is not a duration"),
            "{all}"
        );
        assert!(
            all.contains("database.port: expected an integer, not string \"x\""),
            "{all}"
        );
        assert!(
            all.contains("session.cookie_secure: expected a boolean"),
            "{all}"
        );
        assert!(
            !all.contains(&path.display().to_string()),
            "the key locates it: {all}"
        );
        let at = |start: &str| problems.iter().position(|p| p.starts_with(start));
        assert!(
            at("--set no.such_key") < at("database.port"),
            "unknown keys first: {all}"
        );
        assert!(
            at("database.port") < at("session.ttl"),
            "then in the file's order: {all}"
        );
        assert!(at("session.ttl") < at("janitor.batch_size"), "{all}");
    }

    #[test]
    fn every_value_from_the_environment_is_read_as_its_type() {
        let s = load(&env(&[
            ("PGUSERS_FORWARD_AUTH__TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            (
                "PGUSERS_LOGIN__ALLOWED_REDIRECT_HOSTS",
                "App.Example.org,b.example.org:8443",
            ),
            ("PGUSERS_SERVER__UNIX_SOCKET_MODE", "0600"),
            ("PGUSERS_SESSION__MAX_LIFETIME", "0"),
            ("PGUSERS_DATABASE__SSLMODE", "verify-ca"),
            ("PGUSERS_HOST", ""),
            ("PGUSERS_LOG__ACCESS", "yes"),
        ]))
        .unwrap_or_else(|p| panic!("{p:?}"));
        let proxies: Vec<String> = s
            .forward_auth
            .trusted_proxies
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "::1/128"]);
        assert_eq!(
            s.login.allowed_redirect_hosts,
            ["app.example.org", "b.example.org:8443"]
        );
        assert_eq!(s.server.unix_socket_mode, 0o600);
        assert_eq!(s.session.max_lifetime, None);
        assert_eq!(s.database.sslmode, Some(crate::config::SslPolicy::VerifyCa));
        assert_eq!(s.database.host, None, "blank is unset");
        assert!(s.log.access);
        let s = load(&Sources {
            cli: vec![("server.listen".into(), "127.0.0.1:1,127.0.0.1:2".into())],
            ..Sources::default()
        })
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(s.server.listen.len(), 2, "--listen given twice");
    }

    #[test]
    fn redirecting_browsers_needs_a_login_page() {
        let problems = load(&env(&[("PGUSERS_FORWARD_AUTH__REDIRECT_BROWSERS", "true")]))
            .err()
            .unwrap_or_default();
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("forward_auth.redirect_browsers") && p.contains("login_url")),
            "{problems:?}"
        );
        let s = load(&env(&[
            ("PGUSERS_FORWARD_AUTH__REDIRECT_BROWSERS", "true"),
            (
                "PGUSERS_FORWARD_AUTH__LOGIN_URL",
                "https://auth.example.com/login",
            ),
        ]))
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert!(s.forward_auth.redirect_browsers);
    }

    #[test]
    fn short_tokens_are_refused() {
        let problems = load(&env(&[("PGUSERS_API_TOKENS", "short")]))
            .err()
            .unwrap_or_default();
        assert!(problems[0].contains("api.tokens"));
        assert!(!problems[0].contains("short\""), "the token is not echoed");
    }

    #[test]
    fn secrets_are_read_from_files() {
        let (dir, _) = file_with("");
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap_or_else(|e| panic!("{e}"));
        let s = load(&env(&[(
            "PGUSERS_DATABASE__PASSWORD_FILE",
            pw.to_str().unwrap_or_default(),
        )]))
        .unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(
            s.database.password.as_ref().map(Secret::expose),
            Some("s3cret")
        );
    }
}

#[cfg(test)]
mod annotated_file {
    use super::*;

    const FILE: &str = include_str!("../../config/pgusers.toml");

    #[test]
    fn the_annotated_file_documents_every_key() {
        for full in all_keys() {
            let (section, key) = full.split_once('.').unwrap_or_default();
            let in_section = FILE
                .split("\n[")
                .find(|block| block.starts_with(&format!("{section}]")))
                .unwrap_or_default();
            assert!(
                in_section.contains(&format!("# {key} = ")),
                "{full} is not documented in config/pgusers.toml"
            );
            if let Some((var, _)) = SHORT_ENV.iter().find(|(_, k)| *k == full) {
                assert!(in_section.contains(var), "{var} is not documented");
            }
        }
    }

    /// The comment above each example says "(reload)" exactly for the keys a SIGHUP applies.
    #[test]
    fn the_annotated_file_marks_the_keys_a_reload_applies() {
        let mut section = "";
        let mut comment = String::new();
        let mut marked = Vec::new();
        for line in FILE.lines() {
            if let Some(name) = line.strip_prefix('[') {
                section = name.trim_end_matches(']');
                comment.clear();
            } else if let Some((key, _)) = line
                .strip_prefix("# ")
                .and_then(|l| l.split_once(" = "))
                .filter(|(k, _)| {
                    !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
                })
            {
                if comment.contains("(reload)") {
                    marked.push(format!("{section}.{key}"));
                }
                comment.clear();
            } else {
                comment.push_str(line);
            }
        }
        assert_eq!(marked, crate::config::live::RELOADABLE);
    }

    #[test]
    fn uncommenting_every_example_gives_a_valid_configuration() {
        let uncommented: String = FILE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(k, _)| {
                        !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    }) =>
                {
                    format!("{rest}\n")
                }
                _ => format!("{l}\n"),
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("all.toml");
        std::fs::write(&path, uncommented).unwrap();
        let sources = Sources {
            file: Some(path),
            ..Sources::default()
        };
        if let Err(problems) = load(&sources) {
            // The example password file does not exist here; everything else must be valid.
            assert!(
                problems
                    .iter()
                    .all(|p| p.contains("password_file") || p.contains("tokens_file")),
                "{problems:?}"
            );
        }
    }
}
