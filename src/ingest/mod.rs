//! Taking streams in: protocol sessions, FLV demux, publish auth, live registry.

pub mod auth;
pub mod demo;
pub mod flv;
pub mod registry;
pub mod rtmp;
