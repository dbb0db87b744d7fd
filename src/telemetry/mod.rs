//! Logs, latency histograms, CPU accounting and the systemd notify protocol.

pub mod cpu;
pub mod latency;
pub mod log;
pub mod notify;
