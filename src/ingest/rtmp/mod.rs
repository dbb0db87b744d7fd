//! RTMP ingest: the sans-IO [`session`] and its socket glue in [`server`].

pub mod server;
pub mod session;
