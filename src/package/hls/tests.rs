use super::*;

#[test]
fn object_names_round_trip_through_the_origin_grammar() {
    let names = [
        ObjectName::Init(0),
        ObjectName::Init(7),
        ObjectName::Part(0, 0),
        ObjectName::Part(12, 3),
        ObjectName::Part(u64::MAX, u32::MAX),
        ObjectName::Segment(0),
        ObjectName::Segment(123_456),
        ObjectName::Long(2),
    ];
    for n in names {
        assert_eq!(parse_object_name(&n.uri()), Some(n), "{}", n.uri());
    }
    for bad in [
        "seg07.m4s",
        "seg-1.m4s",
        "part1.m4s",
        "part1.2.3.m4s",
        "init.mp4",
        "seg1.mp4",
        "../seg1.m4s",
        "seg 1.m4s",
        "seg18446744073709551616.m4s",
        "long.m4s",
    ] {
        assert_eq!(parse_object_name(bad), None, "{bad}");
    }
}

#[test]
fn multivariant_lists_uris_the_origin_parses() {
    use crate::package::RenditionKind;
    let video = |name: &str, h: u32, nominal: u64| RenditionSummary {
        name: name.into(),
        codecs: "avc1.64001f".into(),
        kind: RenditionKind::Video {
            width: h * 16 / 9,
            height: h,
            fps: 30.0,
            nominal_bps: nominal,
        },
        measured_bps: Some((nominal * 9 / 10, nominal * 11 / 10)),
        ended: false,
    };
    let mut rs = vec![
        video("360p30", 360, 800_000),
        video("720p30", 720, 3_000_000),
        RenditionSummary {
            name: "audio".into(),
            codecs: "mp4a.40.2".into(),
            kind: RenditionKind::Audio {
                channels: 2,
                nominal_bps: 128_000,
            },
            measured_bps: Some((120_000, 130_000)),
            ended: false,
        },
    ];
    rs.push(RenditionSummary {
        measured_bps: None,
        ..video("480p30", 480, 1_500_000)
    });
    let text = multivariant(&rs, "index.m3u8", None).unwrap();
    // Highest first; a rendition without a whole segment is not listed yet.
    let uris: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    // The audio-only variant last, at the audio's own peak.
    assert_eq!(
        uris,
        ["720p30/index.m3u8", "360p30/index.m3u8", "audio/index.m3u8"]
    );
    assert!(text.contains("BANDWIDTH=3430000,"), "{text}");
    assert!(
        text.contains(
            "#EXT-X-STREAM-INF:BANDWIDTH=130000,AVERAGE-BANDWIDTH=120000,CODECS=\"mp4a.40.2\"\naudio/index.m3u8\n"
        ),
        "{text}"
    );
    assert!(text.contains("CODECS=\"avc1.64001f,mp4a.40.2\""), "{text}");
    assert!(text.contains("URI=\"audio/index.m3u8\""), "{text}");
    // Every URI a media playlist lists parses back to the object it names.
    let segments: Vec<_> = (0..4).map(|m| seg(m, 6, m < 3)).collect();
    let p = media_playlist(&MediaPlaylist {
        timing: TIMING,
        segments: &segments,
        discontinuity_sequence: 0,
        reports: &[],
        part_segments: 3,
        skip: false,
        ended: false,
        prefix: "",
    });
    let mut uris = 0;
    for line in p.lines() {
        let uri = match line.split_once("URI=\"") {
            Some((_, rest)) => rest.split('"').next().unwrap_or(""),
            None if !line.starts_with('#') && !line.is_empty() => line,
            None => continue,
        };
        uris += 1;
        let name = parse_object_name(uri).unwrap_or_else(|| panic!("{uri} does not parse"));
        assert_eq!(name.uri(), uri);
    }
    assert!(uris > 10, "{p}");
    let long = standard_playlist(&long_segments(&segments[..3], 3), 0, false, "");
    for line in long
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let uri = line
            .split_once("URI=\"")
            .map_or(line, |(_, r)| r.split('"').next().unwrap_or(""));
        assert!(parse_object_name(uri).is_some(), "{uri}");
    }
}

