//! DVR run stitching: a NAME published again starts its segment numbers
//! over, so each run's objects are listed and named under their own
//! directory (`e{EPOCH}/`), and a rendition's rewind window is the runs of
//! its DVR chain followed by what RAM holds of the current one.

use crate::store::dvr::RunSegments;
use crate::store::hot::{Rendition, StreamMedia};

/// A rendition's rewind window: the runs of its NAME's DVR chain (earlier
/// runs, then this one's whole segments on disk, then its newest, not on
/// disk yet, from RAM), and whether the rendition ended. None without a DVR.
pub fn dvr_runs(media: &StreamMedia, r: &Rendition) -> Option<(Vec<RunSegments>, bool)> {
    let tap = media.dvr.as_ref()?;
    let mut runs = tap.dvr.runs(&tap.name, tap.epoch_ms, &r.name);
    let current = runs.last_mut()?;
    let last = current.segments.last().map(|s| s.msn);
    let ended = r.with_segments(|ram, _, ended| {
        current.segments.extend(
            ram.iter()
                .filter(|s| s.complete && last.is_none_or(|l| s.msn > l))
                .cloned(),
        );
        ended
    });
    Some((runs, ended))
}

/// An object's ETag: its run, rendition and name, wherever it is read from
/// (RAM, this run's DVR copy, an earlier run's on disk).
pub fn run_etag(epoch_ms: u64, rendition: &str, file: &str) -> String {
    format!("\"e{epoch_ms}-{rendition}-{file}\"")
}

/// Where a run's objects are listed: `e{EPOCH}/` under the rendition. A
/// NAME published again starts its segment numbers over, so a URI without
/// the run would name different bytes in each run, and an edge cache
/// keeping it (it is `immutable`) would serve the old ones.
pub fn run_prefix(epoch_ms: u64) -> String {
    format!("e{epoch_ms}/")
}
