//! Input rules for usernames, emails, passwords and extra data, with messages fit for clients.

/// A rule broken by client input; the message names the field and never echoes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

pub const MAX_USERNAME_CHARS: usize = 64;
pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Characters that show nothing or reorder text: zero-width and joiner characters, bidi
/// controls and marks, soft hyphen, invisible fillers, variation selectors and tags.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// 1 to 64 characters, no control, invisible or bidi-control characters, in Unicode NFKC form
/// (no fullwidth, compatibility or ligature forms that imitate other names), no leading or
/// trailing white space.
pub fn username(name: &str) -> Result<(), Invalid> {
    let chars = name.chars().count();
    if chars == 0 {
        return Err(invalid("username must not be empty"));
    }
    if chars > MAX_USERNAME_CHARS {
        return Err(invalid(format!(
            "username must be at most {MAX_USERNAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("username must not contain control characters"));
    }
    if name.trim() != name {
        return Err(invalid("username must not start or end with white space"));
    }
    if name.chars().any(invisible) {
        return Err(invalid(
            "username must not contain invisible or text-direction characters",
        ));
    }
    if !unicode_normalization::is_nfkc(name) {
        return Err(invalid(
            "username must be in Unicode NFKC form (no fullwidth, compatibility or ligature characters)",
        ));
    }
    Ok(())
}

/// The name's confusable skeleton (Unicode TR39), the key of the unique index that refuses a
/// username looking like another: the NFKC form's skeleton, lower-cased, and its skeleton again,
/// so that neither letter case nor look-alike letters (Cyrillic `а` for `a`, `I` for `l`, `rn`
/// for `m`) tell two names apart.
pub fn username_skeleton(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let normalized: String = name.nfkc().collect();
    let first: String = unicode_security::skeleton(&normalized).collect();
    unicode_security::skeleton(&first.to_lowercase()).collect()
}

/// One `@` with text on both sides, at most 254 characters, no white space or control characters.
pub fn email(address: &str) -> Result<(), Invalid> {
    if address.chars().count() > MAX_EMAIL_CHARS {
        return Err(invalid(format!(
            "email must be at most {MAX_EMAIL_CHARS} characters"
        )));
    }
    if address.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(
            "email must not contain white space or control characters",
        ));
    }
    let mut parts = address.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) if !local.is_empty() && !domain.is_empty() => Ok(()),
        _ => Err(invalid(
            "email must contain exactly one '@' with text on both sides",
        )),
    }
}

/// What a new password must satisfy (the `[password]` section of the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Shortest password accepted, in characters after normalisation.
    pub min_chars: usize,
    /// Refuse the bundled most common passwords.
    pub refuse_common: bool,
}

/// At least `policy.min_chars` characters, at most 1024 bytes, and (when the policy says so)
/// not one of the most common passwords.
pub fn new_password(password: &str, policy: PasswordPolicy) -> Result<(), Invalid> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(invalid(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let normalized = normalize_password(password);
    let min_chars = policy.min_chars;
    if normalized.chars().count() < min_chars {
        return Err(invalid(format!(
            "password must be at least {min_chars} characters"
        )));
    }
    if policy.refuse_common && is_common_password(&normalized) {
        return Err(invalid("password is too common; choose another"));
    }
    Ok(())
}

/// Whether a JSON value holds a NUL character in any string or key (PostgreSQL's `jsonb` and
/// `text` cannot store it).
fn contains_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(contains_nul),
        serde_json::Value::Object(map) => {
            map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v))
        }
        _ => false,
    }
}

