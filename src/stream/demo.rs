//! The built-in demo source: a live test pattern made in-process, so a fresh
//! box shows a running ladder with no camera.
//!
//! Each picture (colour bars, a moving box, a frame counter and the wall clock
//! burned in) is encoded to H.264 and enters the pipeline through the same
//! [`Packet`] path as RTMP, paced in real time, with a 1 kHz tone as AAC audio.

//!
//! It lives in `stream`, not `ingest`: it encodes with `transcode`'s encoders,
//! which ingest may not use (docs/architecture.md's arrows).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::config::Config;
use crate::media::CodecConfig;
use crate::stream::{EndReason, Streams};
use crate::telemetry::clock;
use crate::telemetry::shutdown::Shutdown;
use crate::transcode::pattern::{PatternSource, ToneSource};

/// Starts the demo on its own thread (it is a source, like a camera).
pub fn spawn(
    config: Arc<Config>,
    streams: Arc<Streams>,
    shutdown: Arc<Shutdown>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ladderd-demo".into())
        .spawn(move || {
            if let Err(e) = run(&config, &streams, &shutdown) {
                warn!("demo source stopped: {e}");
            }
        })?;
    Ok(())
}

/// Why the demo source stopped.
#[derive(Debug, thiserror::Error)]
enum DemoError {
    /// The NAME could not be published (its reason, as a publisher would get it).
    #[error("{0}")]
    Refused(&'static str),
    #[error(transparent)]
    Pattern(#[from] crate::transcode::pattern::PatternError),
}

fn run(config: &Config, streams: &Arc<Streams>, shutdown: &Shutdown) -> Result<(), DemoError> {
    let cfg = &config.demo;
    let publisher = SocketAddr::from(([127, 0, 0, 1], 0));
    let publish = streams
        .publish(
            &cfg.name,
            publisher,
            "demo",
            true,
            usize::MAX,
            crate::stream::Role::Primary,
        )
        .map_err(|r| DemoError::Refused(r.describe()))?;
    let id = publish.stream().id;
    // Our encoder writes no VUI timing; say the frame rate the way a publisher would.
    publish.metadata(serde_json::json!({
        "width": cfg.width, "height": cfg.height, "framerate": cfg.fps, "encoder": "ladderd demo",
    }));
    let gop = ((cfg.fps as f64 * config.ladder.segment_secs).round() as u64).max(1);
    let mut source = PatternSource::new(cfg.width, cfg.height, cfg.fps, cfg.bitrate_kbps, gop)?;
    let mut audio = if cfg.tone {
        let a = ToneSource::new(cfg.audio_kbps * 1000)?;
        if publish
            .config_blocking(CodecConfig::Aac(a.config().clone()))
            .is_err()
        {
            return Ok(());
        }
        Some(a)
    } else {
        None
    };
    let start = clock::now();
    info!(stream = %cfg.name, size = %format!("{}x{}@{}", cfg.width, cfg.height, cfg.fps), "demo source started");
    let mut n: u64 = 0;
    let reason = loop {
        if shutdown.is_triggered() {
            break EndReason::Shutdown;
        }
        let due = start + Duration::from_secs_f64(n as f64 / cfg.fps as f64);
        if let Some(wait) = due.checked_duration_since(clock::now()) {
            std::thread::sleep(wait);
        }
        n += 1;
        let Some((config, packet)) = source.next(id)? else {
            continue;
        };
        if let Some(config) = config {
            if publish.config_blocking(CodecConfig::Avc(config)).is_err() {
                break EndReason::Shutdown;
            }
        }
        let len = packet.data.len();
        if publish.packet_blocking(packet, len).is_err() {
            break EndReason::Shutdown;
        }
        if let Some(a) = &mut audio {
            // The tone up to this picture's time, in whole AAC frames.
            let until = Duration::from_secs_f64(n as f64 / cfg.fps as f64);
            let mut closed = false;
            a.until(until, id, &mut |p| {
                let len = p.data.len();
                closed |= publish.packet_blocking(p, len).is_err();
            })?;
            if closed {
                break EndReason::Shutdown;
            }
        }
    };
    publish.end_blocking(reason);
    Ok(())
}
