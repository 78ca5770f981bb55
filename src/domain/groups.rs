//! Group names and sets: 1–64 characters of `[a-z0-9_.-]`, folded to lower case, at most 64
//! groups per user, kept sorted and without duplicates.

use super::validate::Invalid;

pub const MAX_GROUP_CHARS: usize = 64;
pub const MAX_GROUPS_PER_USER: usize = 64;

/// A group name as stored: lower-case; refuses anything outside the alphabet (the message names
/// the rule and echoes at most a short, printable prefix of the name).
pub fn name(raw: &str) -> Result<String, Invalid> {
    let folded = raw.to_ascii_lowercase();
    let ok = (1..=MAX_GROUP_CHARS).contains(&folded.len())
        && folded
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(folded)
    } else {
        Err(Invalid(format!(
            "group names must be 1 to {MAX_GROUP_CHARS} characters of a-z, 0-9, '_', '.' or '-' \
             (letter case is ignored)"
        )))
    }
}

/// A user's whole set of groups: each name checked and folded, sorted, duplicates dropped, at
/// most `MAX_GROUPS_PER_USER`.
pub fn set<S: AsRef<str>>(raw: &[S]) -> Result<Vec<String>, Invalid> {
    let mut names = raw
        .iter()
        .map(|n| name(n.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    names.sort_unstable();
    names.dedup();
    if names.len() > MAX_GROUPS_PER_USER {
        return Err(Invalid(format!(
            "a user belongs to at most {MAX_GROUPS_PER_USER} groups"
        )));
    }
    Ok(names)
}

/// Whether `joined` (sorted names joined by commas, as cached) holds any of `wanted` (folded names).
pub fn any_of(joined: &str, wanted: &[String]) -> bool {
    !joined.is_empty() && joined.split(',').any(|g| wanted.iter().any(|w| w == g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_folded_to_lower_case_and_checked() {
        assert_eq!(name("Ops").as_deref(), Ok("ops"));
        assert_eq!(name("a.b_c-9").as_deref(), Ok("a.b_c-9"));
        assert!(name("").is_err());
        assert!(name(&"x".repeat(65)).is_err());
        assert!(name(&"x".repeat(64)).is_ok());
        for bad in ["a b", "a,b", "é", "ops\n", "a/b"] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_set_is_sorted_deduplicated_and_bounded() {
        assert_eq!(
            set(&["ops", "Billing", "OPS"]).unwrap(),
            vec!["billing", "ops"]
        );
        let many: Vec<String> = (0..65).map(|i| format!("g{i}")).collect();
        assert!(set(&many).is_err());
        assert!(set(&many[..64]).is_ok());
    }

    #[test]
    fn membership_is_any_of_the_wanted_groups() {
        let wanted = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(any_of("billing,ops", &wanted(&["ops"])));
        assert!(any_of("billing,ops", &wanted(&["x", "billing"])));
        assert!(!any_of("billing,ops", &wanted(&["op"])));
        assert!(!any_of("", &wanted(&["ops"])));
    }
}
