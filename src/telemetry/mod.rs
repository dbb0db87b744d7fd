//! Logs now; histograms, Prometheus exposition and health come with the operations work.

pub mod log;
