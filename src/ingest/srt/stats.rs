//! SRT ingest's own counters, for `/metrics`: handshakes libsrt rejected
//! (a wrong passphrase never reaches our code, only libsrt's log), counted
//! from its log lines, which are kept to one line a minute per kind; publishes
//! ended for carrying no usable media; and the MPEG-TS demuxer's counters,
//! summed over every publish, ended ones included, so they never go backwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use crate::media::mpegts::Counters;
use crate::telemetry::metrics::{l, MetricSet};
use crate::telemetry::throttle::LogThrottle;

/// Why libsrt rejected a handshake, from its `rsp(REJECT): CODE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeRejection {
    /// 1010 BADSECRET: the caller's passphrase is wrong.
    BadSecret,
    /// 1011 UNSECURE: one side encrypts and the other does not (a missing passphrase).
    Unsecure,
    /// 1400..: refused by our listen hook (unknown NAME, backoff, …), which
    /// counts and logs these itself in `publishers_rejected_total`.
    ByListenHook,
    /// Any other libsrt code (timeouts, version, congestion control, …).
    Other,
}

impl HandshakeRejection {
    pub const ALL: [HandshakeRejection; 4] = [
        HandshakeRejection::BadSecret,
        HandshakeRejection::Unsecure,
        HandshakeRejection::ByListenHook,
        HandshakeRejection::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            HandshakeRejection::BadSecret => "bad_passphrase",
            HandshakeRejection::Unsecure => "encryption_mismatch",
            HandshakeRejection::ByListenHook => "listen_hook",
            HandshakeRejection::Other => "other",
        }
    }

    fn from_code(code: u32) -> Self {
        match code {
            1010 => HandshakeRejection::BadSecret,
            1011 => HandshakeRejection::Unsecure,
            // SRT_REJX_* (1400..) as our hook sets them; libsrt reports some as 2xxx.
            1400.. => HandshakeRejection::ByListenHook,
            _ => HandshakeRejection::Other,
        }
    }
}

/// What to do with one libsrt log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLine {
    /// The one line per rejected handshake that carries the code: count it,
    /// log a summary at most once a minute.
    Rejected(HandshakeRejection),
    /// libsrt's other lines about the same rejected handshake (three more for a
    /// wrong passphrase): debug only, the `Rejected` line stands for them.
    RejectionDetail,
    /// libsrt's own race, harmless to us: `readMessage(): nothing to read.
    /// Ignored isRcvDataReady() result?` when the receive it woke for finds
    /// the packet gone (dropped as too late by its TSBPD thread, or the peer
    /// closed). The receive then returns no data and the loop reads again.
    /// About 12 a minute per live publish on a loaded box: debug only.
    Benign,
    /// Anything else: logged as libsrt gave it.
    Other,
}

/// Sorts one libsrt message (libsrt 1.5's wording, e.g.
/// `processConnectRequest: rsp(REJECT): 1010 - Incorrect passphrase`).
pub fn classify(message: &str) -> LogLine {
    if let Some(rest) = message.split("rsp(REJECT): ").nth(1) {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return LogLine::Rejected(
            digits
                .parse()
                .map_or(HandshakeRejection::Other, HandshakeRejection::from_code),
        );
    }
    let lower = message.to_ascii_lowercase();
    if lower.contains("reject") || lower.contains("badsecret") {
        LogLine::RejectionDetail
    } else if lower.contains("readmessage(): nothing to read") {
        LogLine::Benign
    } else {
        LogLine::Other
    }
}

/// The demuxer's event counters exported, by label (`skipped_bytes` apart: bytes).
pub const TS_EVENTS: [(&str, fn(&Counters) -> u64); 9] = [
    ("resync", |c| c.resyncs),
    ("continuity_error", |c| c.continuity_errors),
    ("dropped_pes", |c| c.dropped_pes),
    ("damaged_pes", |c| c.damaged_pes),
    ("pes_length_mismatch", |c| c.pes_length_mismatches),
    ("video_before_config", |c| c.video_before_config),
    ("bad_parameter_sets", |c| c.bad_parameter_sets),
    ("adts_dropped_frame", |c| c.adts_dropped_frames),
    ("ignored_stream", |c| c.ignored_streams),
];

