//! `[dvr]`: the warm tier on local disk.

use serde::Deserialize;

use super::hls::Hls;
use super::invalid::{ensure, range, Invalid};

/// The warm tier: segments on local disk (O_DIRECT through io_uring).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dvr {
    /// Where segments go; empty: no DVR (the RAM window only).
    pub dir: std::path::PathBuf,
    /// Rewind kept per rendition.
    pub window_secs: f64,
    /// Disk all streams may fill together (GB); 0: only the window limits it.
    pub max_disk_gb: f64,
    /// A stream's run becomes a recording (live-to-VOD) when it ends.
    pub record_on_end: bool,
}

impl Default for Dvr {
    fn default() -> Self {
        Dvr {
            dir: std::path::PathBuf::new(),
            window_secs: 7200.0,
            max_disk_gb: 0.0,
            record_on_end: true,
        }
    }
}

impl Dvr {
    /// Its keys; the rewind is at least `[hls]`'s RAM window.
    pub fn validate(&self, hls: &Hls) -> Result<(), Invalid> {
        range(
            "dvr.window_secs",
            self.window_secs,
            hls.window_secs..=86_400.0,
            format!(
                "must be between hls.window_secs ({}) and 86400",
                hls.window_secs
            ),
        )?;
        ensure(
            self.max_disk_gb >= 0.0 && self.max_disk_gb.is_finite(),
            "dvr.max_disk_gb",
            "must be 0 (no cap) or more",
        )
    }
}
