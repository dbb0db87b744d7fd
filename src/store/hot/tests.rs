use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::package::chunker::Chunk;

/// A stream "cam" with one 360p30 video rendition (2 s segments, 1/3 s parts,
/// groups of 3 per standard segment) and its init, for tests here and in origin.
pub(crate) fn test_stream(window_secs: f64) -> (Arc<StreamMedia>, Arc<Rendition>) {
    let store = HotStore::new(window_secs);
    let media = store.open(
        "cam",
        1,
        Timing {
            target_duration: 2,
            part_target: 1.0 / 3.0,
            segment_target: 2.0,
            media_epoch_ms: 0,
        },
        3,
    );
    let r = media.add(
        "360p30",
        "avc1.42c01e".into(),
        RenditionKind::Video {
            width: 640,
            height: 360,
            fps: 30.0,
            nominal_bps: 800_000,
        },
    );
    r.set_init(Bytes::from_static(b"init"));
    (media, r)
}

/// Publishes segment `msn` of `r` whole: 2 s, one independent part of four
/// bytes, each `msn as u8`.
pub(crate) fn test_segment(r: &Rendition, msn: u64) {
    r.publish_now(Chunk::SegmentStart {
        msn,
        pdt_ms: 0,
        discontinuity: false,
        start: msn * 180_000,
        timescale: 90_000,
    });
    r.publish_now(Chunk::Part {
        msn,
        index: 0,
        independent: true,
        duration: 2.0,
        data: Bytes::from(vec![msn as u8; 4]),
        frames: Vec::new(),
    });
    r.publish_now(Chunk::SegmentEnd { msn, duration: 2.0 });
}

fn rendition(window: f64) -> Arc<Rendition> {
    test_stream(window).1
}

fn segment(r: &Rendition, msn: u64, parts: u32) {
    r.publish_now(Chunk::SegmentStart {
        msn,
        pdt_ms: 0,
        discontinuity: false,
        start: msn * 180_000,
        timescale: 90_000,
    });
    for index in 0..parts {
        r.publish_now(Chunk::Part {
            msn,
            index,
            independent: index == 0,
            duration: 1.0 / 3.0,
            data: Bytes::from(vec![msn as u8, index as u8]),
            frames: Vec::new(),
        });
    }
}

fn end(r: &Rendition, msn: u64) {
    r.publish_now(Chunk::SegmentEnd { msn, duration: 2.0 });
}

/// Issue 13 (e): the API listed renditions in the order they first published
/// (`source, audio, 480p30, 360p30, 720p30, 1080p30`); now ladder order.
#[test]
fn renditions_list_in_ladder_order() {
    let store = HotStore::new(30.0);
    let timing = Timing {
        target_duration: 2,
        part_target: 1.0 / 3.0,
        segment_target: 2.0,
        media_epoch_ms: 0,
    };
    let media = store.open("cam", 1, timing, 3);
    let video = |height, fps, nominal_bps| RenditionKind::Video {
        width: height * 16 / 9,
        height,
        fps,
        nominal_bps,
    };
    media.add("source", "avc1".into(), video(720, 30.0, 0));
    media.add(
        "audio",
        "mp4a.40.2".into(),
        RenditionKind::Audio {
            channels: 2,
            nominal_bps: 128_000,
        },
    );
    media.add("480p30", "avc1".into(), video(480, 30.0, 1_500_000));
    media.add("360p30", "avc1".into(), video(360, 30.0, 800_000));
    media.add("720p30", "avc1".into(), video(720, 30.0, 3_000_000));
    media.add("1080p30", "avc1".into(), video(1080, 30.0, 4_500_000));
    media.add("1080p60", "avc1".into(), video(1080, 60.0, 6_000_000));
    let names: Vec<String> = media.renditions().iter().map(|r| r.name.clone()).collect();
    assert_eq!(
        names,
        ["source", "1080p60", "1080p30", "720p30", "480p30", "360p30", "audio"]
    );
}

/// The blocking-reload state machine: wait until the asked part exists,
/// 400 beyond the edge + 2, ready once published.
#[test]
fn blocking_reload_states() {
    let r = rendition(30.0);
    assert_eq!(r.block(0, Some(0)), Block::Wait);
    segment(&r, 0, 2);
    assert_eq!(r.block(0, Some(1)), Block::Ready);
    assert_eq!(r.block(0, Some(2)), Block::Wait);
    assert_eq!(r.block(0, None), Block::Wait);
    assert_eq!(r.block(2, Some(0)), Block::Wait);
    assert_eq!(r.block(3, Some(0)), Block::TooFar);
    r.publish_now(Chunk::Part {
        msn: 0,
        index: 2,
        independent: false,
        duration: 1.0 / 3.0,
        data: Bytes::from_static(b"p"),
        frames: Vec::new(),
    });
    assert_eq!(r.block(0, Some(2)), Block::Ready);
    end(&r, 0);
    assert_eq!(r.block(0, None), Block::Ready);
    // A part index past the end of a complete segment means the next one.
    assert_eq!(r.block(0, Some(3)), Block::Wait);
    r.publish_now(Chunk::SegmentStart {
        msn: 1,
        pdt_ms: 0,
        discontinuity: false,
        start: 180_000,
        timescale: 90_000,
    });
    assert_eq!(r.block(0, Some(3)), Block::Wait);
    r.publish_now(Chunk::Part {
        msn: 1,
        index: 0,
        independent: true,
        duration: 1.0 / 3.0,
        data: Bytes::from_static(b"p"),
        frames: Vec::new(),
    });
    assert_eq!(r.block(0, Some(3)), Block::Ready);
    r.end();
    assert_eq!(r.block(1, Some(5)), Block::Ready);
}

