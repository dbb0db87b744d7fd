//! Logs, latency histograms, metric values, CPU accounting, the systemd notify
//! protocol, and the shutdown signal every box listens to.

pub mod clock;
pub mod cpu;
pub mod latency;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod shutdown;
pub mod throttle;
