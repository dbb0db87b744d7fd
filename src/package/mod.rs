//! From frames to published media: CMAF boxes (`cmaf`), parts and segments
//! (`chunker`), HLS playlists (`hls`), the DASH MPD (`dash`), and the
//! per-stream packager.
//!
//! Sans-IO at its root: the packager takes its own [`PackagerConfig`], frames
//! and `now`, and returns [`Published`] values; the stream's driver applies them
//! to the store, and `ladderd transcode` writes them to files.
//!
//! One clock for all renditions: decode times are the ingest 90 kHz
//! timestamps minus a per-stream base (audio converted to its sample rate),
//! and program date-times derive from the same pts, so a player can switch
//! renditions at any segment boundary and line audio up with video.
//!
//! Files: `input` and `published` are what the packager takes and gives;
//! `packager/` is the per-stream packager (`output` one rendition's chunker
//! and latency, `video` the source and rung pictures, `audio` the AAC).

pub mod chunker;
pub mod cmaf;
pub mod dash;
pub mod hls;

mod input;
mod packager;
mod published;

pub use input::{PackagerConfig, RungInfo, RungPicture};
pub use packager::StreamPackager;
pub use published::{Published, RenditionKind};
