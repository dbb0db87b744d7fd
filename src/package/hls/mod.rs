//! HLS playlists: multivariant, LL-HLS media (parts, preload hint, delta
//! updates, rendition reports) and standard media playlists. Sans-IO: a
//! description of what the store holds in, playlist text out.
//!
//! Files: `segments` (what a window holds, the stream's timing), `names`
//! (object file names and URIs, the origin's only URI grammar), `media`
//! (LL-HLS media playlists), `standard` (standard HLS, DVR and VOD
//! playlists), `multivariant`.

mod media;
mod multivariant;
mod names;
mod segments;
mod standard;

#[cfg(test)]
mod tests;

pub use media::{media_playlist, skippable, MediaPlaylist, RenditionReport};
pub use multivariant::{
    multivariant, multivariant_playlist, video_peak_bps, AudioMedia, RenditionSummary, Steering,
    Variant, VideoFormat, AUDIO_GROUP,
};
pub use names::{init_uri, long_segment_uri, parse_object_name, part_uri, segment_uri, ObjectName};
pub use segments::{iso8601, PartEntry, SegmentEntry, Timing};
pub use standard::{
    dvr_playlist, long_segments, standard_playlist, vod_playlist, DvrRun, LongSegment,
};
