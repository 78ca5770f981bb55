//! Pure types and rules: usernames, emails, passwords, group names, session keys and expiry
//! arithmetic.

pub mod expiry;
pub mod groups;
pub mod keys;
pub mod validate;

pub use keys::{KeyDigest, SessionKey};
