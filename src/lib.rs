//! ladderd: a bare-metal live-video transcoding appliance.
//!
//! Data flow (see DESIGN.md): ingest → pipeline → packager → store → origin.
//! Each box owns its state; boxes talk through bounded channels of owned values.

pub mod admin;
pub mod cli;
pub mod config;
pub mod hwtest;
pub mod ingest;
pub mod media;
pub mod origin;
pub mod package;
pub mod probe;
pub mod runtime;
pub mod store;
pub mod telemetry;
pub mod transcode;