fn seg(msn: u64, parts: usize, complete: bool) -> SegmentEntry {
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
        start: 2 * 90_000 + msn * 2 * 90_000,
        timescale: 90_000,
    }
}

const TIMING: Timing = Timing {
    target_duration: 2,
    part_target: 1.0 / 3.0,
    segment_target: 2.0,
    media_epoch_ms: 1_764_028_798_000,
};

#[test]
fn iso8601_matches_known_instants() {
    assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso8601(1_764_028_800_123), "2025-11-25T00:00:00.123Z");
    assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
}

#[test]
fn ll_playlist_lines() {
    let segments = [seg(7, 6, true), seg(8, 2, false)];
    let reports = [RenditionReport {
        uri: "../360p30/playlist.m3u8".into(),
        last_msn: 8,
        last_part: 1,
    }];
    let text = media_playlist(&MediaPlaylist {
        timing: TIMING,
        segments: &segments,
        discontinuity_sequence: 0,
        reports: &reports,
        part_segments: 3,
        skip: false,
        ended: false,
        prefix: "",
    });
    let expected = "\
#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.000,HOLD-BACK=6.0
#EXT-X-PART-INF:PART-TARGET=0.33333
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init0.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2025-11-25T00:00:14.000Z
#EXT-X-PART:DURATION=0.33333,URI=\"part7.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"part7.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"part7.2.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"part7.3.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"part7.4.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"part7.5.m4s\"
#EXTINF:2.00000,
seg7.m4s
#EXT-X-PROGRAM-DATE-TIME:2025-11-25T00:00:16.000Z
#EXT-X-PART:DURATION=0.33333,URI=\"part8.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"part8.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part8.2.m4s\"
#EXT-X-RENDITION-REPORT:URI=\"../360p30/playlist.m3u8\",LAST-MSN=8,LAST-PART=1
";
    assert_eq!(text, expected);
}

/// Apple's rules, as assertions over a generated playlist.
#[test]
fn apple_rules_hold() {
    let segments: Vec<_> = (0..12)
        .map(|m| seg(m, 6, true))
        .chain([seg(12, 3, false)])
        .collect();
    let text = media_playlist(&MediaPlaylist {
        timing: TIMING,
        segments: &segments,
        discontinuity_sequence: 0,
        reports: &[],
        part_segments: 3,
        skip: false,
        ended: false,
        prefix: "",
    });
    // PART-HOLD-BACK ≥ 3 × PART-TARGET (we promise 3×); HOLD-BACK ≥ 3 × TD.
    assert!(TIMING.part_hold_back() >= 3.0 * TIMING.part_target);
    assert!(TIMING.hold_back() >= 3.0 * TIMING.target_duration as f64);
    // Every EXTINF rounds to ≤ TARGETDURATION; every part ≤ PART-TARGET.
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXTINF:") {
            let d: f64 = v.trim_end_matches(',').parse().unwrap();
            assert!(d.round() as u64 <= TIMING.target_duration);
        }
        if let Some(v) = line.strip_prefix("#EXT-X-PART:DURATION=") {
            let d: f64 = v.split(',').next().unwrap().parse().unwrap();
            assert!(d <= TIMING.part_target + 1e-5);
        }
    }
    // Parts only for the last few segments.
    assert!(!text.contains("part8.0"));
    assert!(text.contains("part10.0") && text.contains("part12.2"));
    // Exactly one preload hint, for the next part.
    assert_eq!(text.matches("PRELOAD-HINT").count(), 1);
    assert!(text.contains("URI=\"part12.3.m4s\""));
}

#[test]
fn delta_update_skips_all_but_the_last_can_skip_until() {
    let segments: Vec<_> = (0..12)
        .map(|m| seg(m, 6, true))
        .chain([seg(12, 3, false)])
        .collect();
    // 12 × 2 s + 1 s: segments starting more than 12 s before the end go.
    assert_eq!(skippable(&segments, &TIMING), 7);
    let text = media_playlist(&MediaPlaylist {
        timing: TIMING,
        segments: &segments,
        discontinuity_sequence: 0,
        reports: &[],
        part_segments: 3,
        skip: true,
        ended: false,
        prefix: "",
    });
    assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=7\n"));
    assert!(!text.contains("seg6.m4s") && text.contains("seg7.m4s"));
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0"));
    // Too short to skip anything.
    assert_eq!(skippable(&segments[..4], &TIMING), 0);
}

