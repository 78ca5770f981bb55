//! Session keys: 256 random bits, base64url without padding; stored only as a SHA-256 digest.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rand_core::UnwrapErr;
use rand::rngs::SysRng;
use rand::Rng as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Keys longer than this cannot be ours; they are rejected before hashing.
pub const MAX_KEY_LEN: usize = 512;

/// A freshly generated session key. Shown to the client once; never stored or logged.
pub struct SessionKey(String);

impl SessionKey {
    /// 32 bytes from the operating system's CSPRNG, base64url encoded (43 characters).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        UnwrapErr(SysRng).fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

/// SHA-256 of a session key: what the database and the cache know a session by.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyDigest(pub [u8; 32]);

/// A digest is already uniformly random: its first eight bytes are a perfect hash, so hashing
/// it again (SipHash over 32 bytes on every cache lookup) would be wasted work.
impl std::hash::Hash for KeyDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// A hasher for keys that hash themselves with one `write_u64` (see `KeyDigest`).
#[derive(Default, Clone, Copy)]
pub struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used by KeyDigest; fold anything else in so the hasher stays correct.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// Builds `DigestHasher`s for the session cache.
pub type BuildDigestHasher = std::hash::BuildHasherDefault<DigestHasher>;

impl KeyDigest {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// The digest of a key presented by a client, or `None` when it cannot be a key of ours.
    pub fn of_presented(key: &str) -> Option<Self> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return None;
        }
        Some(Self::of(key))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }
}

impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigest(..)")
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A random token for API access or correlation ids (hex of `bytes` random bytes).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    UnwrapErr(SysRng).fill_bytes(&mut buf);
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_43_cookie_safe_characters_and_differ() {
        let a = SessionKey::generate();
        let b = SessionKey::generate();
        assert_eq!(a.expose().len(), 43);
        assert!(a
            .expose()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn the_digest_is_sha256_of_the_key() {
        let d = KeyDigest::of("abc");
        assert_eq!(
            hex::encode(d.0),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn presented_keys_that_cannot_be_ours_have_no_digest() {
        assert!(KeyDigest::of_presented("").is_none());
        assert!(KeyDigest::of_presented(&"a".repeat(MAX_KEY_LEN + 1)).is_none());
        assert!(KeyDigest::of_presented("x").is_some());
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(secrets_equal(b"token", b"token"));
        assert!(!secrets_equal(b"token", b"tokem"));
        assert!(!secrets_equal(b"token", b"token2"));
    }

    #[test]
    fn debug_output_hides_keys() {
        let k = SessionKey::generate();
        assert!(!format!("{k:?}").contains(k.expose()));
    }
}
