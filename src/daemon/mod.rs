//! The process: startup (connect, migrate, start the services, bind every listener), the embedded
//! PostgreSQL, systemd notifications and inherited sockets.

pub mod embedded_postgres;
pub mod listeners;
pub mod startup;
pub mod systemd;
