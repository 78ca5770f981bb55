//! Layering: built-in defaults → TOML file → `PGUSERS_*` environment → command line, with every
//! problem collected and reported at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use config::{Config, File, FileFormat, Value};

use super::keys::{apply, split_list, Raw, KEYS};
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

/// Maps an environment variable to its key: a short form from the table, or
/// `PGUSERS_<SECTION>__<KEY>`.
fn env_key(name: &str) -> Result<Option<&'static str>, String> {
    if is_auxiliary_env(name) {
        return Ok(None);
    }
    if let Some(def) = KEYS.iter().find(|d| d.short_env == Some(name)) {
        return Ok(Some(def.key));
    }
    let rest = name.trim_start_matches("PGUSERS_");
    if let Some((section, key)) = rest.split_once("__") {
        let wanted = format!(
            "{}.{}",
            section.to_ascii_lowercase(),
            key.to_ascii_lowercase()
        );
        if let Some(def) = KEYS.iter().find(|d| d.key == wanted) {
            return Ok(Some(def.key));
        }
    }
    Err(format!(
        "environment variable {name} is not a pgusers setting (use PGUSERS_<SECTION>__<KEY>, see config/pgusers.toml)"
    ))
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
    let mut overrides: Vec<(&'static str, String, &'static str)> = Vec::new();
    let mut env_sorted = sources.env.clone();
    env_sorted.sort_by_key(|(k, _)| k.contains("__"));
    for (name, value) in &env_sorted {
        match env_key(name) {
            Ok(Some(key)) => overrides.push((key, value.clone(), "environment")),
            Ok(None) => {}
            Err(problem) => problems.push(problem),
        }
    }
    for (key, value) in &sources.cli {
        match KEYS.iter().find(|d| d.key == key.as_str()) {
            Some(def) => overrides.push((def.key, value.clone(), "command line")),
            None => problems.push(format!("--set {key}: unknown key")),
        }
    }
    for (key, value, _) in &overrides {
        let is_list = KEYS.iter().any(|d| d.key == *key && d.list);
        let value = if is_list {
            Value::from(split_list(value))
        } else {
            Value::from(value.as_str())
        };
        builder = match builder.set_override(*key, value) {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!("{key}: {e}"));
                return Err(problems);
            }
        };
    }

    let config = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!("cannot read the configuration: {e}"));
            return Err(problems);
        }
    };

    problems.extend(unknown_keys(&config));

    let mut settings = Settings {
        config_file: sources.file.clone(),
        ..Settings::default()
    };
    for def in KEYS {
        if let Ok(value) = config.get::<Value>(def.key) {
            if let Err(problem) = apply(&mut settings, def.key, &Raw(value)) {
                problems.push(format!("{}: {problem}", def.key));
            }
        }
    }
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

fn unknown_keys(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let root: BTreeMap<String, Value> = match config.cache.clone().into_table() {
        Ok(map) => map.into_iter().collect(),
        Err(e) => return vec![format!("cannot read the configuration: {e}")],
    };
    for (section, value) in root {
        match value.into_table() {
            Ok(table) => {
                let mut names: Vec<_> = table.keys().cloned().collect();
                names.sort();
                for name in names {
                    let full = format!("{section}.{name}");
                    if !KEYS.iter().any(|d| d.key == full) {
                        problems.push(format!(
                            "unknown key '{full}' (see config/pgusers.toml for every key)"
                        ));
                    }
                }
            }
            Err(_) => problems.push(format!(
                "unknown key '{section}' (keys live in sections such as [session])"
            )),
        }
    }
    problems
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
        for def in KEYS {
            let (section, key) = def.key.split_once('.').unwrap_or_default();
            let in_section = FILE
                .split("\n[")
                .find(|block| block.starts_with(&format!("{section}]")))
                .unwrap_or_default();
            assert!(
                in_section.contains(&format!("# {key} = ")),
                "{} is not documented in config/pgusers.toml",
                def.key
            );
            if let Some(var) = def.short_env {
                assert!(in_section.contains(var), "{var} is not documented");
            }
        }
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
