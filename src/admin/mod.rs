//! Operators' surface: the `/metrics` exposition (gathered from every box's
//! published snapshots). The API, kick and health endpoints move here from
//! `origin` with issue 13's re-cut.

pub mod metrics;
