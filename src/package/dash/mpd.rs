//! The MPD text: profiles, timing, Periods, AdaptationSets, SegmentTemplates.

use std::fmt::Write;

use super::periods::{in_period, Listed, Period, RunView};
use super::text::{attr, decimal, duration, duration_micros, frame_rate};
use super::window::{Manifest, MpdError, RenditionWindow};
use crate::package::hls::{iso8601, video_peak_bps, Timing};
use crate::package::published::RenditionKind;

const PROFILE_LIVE: &str = "urn:mpeg:dash:profile:isoff-live:2011";

pub(super) const PROFILE_LL: &str = "http://www.dashif.org/guidelines/low-latency-live-v5";

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
            iso8601(t.media_epoch_ms),
            iso8601(m.now_ms)
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
