//! Password hashing with argon2id on a bounded pool of blocking threads, so that a flood of
//! logins cannot starve the async workers that answer session checks; verification also of the
//! PBKDF2-HMAC-SHA512 hashes imported from the Python library (replaced by argon2id at the
//! user's next successful login).
//!
//! Timing: while any imported hash may remain, every verification pays for both algorithms
//! (an argon2id user, an unknown user and an imported user all cost one argon2id and one
//! PBKDF2 computation), so the time of a failed login tells nothing about whether the account
//! exists or was imported.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::PasswordSettings;

/// Why the password settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("invalid argon2 parameters")]
    Parameters(#[source] argon2::Error),
    #[error("cannot hash with these argon2 parameters")]
    Hashing(#[source] argon2::password_hash::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("too many password operations are waiting")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Hashes and verifies passwords; at most `threads` run at once, at most `queue_limit` wait.
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    queue_limit: usize,
    waiting: AtomicUsize,
    /// A hash of a random password with the same parameters, verified against when the user
    /// does not exist so that an unknown user costs the same work as a wrong password.
    decoy_hash: String,
    /// Whether imported PBKDF2 hashes may remain (see the module's timing note).
    legacy: AtomicBool,
}

/// The PHC identifier of the Python library's hashes (`$pbkdf2-sha512$i=100000,l=64$…`).
const LEGACY_IDENT: &str = "pbkdf2-sha512";
/// The library's iteration count, spent by the decoy when the stored hash is not a legacy one.
const LEGACY_ROUNDS: u32 = 100_000;

/// Whether `stored` is an imported PBKDF2 hash rather than one of ours.
pub fn is_legacy(stored: &str) -> bool {
    stored.starts_with(concat!("$", "pbkdf2-sha512", "$"))
}

/// The PHC string of a Python-library hash given as its hex `salt` and `kpasswd` columns, or
/// `None` when they are not what the library writes (16-byte salt, 64-byte PBKDF2-SHA512 key).
pub fn legacy_phc(salt_hex: &str, kpasswd_hex: &str) -> Option<String> {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use base64::Engine;
    let salt = hex::decode(salt_hex.trim())
        .ok()
        .filter(|s| s.len() == 16)?;
    let key = hex::decode(kpasswd_hex.trim())
        .ok()
        .filter(|k| k.len() == 64)?;
    Some(format!(
        "${LEGACY_IDENT}$i={LEGACY_ROUNDS},l=64${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(key)
    ))
}

impl PasswordHasher {
    pub fn new(settings: &PasswordSettings, threads: usize) -> Result<Self, SetupError> {
        let params = Params::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            None,
        )
        .map_err(SetupError::Parameters)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let decoy = crate::domain::keys::random_hex(16);
        let decoy_hash = hash_with(&argon2, &decoy).map_err(SetupError::Hashing)?;
        Ok(Self {
            argon2,
            permits: Arc::new(Semaphore::new(threads.max(1))),
            queue_limit: settings.hash_queue_limit,
            waiting: AtomicUsize::new(0),
            decoy_hash,
            legacy: AtomicBool::new(false),
        })
    }

    /// Says that imported hashes may be stored: from now on every verification costs both
    /// algorithms. Never undone while the daemon runs.
    pub fn expect_legacy_hashes(&self) {
        self.legacy.store(true, Ordering::Relaxed);
    }

    /// Operations waiting for a hashing thread right now.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue_limit {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(HashError::Busy);
        }
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let permit = permit.map_err(|e| HashError::Failed(e.to_string()))?;
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || {
            // Hashing yields the CPU to request workers (the thread stays lowered: any later
            // blocking work on it is background work too).
            crate::accounts::priority::lower_current_thread_once();
            let started = std::time::Instant::now();
            let out = job(argon2);
            crate::telemetry::metrics::METRICS
                .hash_seconds
                .observe(started.elapsed());
            drop(permit);
            out
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// A PHC-format argon2id hash of `password` with a fresh random salt (from the OS).
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let password = crate::domain::validate::normalize_password(&password);
        self.run(move |argon2| hash_with(&argon2, &password))
            .await?
            .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Whether `password` matches `stored`; with no stored hash, does the same work and says no.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let (hash, real) = match stored {
            Some(h) => (h, true),
            None => (self.decoy_hash.clone(), false),
        };
        if is_legacy(&hash) {
            self.expect_legacy_hashes();
        }
        let both = self.legacy.load(Ordering::Relaxed);
        let decoy = self.decoy_hash.clone();
        let matched = self
            .run(move |argon2| {
                if is_legacy(&hash) {
                    // The library hashed the password's UTF-8 as given, without normalizing.
                    let matched = verify_legacy(&password, &hash);
                    verify_with(&argon2, &password, &decoy);
                    matched
                } else {
                    let normalized = crate::domain::validate::normalize_password(&password);
                    let matched = verify_with(&argon2, &normalized, &hash);
                    if both {
                        spend_legacy_rounds(&password);
                    }
                    matched
                }
            })
            .await?;
        Ok(real && matched)
    }
}

