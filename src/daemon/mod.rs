//! The process: startup (connect, migrate, start the services, bind every listener), the serve
//! loop with its signals, reloads and watchdog, the container health check, systemd
//! notifications and inherited sockets.

pub mod healthcheck;
pub mod listeners;
pub mod run;
pub mod startup;
pub mod systemd;