/// `extra_data` once serialised must fit in `max_bytes` and hold no NUL character.
pub fn extra_data(value: &serde_json::Value, max_bytes: usize) -> Result<(), Invalid> {
    if contains_nul(value) {
        return Err(invalid("extra_data must not contain NUL characters"));
    }
    let size = serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > max_bytes {
        return Err(invalid(format!(
            "extra_data must be at most {max_bytes} bytes once serialised"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_usernames_are_refused() {
        for name in [
            "ad\u{200B}min", // zero-width space
            "admin\u{200D}", // zero-width joiner
            "\u{202E}nimda", // right-to-left override
            "ad\u{2066}min", // bidi isolate
            "ad\u{00AD}min", // soft hyphen
            "\u{FF41}dmin",  // fullwidth a
            "\u{212A}im",    // Kelvin sign
            "\u{FB01}le",    // fi ligature
            "admin\u{FE0F}", // variation selector
        ] {
            assert!(username(name).is_err(), "{name:?}");
        }
        for name in ["zoë", "José", "Ελένη", "李小龍", "o'brien"] {
            assert!(username(name).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn look_alike_usernames_share_a_skeleton_and_different_names_do_not() {
        let paul = username_skeleton("paul");
        for name in [
            "Paul",
            "PAUL",
            "p\u{0430}ul", // Cyrillic a
            "pau\u{0406}", // Cyrillic capital I (Ukrainian)
            "pauI",        // Latin capital I for l
            "\u{FF50}aul", // fullwidth p (a row from before the NFKC rule)
            "\u{0440}aul", // Cyrillic er
        ] {
            assert_eq!(username_skeleton(name), paul, "{name:?}");
        }
        assert_eq!(username_skeleton("\u{212A}im"), username_skeleton("kim"));
        assert_eq!(username_skeleton("\u{FB01}le"), username_skeleton("file"));
        assert_eq!(username_skeleton("modern"), username_skeleton("modem"));
        for name in ["paula", "saul", "pavl", "zoë", "Ελένη"] {
            assert_ne!(username_skeleton(name), paul, "{name:?}");
        }
        assert_ne!(username_skeleton("zoë"), username_skeleton("zoe"));
    }

    #[test]
    fn usernames_follow_the_contract() {
        assert!(username("alice").is_ok());
        assert!(username("Ünïcödé name").is_ok());
        assert!(username(&"x".repeat(64)).is_ok());
        assert!(username(&"x".repeat(65)).is_err());
        assert!(username("").is_err());
        assert!(username(" alice").is_err());
        assert!(username("alice\t").is_err());
        assert!(username("al\u{0}ice").is_err());
    }

    #[test]
    fn emails_need_one_at_with_text_around_it() {
        assert!(email("a@b").is_ok());
        assert!(email("@b").is_err());
        assert!(email("a@").is_err());
        assert!(email("a@b@c").is_err());
        assert!(email("ab").is_err());
        assert!(email("a b@c").is_err());
        assert!(email(&format!("{}@b", "a".repeat(253))).is_err());
    }

    const DEFAULT_POLICY: PasswordPolicy = PasswordPolicy {
        min_chars: 8,
        refuse_common: true,
    };

    #[test]
    fn passwords_have_a_minimum_length_and_a_byte_cap() {
        assert!(new_password("q7-walrus", DEFAULT_POLICY).is_ok());
        assert!(
            new_password("12345678", DEFAULT_POLICY).is_err(),
            "too common"
        );
        assert!(new_password("1234567", DEFAULT_POLICY).is_err());
        assert!(new_password(&"p".repeat(1025), DEFAULT_POLICY).is_err());
        let err = new_password("short", DEFAULT_POLICY).unwrap_err();
        assert!(
            !err.0.contains("short"),
            "the message never echoes the password"
        );
    }

    #[test]
    fn the_library_policy_accepts_any_non_empty_password_up_to_the_byte_cap() {
        let library = PasswordPolicy {
            min_chars: 1,
            refuse_common: false,
        };
        assert!(new_password("pw1", library).is_ok());
        assert!(new_password("12345678", library).is_ok(), "common, allowed");
        assert!(new_password("", library).is_err());
        assert!(new_password(&"p".repeat(1025), library).is_err());
    }

    #[test]
    fn extra_data_refuses_nul_characters_anywhere() {
        assert!(extra_data(&serde_json::json!({"k": "a\u{0}b"}), 100).is_err());
        assert!(extra_data(&serde_json::json!({"k\u{0}": 1}), 100).is_err());
        assert!(extra_data(&serde_json::json!([["\u{0}"]]), 100).is_err());
    }

    #[test]
    fn extra_data_is_capped_by_serialised_size() {
        assert!(extra_data(&serde_json::json!({"a": 1}), 100).is_ok());
        assert!(extra_data(&serde_json::json!("x".repeat(200)), 100).is_err());
    }
}

/// The most common passwords, refused for new passwords (compared without regard to case).
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// Whether `password` is on the bundled list of most common passwords.
pub fn is_common_password(password: &str) -> bool {
    let lower = password.to_lowercase();
    COMMON_PASSWORDS
        .lines()
        .any(|p| p.trim().to_lowercase() == lower)
}

/// Unicode NFKC normalisation, applied to every password before hashing or verifying, so the
/// same password typed on two keyboards (composed or decomposed accents, full-width digits…)
/// gives the same hash.
pub fn normalize_password(password: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    password.nfkc().collect()
}

#[cfg(test)]
mod password_policy {
    use super::*;

    #[test]
    fn common_passwords_are_recognised_in_any_case() {
        assert!(is_common_password("password1"));
        assert!(is_common_password("PassWord1"));
        assert!(!is_common_password("correct horse battery"));
    }

    #[test]
    fn composed_and_decomposed_forms_normalise_alike() {
        assert_eq!(
            normalize_password("caf\u{e9}"),
            normalize_password("cafe\u{301}")
        );
        assert_eq!(
            normalize_password("\u{ff11}\u{ff12}"),
            "12",
            "full-width digits"
        );
    }
}
