//! DASH and LL-DASH: a dynamic MPD over the same CMAF objects LL-HLS serves
//! (`RENDITION/init{v}.mp4`, `RENDITION/seg{msn}.m4s`). Sans-IO: a
//! description of each rendition's window and `now` in, MPD text out.
//!
//! Timeline: every rendition's decode times count from one instant (the
//! stream's media epoch, [`Timing::media_epoch_ms`]), which is the MPD's
//! `availabilityStartTime`; each Period's `start` equals its
//! `presentationTimeOffset`, so a segment's presentation time is its media
//! time and its wall-clock time its PROGRAM-DATE-TIME, in every Period.
//!
//! Periods: one per continuous run of the reference rendition (the first
//! video rendition listed): a segment with a discontinuity, or with a new
//! init version, starts a new Period. A Period keeps its `start` and `id` on
//! every refresh while any of its segments is in the window (the store keeps
//! the start of the oldest run once its first segment is evicted).

use std::fmt::Write;

use super::hls::{video_peak_bps, RenditionSummary, SegmentEntry, Timing};
use super::RenditionKind;

/// One rendition and its window, as the MPD needs them.
#[derive(Debug, Clone)]
pub struct RenditionWindow {
    pub summary: RenditionSummary,
    /// Oldest first; the last one may be incomplete.
    pub segments: Vec<SegmentEntry>,
    /// Media start of the run the oldest segment belongs to, when that run
    /// began at an evicted segment (`None`: the oldest segment starts it).
    pub run_start: Option<u64>,
}

/// Everything an MPD shows.
#[derive(Debug, Clone)]
pub struct Manifest<'a> {
    pub timing: Timing,
    /// Video renditions first (the first is the reference), then audio.
    pub renditions: &'a [RenditionWindow],
    /// The store's window: `timeShiftBufferDepth`.
    pub window_secs: f64,
    /// Wall-clock now (Unix ms): `publishTime`.
    pub now_ms: u64,
    /// LL-DASH: `availabilityTimeOffset`, `ServiceDescription`, and the
    /// segment being written listed (it is served as its parts land).
    pub low_latency: bool,
    /// The audio AdaptationSet alone (the audio-only choice): Periods still
    /// follow the video reference, so they match the full MPD's.
    pub audio_only: bool,
    /// A recording (live-to-VOD): a static MPD over every segment, its
    /// first Period at 0 and `mediaPresentationDuration`; no live timing.
    pub vod: bool,
    /// The `UTCTiming` (http-iso) URL (dynamic MPDs).
    pub utc_timing: &'a str,
    /// Earlier runs of the stream's NAME (the DVR MPD of a resumed NAME),
    /// oldest first, each in Periods of its own before `renditions`'.
    pub earlier: &'a [EarlierRun<'a>],
    /// How far `renditions`' media epoch lies after `timing.media_epoch_ms`
    /// (the `availabilityStartTime`; ms): 0 but in a DVR MPD whose chain
    /// began with an earlier run.
    pub offset_ms: u64,
    /// In front of `renditions`' object URIs (under `$RepresentationID$/`):
    /// the run's directory `e{EPOCH}/` live (a later run of the NAME never
    /// reuses a URI), `""` for a recording.
    pub prefix: &'a str,
    /// Content steering: a `BaseURL` per pathway (`serviceLocation`, the
    /// stream's directory on that CDN) and `<ContentSteering>`.
    pub steering: Option<super::hls::Steering<'a>>,
}

/// An earlier run of a NAME in a DVR MPD: its own media timeline (counted
/// from its own epoch, `offset_ms` after the `availabilityStartTime`) and
/// its objects under `$RepresentationID$/{prefix}`.
#[derive(Debug, Clone)]
pub struct EarlierRun<'a> {
    pub offset_ms: u64,
    /// `e{EPOCH}/`.
    pub prefix: &'a str,
    pub renditions: &'a [RenditionWindow],
}

