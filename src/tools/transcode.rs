//! `ladderd transcode INPUT --out DIR`: an FLV file (read by the same demuxer as
//! RTMP) or a raw Annex-B H.264 stream through the ladder and the live
//! packager, each rendition written as one CMAF track file (`NAME.mp4`: init
//! segment, then one fragment per part, segments on the ladder's IDRs): every
//! rung, the source passthrough when `hls.source_rendition` is on, and the
//! audio (passed through, or re-encoded as `[ladder]` says).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

use crate::config::Config;
use crate::media::flv::{Demuxed, Demuxer, FileTags, FlvError};
use crate::media::{CodecConfig, Packet, Track, TIMESCALE};
use crate::package::chunker::Chunk;
use crate::package::{PackagerConfig, Published, StreamPackager};
use crate::stream::policy::{self, AudioRoute};
use crate::telemetry::clock;
use crate::transcode::backend::Backend;
use crate::transcode::ladder_run::LadderRun;
use crate::transcode::StageError;

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Flv { path: PathBuf, source: FlvError },
    #[error("{0}: no H.264 video found")]
    NoVideo(PathBuf),
    #[error("{path}: raw H.264: {source}")]
    AnnexB {
        path: PathBuf,
        source: crate::media::h264::AvcConfigError,
    },
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("{0}: audio: {1}")]
    Audio(PathBuf, String),
    #[error("ladder backend: {0}")]
    Backend(#[from] crate::transcode::backend::BackendError),
}

#[derive(Debug)]
pub struct RungSummary {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub frames: u64,
    pub keyframes: u64,
    pub bitrate_bps: f64,
    pub target_bps: u32,
    pub encode_time: Duration,
    pub path: PathBuf,
}

#[derive(Debug)]
pub struct Summary {
    pub source_frames: u64,
    pub decoded: u64,
    pub decode_time: Duration,
    pub wall: Duration,
    pub rungs: Vec<RungSummary>,
    /// The passthrough rendition's file, when written.
    pub source: Option<PathBuf>,
    pub audio: Option<PathBuf>,
    pub latency: crate::telemetry::latency::LatencySummary,
    /// `cpu: …`, or the GPU plan.
    pub backend: String,
    /// Picture bytes the GPU backend copied device→host during this run (0 on
    /// an all-GPU ladder; one I420 picture per rung per picture when hybrid).
    pub device_to_host_bytes: u64,
    /// …in this many copies.
    pub device_to_host_copies: u64,
}

