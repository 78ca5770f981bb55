//! `check-config`'s output: the effective configuration as a TOML file that `--config` reads
//! back, with every secret masked.

use super::Settings;

/// What a secret is printed as. It parses as any string key and is long enough to pass as an
/// API token, so the printed file loads (and prints) the same again.
pub const MASKED: &str = "<masked: not shown>";

/// The effective configuration as TOML. A secret read from a file (`database.password_file`,
/// `api.tokens_file`, systemd credentials) is not repeated inline: the file is named instead.
pub fn to_toml(settings: &Settings) -> Result<String, String> {
    let mut s = settings.clone();
    if s.database.password_from_file {
        s.database.password = None;
    }
    let inline = s.api.tokens.len().saturating_sub(s.api.tokens_from_files);
    s.api.tokens.truncate(inline);
    let body = toml::to_string(&s).map_err(|e| format!("cannot print the configuration: {e}"))?;
    Ok(format!(
        "# The effective configuration of pgusers (defaults, file, environment and command line\n\
         # applied), as printed by `pgusers check-config`; secrets are shown as \"{MASKED}\".\n\n\
         {body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, Secret, Sources};

    fn printed(env: &[(&str, &str)]) -> String {
        let sources = Sources {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Sources::default()
        };
        let s = load(&sources).unwrap_or_else(|p| panic!("{p:?}"));
        to_toml(&s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn values_are_printed_the_way_the_file_writes_them() {
        let text = printed(&[
            ("PGUSERS_SESSION_TTL", "1h"),
            (
                "PGUSERS_LISTEN",
                "127.0.0.1:9000,unix:/run/pgusers/pgusers.sock",
            ),
            ("PGUSERS_DATABASE__SSLMODE", "verify-full"),
        ]);
        assert!(text.contains("unix_socket_mode = \"0660\""), "{text}");
        assert!(text.contains("ttl = \"1h\""), "{text}");
        assert!(text.contains("max_lifetime = \"0\""), "{text}");
        assert!(text.contains("sslmode = \"verify-full\""), "{text}");
        assert!(
            text.contains("listen = [\"127.0.0.1:9000\", \"unix:/run/pgusers/pgusers.sock\"]"),
            "{text}"
        );
        assert!(
            text.contains("trusted_proxies = [\"127.0.0.1/8\", \"::1/128\"]"),
            "{text}"
        );
    }

    #[test]
    fn secrets_are_masked() {
        let text = printed(&[
            ("PGUSERS_PASSWORD", "db-secret-value"),
            ("PGUSERS_API_TOKENS", "token-secret-value-0123"),
            ("PGUSERS_CONNECTION_STRING", "postgres://u:url-secret@h/db"),
        ]);
        assert!(!text.contains("secret-value") && !text.contains("url-secret"));
        assert_eq!(text.matches(MASKED).count(), 3 + 1, "{text}");
        let mut s = crate::config::Settings::default();
        s.api.tokens = vec![Secret::new("x".repeat(20))];
        assert!(to_toml(&s).unwrap_or_default().contains(MASKED));
    }
}