impl PasswordHasher {
    /// Whether `stored` was made with other parameters (or another algorithm) than the
    /// configured ones, and should be replaced at the next successful login.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return true;
        };
        let wanted = self.argon2.params();
        let current = Params::try_from(&parsed).ok();
        parsed.algorithm != argon2::Algorithm::Argon2id.ident()
            || current.is_none_or(|p| {
                p.m_cost() != wanted.m_cost()
                    || p.t_cost() != wanted.t_cost()
                    || p.p_cost() != wanted.p_cost()
            })
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &str) -> Result<String, argon2::password_hash::Error> {
    // The salt comes from the operating system's generator (getrandom), 16 bytes.
    argon2
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
}

fn verify_with(argon2: &Argon2<'_>, password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

fn verify_legacy(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => pbkdf2::Pbkdf2::SHA512
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// The work of verifying an imported hash, for a password checked against something else.
fn spend_legacy_rounds(password: &str) {
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password.as_bytes(), &[0u8; 16], LEGACY_ROUNDS, &mut out);
    std::hint::black_box(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn cheap() -> PasswordHasher {
        let mut s = Settings::default().password;
        s.argon2_memory_kib = 64;
        s.argon2_iterations = 1;
        PasswordHasher::new(&s, 1).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let h = cheap();
        let hash = h.hash("correct horse".into()).await.unwrap_or_default();
        assert!(hash.starts_with("$argon2id$"));
        assert!(h
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap_or(false));
        assert!(!h
            .verify("wrong horse".into(), Some(hash))
            .await
            .unwrap_or(true));
    }

    #[tokio::test]
    async fn a_python_library_hash_verifies_its_password_and_asks_for_argon2id() {
        // pgusers 0.9.4: hashlib.pbkdf2_hmac("sha512", b"pass1", bytes(range(16)), 100000)
        let salt = "000102030405060708090a0b0c0d0e0f";
        let mut key = [0u8; 64];
        let salt_bytes = hex::decode(salt).unwrap_or_default();
        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(b"pass1", &salt_bytes, 100_000, &mut key);
        assert!(
            hex::encode(key).starts_with("47b09c5d03d2b9f1"),
            "Python's value"
        );
        let phc = legacy_phc(salt, &hex::encode(key)).unwrap_or_default();
        assert!(phc.starts_with("$pbkdf2-sha512$i=100000,l=64$AAECAwQFBgcICQoLDA0ODw$"));
        let h = cheap();
        assert!(h
            .verify("pass1".into(), Some(phc.clone()))
            .await
            .unwrap_or(false));
        assert!(!h
            .verify("pass2".into(), Some(phc.clone()))
            .await
            .unwrap_or(true));
        assert!(h.needs_rehash(&phc));
        assert!(legacy_phc("zz", &hex::encode(key)).is_none());
        assert!(legacy_phc(salt, "abcd").is_none());
    }

    #[tokio::test]
    async fn hashes_stored_by_earlier_releases_still_verify() {
        // Written by pgusers with argon2 0.5.3, at the default and at the test parameters.
        const DEFAULT: &str = "$argon2id$v=19$m=19456,t=2,p=1$kmecNMIGTACtRxzVCcK/bA$DGxai9edyfpmbnHVlwFWbr2qN1DZKa8mHQVz+fszoBA";
        const CHEAP: &str = "$argon2id$v=19$m=64,t=1,p=1$gPVcgP2iCrQBqbLcyvkX0Q$kOpvqS/5UL5++lB41oa8WawHQo/2bp3K6Fbk6WWQx9c";
        let h =
            PasswordHasher::new(&Settings::default().password, 1).unwrap_or_else(|e| panic!("{e}"));
        async fn verify(h: &PasswordHasher, password: &str, stored: &str) -> bool {
            let verified = h.verify(password.into(), Some(stored.into())).await;
            verified.unwrap_or_else(|e| panic!("{e}"))
        }
        assert!(verify(&h, "correct horse battery staple", DEFAULT).await);
        assert!(!verify(&h, "correct horse battery stapler", DEFAULT).await);
        assert!(!h.needs_rehash(DEFAULT), "same parameters: kept");
        let cheap = cheap();
        assert!(verify(&cheap, "Ünïcode pässword", CHEAP).await);
        assert!(!cheap.needs_rehash(CHEAP));
        assert!(cheap.needs_rehash(DEFAULT), "other parameters: rehashed");
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let h = cheap();
        assert!(!h.verify("anything".into(), None).await.unwrap_or(true));
    }

    #[tokio::test]
    async fn the_default_parameters_are_owasps() {
        let h =
            PasswordHasher::new(&Settings::default().password, 1).unwrap_or_else(|e| panic!("{e}"));
        let hash = h.hash("pw".into()).await.unwrap_or_default();
        assert!(hash.contains("m=19456,t=2,p=1"), "{hash}");
    }
}
