//! The registry's unit tests: claims, takeovers, silent holders, the
//! stream limit, history, refusals, bitrate.

use super::*;
use std::time::Duration;

fn addr() -> SocketAddr {
    "127.0.0.1:5000".parse().unwrap()
}

/// Issue 30: an SRT encoder killed and restarted was refused its own
/// NAME (`already_live`) until the dead session timed out. A holder
/// silent for `holder_silent_after` yields; one still sending does not.
#[test]
fn a_silent_holder_yields_its_name() {
    let r = Registry::new();
    let claim = |now, after| Claim {
        takeover: false,
        max_streams: 10,
        role: crate::stream::Role::Primary,
        holder_silent_after: after,
        now,
    };
    let t0 = Instant::now();
    let after = Some(std::time::Duration::from_secs(1));
    let a = r
        .claim_with("cam1", addr(), "srt", claim(t0, after))
        .unwrap();
    // Sending: its last packet 900 ms in.
    a.stats.record(std::time::Duration::from_millis(900), 188);
    let at = |ms| t0 + std::time::Duration::from_millis(ms);
    assert_eq!(
        r.claim_with("cam1", addr(), "srt", claim(at(1500), after))
            .err(),
        Some(Rejection::AlreadyLive),
        "silent for 600 ms only"
    );
    assert_eq!(
        r.claim_with("cam1", addr(), "srt", claim(at(5000), None))
            .err(),
        Some(Rejection::AlreadyLive),
        "no yielding unless asked"
    );
    let b = r
        .claim_with("cam1", addr(), "srt", claim(at(2000), after))
        .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.stop_requested(), Some(EndReason::TakenOver));
    assert_eq!(r.get("cam1").map(|s| s.id), Some(b.id));
}

/// Issue 30: every refused publish counts; a line is logged once a
/// minute per reason (saying how many went unlogged), so retries and
/// guessing cannot grow the log.
#[test]
fn refusals_count_every_one_and_log_once_a_minute_per_reason() {
    let r = Registry::new();
    let t0 = Instant::now();
    let at = |s| t0 + std::time::Duration::from_secs(s);
    assert_eq!(r.count_rejection(Rejection::BadKey, at(0)), Some(0));
    for s in 1..=10 {
        assert_eq!(r.count_rejection(Rejection::BadKey, at(s)), None);
    }
    assert_eq!(r.count_rejection(Rejection::UnknownStream, at(5)), Some(0));
    assert_eq!(r.count_rejection(Rejection::BadKey, at(61)), Some(10));
    assert_eq!(r.rejections()["bad_key"], 12);
    assert_eq!(r.rejections()["unknown_stream"], 1);
}

#[test]
fn one_publisher_per_name_unless_takeover() {
    let r = Registry::new();
    let a = r
        .claim(
            "cam1",
            addr(),
            "rtmp",
            false,
            10,
            crate::stream::Role::Primary,
        )
        .unwrap();
    assert_eq!(
        r.claim(
            "cam1",
            addr(),
            "rtmp",
            false,
            10,
            crate::stream::Role::Primary
        )
        .err(),
        Some(Rejection::AlreadyLive)
    );
    let b = r
        .claim(
            "cam1",
            addr(),
            "rtmp",
            true,
            10,
            crate::stream::Role::Primary,
        )
        .unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.stop_reason(), Some(EndReason::TakenOver));
    // The old owner releasing must not remove the new one.
    r.release(&a);
    assert_eq!(r.get("cam1").map(|s| s.id), Some(b.id));
    r.release(&b);
    assert!(r.get("cam1").is_none());
}

#[test]
fn stream_limit() {
    let r = Registry::new();
    let _a = r
        .claim("a", addr(), "rtmp", false, 1, crate::stream::Role::Primary)
        .unwrap();
    assert_eq!(
        r.claim("b", addr(), "rtmp", false, 1, crate::stream::Role::Primary)
            .err(),
        Some(Rejection::TooManyStreams)
    );
}

#[test]
fn bitrate_counts_complete_seconds() {
    let s = IngestStats::default();
    for t in 0..7u64 {
        for _ in 0..10 {
            s.record(Duration::from_millis(t * 1000 + 500), 12_500);
        }
    }
    // 125 000 bytes per second = 1 Mbit/s.
    assert_eq!(s.bitrate(Duration::from_millis(7_100)), 1_000_000);
}

#[test]
fn history_is_bounded() {
    let r = Registry::new();
    for i in 0..(HISTORY + 5) {
        let s = r
            .claim(
                &format!("s{i}"),
                addr(),
                "rtmp",
                false,
                1000,
                crate::stream::Role::Primary,
            )
            .unwrap();
        r.release(&s);
        r.finish(&s, EndReason::PublisherClosed);
    }
    assert_eq!(r.history().len(), HISTORY);
}
