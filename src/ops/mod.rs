//! Operating-system integration: systemd notifications and socket activation.

pub mod sd_notify;
pub mod socket_activation;
