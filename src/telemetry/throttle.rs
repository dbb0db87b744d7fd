//! One log line a minute for events a stranger can repeat at will (refused
//! connections, failed handshakes): every event is counted in a metric by its
//! owner; this only decides which ones also get a line, so a flood cannot grow
//! the log (quinn-udp logs one `sendmsg` error a minute the same way).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Says when a repeated event may be logged: the first one, then at most one
/// per interval, each with the number of events since the last line.
#[derive(Debug)]
pub struct LogThrottle {
    every: Duration,
    /// When the last line was logged, and the events counted since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self::per_minute()
    }
}

impl LogThrottle {
    pub const fn new(every: Duration) -> Self {
        LogThrottle {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    pub const fn per_minute() -> Self {
        Self::new(Duration::from_secs(60))
    }

    /// Records one event at `now`. `Some(unlogged)`: log this one, and say that
    /// `unlogged` more happened since the previous line; `None`: count it only.
    pub fn hit(&self, now: Instant) -> Option<u64> {
        // A panic elsewhere while holding this leaves two plain values: still usable.
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, unlogged) = &mut *s;
        if last.is_some_and(|t| now.saturating_duration_since(t) < self.every) {
            *unlogged += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 30: 384 failed handshakes in 30 s were 384 WARN lines. On a fake
    /// clock: one line at the start, then one a minute carrying the count.
    #[test]
    fn a_flood_logs_once_a_minute_with_what_it_skipped() {
        let t = LogThrottle::per_minute();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let logged: Vec<(u64, u64)> = (0..384u64)
            .filter_map(|i| t.hit(at(i * 78)).map(|n| (i, n)))
            .collect();
        assert_eq!(logged, vec![(0, 0)], "30 s of a flood: one line");
        // The first event after a minute is logged, with the 383 that were not.
        assert_eq!(t.hit(at(60_000)), Some(383));
        assert_eq!(t.hit(at(60_001)), None);
        assert_eq!(t.hit(at(119_999)), None);
        assert_eq!(t.hit(at(120_000)), Some(2));
        // Quiet for long: the next one is logged at once.
        assert_eq!(t.hit(at(900_000)), Some(0));
    }
}