/// Transcodes INPUT with `config`'s ladder, encoder, segment length and audio
/// settings into CMAF files under OUT_DIR.
pub fn transcode(input: &Path, out_dir: &Path, config: &Config) -> Result<Summary, TranscodeError> {
    let segment_secs = config.ladder.segment_secs;
    let started = clock::now();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TranscodeError::Io { path, source }
    };
    let data = Bytes::from(std::fs::read(input).map_err(io(input))?);
    let mut demuxer = Demuxer::new(0);
    let now = clock::now();
    let mut video: Vec<Packet> = Vec::new();
    let mut audio: Vec<Packet> = Vec::new();
    // The audio's last announced config (AAC or MP3).
    let mut audio_config: Option<CodecConfig> = None;
    let video_config = if data.starts_with(&[0, 0, 0, 1]) || data.starts_with(&[0, 0, 1]) {
        // Raw Annex-B: no timestamps; frames in decode order at the SPS rate
        // (the decoder hands pictures out in presentation order).
        let (config, units) = crate::media::h264::annexb_access_units(&data).map_err(|source| {
            TranscodeError::AnnexB {
                path: input.into(),
                source,
            }
        })?;
        let ticks = (TIMESCALE as f64 / config.fps.unwrap_or(30.0)).round() as i64;
        for (i, u) in units.into_iter().enumerate() {
            video.push(Packet {
                stream: 0,
                track: Track::Video,
                dts: i as i64 * ticks,
                pts: i as i64 * ticks,
                keyframe: u.keyframe,
                discontinuity: false,
                data: u.data,
                arrival: now,
            });
        }
        config
    } else {
        let flv = |source| TranscodeError::Flv {
            path: input.into(),
            source,
        };
        for tag in FileTags::new(data).map_err(flv)? {
            let tag = tag.map_err(flv)?;
            let out = match tag.kind {
                8 => demuxer.push_audio(tag.timestamp_ms, &tag.body, now),
                9 => demuxer.push_video(tag.timestamp_ms, &tag.body, now),
                _ => continue,
            };
            let packet = match out {
                Ok(Demuxed::Packet(p)) => p,
                Ok(Demuxed::ConfigAndPacket(c, p)) => {
                    if c.audio().is_some() {
                        audio_config = Some(c);
                    }
                    p
                }
                Ok(Demuxed::Config(c)) => {
                    if c.audio().is_some() {
                        audio_config = Some(c);
                    }
                    continue;
                }
                Ok(Demuxed::Nothing) => continue,
                Err(e) if e.is_fatal() => return Err(flv(e)),
                Err(e) => {
                    tracing::warn!(input = %input.display(), "skipping tag: {e}");
                    continue;
                }
            };
            match packet.track {
                Track::Video => video.push(packet),
                Track::Audio => audio.push(packet),
            }
        }
        demuxer
            .video_config()
            .cloned()
            .ok_or_else(|| TranscodeError::NoVideo(input.into()))?
    };
    let fps = video_config.fps.unwrap_or_else(|| estimate_fps(&video));
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;

    // `[ladder] backend` as `serve` resolves it: `gpu` without a usable GPU is
    // an error naming the reason, `auto` falls back to the CPU.
    let backend = if config.ladder.backend == crate::transcode::backend::BackendChoice::Cpu {
        Backend::Cpu(config.ladder.soft_codecs())
    } else {
        Backend::select(
            config.ladder.backend,
            config.ladder.gpu_device,
            config.ladder.soft_codecs(),
        )
        .map_err(TranscodeError::Backend)?
        .0
    };
    use crate::transcode::gpu::context::{DEVICE_TO_HOST_BYTES, DEVICE_TO_HOST_COPIES};
    use std::sync::atomic::Ordering::Relaxed;
    let copied_before = (
        DEVICE_TO_HOST_BYTES.load(Relaxed),
        DEVICE_TO_HOST_COPIES.load(Relaxed),
    );
    let mut run = LadderRun::with_backend(
        &video_config,
        fps,
        &config.ladder.rungs,
        segment_secs,
        &backend,
    )?;

    // The live packager, whole parts (no chunks), its output collected per rendition.
    let mut packaging = PackagerConfig::from_config(config);
    packaging.chunked_parts = false;
    let started_ms = clock::unix_ms();
    let mut tracks = Tracks::default();
    let mut packager = StreamPackager::new(&packaging, "file", started_ms, &video_config, fps);
    tracks.add(packager.take());
    tracks.add(packager.set_rungs(policy::rung_infos(run.rungs().map(|(r, _)| r)), now));
    let mut route = match (&audio_config, audio.is_empty()) {
        (Some(c), false) => {
            let (route, note) = AudioRoute::choose(c, &config.ladder);
            if let AudioRoute::Dropped(why) = &route {
                return Err(TranscodeError::Audio(input.into(), why.clone()));
            }
            if let Some(note) = note {
                tracing::warn!(input = %input.display(), "{note}");
            }
            Some(route)
        }
        _ => None,
    };
    if let Some(asc) = route.as_ref().and_then(|r| r.config()) {
        tracks.add(packager.set_audio(asc));
    }

    for p in &video {
        tracks.add(packager.source_video(p, now));
        let mut sink = |i: usize, f: crate::transcode::EncodedFrame| {
            tracks.add(packager.rung_frame(i, &policy::picture(&f), now))
        };
        if let Err(e) = run.push(p, &mut sink) {
            tracing::warn!(input = %input.display(), "{e}; skipping to the next keyframe");
        }
    }
    run.finish(&mut |i, f| tracks.add(packager.rung_frame(i, &policy::picture(&f), now)))?;
    if let Some(route) = &mut route {
        for a in &audio {
            let pushed = route.push(a, &mut |o| tracks.add(packager.audio(o, now)));
            if let Err(e) = pushed {
                tracing::warn!(input = %input.display(), pts = a.pts, "audio re-encode: {e}");
            }
        }
    }
    tracks.add(packager.finish(now));

    let mut written = std::collections::HashMap::new();
    for (name, data) in tracks.files() {
        let path = out_dir.join(format!("{name}.mp4"));
        std::fs::write(&path, data).map_err(io(&path))?;
        written.insert(name, path);
    }

    let duration = duration_secs(&video, fps);
    let rungs = run
        .rungs()
        .map(|(r, s)| RungSummary {
            name: r.name.clone(),
            width: r.width,
            height: r.height,
            fps: r.fps,
            frames: s.frames,
            keyframes: s.keyframes,
            bitrate_bps: s.bytes as f64 * 8.0 / duration,
            target_bps: r.bitrate_bps,
            encode_time: s.encode_time + s.scale_time,
            path: written
                .get(&r.name)
                .cloned()
                .unwrap_or_else(|| out_dir.join(format!("{}.mp4", r.name))),
        })
        .collect();
    Ok(Summary {
        source_frames: video.len() as u64,
        decoded: run.decoded,
        decode_time: run.decode_time,
        wall: started.elapsed(),
        rungs,
        source: written.get("source").cloned(),
        audio: written.get("audio").cloned(),
        latency: run.latency_summary(),
        backend: backend.describe(),
        device_to_host_bytes: DEVICE_TO_HOST_BYTES.load(Relaxed) - copied_before.0,
        device_to_host_copies: DEVICE_TO_HOST_COPIES.load(Relaxed) - copied_before.1,
    })
}

