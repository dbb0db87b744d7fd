//! RTMP ingest: the sans-IO [`session`] (over our own bounded [`chunk`] reader and
//! [`amf0`] depth check) and its socket glue in [`server`].

pub mod admission;
pub mod amf0;
pub mod chunk;
pub mod server;
pub mod session;