/// Whether the demuxer threw input away beyond lost TS packets (which have
/// their own line): garbage between packets, PES it could not read or place.
pub fn ts_unusable_input(c: &Counters) -> bool {
    c.skipped_bytes > 0
        || c.resyncs > 0
        || c.dropped_pes > c.continuity_errors
        || c.pes_length_mismatches > 0
        || c.bad_parameter_sets > 0
        || c.adts_dropped_frames > 0
}

/// Shared by the listener's threads and libsrt's log handler.
#[derive(Debug, Default)]
pub struct SrtStats {
    /// Publishes ended because nothing usable came out of them for the idle timeout.
    pub unusable_publishes: AtomicU64,
    ts_skipped_bytes: AtomicU64,
    ts_events: [AtomicU64; TS_EVENTS.len()],
    handshakes_rejected: [AtomicU64; HandshakeRejection::ALL.len()],
    /// One line a minute per reason.
    rejected_log: [LogThrottle; HandshakeRejection::ALL.len()],
    /// libsrt's other lines: one a minute per place in libsrt (its "area"), so
    /// a stalled peer's 4 `readMessage(): nothing to read` a second do not pile up.
    other_log: Mutex<HashMap<String, LogThrottle>>,
}

/// Places in libsrt tracked apart; beyond them, the rest share one throttle.
const MAX_AREAS: usize = 64;

impl SrtStats {
    /// Counts a rejected handshake; `Some(n)` when it should be logged now,
    /// with `n` rejections counted since the last line.
    pub fn handshake_rejected(&self, why: HandshakeRejection, now: Instant) -> Option<u64> {
        self.handshakes_rejected[why as usize].fetch_add(1, Relaxed);
        self.rejected_log[why as usize].hit(now)
    }

    /// Whether another libsrt line from `area` may be logged at `now` (`Some(n)`:
    /// yes, `n` lines from there were dropped since).
    pub fn other_line(&self, area: &str, now: Instant) -> Option<u64> {
        let mut map = self.other_log.lock().unwrap_or_else(|e| e.into_inner());
        let key = if map.len() >= MAX_AREAS && !map.contains_key(area) {
            ""
        } else {
            area
        };
        map.entry(key.to_string()).or_default().hit(now)
    }

    /// Adds what the demuxer counted between two of its snapshots.
    pub fn add_ts(&self, before: &Counters, now: &Counters) {
        let skipped = now.skipped_bytes.saturating_sub(before.skipped_bytes);
        if skipped > 0 {
            self.ts_skipped_bytes.fetch_add(skipped, Relaxed);
        }
        for (total, (_, get)) in self.ts_events.iter().zip(TS_EVENTS) {
            let d = get(now).saturating_sub(get(before));
            if d > 0 {
                total.fetch_add(d, Relaxed);
            }
        }
    }

    pub fn handshakes_rejected(&self, why: HandshakeRejection) -> u64 {
        self.handshakes_rejected[why as usize].load(Relaxed)
    }

