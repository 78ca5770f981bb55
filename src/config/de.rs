//! Reading one key's value: the `deserialize_with` functions that check a value (bounds, names,
//! URLs, lists written as arrays or comma-separated), so that each key's rules sit on its field.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Error as _, SeqAccess, Visitor};

use super::{ListenAddr, Secret};

/// Reads a string and checks (or converts) it; the check's message becomes the key's problem.
fn checked<'de, D, T>(
    deserializer: D,
    check: impl FnOnce(String) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    check(String::deserialize(deserializer)?).map_err(D::Error::custom)
}

/// A whole number of at least `MIN` (`#[serde(deserialize_with = "de::at_least::<1, _, _>")]`).
pub fn at_least<'de, const MIN: u64, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Copy + TryInto<u64>,
{
    let value = T::deserialize(deserializer)?;
    match value.try_into() {
        Ok(n) if n >= MIN => Ok(value),
        _ => Err(D::Error::custom(format_args!("must be at least {MIN}"))),
    }
}

/// An optional string where a blank value (e.g. an empty environment variable) means unset.
pub fn non_blank<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text.filter(|t| !t.trim().is_empty()).map(T::from))
}

/// A string that must not be blank.
pub fn not_blank<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    checked(deserializer, |text| {
        if text.trim().is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(text)
        }
    })
}

/// `a, b,c` → `["a", "b", "c"]`, empty items dropped.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// A list: an array, or one comma-separated string (as environment variables give it), whose
/// items are parsed with `FromStr` (the item's error names the item).
pub fn list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    struct ListVisitor<T>(PhantomData<T>);

    impl<'de, T> Visitor<'de> for ListVisitor<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list (an array, or comma-separated in an environment variable)")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<T>, E> {
            split_list(text)
                .iter()
                .map(|item| item.parse().map_err(E::custom))
                .collect()
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<String>()? {
                items.push(item.trim().parse().map_err(A::Error::custom)?);
            }
            Ok(items)
        }
    }

    deserializer.deserialize_any(ListVisitor(PhantomData))
}

/// `server.listen`: at least one `host:port` or `unix:/path`.
pub fn listen_addrs<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ListenAddr>, D::Error> {
    let addrs: Vec<ListenAddr> = list(deserializer)?;
    if addrs.is_empty() {
        return Err(D::Error::custom("needs at least one address"));
    }
    Ok(addrs)
}

/// A `host:port` that resolves.
pub struct SocketAddrText(pub String);

impl FromStr for SocketAddrText {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        use std::net::ToSocketAddrs;
        match text.to_socket_addrs() {
            Ok(_) => Ok(Self(text.to_string())),
            Err(_) => Err(format!("'{text}' is not host:port")),
        }
    }
}

/// `server.tls_listen`: `host:port` addresses.
pub fn socket_addrs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let addrs: Vec<SocketAddrText> = list(deserializer)?;
    Ok(addrs.into_iter().map(|a| a.0).collect())
}

/// `api.tokens`: secrets of at least 16 characters (the message never repeats a token).
pub fn tokens<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Secret>, D::Error> {
    let tokens: Vec<String> = list(deserializer)?;
    if tokens.iter().any(|t| t.len() < 16) {
        return Err(D::Error::custom(
            "every API token must be at least 16 characters",
        ));
    }
    Ok(tokens.into_iter().map(Secret::new).collect())
}

/// `login.allowed_redirect_hosts`: compared in lowercase.
pub fn lowercase_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let hosts: Vec<String> = list(deserializer)?;
    Ok(hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect())
}

/// File permissions in octal (`"0660"`, `"660"` or `"0o660"`), at most 0777.
pub fn octal_mode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    checked(deserializer, |text| {
        u32::from_str_radix(text.trim().trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| format!("'{text}' is not an octal mode such as 0660"))
    })
}

/// File permissions printed in octal, as `"0660"`.
pub fn as_octal<S: serde::Serializer>(mode: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{mode:04o}"))
}

