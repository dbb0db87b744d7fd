//! What the packager takes: its slice of the configuration and the rungs' pictures.

use std::time::Instant;

use bytes::Bytes;

/// What the packager needs to know of the configuration.
#[derive(Debug, Clone)]
pub struct PackagerConfig {
    /// `ladder.segment_secs`: every rung has an IDR at each boundary.
    pub segment_secs: f64,
    /// `hls.part_secs`.
    pub part_secs: f64,
    /// `hls.standard_segment_secs`: standard HLS joins this many seconds of segments.
    pub standard_segment_secs: f64,
    /// `hls.chunked_parts`: parts published chunk by chunk as they are written.
    pub chunked_parts: bool,
    /// `hls.source_rendition`: the publisher's video passed through as a rendition.
    pub source_rendition: bool,
    /// `ladder.enabled`: the source rendition follows the ladder's segment cadence.
    pub ladder: bool,
}

impl PackagerConfig {
    pub fn from_config(c: &crate::config::Config) -> Self {
        PackagerConfig {
            segment_secs: c.ladder.segment_secs,
            part_secs: c.hls.part_secs,
            standard_segment_secs: c.hls.standard_segment_secs,
            chunked_parts: c.hls.chunked_parts,
            source_rendition: c.hls.source_rendition,
            ladder: c.ladder.enabled,
        }
    }
}

/// One rung of the ladder, as the packager names and describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RungInfo {
    pub name: String,
    /// The rung's frame rate (its pictures' fps in the multivariant playlist).
    pub fps: f64,
    pub bitrate_bps: u32,
}

/// One encoded picture of a rung: Annex-B H.264 with SPS/PPS in front of IDRs.
#[derive(Debug, Clone)]
pub struct RungPicture<'a> {
    pub pts: i64,
    pub dts: i64,
    pub keyframe: bool,
    pub data: &'a Bytes,
    pub arrival: Instant,
}