/// Why no MPD can be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MpdError {
    /// No video rendition has a complete segment yet (or every one ended).
    #[error("no video rendition of the stream has a complete segment")]
    NoVideo,
    /// dash.js 5.2 fails on `<UTCTiming value="">`.
    #[error("the UTCTiming URL is empty")]
    NoUtcTiming,
}

const PROFILE_LIVE: &str = "urn:mpeg:dash:profile:isoff-live:2011";
const PROFILE_LL: &str = "http://www.dashif.org/guidelines/low-latency-live-v5";
const UTC_HTTP_ISO: &str = "urn:mpeg:dash:utc:http-iso:2014";
const AUDIO_CHANNELS: &str = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011";

/// LL-DASH `ServiceDescription` latency (ms): (target, min, max). The target
/// is three parts plus half a second (1.5 s with 1/3 s parts).
pub fn latency_ms(timing: &Timing) -> (u64, u64, u64) {
    let part = timing.part_target.max(0.0);
    let target = ((3.0 * part + 0.5) * 1000.0).round() as u64;
    let min = ((3.0 * part) * 1000.0).round() as u64;
    (target, min, 2 * target)
}

/// `availabilityTimeOffset`: a segment can be fetched once its first part
/// is published, a segment less a part before it is complete.
pub fn availability_time_offset(timing: &Timing) -> f64 {
    (timing.segment_target - timing.part_target).max(0.0)
}

/// A Period: a continuous run of the reference rendition.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Period {
    /// Media start on the reference rendition's timeline.
    start: u64,
    timescale: u32,
}

/// One run's renditions and Periods in an MPD.
struct RunView<'a> {
    /// Its media epoch after the `availabilityStartTime`.
    offset_micros: u64,
    prefix: &'a str,
    video: Vec<&'a RenditionWindow>,
    audio: Vec<&'a RenditionWindow>,
    periods: Vec<Period>,
}

impl<'a> RunView<'a> {
    fn of(
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
    fn secs(&self) -> f64 {
        self.start as f64 / f64::from(self.timescale.max(1))
    }
    fn start_micros(&self) -> u64 {
        let den = u128::from(self.timescale.max(1));
        ((u128::from(self.start) * 1_000_000 + den / 2) / den) as u64
    }
    /// `presentationTimeOffset` in another timescale.
    fn offset_in(&self, timescale: u32) -> u64 {
        let den = u128::from(self.timescale.max(1));
        ((u128::from(self.start) * u128::from(timescale) + den / 2) / den) as u64
    }
}

/// One `S` element: `t`, `d`, repeats after the first.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    t: u64,
    d: u64,
    r: u32,
}

/// A rendition's segments in one Period.
struct Listed<'a> {
    window: &'a RenditionWindow,
    init_version: u32,
    start_number: u64,
    timescale: u32,
    runs: Vec<Run>,
}

/// Whether the MPD lists this segment: complete ones; in LL-DASH also the
/// newest while it is being written, once it has a part.
fn listed(segments: &[SegmentEntry], i: usize, low_latency: bool) -> bool {
    let s = &segments[i];
    s.complete || (low_latency && i + 1 == segments.len() && !s.parts.is_empty())
}

fn ticks(secs: f64, timescale: u32) -> u64 {
    (secs * f64::from(timescale)).round().max(0.0) as u64
}

