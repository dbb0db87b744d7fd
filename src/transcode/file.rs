//! `ladderd transcode INPUT --out DIR`: an FLV file (read by the same demuxer as
//! RTMP) or a raw Annex-B H.264 stream through the ladder, each rung written as Annex-B H.264 and the audio as
//! ADTS (passthrough). CMAF output follows with the packager.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::ingest::flv::{Demuxed, Demuxer, FileTags, FlvError};
use crate::media::{Packet, Track, TIMESCALE};
use crate::transcode::ladder::RungConfig;
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
    pub audio: Option<PathBuf>,
    pub latency: crate::transcode::ladder_run::LatencySummary,
}

pub fn transcode(
    input: &Path,
    out_dir: &Path,
    ladder: &[RungConfig],
    segment_secs: f64,
) -> Result<Summary, TranscodeError> {
    let started = Instant::now();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TranscodeError::Io { path, source }
    };
    let data = Bytes::from(std::fs::read(input).map_err(io(input))?);
    let mut demuxer = Demuxer::new(0);
    let now = Instant::now();
    let mut video: Vec<Packet> = Vec::new();
    let mut audio: Vec<Packet> = Vec::new();
    let config = if data.starts_with(&[0, 0, 0, 1]) || data.starts_with(&[0, 0, 1]) {
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
            match out {
                Ok(Demuxed::Packet(p)) if p.track == Track::Video => video.push(p),
                Ok(Demuxed::Packet(p)) => audio.push(p),
                Ok(_) => {}
                Err(e) if e.is_fatal() => return Err(flv(e)),
                Err(e) => tracing::warn!(input = %input.display(), "skipping tag: {e}"),
            }
        }
        demuxer
            .video_config()
            .cloned()
            .ok_or_else(|| TranscodeError::NoVideo(input.into()))?
    };
    let fps = config.fps.unwrap_or_else(|| estimate_fps(&video));
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;

    let mut run = LadderRun::new(&config, fps, ladder, segment_secs)?;
    let mut files = Vec::new();
    let mut paths = Vec::new();
    for (rung, _) in run.rungs() {
        let p = out_dir.join(format!("{}.h264", rung.name));
        files.push(BufWriter::new(File::create(&p).map_err(io(&p))?));
        paths.push(p);
    }
    let mut write_err = None;
    let mut sink = |i: usize, f: crate::transcode::EncodedFrame| {
        if let Err(e) = files[i].write_all(&f.data) {
            write_err.get_or_insert((i, e));
        }
    };
    for p in &video {
        if let Err(e) = run.push(p, &mut sink) {
            tracing::warn!(input = %input.display(), "{e}; skipping to the next keyframe");
        }
    }
    run.finish(&mut sink)?;
    if let Some((i, e)) = write_err {
        return Err(TranscodeError::Io {
            path: paths[i].clone(),
            source: e,
        });
    }
    for (f, p) in files.iter_mut().zip(&paths) {
        f.flush().map_err(io(p))?;
    }

    let audio_path = match demuxer.audio_config() {
        Some(asc) if !audio.is_empty() => {
            let p = out_dir.join("audio.aac");
            let mut w = BufWriter::new(File::create(&p).map_err(io(&p))?);
            for a in &audio {
                w.write_all(&asc.adts_header(a.data.len()))
                    .map_err(io(&p))?;
                w.write_all(&a.data).map_err(io(&p))?;
            }
            w.flush().map_err(io(&p))?;
            Some(p)
        }
        _ => None,
    };

    let duration = duration_secs(&video, fps);
    let rungs = run
        .rungs()
        .zip(paths)
        .map(|((r, s), path)| RungSummary {
            name: r.name.clone(),
            width: r.width,
            height: r.height,
            fps: r.fps,
            frames: s.frames,
            keyframes: s.keyframes,
            bitrate_bps: s.bytes as f64 * 8.0 / duration,
            target_bps: r.bitrate_bps,
            encode_time: s.encode_time + s.scale_time,
            path,
        })
        .collect();
    Ok(Summary {
        source_frames: video.len() as u64,
        decoded: run.decoded,
        decode_time: run.decode_time,
        wall: started.elapsed(),
        rungs,
        audio: audio_path,
        latency: run.latency_summary(),
    })
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
        if let Some(a) = &self.audio {
            s += &format!("audio: {}\n", a.display());
        }
        s
    }
}
