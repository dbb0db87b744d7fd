//! LL-HLS media playlists: parts, preload hint, delta updates, rendition reports.

use std::fmt::Write;

use super::names::{part_uri, segment_uri};
use super::segments::{segment_head, SegmentEntry, Timing};

/// Another rendition's newest part, for `EXT-X-RENDITION-REPORT`.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionReport {
    pub uri: String,
    pub last_msn: u64,
    pub last_part: u32,
}

/// Everything an LL-HLS media playlist shows.
#[derive(Debug, Clone)]
pub struct MediaPlaylist<'a> {
    pub timing: Timing,
    /// Oldest first; the last one may be incomplete.
    pub segments: &'a [SegmentEntry],
    pub discontinuity_sequence: u64,
    pub reports: &'a [RenditionReport],
    /// Segments whose parts are listed: the last few (spec: ≥ those within
    /// PART-HOLD-BACK of the end).
    pub part_segments: usize,
    /// `_HLS_skip=YES|v2` was asked for.
    pub skip: bool,
    /// The stream has ended: `EXT-X-ENDLIST`, no preload hint.
    pub ended: bool,
    /// In front of every object URI: the run's directory (`e{EPOCH}/`), so
    /// a URI is never reused by a later run of the NAME and caches may keep
    /// it forever; `""` where the objects sit beside the playlist.
    pub prefix: &'a str,
}

/// How many leading segments a delta update skips: those that start more
/// than CAN-SKIP-UNTIL before the end of the playlist.
pub fn skippable(segments: &[SegmentEntry], timing: &Timing) -> usize {
    let total: f64 = segments.iter().map(|s| s.duration).sum();
    let mut start = 0.0;
    let mut n = 0;
    for s in segments {
        if !s.complete || total - start <= timing.can_skip_until() {
            break;
        }
        start += s.duration;
        n += 1;
    }
    n
}

/// The LL-HLS media playlist.
pub fn media_playlist(p: &MediaPlaylist) -> String {
    let t = &p.timing;
    let mut o = String::with_capacity(2048);
    let _ = writeln!(o, "#EXTM3U");
    let _ = writeln!(o, "#EXT-X-VERSION:9");
    let _ = writeln!(o, "#EXT-X-TARGETDURATION:{}", t.target_duration);
    let _ = writeln!(
        o,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={:.1},PART-HOLD-BACK={:.3},HOLD-BACK={:.1}",
        t.can_skip_until(),
        t.part_hold_back(),
        t.hold_back()
    );
    let _ = writeln!(o, "#EXT-X-PART-INF:PART-TARGET={:.5}", t.part_target);
    let first = p.segments.first().map_or(0, |s| s.msn);
    let _ = writeln!(o, "#EXT-X-MEDIA-SEQUENCE:{first}");
    let _ = writeln!(
        o,
        "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
        p.discontinuity_sequence
    );
    let skipped = if p.skip { skippable(p.segments, t) } else { 0 };
    if skipped > 0 {
        let _ = writeln!(o, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    }
    let parts_from = p.segments.len().saturating_sub(p.part_segments);
    let mut map: Option<u32> = None;
    for (i, s) in p.segments.iter().enumerate().skip(skipped) {
        segment_head(
            &mut o,
            s.discontinuity && i > 0,
            s.init_version,
            s.pdt_ms,
            &mut map,
            p.prefix,
        );
        if i >= parts_from {
            for (k, part) in s.parts.iter().enumerate() {
                let _ = write!(
                    o,
                    "#EXT-X-PART:DURATION={:.5},URI=\"{}{}\"",
                    part.duration,
                    p.prefix,
                    part_uri(s.msn, k as u32)
                );
                let _ = writeln!(
                    o,
                    "{}",
                    if part.independent {
                        ",INDEPENDENT=YES"
                    } else {
                        ""
                    }
                );
            }
        }
        if s.complete {
            let _ = writeln!(o, "#EXTINF:{:.5},", s.duration);
            let _ = writeln!(o, "{}{}", p.prefix, segment_uri(s.msn));
        }
    }
    if p.ended {
        let _ = writeln!(o, "#EXT-X-ENDLIST");
    } else {
        // Hint the part that comes next: the next segment's first once this
        // one is as long as a segment gets.
        let (msn, part) = match p.segments.last() {
            Some(s) if !s.complete && s.duration + t.part_target / 2.0 < t.segment_target => {
                (s.msn, s.parts.len() as u32)
            }
            Some(s) => (s.msn + 1, 0),
            None => (0, 0),
        };
        let _ = writeln!(
            o,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}{}\"",
            p.prefix,
            part_uri(msn, part)
        );
    }
    for r in p.reports {
        let _ = writeln!(
            o,
            "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={},LAST-PART={}",
            r.uri, r.last_msn, r.last_part
        );
    }
    o
}
