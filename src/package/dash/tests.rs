use super::mpd::PROFILE_LL;
use super::text::{attr, duration, frame_rate};
use super::*;
use crate::package::hls::PartEntry;
use crate::package::hls::{RenditionSummary, SegmentEntry, Timing};
use crate::package::RenditionKind;

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
