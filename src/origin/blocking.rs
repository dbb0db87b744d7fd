//! Blocking requests: how long one may wait on the live edge, the waits
//! themselves (a publish, the deadline or shutdown, whichever is first), and
//! their accounting (`blocked_waiters`, the wake-to-answer time).

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::Origin;
use crate::store::hot::{Rendition, StreamMedia};

/// How long a blocking request (playlist reload, preload hint, a part being
/// written) may wait:
/// 3 target durations, the limit the HLS spec sets for blocking reloads.
pub fn blocking_limit(media: &StreamMedia) -> Duration {
    Duration::from_secs(3 * media.timing.target_duration)
}

/// A parked request is being answered: how long after the publish that woke it.
pub fn served_after_wait(ctx: &Origin, media: &StreamMedia, r: &Rendition) {
    if let Some(d) = r.since_publish() {
        media.record_served(d);
        ctx.http.record_wake(d);
    }
}

/// Waits for a publish (or the deadline, or shutdown); false on the deadline.
pub async fn wait(
    ctx: &Origin,
    listener: event_listener::EventListener,
    deadline: Instant,
) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() || ctx.shutdown.is_triggered() {
        return false;
    }
    let _parked = Parked::new(&ctx.http.blocked_waiters);
    let woke = futures_lite::future::or(
        async {
            listener.await;
            true
        },
        async {
            glommio::timer::sleep(left).await;
            false
        },
    );
    futures_lite::future::or(woke, async {
        ctx.shutdown.wait().await;
        false
    })
    .await
}

/// Waits for a publish on any of `listeners` (or `until`, or shutdown).
pub async fn wait_any(
    ctx: &Origin,
    mut listeners: Vec<event_listener::EventListener>,
    until: Instant,
) {
    let left = until.saturating_duration_since(Instant::now());
    if left.is_zero() || ctx.shutdown.is_triggered() {
        return;
    }
    let _parked = Parked::new(&ctx.http.blocked_waiters);
    let any = futures_lite::future::poll_fn(|cx| {
        for l in listeners.iter_mut() {
            if std::future::Future::poll(std::pin::Pin::new(l), cx).is_ready() {
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
    use super::*;

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
