//! When a stream's input has paused long enough to drain its ladder
//! (sans-IO: `now` comes in). A decoder holds pictures for reordering until
//! later packets arrive; a publisher that goes silent (or drops, inside the
//! reconnect window) with no slate would leave them out of every rendition
//! until it sends again. After `ingest.decoder_drain_after_ms` without video,
//! and at least [`FRAME_INTERVALS`] of the source's frame interval (a slow
//! source's normal gap is no pause), the driver drains the ladder once.

use std::time::{Duration, Instant};

/// The shortest pause, in the source's frame intervals.
pub const FRAME_INTERVALS: f64 = 4.0;

#[derive(Debug)]
pub struct PauseWatch {
    /// `decoder_drain_after_ms`; None: never drain.
    after: Option<Duration>,
    /// The pause that counts, for the source's frame rate.
    wait: Duration,
    /// The latest video packet, while a drain is still to come for it.
    since: Option<Instant>,
}

impl PauseWatch {
    /// `after_ms` 0: never.
    pub fn new(after_ms: u64) -> Self {
        let after = (after_ms > 0).then(|| Duration::from_millis(after_ms));
        PauseWatch {
            after,
            wait: after.unwrap_or_default(),
            since: None,
        }
    }

    /// The source's frame rate (a new video configuration).
    pub fn set_fps(&mut self, fps: f64) {
        if let Some(after) = self.after {
            let interval = if fps > 0.0 {
                FRAME_INTERVALS / fps
            } else {
                0.0
            };
            self.wait = after.max(Duration::from_secs_f64(interval.min(60.0)));
        }
    }

    /// A video packet went into the ladder.
    pub fn video(&mut self, now: Instant) {
        if self.after.is_some() {
            self.since = Some(now);
        }
    }

    /// Nothing left to drain (the ladder was flushed or stopped).
    pub fn clear(&mut self) {
        self.since = None;
    }

    /// When the next drain is due, if one is.
    pub fn due(&self) -> Option<Instant> {
        self.since.map(|t| t + self.wait)
    }

    /// Whether the ladder is to be drained now (once per pause).
    pub fn poll(&mut self, now: Instant) -> bool {
        if self.due().is_some_and(|at| at <= now) {
            self.since = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Once per pause, after the configured wait or four frame intervals,
    /// whichever is longer; never when off.
    #[test]
    fn drains_once_per_pause_on_a_fake_clock() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut w = PauseWatch::new(250);
        w.set_fps(30.0);
        assert_eq!(w.due(), None, "nothing sent, nothing to drain");
        w.video(ms(0));
        w.video(ms(33));
        assert!(!w.poll(ms(282)));
        assert!(w.poll(ms(283)));
        assert!(!w.poll(ms(5000)), "one drain per pause");
        assert_eq!(w.due(), None);
        // Back: the next pause drains again.
        w.video(ms(6000));
        assert_eq!(w.due(), Some(ms(6250)));
        w.clear();
        assert!(!w.poll(ms(7000)), "flushed meanwhile");
        // A 5 fps source: a pause is 800 ms (4 frames), not 250.
        w.set_fps(5.0);
        w.video(ms(8000));
        assert!(!w.poll(ms(8250)));
        assert!(w.poll(ms(8800)));
        let mut off = PauseWatch::new(0);
        off.set_fps(30.0);
        off.video(ms(0));
        assert_eq!(off.due(), None);
        assert!(!off.poll(ms(100_000)));
    }
}
