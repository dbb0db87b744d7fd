//! One live stream's life: the registry of names and claims, the hand-off of a
//! claimed stream to a media core, the per-stream driver (ingest packets →
//! ladder → packager → store), the rendition/audio policy, and the stats
//! snapshots the API and `/metrics` read.
//!
//! Ingest only claims a name and sends [`Input`] values; it never sees a
//! pipeline, a packager or the store.
//!
//! This root only declares the files and re-exports what other boxes name
//! (`stream::Role`, `stream::Streams`, …): what the files share lives in leaf
//! files (`role`, `input`), so no file of the box imports another in a circle.

pub mod demo;
pub mod driver;
pub mod feed;
pub mod input;
pub mod inputs;
pub mod pause;
pub mod policy;
pub mod publisher;
pub mod registry;
pub mod role;
pub mod running;
pub mod slate;
pub mod streams;
pub mod switcher;
pub mod wake;

pub use driver::Driver;
pub use feed::Job;
pub use input::Input;
pub use publisher::{Closed, Publisher};
pub use registry::{EndReason, LiveStream, Registry, Rejection};
pub use role::Role;
pub use streams::Streams;
