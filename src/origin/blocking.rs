//! Blocking requests: how long one may wait on the live edge, the waits
//! themselves (the glue of the store's sans-IO waiter table: await the
//! waiter's own notification or sleep until its deadline, or shutdown), and
//! their accounting (`blocked_waiters`, the wake-to-answer time).

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::Origin;
use crate::store::hot::{Parking, Rendition, StreamMedia};
use crate::store::waiters::Wake;
use crate::telemetry::clock;

/// How long a blocking request (playlist reload, preload hint, a part being
/// written) may wait:
/// 3 target durations, the limit the HLS spec sets for blocking reloads.
pub fn blocking_limit(media: &StreamMedia) -> Duration {
    Duration::from_secs(3 * media.timing.target_duration)
}

/// A parked request is being answered: how long after the publish that woke it.
pub fn served_after_wait(ctx: &Origin, media: &StreamMedia, r: &Rendition) {
    if let Some(d) = media.answered(r, clock::now()) {
        ctx.http.record_wake(d);
    }
}

/// Waits until a publish reaches `parking` (true: look at the store again),
/// or its deadline passes or the origin shuts down (false: answer 503).
pub async fn wait(ctx: &Origin, mut parking: Parking) -> bool {
    if ctx.shutdown.is_triggered() {
        return false;
    }
    let _parked = Parked::new(&ctx.http.blocked_waiters);
    loop {
        match parking.poll(clock::now()) {
            Some(Wake::Ready) => return true,
            Some(Wake::Expired) => return false,
            None => {}
        }
        let left = parking.deadline().saturating_duration_since(clock::now());
        let woke = futures_lite::future::or(parking.notified(), glommio::timer::sleep(left));
        futures_lite::future::or(woke, ctx.shutdown.wait()).await;
        if ctx.shutdown.is_triggered() {
            return false;
        }
    }
}

/// Waits until a publish reaches any of `parkings` (or `until`, or shutdown).
pub async fn wait_any(ctx: &Origin, mut parkings: Vec<Parking>, until: Instant) {
    let left = until.saturating_duration_since(clock::now());
    if left.is_zero() || ctx.shutdown.is_triggered() {
        return;
    }
    let _parked = Parked::new(&ctx.http.blocked_waiters);
    let any = std::future::poll_fn(|cx| {
        for p in parkings.iter_mut() {
            if p.poll_notified(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    });
    let timed = futures_lite::future::or(any, glommio::timer::sleep(left));
    futures_lite::future::or(timed, ctx.shutdown.wait()).await;
}

/// A request parked on the live edge, counted in `blocked_waiters` while this
/// lives. A guard rather than a decrement after the wait: a client that goes
/// away mid-wait drops the request's future at its `.await`, and the count
/// only ever rose (issue 30).
struct Parked<'a>(&'a AtomicI64);

impl<'a> Parked<'a> {
    fn new(count: &'a AtomicI64) -> Self {
        count.fetch_add(1, Relaxed);
        Parked(count)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::package::chunker::Chunk;
    use crate::store::hot::{test_segment, test_stream, Block};
    use crate::store::waiters::Position;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// RFC 8216bis 6.2.5.2 on a fake clock (`tests/hls.rs` waited out the
    /// 6 s for this decision): a reload for the part after the live edge
    /// waits; two segments past the edge is refused at once (400); a quiet
    /// publisher's reload gives up at three target durations (503), not a
    /// moment before; the publish that reaches it answers it, one short of
    /// it does not.
    #[test]
    fn a_blocking_reload_gives_up_at_three_target_durations() {
        let (media, r) = test_stream(30.0);
        let limit = blocking_limit(&media);
        assert_eq!(limit, Duration::from_secs(3 * 2));
        test_segment(&r, 0);
        let t0 = clock::now();
        let deadline = t0 + limit;
        assert_eq!(r.block(3, None), Block::TooFar);
        assert_eq!(r.block(3, Some(0)), Block::TooFar);

        let parking = r.park(Position::playlist(1, Some(0)), deadline);
        assert_eq!(r.block(1, Some(0)), Block::Wait);
        assert_eq!(r.parked(), 1);
        assert_eq!(parking.poll(t0 + limit - ms(1)), None);
        assert_eq!(parking.poll(deadline), Some(Wake::Expired));
        assert_eq!(r.parked(), 0);
        drop(parking);

        let parking = r.park(Position::playlist(1, Some(0)), deadline);
        r.publish(
            Chunk::SegmentStart {
                msn: 1,
                pdt_ms: 0,
                discontinuity: false,
                start: 180_000,
                timescale: 90_000,
            },
            t0 + ms(1000),
        );
        assert_eq!(parking.poll(t0 + ms(1000)), None);
        r.publish(
            Chunk::PartChunk {
                msn: 1,
                index: 0,
                data: Bytes::from_static(b"a"),
            },
            t0 + ms(1100),
        );
        // A chunk of the part: not the part the playlist waits for.
        assert_eq!(parking.poll(t0 + ms(1100)), None);
        assert_eq!(r.block(1, Some(0)), Block::Wait);
        r.publish(
            Chunk::Part {
                msn: 1,
                index: 0,
                independent: true,
                duration: 1.0 / 3.0,
                data: Bytes::from_static(b"a"),
                frames: Vec::new(),
            },
            t0 + ms(1300),
        );
        assert_eq!(parking.poll(t0 + ms(1300)), Some(Wake::Ready));
        assert_eq!(r.block(1, Some(0)), Block::Ready);
        assert_eq!(r.since_publish(t0 + ms(1302)), Some(ms(2)));
        drop(parking);
        assert_eq!(r.parked(), 0);
    }

    /// Parked requests are woken by what they wait for only: a reload for
    /// segment 2 sleeps through segment 1's publishes, and the end wakes
    /// everyone (they find the rendition ended).
    #[test]
    fn a_publish_wakes_only_the_requests_it_reaches() {
        let (_media, r) = test_stream(30.0);
        test_segment(&r, 0);
        let t0 = clock::now();
        let far = r.park(Position::playlist(2, None), t0 + ms(6000));
        let near = r.park(Position::playlist(1, None), t0 + ms(6000));
        test_segment(&r, 1);
        assert_eq!(near.poll(t0), Some(Wake::Ready));
        assert_eq!(far.poll(t0), None);
        r.end();
        assert_eq!(far.poll(t0), Some(Wake::Ready));
        let late = r.park(Position::playlist(9, None), t0 + ms(6000));
        assert_eq!(late.poll(t0), Some(Wake::Ready));
        drop((near, far, late));
        assert_eq!(r.parked(), 0);
    }

    /// Issue 30: a parked request dropped before its answer (the client went
    /// away) left `blocked_waiters` one higher for good.
    #[test]
    fn a_parked_request_dropped_mid_wait_is_no_longer_counted() {
        let count = AtomicI64::new(0);
        let mut parked = Box::pin(async {
            let _parked = Parked::new(&count);
            std::future::pending::<()>().await;
        });
        let poll = futures_lite::future::block_on(futures_lite::future::poll_once(&mut parked));
        assert!(poll.is_none());
        assert_eq!(count.load(Relaxed), 1);
        drop(parked);
        assert_eq!(count.load(Relaxed), 0);
        // And an ordinary end of the wait.
        futures_lite::future::block_on(async {
            let _parked = Parked::new(&count);
            assert_eq!(count.load(Relaxed), 1);
        });
        assert_eq!(count.load(Relaxed), 0);
    }
}
