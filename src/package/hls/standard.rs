//! Whole-segment playlists: standard HLS (LL segments grouped), the DVR
//! playlist over earlier runs, and a recording's VOD playlist.

use std::fmt::Write;

use super::names::{init_uri, long_segment_uri};
use super::segments::{iso8601, segment_head, SegmentEntry};

/// A standard-HLS segment made of `group` consecutive LL segments.
#[derive(Debug, Clone, PartialEq)]
pub struct LongSegment {
    pub n: u64,
    pub duration: f64,
    pub pdt_ms: u64,
    pub discontinuity: bool,
    pub init_version: u32,
}

/// Groups complete LL segments into standard-HLS segments: `n` covers msns
/// `n*group .. (n+1)*group`, and only whole groups are listed. A discontinuity
/// inside a group ends it there (one segment never spans a timeline break or
/// two init segments): the group is whole up to the break, the LL segments
/// from the break to the next group are left out of standard HLS, and the
/// next group carries the discontinuity.
pub fn long_segments(segments: &[SegmentEntry], group: u64) -> Vec<LongSegment> {
    let group = group.max(1);
    let mut out: Vec<LongSegment> = Vec::new();
    let mut members = 0;
    // The last group was cut short by a discontinuity inside it.
    let mut cut = false;
    let mut pending_discontinuity = false;
    for s in segments.iter().filter(|s| s.complete) {
        let n = s.msn / group;
        match out.last_mut() {
            Some(last) if last.n == n && cut => {}
            Some(last) if last.n == n && s.discontinuity => {
                cut = true;
                pending_discontinuity = true;
            }
            Some(last) if last.n == n => {
                last.duration += s.duration;
                members += 1;
            }
            _ => {
                if members != group && !cut && !out.is_empty() {
                    out.pop();
                }
                cut = false;
                if s.msn % group != 0 {
                    // The window starts inside this group: it is not whole.
                    members = 0;
                    pending_discontinuity |= s.discontinuity;
                    continue;
                }
                out.push(LongSegment {
                    n,
                    duration: s.duration,
                    pdt_ms: s.pdt_ms,
                    discontinuity: s.discontinuity || std::mem::take(&mut pending_discontinuity),
                    init_version: s.init_version,
                });
                members = 1;
            }
        }
    }
    if members != group && !cut {
        out.pop();
    }
    out
}

/// The head of a media playlist of whole segments (no parts): the standard
/// and DVR playlists.
fn whole_segments_head(
    o: &mut String,
    target: u64,
    media_sequence: u64,
    discontinuity_sequence: u64,
) {
    let _ = writeln!(o, "#EXTM3U");
    let _ = writeln!(o, "#EXT-X-VERSION:7");
    let _ = writeln!(o, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(o, "#EXT-X-MEDIA-SEQUENCE:{media_sequence}");
    let _ = writeln!(o, "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}");
}

/// The standard (non-LL) media playlist over whole groups; `prefix` as in
/// [`MediaPlaylist::prefix`](super::MediaPlaylist::prefix).
pub fn standard_playlist(
    segments: &[LongSegment],
    discontinuity_sequence: u64,
    ended: bool,
    prefix: &str,
) -> String {
    let target = segments
        .iter()
        .map(|s| s.duration.round() as u64)
        .max()
        .unwrap_or(6)
        .max(1);
    let mut o = String::with_capacity(1024);
    whole_segments_head(
        &mut o,
        target,
        segments.first().map_or(0, |s| s.n),
        discontinuity_sequence,
    );
    let mut map = None;
    for (i, s) in segments.iter().enumerate() {
        segment_head(
            &mut o,
            s.discontinuity && i > 0,
            s.init_version,
            s.pdt_ms,
            &mut map,
            prefix,
        );
        let _ = writeln!(o, "#EXTINF:{:.5},", s.duration);
        let _ = writeln!(o, "{prefix}{}", long_segment_uri(s.n));
    }
    if ended {
        let _ = writeln!(o, "#EXT-X-ENDLIST");
    }
    o
}

/// A run of a NAME's DVR timeline as a playlist lists it: its segments,
/// and the prefix of their URIs (`e{EPOCH}/`; `""` for a recording's flat
/// directory).
#[derive(Debug, Clone, Copy)]
pub struct DvrRun<'a> {
    pub prefix: &'a str,
    pub segments: &'a [SegmentEntry],
}

/// A DVR media playlist: every whole segment of the rewind window (earlier
/// runs of the NAME from disk, then this run's on disk, then those only in
/// RAM so far). A new run, or a segment whose number does not follow the
/// one before (one the disk lost), starts with a discontinuity, so a player
/// never plays across the hole as if it were not there. `media_sequence`
/// and `discontinuity_sequence` are the first segment's.
pub fn dvr_playlist(
    runs: &[DvrRun],
    media_sequence: u64,
    discontinuity_sequence: u64,
    ended: bool,
) -> String {
    whole_segments_playlist(runs, media_sequence, discontinuity_sequence, ended, false)
}

/// A recording's media playlist (live-to-VOD): every segment,
/// `EXT-X-PLAYLIST-TYPE:VOD` and `EXT-X-ENDLIST`.
pub fn vod_playlist(segments: &[SegmentEntry]) -> String {
    let first = segments.first().map_or(0, |s| s.msn);
    whole_segments_playlist(
        &[DvrRun {
            prefix: "",
            segments,
        }],
        first,
        0,
        true,
        true,
    )
}

fn whole_segments_playlist(
    runs: &[DvrRun],
    media_sequence: u64,
    discontinuity_sequence: u64,
    ended: bool,
    vod: bool,
) -> String {
    let all = || {
        runs.iter()
            .flat_map(|r| r.segments.iter().map(move |s| (r.prefix, s)))
    };
    let target = all()
        .map(|(_, s)| s.duration.round() as u64)
        .max()
        .unwrap_or(2)
        .max(1);
    let count = all().count();
    let mut o = String::with_capacity(64 * count + 256);
    whole_segments_head(&mut o, target, media_sequence, discontinuity_sequence);
    if vod {
        let _ = writeln!(o, "#EXT-X-PLAYLIST-TYPE:VOD");
    }
    let mut map = None;
    let mut prev: Option<(&str, &SegmentEntry)> = None;
    for (prefix, s) in all() {
        let tag =
            prev.is_some_and(|(p, last)| p != prefix || s.discontinuity || last.msn + 1 != s.msn);
        if tag {
            let _ = writeln!(o, "#EXT-X-DISCONTINUITY");
        }
        if map != Some((prefix, s.init_version)) {
            let _ = writeln!(o, "#EXT-X-MAP:URI=\"{prefix}{}\"", init_uri(s.init_version));
            map = Some((prefix, s.init_version));
        }
        let _ = writeln!(o, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(s.pdt_ms));
        let _ = writeln!(o, "#EXTINF:{:.5},", s.duration);
        let _ = writeln!(o, "{prefix}seg{}.m4s", s.msn);
        prev = Some((prefix, s));
    }
    if ended {
        let _ = writeln!(o, "#EXT-X-ENDLIST");
    }
    o
}
