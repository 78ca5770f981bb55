//! Durations in configuration: plain seconds or a number with a unit (`500ms`, `90s`, `10m`,
//! `2h`, `10d`, `1w`), how they are printed, and the serde glue that reads them with each key's
//! bounds (`#[serde(with = "duration")]`, `duration::non_zero`, `duration::ttl`,
//! `duration::zero_is_none`).
//!
//! Not `humantime`: it also reads years and months (`10y` would be ten years, not an error), and
//! prints `30d` as `30days` and `1500ms` as `1s 500ms`, which are not this format.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;

/// Parses `"3600"`, `"90m"`, `"10d"`, `"500ms"`; white space around the value is ignored.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number.parse().map_err(|_| {
        format!("'{text}' is not a duration (use seconds, or e.g. 500ms, 90s, 10m, 2h, 10d)")
    })?;
    let unit_ms: u64 = match unit.trim() {
        "" | "s" => 1000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        other => {
            return Err(format!(
                "unknown duration unit '{other}' in '{text}' (use ms, s, m, h, d or w)"
            ))
        }
    };
    value
        .checked_mul(unit_ms)
        .map(Duration::from_millis)
        .filter(|d| *d <= LONGEST)
        .ok_or_else(|| format!("'{text}' is too long (at most 3650d)"))
}

/// The longest duration any setting takes: ten years. Longer ones would overflow the clock
/// arithmetic they feed (an interval of 10^11 days panics when added to an instant).
pub const LONGEST: Duration = Duration::from_secs(3650 * 86_400);

/// Formats a duration the way `parse` reads it, in the largest exact unit.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms > 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Writes a duration as `format` does (`"10d"`, `"90s"`, `"500ms"`).
pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*d))
}

/// Reads any duration up to `LONGEST`: a whole number of seconds or a string `parse` reads.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration: seconds, or e.g. 500ms, 90s, 10m, 2h, 10d")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
        Some(Duration::from_secs(n))
            .filter(|d| *d <= LONGEST)
            .ok_or_else(|| E::custom(format_args!("{n} seconds is too long (at most 3650d)")))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
        u64::try_from(n)
            .map_err(|_| E::custom("must not be negative"))
            .and_then(|n| self.visit_u64(n))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text).map_err(E::custom)
    }
}

/// A duration that must be longer than zero (intervals, timeouts that cannot be turned off).
pub mod non_zero {
    pub use super::serialize;
    use serde::de::{Deserializer, Error};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let d = super::deserialize(deserializer)?;
        if d.is_zero() {
            Err(D::Error::custom("must be longer than zero"))
        } else {
            Ok(d)
        }
    }
}

/// 1 second to 10 years, the bounds of a session lifetime.
pub const MAX_TTL_SECS: u64 = 10 * 365 * 86_400;

/// A session lifetime: 1 second to 10 years (`MAX_TTL_SECS`).
pub mod ttl {
    pub use super::serialize;
    use serde::de::{Deserializer, Error};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let d = super::deserialize(deserializer)?;
        if (1..=super::MAX_TTL_SECS).contains(&d.as_secs()) {
            Ok(d)
        } else {
            Err(D::Error::custom("must be between 1 second and 10 years"))
        }
    }
}

/// An optional duration where zero means none, printed as `"0"` when none
/// (`session.max_lifetime`).
pub mod zero_is_none {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(
        d: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, serializer),
            None => serializer.serialize_str("0"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Some(super::deserialize(deserializer)?).filter(|d| !d.is_zero()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_longer_than_ten_years_are_refused() {
        assert_eq!(parse("3650d"), Ok(LONGEST));
        assert!(parse("3651d").unwrap_err().contains("too long"));
        assert!(parse("100000000000d").unwrap_err().contains("too long"));
    }

    #[test]
    fn plain_numbers_are_seconds() {
        assert_eq!(parse("3600"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn units_are_understood() {
        assert_eq!(parse("10d"), Ok(Duration::from_secs(864_000)));
        assert_eq!(parse("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse(" 60s "), Ok(Duration::from_secs(60)));
    }

    #[test]
    fn nonsense_is_refused_with_a_hint() {
        assert!(parse("ten").unwrap_err().contains("not a duration"));
        assert!(parse("10y").unwrap_err().contains("unknown duration unit"));
        assert!(parse("").is_err());
    }

    #[test]
    fn formatting_round_trips() {
        for text in ["10d", "90m", "2h", "45s", "500ms"] {
            let d = parse(text).unwrap_or_default();
            assert_eq!(format(d), text);
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Keys {
        #[serde(default, with = "super")]
        any: Duration,
        #[serde(default, with = "non_zero")]
        interval: Duration,
        #[serde(default, with = "ttl")]
        ttl: Duration,
        #[serde(default, with = "zero_is_none")]
        max: Option<Duration>,
    }

    fn read(text: &str) -> Result<Keys, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn keys_read_seconds_and_units_within_their_bounds() {
        let k = read("any = 0\ninterval = \"90m\"\nttl = 3600\nmax = \"0\"")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.any, Duration::ZERO);
        assert_eq!(k.interval, Duration::from_secs(5400));
        assert_eq!(k.ttl, Duration::from_secs(3600));
        assert_eq!(k.max, None);
        let k = read("max = \"2h\"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k.max, Some(Duration::from_secs(7200)));
        let refused = |text: &str| read(text).err().unwrap_or_default();
        assert!(refused("interval = 0").contains("longer than zero"));
        assert!(refused("ttl = \"3651d\"").contains("too long"));
        assert!(refused("ttl = 0").contains("between 1 second and 10 years"));
        assert!(refused("any = 400000000").contains("400000000 seconds is too long"));
        assert!(refused("any = -5").contains("negative"));
        assert!(refused("any = true").contains("a duration"));
        assert!(refused("any = \"10y\"").contains("unknown duration unit"));
    }
}
