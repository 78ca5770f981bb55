//! Operating-system integration: systemd notifications, socket activation and thread priority.

pub mod priority;
pub mod sd_notify;
pub mod socket_activation;
