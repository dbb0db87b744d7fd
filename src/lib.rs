//! ladderd: a bare-metal live-video transcoding appliance.
//!
//! Data flow (see docs/architecture.md): ingest → stream (transcode, package) → store → origin;
//! admin reads snapshots; runtime wires the boxes.
//! Each box owns its state; boxes talk through bounded channels of owned values.

pub mod admin;
pub mod cli;
pub mod config;
pub mod dylib;
pub mod ingest;
pub mod media;
pub mod origin;
pub mod package;
pub mod runtime;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod tools;
pub mod transcode;
