//! Per-stream pipeline on a media core.
//!
//! Ingest hands each stream's packets over a bounded channel (backpressure
//! reaches the publisher's TCP window, never unbounded memory). Today the
//! pipeline checks the timeline invariants every later stage relies on and
//! accounts the packets; decode/scale/encode plug in here with the software
//! ladder. When ingest drops its sender the pipeline drains what is queued,
//! then files the session's final record.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tracing::{info, warn};

use crate::ingest::registry::{EndReason, LiveStream};
use crate::media::{CodecConfig, Packet, Track};
use crate::runtime::Context;

/// What ingest sends down a stream's channel.
#[derive(Debug)]
pub enum Input {
    Config(CodecConfig),
    Packet(Packet),
    /// Ingest is done with the stream; no more input follows.
    End(EndReason),
}

/// One stream for a media core to run.
pub struct Job {
    pub stream: Arc<LiveStream>,
    pub input: flume::Receiver<Input>,
}

/// Runs on each media core: starts a pipeline task per stream handed to it.
pub async fn media_core(jobs: flume::Receiver<Job>, ctx: Arc<Context>) {
    let running = Rc::new(std::cell::Cell::new(0usize));
    loop {
        let next = futures_lite::future::or(async { jobs.recv_async().await.ok() }, async {
            ctx.shutdown.wait().await;
            None
        })
        .await;
        let Some(job) = next else { break };
        let ctx = ctx.clone();
        let running = running.clone();
        running.set(running.get() + 1);
        glommio::spawn_local(async move {
            run_stream(job, &ctx).await;
            running.set(running.get() - 1);
        })
        .detach();
    }
    // Let running pipelines drain (ingest has closed their inputs on shutdown).
    while running.get() > 0 {
        glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Per-track timeline check: the invariants ingest promises downstream.
#[derive(Default)]
struct TrackCheck {
    last_dts: Option<i64>,
}

async fn run_stream(job: Job, ctx: &Context) {
    let stream = job.stream;
    let stats = &stream.pipeline;
    let mut video = TrackCheck::default();
    let mut audio = TrackCheck::default();
    let mut ended = EndReason::PublisherClosed;
    while let Ok(input) = job.input.recv_async().await {
        match input {
            Input::Config(_) => {}
            Input::Packet(p) => {
                stats.packets.fetch_add(1, Relaxed);
                let check = match p.track {
                    Track::Video => {
                        stats.video_packets.fetch_add(1, Relaxed);
                        &mut video
                    }
                    Track::Audio => {
                        stats.audio_packets.fetch_add(1, Relaxed);
                        &mut audio
                    }
                };
                if p.pts < p.dts {
                    stats.pts_before_dts.fetch_add(1, Relaxed);
                }
                if check.last_dts.is_some_and(|last| p.dts < last) {
                    if stats.dts_regressions.fetch_add(1, Relaxed) == 0 {
                        warn!(stream = %stream.name, track = ?p.track, dts = p.dts, "dts went backwards");
                    }
                }
                if p.discontinuity {
                    stats.discontinuities.fetch_add(1, Relaxed);
                }
                check.last_dts = Some(p.dts);
            }
            Input::End(reason) => ended = reason,
        }
    }
    info!(
        stream = %stream.name,
        id = stream.id,
        packets = stats.packets.load(Relaxed),
        reason = ?ended,
        "pipeline drained"
    );
    ctx.registry.finish(&stream, ended);
}