#[test]
fn long_segments_are_whole_groups() {
    let segments: Vec<_> = (1..11)
        .map(|m| seg(m, 6, true))
        .chain([seg(11, 2, false)])
        .collect();
    let long = long_segments(&segments, 3);
    // msn 1..2 is a partial group, 3..5, 6..8 whole, 9..10 incomplete.
    assert_eq!(long.iter().map(|l| l.n).collect::<Vec<_>>(), vec![1, 2]);
    assert!((long[0].duration - 6.0).abs() < 1e-9);
    let text = standard_playlist(&long, 0, false, "");
    assert!(text.contains("#EXT-X-TARGETDURATION:6\n"));
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:1\n"));
    assert!(text.contains("long2.m4s\n"));
}

/// A break inside a group ends that long segment at the break (bytes of
/// one init, one timeline); the next whole group carries the discontinuity.
#[test]
fn long_segments_end_at_a_discontinuity_inside_the_group() {
    let mut segments: Vec<_> = (0..10).map(|m| seg(m, 6, true)).collect();
    for s in &mut segments[4..] {
        s.init_version = 1;
    }
    segments[4].discontinuity = true;
    let long = long_segments(&segments, 3);
    // 0..2 whole; 3 then the break at 4: group 1 is seg3 alone; 4, 5 left
    // out; 6..8 whole, with the discontinuity and the new init; 9 open.
    assert_eq!(long.iter().map(|l| l.n).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!((long[1].duration - 2.0).abs() < 1e-9);
    assert_eq!(
        long.iter()
            .map(|l| (l.discontinuity, l.init_version))
            .collect::<Vec<_>>(),
        vec![(false, 0), (false, 0), (true, 1)]
    );
    let text = standard_playlist(&long, 0, false, "");
    assert!(text.contains("long1.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init1.mp4\"\n"));
    // A break on a group's first segment changes nothing but the flag.
    let mut segments: Vec<_> = (0..9).map(|m| seg(m, 6, true)).collect();
    segments[3].discontinuity = true;
    let long = long_segments(&segments, 3);
    assert_eq!(
        long.iter()
            .map(|l| (l.n, l.discontinuity))
            .collect::<Vec<_>>(),
        vec![(0, false), (1, true), (2, false)]
    );
}

/// A timestamp reset: the segment after it carries EXT-X-DISCONTINUITY,
/// and evicted discontinuities count in DISCONTINUITY-SEQUENCE.
#[test]
fn discontinuity_tags() {
    let mut segments = vec![seg(4, 6, true), seg(5, 6, true), seg(6, 2, false)];
    segments[1].discontinuity = true;
    let text = media_playlist(&MediaPlaylist {
        timing: TIMING,
        segments: &segments,
        discontinuity_sequence: 2,
        reports: &[],
        part_segments: 3,
        skip: false,
        ended: false,
        prefix: "",
    });
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:2\n"));
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    let at = text.find("#EXT-X-DISCONTINUITY\n").unwrap();
    assert!(text[at..].find("part5.0").unwrap() < text[at..].find("part6.0").unwrap());
    assert!(text[..at].contains("seg4.m4s") && !text[..at].contains("part5.0"));
}

#[test]
fn multivariant_lines() {
    let v = Variant {
        uri: "360p30/playlist.m3u8".into(),
        bandwidth: 1_100_000,
        average_bandwidth: 928_000,
        codecs: "avc1.42c01e,mp4a.40.2".into(),
        video: Some(VideoFormat {
            width: 640,
            height: 360,
            frame_rate: 30.0,
        }),
    };
    let audio_only = Variant {
        uri: "audio/playlist.m3u8".into(),
        bandwidth: 140_000,
        average_bandwidth: 130_000,
        codecs: "mp4a.40.2".into(),
        video: None,
    };
    let a = AudioMedia {
        uri: "audio/playlist.m3u8".into(),
        channels: 2,
    };
    assert_eq!(
        multivariant_playlist(&[v, audio_only], Some(&a), None),
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/playlist.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=1100000,AVERAGE-BANDWIDTH=928000,CODECS=\"avc1.42c01e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO=\"aud\"\n\
360p30/playlist.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=140000,AVERAGE-BANDWIDTH=130000,CODECS=\"mp4a.40.2\"\n\
audio/playlist.m3u8\n"
    );
}

/// Steering: every variant once per pathway, under the CDN's address,
/// with its own audio group; the steering tag names the first pathway.
#[test]
fn multivariant_with_pathways() {
    let v = Variant {
        uri: "360p30/playlist.m3u8".into(),
        bandwidth: 1_100_000,
        average_bandwidth: 928_000,
        codecs: "avc1.42c01e,mp4a.40.2".into(),
        video: Some(VideoFormat {
            width: 640,
            height: 360,
            frame_rate: 30.0,
        }),
    };
    let a = AudioMedia {
        uri: "audio/playlist.m3u8".into(),
        channels: 2,
    };
    let pathways = [
        (
            "cdn-a".to_string(),
            "https://a.example/live/cam/".to_string(),
        ),
        (
            "cdn-b".to_string(),
            "http://b.example:6081/live/cam/".to_string(),
        ),
    ];
    let text = multivariant_playlist(
        &[v],
        Some(&a),
        Some(Steering {
            server_uri: "steering.json",
            pathways: &pathways,
        }),
    );
    assert_eq!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-CONTENT-STEERING:SERVER-URI=\"steering.json\",PATHWAY-ID=\"cdn-a\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-cdn-a\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"https://a.example/live/cam/audio/playlist.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=1100000,AVERAGE-BANDWIDTH=928000,CODECS=\"avc1.42c01e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO=\"aud-cdn-a\",PATHWAY-ID=\"cdn-a\",STABLE-VARIANT-ID=\"360p30\"\n\
https://a.example/live/cam/360p30/playlist.m3u8\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-cdn-b\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"http://b.example:6081/live/cam/audio/playlist.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=1100000,AVERAGE-BANDWIDTH=928000,CODECS=\"avc1.42c01e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO=\"aud-cdn-b\",PATHWAY-ID=\"cdn-b\",STABLE-VARIANT-ID=\"360p30\"\n\
http://b.example:6081/live/cam/360p30/playlist.m3u8\n"
    );
}

