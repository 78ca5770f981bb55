//! What is known about the keys beyond their fields in `Settings`: the original library's short
//! environment variables, every key in order (read from the structs' serde fields), and which
//! keys' printed values differ between two configurations (what a reload changed).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

use super::Settings;

/// The short environment variables that operators and scripts rely on (`spec/config.md`), and
/// the keys they set. Every other key is `PGUSERS_<SECTION>__<KEY>`.
pub const SHORT_ENV: &[(&str, &str)] = &[
    ("PGUSERS_CONNECTION_STRING", "database.url"),
    ("PGUSERS_USERSPACE", "database.dbname"),
    ("PGUSERS_ADMIN", "database.user"),
    ("PGUSERS_PASSWORD", "database.password"),
    ("PGUSERS_HOST", "database.host"),
    ("PGUSERS_PORT", "database.port"),
    ("PGUSERS_LISTEN", "server.listen"),
    ("PGUSERS_API_TOKENS", "api.tokens"),
    ("PGUSERS_SESSION_TTL", "session.ttl"),
    ("PGUSERS_COOKIE_SECURE", "session.cookie_secure"),
    ("PGUSERS_JANITOR_INTERVAL", "janitor.interval"),
];

/// One key whose value differs between two configurations, both as `check-config` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    pub was: String,
    pub now: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} -> {}", self.key, self.was, self.now)
    }
}

/// Every key whose printed value differs, sorted by key. Secrets print masked, so a changed
/// secret is not among them.
pub fn changes(was: &Settings, now: &Settings) -> Result<Vec<Change>, toml::ser::Error> {
    let was = toml::Table::try_from(was)?;
    let now = toml::Table::try_from(now)?;
    let printed = |v: Option<&toml::Value>| match v {
        None => "unset".to_string(),
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let empty = toml::Table::new();
    let mut out = Vec::new();
    for (section, now_section) in &now {
        let now_section = now_section.as_table().unwrap_or(&empty);
        let was_section = was
            .get(section)
            .and_then(toml::Value::as_table)
            .unwrap_or(&empty);
        let mut names: Vec<&String> = now_section.keys().chain(was_section.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let (a, b) = (was_section.get(name), now_section.get(name));
            if a != b {
                out.push(Change {
                    key: format!("{section}.{name}"),
                    was: printed(a),
                    now: printed(b),
                });
            }
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// A deserializer that only records the field names a struct asks for.
struct Introspect<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for Introspect<'_> {
    type Error = de::value::Error;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("fields recorded"))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Every key, `section.key`, in the order of the fields `Settings` and its sections deserialize
/// (the order of `config/pgusers.toml`).
pub(super) fn all_keys() -> Vec<String> {
    use super::*;

    fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Introspect(&mut fields));
        fields
    }

    let sections = [
        ("database", fields_of::<DatabaseSettings>()),
        ("server", fields_of::<ServerSettings>()),
        ("api", fields_of::<ApiSettings>()),
        ("session", fields_of::<SessionSettings>()),
        ("janitor", fields_of::<JanitorSettings>()),
        ("password", fields_of::<PasswordSettings>()),
        ("forward_auth", fields_of::<ForwardAuthSettings>()),
        ("login", fields_of::<LoginSettings>()),
        ("log", fields_of::<LogSettings>()),
        ("metrics", fields_of::<MetricsSettings>()),
        ("throttle", fields_of::<ThrottleSettings>()),
        ("audit", fields_of::<AuditSettings>()),
    ];
    sections
        .iter()
        .flat_map(|(section, keys)| keys.iter().map(move |key| format!("{section}.{key}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::time::Duration;

    #[test]
    fn every_key_is_listed_and_the_short_forms_name_keys() {
        let sections: Vec<String> = all_keys()
            .iter()
            .filter_map(|k| k.split_once('.').map(|(s, _)| s.to_string()))
            .fold(Vec::new(), |mut all, s| {
                if all.last() != Some(&s) {
                    all.push(s);
                }
                all
            });
        let mut declared: &'static [&'static str] = &[];
        let _ = Settings::deserialize(Introspect(&mut declared));
        assert_eq!(sections, declared, "a section is missing from all_keys");
        let keys = all_keys();
        assert_eq!(keys.len(), 70, "{keys:?}");
        assert!(keys.contains(&"session.ttl".to_string()));
        assert!(
            !keys.iter().any(|k| k.contains("from_file")),
            "skipped fields are no keys"
        );
        for (var, key) in SHORT_ENV {
            assert!(keys.contains(&key.to_string()), "{var} sets unknown {key}");
        }
    }

    #[test]
    fn changes_name_each_changed_key_with_both_printed_values() {
        let was = Settings::default();
        let mut now = was.clone();
        now.session.ttl = Duration::from_secs(200);
        now.session.max_lifetime = Some(Duration::from_secs(3600));
        now.session.cookie_domain = Some("example.org".into());
        now.log.level = "debug".into();
        now.database.password = Some(super::super::Secret::new("changed"));
        let changed: Vec<String> = changes(&was, &now)
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(Change::to_string)
            .collect();
        assert_eq!(
            changed,
            [
                "database.password: unset -> <masked: not shown>",
                "log.level: info -> debug",
                "session.cookie_domain: unset -> example.org",
                "session.max_lifetime: 0 -> 1h",
                "session.ttl: 10d -> 200s",
            ]
        );
        assert!(changes(&was, &was.clone())
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty());
    }
}
