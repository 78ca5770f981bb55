//! Pure types and rules: usernames, emails, passwords, session keys and expiry arithmetic.

pub mod expiry;
pub mod keys;
pub mod validate;

pub use keys::{KeyDigest, SessionKey};
