//! Account use cases: creating, changing and deleting users, their groups and passwords, the
//! brute-force throttle and audit trail in front of them, and password hashing on its own pool.

pub mod passwords;
pub mod priority;
mod service;
pub mod throttle;

pub use service::{GroupChange, NewAccount, PasswordChange, UserHandle};
