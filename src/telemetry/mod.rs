//! What the daemon tells its operators: logs (and the fixed lines fail2ban matches) and metrics.

mod logs;
pub mod metrics;

pub use logs::{cause_chain, init, login_refused, LogControl, LoginRefusal};
