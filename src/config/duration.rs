//! Durations in configuration: plain seconds or a number with a unit (`500ms`, `90s`, `10m`, `2h`, `10d`).

use std::time::Duration;

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
}
