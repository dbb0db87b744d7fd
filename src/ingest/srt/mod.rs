//! SRT ingest: libsrt (Debian's, opened at run time) listening for publishers
//! that send MPEG-TS. The access decision (`access.rs`) and the demuxer
//! (`media::mpegts`) are sans-IO; `server.rs` is the thin blocking glue: one
//! accept thread, one thread per connection.

pub mod access;
pub mod ffi;
pub mod server;
pub mod stats;
