//! Periods: the reference rendition's continuous runs, and each rendition's
//! segments within one (as `SegmentTimeline` runs).

use super::window::{Manifest, RenditionWindow};
use crate::package::hls::SegmentEntry;
use crate::package::published::RenditionKind;

/// A Period: a continuous run of the reference rendition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Period {
    /// Media start on the reference rendition's timeline.
    pub(super) start: u64,
    pub(super) timescale: u32,
}

/// One run's renditions and Periods in an MPD.
pub(super) struct RunView<'a> {
    /// Its media epoch after the `availabilityStartTime`.
    pub(super) offset_micros: u64,
    pub(super) prefix: &'a str,
    pub(super) video: Vec<&'a RenditionWindow>,
    pub(super) audio: Vec<&'a RenditionWindow>,
    pub(super) periods: Vec<Period>,
}

impl<'a> RunView<'a> {
    pub(super) fn of(
        renditions: &'a [RenditionWindow],
        offset_ms: u64,
        prefix: &'a str,
        low_latency: bool,
    ) -> Self {
        let of_kind = |video: bool| {
            renditions
                .iter()
                .filter(|w| {
                    matches!(w.summary.kind, RenditionKind::Video { .. }) == video && listable(w)
                })
                .collect::<Vec<_>>()
        };
        let (video, audio) = (of_kind(true), of_kind(false));
        let periods = video
            .first()
            .map_or_else(Vec::new, |r| periods(r, low_latency));
        RunView {
            offset_micros: offset_ms * 1000,
            prefix,
            video,
            audio,
            periods,
        }
    }
}

impl Period {
    pub(super) fn secs(&self) -> f64 {
        self.start as f64 / f64::from(self.timescale.max(1))
    }
    pub(super) fn start_micros(&self) -> u64 {
        let den = u128::from(self.timescale.max(1));
        ((u128::from(self.start) * 1_000_000 + den / 2) / den) as u64
    }
    /// `presentationTimeOffset` in another timescale.
    pub(super) fn offset_in(&self, timescale: u32) -> u64 {
        let den = u128::from(self.timescale.max(1));
        ((u128::from(self.start) * u128::from(timescale) + den / 2) / den) as u64
    }
}

/// One `S` element: `t`, `d`, repeats after the first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Run {
    pub(super) t: u64,
    pub(super) d: u64,
    pub(super) r: u32,
}

/// A rendition's segments in one Period.
pub(super) struct Listed<'a> {
    pub(super) window: &'a RenditionWindow,
    pub(super) init_version: u32,
    pub(super) start_number: u64,
    pub(super) timescale: u32,
    pub(super) runs: Vec<Run>,
}

/// Whether the MPD lists this segment: complete ones; in LL-DASH also the
/// newest while it is being written, once it has a part.
pub(super) fn listed(segments: &[SegmentEntry], i: usize, low_latency: bool) -> bool {
    let s = &segments[i];
    s.complete || (low_latency && i + 1 == segments.len() && !s.parts.is_empty())
}

pub(super) fn ticks(secs: f64, timescale: u32) -> u64 {
    (secs * f64::from(timescale)).round().max(0.0) as u64
}

/// The Periods of the reference rendition's window: where its listed
/// segments begin a run (a Period with nothing to list yet is left out).
pub(super) fn periods(reference: &RenditionWindow, low_latency: bool) -> Vec<Period> {
    let segs = &reference.segments;
    let Some(first) = segs.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        if !listed(segs, i, low_latency) {
            continue;
        }
        let breaks = i > 0 && (s.discontinuity || s.init_version != segs[i - 1].init_version);
        if out.is_empty() {
            // The oldest Period starts where its run did, listed or not.
            let mut run = i;
            while run > 0
                && !segs[run].discontinuity
                && segs[run].init_version == segs[run - 1].init_version
            {
                run -= 1;
            }
            let start = if run == 0 {
                reference.run_start.unwrap_or(first.start)
            } else {
                segs[run].start
            };
            out.push(Period {
                start,
                timescale: segs[run].timescale,
            });
        } else if breaks {
            out.push(Period {
                start: s.start,
                timescale: s.timescale,
            });
        }
    }
    out
}

/// The rendition's segments that fall in Period `k` (by media time, within
/// half a segment: the audio and each rung break at the same boundary), up
/// to its first change of init version (one `initialization` per Period).
pub(super) fn in_period<'a>(
    w: &'a RenditionWindow,
    periods: &[Period],
    k: usize,
    m: &Manifest,
) -> Option<Listed<'a>> {
    let tol = m.timing.segment_target / 2.0;
    let mut out: Option<Listed> = None;
    for (i, s) in w.segments.iter().enumerate() {
        if !listed(&w.segments, i, m.low_latency) {
            continue;
        }
        let secs = s.start as f64 / f64::from(s.timescale.max(1));
        let at = periods.iter().rposition(|p| p.secs() <= secs + tol);
        if at != Some(k) {
            continue;
        }
        let d = if s.complete {
            ticks(s.duration, s.timescale)
        } else {
            // Being written: announced at the segment target.
            ticks(m.timing.segment_target, s.timescale)
        };
        let l = out.get_or_insert(Listed {
            window: w,
            init_version: s.init_version,
            start_number: s.msn,
            timescale: s.timescale,
            runs: Vec::new(),
        });
        if l.init_version != s.init_version || l.timescale != s.timescale {
            break;
        }
        match l.runs.last_mut() {
            Some(run) if run.d == d && run.t + run.d * (u64::from(run.r) + 1) == s.start => {
                run.r += 1;
            }
            _ => l.runs.push(Run {
                t: s.start,
                d,
                r: 0,
            }),
        }
    }
    out
}

/// A rendition the MPD lists: live and with a complete segment (as the
/// multivariant playlist lists it).
pub(super) fn listable(w: &RenditionWindow) -> bool {
    !w.summary.ended && w.summary.measured_bps.is_some()
}
