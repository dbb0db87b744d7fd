//! What a stream's driver waits on, and the one wait ([`wake`]): its
//! input channels, its ladder's rung results, a joining publisher,
//! shutdown, and the next tick.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Instant;

use crate::stream::feed::Job;
use crate::stream::Input;
use crate::telemetry::shutdown::Shutdown;
use crate::transcode::ladder_run::RungOutput;

/// The channels and times a wait is on (taken from the driver's state).
pub struct Waits {
    /// The next tick: the slate, the switcher, a drain, latency.
    pub wake_at: Instant,
    /// The ladder's rung threads' results.
    pub outputs: Option<flume::Receiver<RungOutput>>,
    /// Input from the feed on air, and from the standby.
    pub on_air: Option<flume::Receiver<Input>>,
    pub standby: Option<flume::Receiver<Input>>,
    /// The renditions wait for a publisher: shutdown ends the stream.
    pub waiting: bool,
}

/// What woke a stream's driver.
pub enum Wake {
    OnAir(Result<Input, flume::RecvError>),
    Standby(Result<Input, flume::RecvError>),
    Attach(Job),
    Output(RungOutput),
    Tick,
    Shutdown,
}

async fn recv_or_pending(rx: Option<flume::Receiver<Input>>) -> Result<Input, flume::RecvError> {
    match rx {
        Some(rx) => rx.recv_async().await,
        None => futures_lite::future::pending().await,
    }
}

/// Waits for the first of: input from the feed on air, from the standby, a
/// rung thread's result, a publisher joining, shutdown (only while the
/// renditions wait for a publisher), the next tick at `wake_at`. Polled in
/// that order, so input on air comes first.
pub async fn wake(
    waits: Waits,
    attach: &flume::Receiver<Job>,
    shutdown: &Shutdown,
    now: Instant,
) -> Wake {
    let Waits {
        wake_at,
        outputs,
        on_air,
        standby,
        waiting,
    } = waits;
    let mut on_air = pin!(async { Wake::OnAir(recv_or_pending(on_air).await) });
    let mut standby = pin!(async { Wake::Standby(recv_or_pending(standby).await) });
    let mut output = pin!(async {
        match &outputs {
            Some(rx) => match rx.recv_async().await {
                Ok(o) => Wake::Output(o),
                Err(_) => futures_lite::future::pending().await,
            },
            None => futures_lite::future::pending().await,
        }
    });
    let mut joined = pin!(async {
        match attach.recv_async().await {
            Ok(job) => Wake::Attach(job),
            Err(_) => futures_lite::future::pending().await,
        }
    });
    let mut stop = pin!(async {
        if !waiting {
            return futures_lite::future::pending().await;
        }
        shutdown.wait().await;
        Wake::Shutdown
    });
    let mut tick = pin!(async {
        glommio::timer::sleep(wake_at.saturating_duration_since(now)).await;
        Wake::Tick
    });
    // One at a time, the first ready wins: a later one is not polled (a
    // channel polled ready would have given up its message).
    std::future::poll_fn(|cx| {
        if let Poll::Ready(w) = on_air.as_mut().poll(cx) {
            return Poll::Ready(w);
        }
        if let Poll::Ready(w) = standby.as_mut().poll(cx) {
            return Poll::Ready(w);
        }
        if let Poll::Ready(w) = output.as_mut().poll(cx) {
            return Poll::Ready(w);
        }
        if let Poll::Ready(w) = joined.as_mut().poll(cx) {
            return Poll::Ready(w);
        }
        if let Poll::Ready(w) = stop.as_mut().poll(cx) {
            return Poll::Ready(w);
        }
        tick.as_mut().poll(cx)
    })
    .await
}