/// The Periods of the reference rendition's window: where its listed
/// segments begin a run (a Period with nothing to list yet is left out).
fn periods(reference: &RenditionWindow, low_latency: bool) -> Vec<Period> {
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
fn in_period<'a>(
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

/// `xs:duration` of a whole number of micro-seconds, trailing zeros trimmed.
fn duration_micros(micros: u64) -> String {
    let (s, frac) = (micros / 1_000_000, micros % 1_000_000);
    if frac == 0 {
        format!("PT{s}S")
    } else {
        let f = format!("{frac:06}");
        format!("PT{s}.{}S", f.trim_end_matches('0'))
    }
}

fn duration(secs: f64) -> String {
    duration_micros((secs.max(0.0) * 1e6).round() as u64)
}

/// A decimal of a whole number of micro-units, trailing zeros trimmed.
fn decimal(v: f64) -> String {
    let micros = (v.max(0.0) * 1e6).round() as u64;
    let (i, frac) = (micros / 1_000_000, micros % 1_000_000);
    if frac == 0 {
        format!("{i}")
    } else {
        let f = format!("{frac:06}");
        format!("{i}.{}", f.trim_end_matches('0'))
    }
}

/// `FrameRateType`: an integer, or a fraction (29.97 is `30000/1001`).
fn frame_rate(fps: f64) -> String {
    let milli = (fps * 1000.0).round() as u64;
    if milli % 1000 == 0 {
        return format!("{}", milli / 1000);
    }
    let ntsc = (fps * 1.001).round();
    if ntsc > 0.0 && (ntsc / 1.001 - fps).abs() < 0.005 {
        return format!("{}/1001", ntsc as u64 * 1000);
    }
    format!("{milli}/1000")
}

/// Attribute text: names and codecs come from the configuration and the
/// stream, never markup.
fn attr(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// A rendition the MPD lists: live and with a complete segment (as the
/// multivariant playlist lists it).
fn listable(w: &RenditionWindow) -> bool {
    !w.summary.ended && w.summary.measured_bps.is_some()
}

fn bandwidth(w: &RenditionWindow) -> u64 {
    match w.summary.kind {
        RenditionKind::Video { nominal_bps, .. } => w
            .summary
            .measured_bps
            .map_or(nominal_bps, |m| video_peak_bps(m, nominal_bps)),
        RenditionKind::Audio { nominal_bps, .. } => {
            w.summary.measured_bps.map_or(nominal_bps, |m| m.1)
        }
    }
}

fn segment_template(o: &mut String, l: &Listed, period: &Period, prefix: &str, m: &Manifest) {
    let _ = write!(
        o,
        "        <SegmentTemplate timescale=\"{}\" presentationTimeOffset=\"{}\" initialization=\"$RepresentationID$/{prefix}init{}.mp4\" media=\"$RepresentationID$/{prefix}seg$Number$.m4s\" startNumber=\"{}\"",
        l.timescale,
        period.offset_in(l.timescale),
        l.init_version,
        l.start_number
    );
    if m.low_latency {
        let _ = write!(
            o,
            " availabilityTimeOffset=\"{}\" availabilityTimeComplete=\"false\"",
            decimal(availability_time_offset(&m.timing))
        );
    }
    let _ = writeln!(o, ">");
    let _ = writeln!(o, "          <SegmentTimeline>");
    let mut expected = None;
    for run in &l.runs {
        let _ = write!(o, "            <S");
        if expected != Some(run.t) {
            let _ = write!(o, " t=\"{}\"", run.t);
        }
        let _ = write!(o, " d=\"{}\"", run.d);
        if run.r > 0 {
            let _ = write!(o, " r=\"{}\"", run.r);
        }
        let _ = writeln!(o, "/>");
        expected = Some(run.t + run.d * (u64::from(run.r) + 1));
    }
    let _ = writeln!(o, "          </SegmentTimeline>");
    let _ = writeln!(o, "        </SegmentTemplate>");
}

/// The dynamic MPD of a stream.
pub fn manifest(m: &Manifest) -> Result<String, MpdError> {
    if m.utc_timing.is_empty() && !m.vod {
        return Err(MpdError::NoUtcTiming);
    }
    let mut runs: Vec<RunView> = m
        .earlier
        .iter()
        .map(|e| RunView::of(e.renditions, e.offset_ms, e.prefix, m.low_latency))
        .filter(|r| !r.periods.is_empty())
        .collect();
    let current = RunView::of(m.renditions, m.offset_ms, m.prefix, m.low_latency);
    if current.periods.is_empty() {
        return Err(MpdError::NoVideo);
    }
    runs.push(current);
    let t = &m.timing;
    let max_segment = runs
        .iter()
        .flat_map(|r| r.video.iter().chain(&r.audio))
        .flat_map(|w| w.segments.iter().filter(|s| s.complete))
        .map(|s| s.duration)
        .fold(t.segment_target, f64::max);
    let (target, min, max) = latency_ms(t);
    let mut o = String::with_capacity(4096);
    let _ = writeln!(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = write!(o, "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"");
    if m.low_latency {
        let _ = write!(o, " profiles=\"{PROFILE_LIVE},{PROFILE_LL}\"");
    } else {
        let _ = write!(o, " profiles=\"{PROFILE_LIVE}\"");
    }
    // A static MPD's Periods count from its first one.
    let origin_micros = if m.vod {
        runs[0].offset_micros + runs[0].periods.first().map_or(0, Period::start_micros)
    } else {
        0
    };
    if m.vod {
        let last = &runs[runs.len() - 1];
        let end = last
            .video
            .iter()
            .chain(&last.audio)
            .filter_map(|w| w.segments.iter().rev().find(|s| s.complete))
            .map(|s| {
                let ts = u128::from(s.timescale.max(1));
                last.offset_micros
                    + (u128::from(s.start) * 1_000_000 / ts) as u64
                    + (s.duration * 1e6).round() as u64
            })
            .max()
            .unwrap_or(origin_micros);
        let _ = writeln!(
            o,
            " type=\"static\" mediaPresentationDuration=\"{}\" maxSegmentDuration=\"{}\" minBufferTime=\"{}\">",
            duration_micros(end.saturating_sub(origin_micros)),
            duration(max_segment),
            duration(t.segment_target)
        );
    } else {
        let _ = write!(
            o,
            " type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\"",
            super::hls::iso8601(t.media_epoch_ms),
            super::hls::iso8601(m.now_ms)
        );
        let (update, delay, buffer) = if m.low_latency {
            (t.part_target, target as f64 / 1000.0, t.part_hold_back())
        } else {
            (t.segment_target, t.hold_back(), t.segment_target)
        };
        let _ = writeln!(
            o,
            " minimumUpdatePeriod=\"{}\" timeShiftBufferDepth=\"{}\" suggestedPresentationDelay=\"{}\" maxSegmentDuration=\"{}\" minBufferTime=\"{}\">",
            duration(update),
            duration(m.window_secs),
            duration(delay),
            duration(max_segment),
            duration(buffer)
        );
    }
    if let Some(st) = m.steering.filter(|s| !s.pathways.is_empty()) {
        for (id, base) in st.pathways {
            let _ = writeln!(
                o,
                "  <BaseURL serviceLocation=\"{}\">{}</BaseURL>",
                attr(id),
                attr(base)
            );
        }
        // DASH-IF content steering (ISO/IEC 23009-1 6th edition): dash.js
        // asks the server which `serviceLocation` to use.
        let _ = writeln!(
            o,
            "  <ContentSteering defaultServiceLocation=\"{}\" queryBeforeStart=\"false\">{}</ContentSteering>",
            attr(&st.pathways[0].0),
            attr(st.server_uri)
        );
    }
    if m.low_latency {
        let _ = writeln!(o, "  <ServiceDescription id=\"0\">");
        let _ = writeln!(
            o,
            "    <Latency target=\"{target}\" min=\"{min}\" max=\"{max}\"/>"
        );
        let _ = writeln!(o, "    <PlaybackRate min=\"0.96\" max=\"1.04\"/>");
        let _ = writeln!(o, "  </ServiceDescription>");
    }
    for run in &runs {
        for (k, period) in run.periods.iter().enumerate() {
            let start_micros = run.offset_micros + period.start_micros();
            let _ = writeln!(
                o,
                "  <Period id=\"p{}\" start=\"{}\">",
                start_micros / 1000,
                duration_micros(start_micros - origin_micros)
            );
            let videos: Vec<Listed> = run
                .video
                .iter()
                .filter_map(|w| in_period(w, &run.periods, k, m))
                .collect();
            if !videos.is_empty() && !m.audio_only {
                let _ = writeln!(
                o,
                "    <AdaptationSet id=\"0\" contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">"
            );
                for l in &videos {
                    let s = &l.window.summary;
                    let RenditionKind::Video {
                        width, height, fps, ..
                    } = s.kind
                    else {
                        continue;
                    };
                    let _ = writeln!(
                    o,
                    "      <Representation id=\"{}\" bandwidth=\"{}\" codecs=\"{}\" width=\"{width}\" height=\"{height}\" frameRate=\"{}\">",
                    attr(&s.name),
                    bandwidth(l.window),
                    attr(&s.codecs),
                    frame_rate(fps)
                );
                    segment_template(&mut o, l, period, run.prefix, m);
                    let _ = writeln!(o, "      </Representation>");
                }
                let _ = writeln!(o, "    </AdaptationSet>");
            }
            let audios: Vec<Listed> = run
                .audio
                .iter()
                .filter_map(|w| in_period(w, &run.periods, k, m))
                .collect();
            if !audios.is_empty() {
                let _ = writeln!(
                o,
                "    <AdaptationSet id=\"1\" contentType=\"audio\" mimeType=\"audio/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">"
            );
                for l in &audios {
                    let s = &l.window.summary;
                    let RenditionKind::Audio { channels, .. } = s.kind else {
                        continue;
                    };
                    let _ = writeln!(
                    o,
                    "      <Representation id=\"{}\" bandwidth=\"{}\" codecs=\"{}\" audioSamplingRate=\"{}\">",
                    attr(&s.name),
                    bandwidth(l.window),
                    attr(&s.codecs),
                    l.timescale
                );
                    let _ = writeln!(
                    o,
                    "        <AudioChannelConfiguration schemeIdUri=\"{AUDIO_CHANNELS}\" value=\"{channels}\"/>"
                );
                    segment_template(&mut o, l, period, run.prefix, m);
                    let _ = writeln!(o, "      </Representation>");
                }
                let _ = writeln!(o, "    </AdaptationSet>");
            }
            let _ = writeln!(o, "  </Period>");
        }
    }
    if !m.vod {
        let _ = writeln!(
            o,
            "  <UTCTiming schemeIdUri=\"{UTC_HTTP_ISO}\" value=\"{}\"/>",
            attr(m.utc_timing)
        );
    }
    let _ = writeln!(o, "</MPD>");
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::hls::PartEntry;

    const TIMING: Timing = Timing {
        target_duration: 2,
        part_target: 1.0 / 3.0,
        segment_target: 2.0,
        media_epoch_ms: 1_764_028_798_000,
    };

    /// Segment `msn` of 2 s (6 parts; `parts` of them when incomplete),
    /// starting at media time 2 s + 2 s × msn.
    fn seg(msn: u64, timescale: u32, complete: bool, parts: usize) -> SegmentEntry {
        SegmentEntry {
            msn,
            duration: parts as f64 / 3.0,
            pdt_ms: 1_764_028_800_000 + msn * 2000,
            discontinuity: false,
            init_version: 0,
            parts: (0..parts)
                .map(|i| PartEntry {
                    duration: 1.0 / 3.0,
                    independent: i == 0,
                })
                .collect(),
            complete,
            start: (2 + 2 * msn) * u64::from(timescale),
            timescale,
        }
    }

    fn video(name: &str, segments: Vec<SegmentEntry>) -> RenditionWindow {
        RenditionWindow {
            summary: RenditionSummary {
                name: name.into(),
                codecs: "avc1.42c01e".into(),
                kind: RenditionKind::Video {
                    width: 640,
                    height: 360,
                    fps: 30.0,
                    nominal_bps: 800_000,
                },
                measured_bps: Some((700_000, 900_000)),
                ended: false,
            },
            segments,
            run_start: None,
        }
    }

    fn audio(segments: Vec<SegmentEntry>) -> RenditionWindow {
        RenditionWindow {
            summary: RenditionSummary {
                name: "audio".into(),
                codecs: "mp4a.40.2".into(),
                kind: RenditionKind::Audio {
                    channels: 2,
                    nominal_bps: 128_000,
                },
                measured_bps: Some((120_000, 130_000)),
                ended: false,
            },
            segments,
            run_start: None,
        }
    }

    fn mpd(renditions: &[RenditionWindow], low_latency: bool) -> String {
        mpd_with(renditions, low_latency, false, false)
    }

    /// A recording's MPD needs no `UTCTiming`: it gets none here.
    fn mpd_with(
        renditions: &[RenditionWindow],
        low_latency: bool,
        audio_only: bool,
        vod: bool,
    ) -> String {
        manifest(&Manifest {
            timing: TIMING,
            renditions,
            window_secs: 30.0,
            now_ms: 1_764_028_808_500,
            low_latency,
            audio_only,
            vod,
            utc_timing: if vod { "" } else { "/time" },
            earlier: &[],
            offset_ms: 0,
            prefix: "",
            steering: None,
        })
        .unwrap()
    }

    /// Steering: a BaseURL per pathway, then `<ContentSteering>` naming the first.
    #[test]
    fn steering_lists_a_base_url_per_pathway() {
        let v: Vec<_> = (0..3).map(|m| seg(m, 90_000, true, 6)).collect();
        let windows = [video("360p30", v)];
        let pathways = [
            (
                "cdn-a".to_string(),
                "https://a.example/live/cam/".to_string(),
            ),
            (
                "cdn-b".to_string(),
                "http://b.example/live/cam/?x&y".to_string(),
            ),
        ];
        let text = manifest(&Manifest {
            timing: TIMING,
            renditions: &windows,
            window_secs: 30.0,
            now_ms: 1_764_028_808_500,
            low_latency: false,
            audio_only: false,
            vod: false,
            utc_timing: "/time",
            earlier: &[],
            offset_ms: 0,
            prefix: "",
            steering: Some(crate::package::hls::Steering {
                server_uri: "steering.json",
                pathways: &pathways,
            }),
        })
        .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2..5],
            [
                "  <BaseURL serviceLocation=\"cdn-a\">https://a.example/live/cam/</BaseURL>",
                "  <BaseURL serviceLocation=\"cdn-b\">http://b.example/live/cam/?x&amp;y</BaseURL>",
                "  <ContentSteering defaultServiceLocation=\"cdn-a\" queryBeforeStart=\"false\">steering.json</ContentSteering>",
            ],
            "{text}"
        );
    }

    #[test]
    fn small_mpd_byte_exact() {
        let v: Vec<_> = (0..3).map(|m| seg(m, 90_000, true, 6)).collect();
        let a: Vec<_> = (0..3).map(|m| seg(m, 48_000, true, 6)).collect();
        let text = mpd(&[video("360p30", v), audio(a)], false);
        let expected = r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="dynamic" availabilityStartTime="2025-11-24T23:59:58.000Z" publishTime="2025-11-25T00:00:08.500Z" minimumUpdatePeriod="PT2S" timeShiftBufferDepth="PT30S" suggestedPresentationDelay="PT6S" maxSegmentDuration="PT2S" minBufferTime="PT2S">
  <Period id="p2000" start="PT2S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="360p30" bandwidth="900000" codecs="avc1.42c01e" width="640" height="360" frameRate="30">
        <SegmentTemplate timescale="90000" presentationTimeOffset="180000" initialization="$RepresentationID$/init0.mp4" media="$RepresentationID$/seg$Number$.m4s" startNumber="0">
          <SegmentTimeline>
            <S t="180000" d="180000" r="2"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="audio" bandwidth="130000" codecs="mp4a.40.2" audioSamplingRate="48000">
        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
        <SegmentTemplate timescale="48000" presentationTimeOffset="96000" initialization="$RepresentationID$/init0.mp4" media="$RepresentationID$/seg$Number$.m4s" startNumber="0">
          <SegmentTimeline>
            <S t="96000" d="96000" r="2"/>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="/time"/>
</MPD>
"#;
        assert_eq!(text, expected);
    }

    /// A discontinuity (and the new init it brings) starts a second Period at
    /// the break's media time; each Period names its own init version, and
    /// the first keeps its start after its first segments are evicted.
    #[test]
    fn discontinuity_makes_two_periods() {
        let mut v: Vec<_> = (3..8).map(|m| seg(m, 90_000, true, 6)).collect();
        let mut a: Vec<_> = (3..8).map(|m| seg(m, 48_000, true, 6)).collect();
        for s in v[2..].iter_mut() {
            s.init_version = 1;
        }
        v[2].discontinuity = true;
        a[2].discontinuity = true;
        let mut vw = video("360p30", v);
        // The first run began at msn 0 (evicted).
        vw.run_start = Some(180_000);
        let text = mpd(&[vw, audio(a)], false);
        assert_eq!(text.matches("<Period ").count(), 2, "{text}");
        assert!(
            text.contains("<Period id=\"p2000\" start=\"PT2S\">"),
            "{text}"
        );
        assert!(
            text.contains("<Period id=\"p12000\" start=\"PT12S\">"),
            "{text}"
        );
        let second = &text[text.find("id=\"p12000\"").unwrap()..];
        let first = &text[..text.find("id=\"p12000\"").unwrap()];
        assert!(first.contains("init0.mp4") && !first.contains("init1.mp4"));
        // The video's new init; the audio (no new configuration) keeps its own.
        let (second_video, second_audio) = second.split_once("contentType=\"audio\"").unwrap();
        assert!(second_video.contains("init1.mp4") && !second_video.contains("init0.mp4"));
        assert!(second_audio.contains("init0.mp4"));
        // Presentation time = media time in each Period.
        assert!(first.contains("presentationTimeOffset=\"180000\" initialization=\"$RepresentationID$/init0.mp4\" media=\"$RepresentationID$/seg$Number$.m4s\" startNumber=\"3\""), "{first}");
        assert!(
            first.contains("<S t=\"720000\" d=\"180000\" r=\"1\"/>"),
            "{first}"
        );
        assert!(second.contains("presentationTimeOffset=\"1080000\" initialization=\"$RepresentationID$/init1.mp4\" media=\"$RepresentationID$/seg$Number$.m4s\" startNumber=\"5\""), "{second}");
        assert!(
            second.contains("<S t=\"1080000\" d=\"180000\" r=\"2\"/>"),
            "{second}"
        );
        // Audio follows the same Periods in its own timescale.
        assert!(
            second.contains("presentationTimeOffset=\"576000\""),
            "{second}"
        );
        assert!(
            second.contains("<S t=\"576000\" d=\"96000\" r=\"2\"/>"),
            "{second}"
        );
    }

    /// The audio-only MPD: the audio AdaptationSet alone, in the same
    /// Periods as the full MPD (a player given the full one and a filter
    /// mixed up the two sets: dash.js 5.2 switched its audio to a video rung).
    #[test]
    fn audio_only_lists_the_audio_set_in_the_same_periods() {
        let mut v: Vec<_> = (3..8).map(|m| seg(m, 90_000, true, 6)).collect();
        let mut a: Vec<_> = (3..8).map(|m| seg(m, 48_000, true, 6)).collect();
        v[2].discontinuity = true;
        a[2].discontinuity = true;
        let windows = [video("360p30", v), audio(a)];
        let full = mpd(&windows, true);
        let only = mpd_with(&windows, true, true, false);
        assert!(
            !only.contains("contentType=\"video\"") && !only.contains("360p30"),
            "{only}"
        );
        assert_eq!(only.matches("contentType=\"audio\"").count(), 2, "{only}");
        let periods = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| l.contains("<Period "))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(periods(&only), periods(&full));
        // The audio set itself is the full MPD's, byte for byte.
        let audio_sets = |t: &str| -> Vec<String> {
            t.split("<AdaptationSet ")
                .filter(|s| s.contains("contentType=\"audio\""))
                .map(|s| s.split("</AdaptationSet>").next().unwrap_or("").to_owned())
                .collect()
        };
        assert_eq!(audio_sets(&only), audio_sets(&full));
    }

    /// A recording's MPD: static, no live timing, its first Period at 0
    /// and the presentation as long as the media; a discontinuity still
    /// starts a Period (at its offset from the first).
    #[test]
    fn a_recording_is_a_static_mpd_from_zero() {
        let mut v: Vec<_> = (3..8).map(|m| seg(m, 90_000, true, 6)).collect();
        let mut a: Vec<_> = (3..8).map(|m| seg(m, 48_000, true, 6)).collect();
        v[2].discontinuity = true;
        a[2].discontinuity = true;
        let windows = [video("360p30", v), audio(a)];
        let text = mpd_with(&windows, false, false, true);
        assert!(
            text.contains(" type=\"static\" mediaPresentationDuration=\"PT10S\""),
            "{text}"
        );
        for live in [
            "availabilityStartTime",
            "publishTime",
            "minimumUpdatePeriod",
            "timeShiftBufferDepth",
            "UTCTiming",
            "availabilityTimeOffset",
        ] {
            assert!(!text.contains(live), "{live}: {text}");
        }
        assert!(
            text.contains("<Period id=\"p8000\" start=\"PT0S\">"),
            "{text}"
        );
        assert!(
            text.contains("<Period id=\"p12000\" start=\"PT4S\">"),
            "{text}"
        );
        // Media time stays the segments' own.
        assert!(text.contains("presentationTimeOffset=\"720000\""), "{text}");
    }

    #[test]
    fn low_latency_attributes_only_in_ll_mode() {
        let v: Vec<_> = (0..3)
            .map(|m| seg(m, 90_000, true, 6))
            .chain([seg(3, 90_000, false, 2)])
            .collect();
        let windows = [video("360p30", v)];
        let standard = mpd(&windows, false);
        let ll = mpd(&windows, true);
        for marker in [
            "availabilityTimeOffset",
            "availabilityTimeComplete",
            "ServiceDescription",
            "<Latency",
            "PlaybackRate",
            PROFILE_LL,
        ] {
            assert!(
                !standard.contains(marker),
                "{marker} in standard:\n{standard}"
            );
            assert!(ll.contains(marker), "{marker} missing in LL:\n{ll}");
        }
        assert!(ll.contains(
            "startNumber=\"0\" availabilityTimeOffset=\"1.666667\" availabilityTimeComplete=\"false\">"
        ));
        assert!(ll.contains("<Latency target=\"1500\" min=\"1000\" max=\"3000\"/>"));
        assert!(ll.contains("<PlaybackRate min=\"0.96\" max=\"1.04\"/>"));
        assert!(ll.contains("minimumUpdatePeriod=\"PT0.333333S\""), "{ll}");
        // The segment being written: listed in LL-DASH (announced at the
        // target), not in standard DASH.
        assert!(
            ll.contains("<S t=\"180000\" d=\"180000\" r=\"3\"/>"),
            "{ll}"
        );
        assert!(standard.contains("<S t=\"180000\" d=\"180000\" r=\"2\"/>"));
    }

    #[test]
    fn nothing_to_list_is_an_error() {
        let mut w = video("360p30", vec![seg(0, 90_000, false, 2)]);
        w.summary.measured_bps = None;
        let m = |utc| Manifest {
            timing: TIMING,
            renditions: std::slice::from_ref(&w),
            window_secs: 30.0,
            now_ms: 0,
            low_latency: false,
            audio_only: false,
            vod: false,
            utc_timing: utc,
            earlier: &[],
            offset_ms: 0,
            prefix: "",
            steering: None,
        };
        assert_eq!(manifest(&m("/time")), Err(MpdError::NoVideo));
        assert_eq!(manifest(&m("")), Err(MpdError::NoUtcTiming));
    }

    #[test]
    fn frame_rates_and_durations() {
        assert_eq!(frame_rate(30.0), "30");
        assert_eq!(frame_rate(29.97), "30000/1001");
        assert_eq!(frame_rate(59.94), "60000/1001");
        assert_eq!(frame_rate(12.5), "12500/1000");
        assert_eq!(duration(2.0), "PT2S");
        assert_eq!(duration(1.0 / 3.0), "PT0.333333S");
        assert_eq!(duration(19.5), "PT19.5S");
        assert_eq!(attr("a\"<&"), "a&quot;&lt;&amp;");
    }
}
