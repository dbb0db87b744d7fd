//! Taking streams in: protocol sessions, publish auth, live registry (FLV demux is
//! in `media::flv`).

pub mod auth;
pub mod demo;
pub mod registry;
pub mod rtmp;
