//! Logs, Prometheus exposition, CPU accounting and the systemd notify protocol.

pub mod cpu;
pub mod log;
pub mod metrics;
pub mod notify;