/// Each rendition as a CMAF track file: its first init segment, then every
/// part in order (whole parts: the segments, back to back).
#[derive(Default)]
struct Tracks {
    order: Vec<String>,
    init: std::collections::HashMap<String, Bytes>,
    body: std::collections::HashMap<String, Vec<u8>>,
}

impl Tracks {
    fn add(&mut self, published: Vec<Published>) {
        for p in published {
            match p {
                Published::Rendition { name, .. } if !self.order.contains(&name) => {
                    self.order.push(name)
                }
                Published::Init { rendition, init } => {
                    self.init.entry(rendition).or_insert(init);
                }
                Published::Chunk {
                    rendition,
                    chunk: Chunk::Part { data, .. },
                } => self
                    .body
                    .entry(rendition)
                    .or_default()
                    .extend_from_slice(&data),
                _ => {}
            }
        }
    }

    /// (rendition, file bytes), for each rendition that has an init segment.
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        self.order
            .iter()
            .filter_map(|name| {
                let mut out = self.init.get(name)?.to_vec();
                out.extend_from_slice(self.body.get(name).map_or(&[][..], |b| b));
                Some((name.clone(), out))
            })
            .collect()
    }
}

fn estimate_fps(video: &[Packet]) -> f64 {
    let (Some(first), Some(last)) = (video.first(), video.last()) else {
        return 30.0;
    };
    let span = (last.dts - first.dts) as f64 / TIMESCALE as f64;
    if span <= 0.0 {
        30.0
    } else {
        (video.len() - 1) as f64 / span
    }
}

fn duration_secs(video: &[Packet], fps: f64) -> f64 {
    (video.len() as f64 / fps).max(1.0 / fps)
}

impl Summary {
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "source: {} frames, decoded {} in {:.2} s; wall {:.2} s\n{:<9} {:>9} {:>6} {:>7} {:>4} {:>11} {:>11} {:>9}\n",
            self.source_frames,
            self.decoded,
            self.decode_time.as_secs_f64(),
            self.wall.as_secs_f64(),
            "rung", "size", "fps", "frames", "IDR", "kbit/s", "target", "enc s"
        );
        for r in &self.rungs {
            s += &format!(
                "{:<9} {:>9} {:>6.2} {:>7} {:>4} {:>11.0} {:>11} {:>9.2}\n",
                r.name,
                format!("{}x{}", r.width, r.height),
                r.fps,
                r.frames,
                r.keyframes,
                r.bitrate_bps / 1000.0,
                r.target_bps / 1000,
                r.encode_time.as_secs_f64()
            );
        }
        let l = &self.latency;
        s += &format!(
            "latency ms p50/p99: decode {:.2}/{:.2}, all rungs {:.2}/{:.2}",
            l.decode.p50_ms, l.decode.p99_ms, l.ladder.p50_ms, l.ladder.p99_ms
        );
        for (name, scale, encode) in &l.rungs {
            s += &format!(
                ", {name} scale {:.2}/{:.2} encode {:.2}/{:.2}",
                scale.p50_ms, scale.p99_ms, encode.p50_ms, encode.p99_ms
            );
        }
        s += "\n";
        if let Some(p) = &self.source {
            s += &format!("source: {}\n", p.display());
        }
        if let Some(a) = &self.audio {
            s += &format!("audio: {}\n", a.display());
        }
        s += &format!(
            "backend: {}\ngpu: {} bytes copied device->host in {} copies\n",
            self.backend, self.device_to_host_bytes, self.device_to_host_copies
        );
        s
    }
}
