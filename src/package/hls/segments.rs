//! What a rendition's window holds, as a playlist lists it, and the stream's
//! timing; the lines that head a segment in every kind of playlist.

use std::fmt::Write;

use super::names::init_uri;

/// One published part, as a playlist lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartEntry {
    pub duration: f64,
    pub independent: bool,
}

/// One segment (complete, or the one still receiving parts).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentEntry {
    pub msn: u64,
    pub duration: f64,
    pub pdt_ms: u64,
    pub discontinuity: bool,
    pub init_version: u32,
    pub parts: Vec<PartEntry>,
    pub complete: bool,
    /// Decode time of its first sample, in `timescale` ticks (DASH's `S@t`).
    pub start: u64,
    pub timescale: u32,
}

/// The stream-wide LL-HLS timing, identical in every rendition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub target_duration: u64,
    pub part_target: f64,
    /// The segment length the ladder aims for (boundaries fall on it).
    pub segment_target: f64,
    /// Wall-clock time (Unix ms) of media time 0: every rendition's decode
    /// times count from it (PROGRAM-DATE-TIME = this + media time), so it is
    /// DASH's `availabilityStartTime`.
    pub media_epoch_ms: u64,
}

impl Timing {
    pub fn part_hold_back(&self) -> f64 {
        3.0 * self.part_target
    }
    pub fn hold_back(&self) -> f64 {
        3.0 * self.target_duration as f64
    }
    pub fn can_skip_until(&self) -> f64 {
        6.0 * self.target_duration as f64
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time in milliseconds.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        ms % 1000
    )
}

/// The tags in front of a segment: DISCONTINUITY, MAP when the init
/// segment changes, PROGRAM-DATE-TIME.
pub(super) fn segment_head(
    o: &mut String,
    discontinuity: bool,
    init_version: u32,
    pdt_ms: u64,
    map: &mut Option<u32>,
    prefix: &str,
) {
    if discontinuity {
        let _ = writeln!(o, "#EXT-X-DISCONTINUITY");
    }
    if *map != Some(init_version) {
        let _ = writeln!(o, "#EXT-X-MAP:URI=\"{prefix}{}\"", init_uri(init_version));
        *map = Some(init_version);
    }
    let _ = writeln!(o, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(pdt_ms));
}
