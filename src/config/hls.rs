//! `[hls]`: parts, the RAM window, standard HLS, the player's scripts.

use serde::Deserialize;

use super::invalid::{range, Invalid};
use super::ladder::Ladder;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hls {
    /// LL-HLS part duration; rounded to whole frames of the source.
    pub part_secs: f64,
    /// How much of each rendition the hot store keeps (delta updates need
    /// more than 6 target durations; standard HLS three 6 s segments).
    pub window_secs: f64,
    /// Standard (non-LL) HLS segment duration: a whole number of LL segments. 2 s:
    /// hls.js (and Safari) stay 3 target durations behind the live edge, so 6 s
    /// segments played 17.5-18.8 s behind; 2 s ones about 8 s.
    pub standard_segment_secs: f64,
    /// Offer the ingested stream as a rendition without re-encoding.
    pub source_rendition: bool,
    /// Write each frame of a part as its own CMAF chunk and stream a part that
    /// is still being written to whoever asked for it (preload hints); off:
    /// one fragment per part, answered when the part is complete.
    pub chunked_parts: bool,
    /// hls.js for the player page (installed by `npm ci`).
    pub hls_js: std::path::PathBuf,
    /// dash.js for the player page's DASH choice (installed by `npm ci`).
    pub dash_js: std::path::PathBuf,
}

impl Default for Hls {
    fn default() -> Self {
        Hls {
            part_secs: 0.333,
            window_secs: 40.0,
            standard_segment_secs: 2.0,
            source_rendition: true,
            chunked_parts: true,
            hls_js: "node_modules/hls.js/dist/hls.min.js".into(),
            dash_js: "node_modules/dashjs/dist/modern/umd/dash.all.min.js".into(),
        }
    }
}

impl Hls {
    /// Its keys against `[ladder]`'s segment length.
    pub fn validate(&self, ladder: &Ladder) -> Result<(), Invalid> {
        range(
            "hls.part_secs",
            self.part_secs,
            0.1..=2.0f64.min(ladder.segment_secs),
            "must be between 0.1 and 2 and at most ladder.segment_secs",
        )?;
        range(
            "hls.standard_segment_secs",
            self.standard_segment_secs,
            ladder.segment_secs..=30.0,
            "must be between ladder.segment_secs and 30",
        )?;
        let target_duration = crate::media::timeline::target_duration(ladder.segment_secs) as f64;
        let needed = (6.0 * target_duration + ladder.segment_secs)
            .max(3.0 * self.standard_segment_secs + ladder.segment_secs);
        range(
            "hls.window_secs",
            self.window_secs,
            needed..=600.0,
            format!("must be between {needed} (delta updates and three standard segments) and 600"),
        )
    }
}