    pub fn report(&self, m: &mut MetricSet) {
        for why in HandshakeRejection::ALL {
            m.counter(
                "ladderd_srt_handshakes_rejected",
                "SRT handshakes libsrt rejected, by reason (bad_passphrase, encryption_mismatch: one side has no passphrase, listen_hook: refused by ladderd's stream-id check, other).",
                l(&[("reason", why.label())]),
                self.handshakes_rejected(why),
            );
        }
        m.counter(
            "ladderd_srt_unusable_publishes",
            "SRT publishes ended because no media came out of them for the idle timeout (5 s): data that is not MPEG-TS, or TS the demuxer cannot use.",
            vec![],
            self.unusable_publishes.load(Relaxed),
        );
        m.counter(
            "ladderd_srt_ts_skipped_bytes",
            "Bytes of SRT input skipped looking for the MPEG-TS packet cadence (garbage, torn packets), all publishes.",
            vec![],
            self.ts_skipped_bytes.load(Relaxed),
        );
        for ((event, _), n) in TS_EVENTS.iter().zip(&self.ts_events) {
            m.counter(
                "ladderd_srt_ts_demux_events",
                "What the MPEG-TS demuxer repaired or dropped in SRT input, all publishes, by event (resync, continuity_error, dropped_pes, damaged_pes, pes_length_mismatch, video_before_config, bad_parameter_sets, adts_dropped_frame, ignored_stream).",
                l(&[("event", event)]),
                n.load(Relaxed),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 30: the four lines libsrt 1.5 logs for one wrong passphrase
    /// (captured from ladderd's log) are one count and at most one line.
    #[test]
    fn a_wrong_passphrase_is_one_rejection_and_its_details() {
        let wrong = [
            "14:30:37.227029/SRT:RcvQ:w1!W:SRT.cn: KMREQ/rcv: (snd) Rx process failure - BADSECRET",
            "14:30:37.227619/SRT:RcvQ:w1*E:SRT.cn: interpretSrtHandshake: KMREQ result abnornal - rejecting per enforced encryption",
            "14:30:37.227766/SRT:RcvQ:w1!W:SRT.cn: @951659782:newConnection: connection rejected due to: INTERNAL REJECTION - ERROR:BADSECRET",
            "14:30:37.227793/SRT:RcvQ:w1!W:SRT.cn: processConnectRequest: rsp(REJECT): 1010 - Incorrect passphrase",
        ]
        .map(classify);
        assert_eq!(
            wrong,
            [
                LogLine::RejectionDetail,
                LogLine::RejectionDetail,
                LogLine::RejectionDetail,
                LogLine::Rejected(HandshakeRejection::BadSecret)
            ]
        );
        assert_eq!(
            classify("processConnectRequest: rsp(REJECT): 1011 - Password required or unexpected"),
            LogLine::Rejected(HandshakeRejection::Unsecure)
        );
        assert_eq!(
            classify(
                "processConnectRequest: rsp(REJECT): 2403 - Application-defined rejection reason"
            ),
            LogLine::Rejected(HandshakeRejection::ByListenHook)
        );
        assert_eq!(
            classify("processConnectRequest: rsp(REJECT): x"),
            LogLine::Rejected(HandshakeRejection::Other)
        );
        assert_eq!(
            classify("srt_accept: listener socket closed"),
            LogLine::Other
        );
        // libsrt 1.5's wording, as it reached the log of a 2 h soak ~12 times a minute.
        assert_eq!(
            classify(
                "17:38:17.818077/ladderd-srt-410!W:SRT.br: CRcvBufferNew.readMessage(): nothing to read. Ignored isRcvDataReady() result?"
            ),
            LogLine::Benign
        );

        let stats = SrtStats::default();
        let t0 = Instant::now();
        let logged = (0..50)
            .filter(|i| {
                stats
                    .handshake_rejected(
                        HandshakeRejection::BadSecret,
                        t0 + std::time::Duration::from_millis(i * 100),
                    )
                    .is_some()
            })
            .count();
        assert_eq!(logged, 1);
        assert_eq!(stats.handshakes_rejected(HandshakeRejection::BadSecret), 50);
        // Other lines: one a minute per place in libsrt.
        assert_eq!(stats.other_line("readMessage", t0), Some(0));
        assert_eq!(stats.other_line("readMessage", t0), None);
        assert_eq!(stats.other_line("srt_accept", t0), Some(0));
    }

    #[test]
    fn demuxer_counters_add_up_across_snapshots() {
        let stats = SrtStats::default();
        let a = Counters {
            skipped_bytes: 100,
            dropped_pes: 2,
            ..Counters::default()
        };
        let b = Counters {
            skipped_bytes: 150,
            dropped_pes: 5,
            resyncs: 1,
            ..a
        };
        stats.add_ts(&Counters::default(), &a);
        stats.add_ts(&a, &b);
        assert_eq!(stats.ts_skipped_bytes.load(Relaxed), 150);
        let event = |name: &str| {
            let i = TS_EVENTS.iter().position(|(n, _)| *n == name).unwrap();
            stats.ts_events[i].load(Relaxed)
        };
        assert_eq!((event("dropped_pes"), event("resync")), (5, 1));
        assert!(ts_unusable_input(&b));
        // Lost packets alone have their own line.
        assert!(!ts_unusable_input(&Counters {
            continuity_errors: 3,
            dropped_pes: 1,
            damaged_pes: 2,
            ..Counters::default()
        }));
    }
}