/// A schema name the daemon can put in `search_path` and SQL without quoting surprises.
pub fn schema_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    checked(deserializer, |text| {
        let mut chars = text.chars();
        let valid_start = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
        let valid_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid_start && valid_rest && text.len() <= 63 && !text.starts_with("pg_") {
            Ok(text)
        } else {
            Err(format!(
                "'{text}' is not a usable schema name: 1 to 63 lowercase letters, digits and \
                 underscores, not starting with a digit or pg_"
            ))
        }
    })
}

/// A cookie name: letters, digits, `_` or `-`.
pub fn cookie_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    checked(deserializer, |name| {
        let valid = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if name.is_empty() || !valid {
            Err("must be letters, digits, '_' or '-'".into())
        } else {
            Ok(name)
        }
    })
}

/// An HTTP header name.
pub fn header_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    checked(
        deserializer,
        |text| match actix_web::http::header::HeaderName::from_bytes(text.as_bytes()) {
            Ok(_) => Ok(text),
            Err(_) => Err(format!("'{text}' is not a valid header name")),
        },
    )
}

/// An optional absolute URL (blank: none).
pub fn absolute_url<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    match non_blank::<D, String>(deserializer)? {
        None => Ok(None),
        Some(u) => match url::Url::parse(&u) {
            Ok(_) => Ok(Some(u)),
            Err(_) => Err(D::Error::custom(format_args!(
                "'{u}' is not an absolute URL"
            ))),
        },
    }
}

/// A `tracing` filter such as `info` or `info,pgusers::client=debug`.
pub fn log_filter<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    checked(
        deserializer,
        |level| match tracing_subscriber::EnvFilter::try_new(&level) {
            Ok(_) => Ok(level),
            Err(_) => Err(format!("'{level}' is not a log filter")),
        },
    )
}

/// `log.format`: auto, human or json.
pub fn log_format<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    checked(deserializer, |format| {
        if ["auto", "human", "json"].contains(&format.as_str()) {
            Ok(format)
        } else {
            Err("must be auto, human or json".into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Keys {
        #[serde(deserialize_with = "at_least::<8, _, _>")]
        min: u32,
        #[serde(deserialize_with = "list")]
        numbers: Vec<u16>,
        #[serde(deserialize_with = "non_blank")]
        name: Option<String>,
        #[serde(deserialize_with = "tokens")]
        tokens: Vec<Secret>,
        #[serde(deserialize_with = "octal_mode")]
        mode: u32,
        #[serde(deserialize_with = "schema_name")]
        schema: String,
        #[serde(deserialize_with = "listen_addrs")]
        listen: Vec<ListenAddr>,
    }

    fn read(text: &str) -> Result<Keys, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn lists_are_arrays_or_comma_separated() {
        let k = read("numbers = \" 1, 2,,3 \"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.numbers, [1, 2, 3]);
        let k = read("numbers = [\"4\", \"5\"]").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.numbers, [4, 5]);
        assert!(read("numbers = \"1,x\"").is_err());
        let k = read("listen = \"127.0.0.1:1, unix:/tmp/s\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            k.listen,
            [
                ListenAddr::Tcp("127.0.0.1:1".into()),
                ListenAddr::Unix("/tmp/s".into())
            ]
        );
        let refused = read("listen = []").err().unwrap_or_default();
        assert!(refused.contains("at least one address"), "{refused}");
    }

    #[test]
    fn values_are_checked_with_a_message_that_says_how_to_fix_them() {
        let refused = |text: &str| read(text).err().unwrap_or_default();
        assert_eq!(refused("min = 7"), "must be at least 8");
        assert_eq!(read("min = 8").map(|k| k.min), Ok(8));
        assert!(refused("mode = \"0999\"").contains("octal mode"));
        assert_eq!(read("mode = \"0o640\"").map(|k| k.mode), Ok(0o640));
        assert!(refused("schema = \"pg_x\"").contains("schema name"));
        let short = refused("tokens = \"short-token\"");
        assert!(short.contains("16 characters") && !short.contains("short-token"));
        assert_eq!(read("name = \"  \"").map(|k| k.name), Ok(None));
    }
}