/// A recording's playlist: VOD type, every segment, the end; a segment
/// that starts a new timeline is marked, as in the live one.
#[test]
fn vod_playlist_is_whole_and_ended() {
    let mut segs: Vec<SegmentEntry> = (4..8).map(|m| seg(m, 6, true)).collect();
    segs[2].discontinuity = true;
    let text = vod_playlist(&segs);
    assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n"), "{text}");
    assert!(text.ends_with("seg7.m4s\n#EXT-X-ENDLIST\n"), "{text}");
    assert_eq!(text.matches("#EXTINF:2.00000,").count(), 4, "{text}");
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    let runs = [DvrRun {
        prefix: "",
        segments: &segs,
    }];
    assert!(!dvr_playlist(&runs, 4, 0, false).contains("PLAYLIST-TYPE"));
}

/// A NAME's earlier run and the current one in one DVR playlist: the
/// earlier run's URIs (segments and init) under `e{EPOCH}/`, a
/// discontinuity where the current run starts, and the sequences given.
#[test]
fn dvr_playlist_carries_earlier_runs() {
    let old: Vec<SegmentEntry> = (40..43).map(|m| seg(m, 6, true)).collect();
    let new: Vec<SegmentEntry> = (0..2).map(|m| seg(m, 6, true)).collect();
    let runs = [
        DvrRun {
            prefix: "e1764028800000/",
            segments: &old,
        },
        DvrRun {
            prefix: "",
            segments: &new,
        },
    ];
    let text = dvr_playlist(&runs, 1040, 3, false);
    assert!(
        text.contains("#EXT-X-MEDIA-SEQUENCE:1040\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n"),
        "{text}"
    );
    assert!(
        text.contains("#EXT-X-MAP:URI=\"e1764028800000/init0.mp4\"\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "\ne1764028800000/seg42.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init0.mp4\"\n"
        ),
        "{text}"
    );
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    assert_eq!(text.matches("#EXTINF:").count(), 5, "{text}");
    assert!(text.ends_with("\nseg1.m4s\n"), "{text}");
}