#[test]
fn objects_pending_ready_gone() {
    let r = rendition(4.0);
    assert_eq!(r.part(0, 0), Object::Pending);
    assert_eq!(r.part(0, 1), Object::Missing);
    segment(&r, 0, 6);
    assert_eq!(r.part(0, 5), Object::Ready(Bytes::from(vec![0, 5])));
    assert_eq!(r.part(0, 6), Object::Pending);
    // An incomplete segment answers with what it has so far (LL-DASH).
    assert_eq!(
        r.segment(0),
        Object::Growing((0..6).map(|i| Bytes::from(vec![0, i])).collect())
    );
    end(&r, 0);
    match r.segment(0) {
        Object::Ready(d) => assert_eq!(d.len(), 12),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.part(1, 0), Object::Pending);
    assert_eq!(r.segment(5), Object::Missing);
    for msn in 1..4 {
        segment(&r, msn, 6);
        end(&r, msn);
    }
    // A 4 s window keeps two 2 s segments.
    assert_eq!(r.segment(0), Object::Gone);
    assert_eq!(r.part(1, 0), Object::Gone);
    assert!(matches!(r.segment(2), Object::Ready(_)));
    assert!(matches!(r.segment(3), Object::Ready(_)));
    assert_eq!(r.long_segment(0, 3), Object::Gone);
    assert_eq!(r.init(0), Object::Ready(Bytes::from_static(b"init")));
    assert_eq!(r.init(1), Object::Missing);
}

/// A long segment never spans a discontinuity (two timelines, or two
/// init segments): it ends where the break is.
#[test]
fn long_segment_ends_at_a_discontinuity() {
    let r = rendition(30.0);
    for msn in 0..3 {
        r.publish_now(Chunk::SegmentStart {
            msn,
            pdt_ms: 0,
            discontinuity: msn == 2,
            start: msn * 180_000,
            timescale: 90_000,
        });
        r.publish_now(Chunk::Part {
            msn,
            index: 0,
            independent: true,
            duration: 2.0,
            data: Bytes::from(vec![msn as u8]),
            frames: Vec::new(),
        });
        end(&r, msn);
    }
    assert_eq!(r.long_segment(0, 3), Object::Ready(Bytes::from(vec![0, 1])));
}

/// The oldest run's start survives eviction until a discontinuity (or a
/// new init) becomes the oldest segment: DASH's Period@start stays put
/// while the window slides.
#[test]
fn timeline_keeps_the_oldest_runs_start_while_evicting() {
    let r = rendition(4.0);
    let run_start = |r: &Rendition| r.with_timeline(|s, run| (s[0].msn, run));
    for msn in 0..3 {
        segment(&r, msn, 6);
        end(&r, msn);
    }
    // A 4 s window of 2 s segments: msn 0 evicted, the run began at its start.
    assert_eq!(run_start(&r), (1, Some(0)));
    r.publish_now(Chunk::SegmentStart {
        msn: 3,
        pdt_ms: 0,
        discontinuity: true,
        start: 900_000,
        timescale: 90_000,
    });
    r.publish_now(Chunk::PartChunk {
        msn: 3,
        index: 0,
        data: Bytes::from_static(b"c0"),
    });
    // The segment being written: its first part's chunks so far.
    assert_eq!(
        r.segment(3),
        Object::Growing(vec![Bytes::from_static(b"c0")])
    );
    r.publish_now(Chunk::Part {
        msn: 3,
        index: 0,
        independent: true,
        duration: 2.0,
        data: Bytes::from_static(b"c0"),
        frames: Vec::new(),
    });
    end(&r, 3);
    assert_eq!(run_start(&r), (2, Some(0)));
    segment(&r, 4, 6);
    end(&r, 4);
    // msn 3 (the discontinuity) is now the oldest: it starts its own run.
    assert_eq!(run_start(&r), (3, None));
    segment(&r, 5, 6);
    end(&r, 5);
    assert_eq!(run_start(&r), (4, Some(900_000)));
}

#[test]
fn long_segment_concatenates_its_group() {
    let r = rendition(30.0);
    for msn in 0..3 {
        segment(&r, msn, 1);
        end(&r, msn);
    }
    assert_eq!(
        r.long_segment(0, 3),
        Object::Ready(Bytes::from(vec![0, 0, 1, 0, 2, 0]))
    );
    assert_eq!(r.long_segment(1, 3), Object::Missing);
    assert_eq!(r.measured_bps(), Some((8, 8)));
}
