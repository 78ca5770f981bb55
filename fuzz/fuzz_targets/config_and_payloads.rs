//! Configuration durations and the cache-invalidation payloads sent over `NOTIFY`.
//!
//! Input: lossy UTF-8 text, given whole to both parsers.
//!
//! Properties: nothing panics; when `duration::parse` accepts the text, `format` of the result
//! parses back to the same duration; `parse_payload` yields one item per non-empty
//! comma-separated element, and an element it does not understand means "forget everything".
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgusers::config::duration;
use pgusers::sessions::invalidation::{parse_payload, Item};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(d) = duration::parse(&text) {
        let shown = duration::format(d);
        assert_eq!(
            duration::parse(&shown),
            Ok(d),
            "{text:?} parsed to {d:?}, formatted as {shown:?}, which does not parse back"
        );
    }

    let items = parse_payload(&text);
    let elements: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(items.len(), elements.len(), "one item per element");
    for (item, element) in items.iter().zip(&elements) {
        match item {
            Item::Ttl => assert_eq!(*element, "ttl"),
            Item::Key(d) => {
                let digits = element.strip_prefix("k:").unwrap_or_default();
                assert!(
                    digits.eq_ignore_ascii_case(&hex(d.as_bytes())),
                    "{element:?}"
                );
            }
            Item::User(id) => {
                let parsed = element
                    .strip_prefix("u:")
                    .and_then(|i| i.parse::<i64>().ok());
                assert_eq!(parsed, Some(*id), "{element:?}");
            }
            Item::All => {}
        }
    }
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
