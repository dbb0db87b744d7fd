//! `ladderd bench ladder` and `ladderd bench channels`: the ladder against
//! ffmpeg doing the same decode-once ladder in the same run, and how many live
//! 720p30 → 3-rung channels this machine holds in real time.
//!
//! Debian's ffmpeg has no libopenh264, so ffmpeg runs libx264 `ultrafast`;
//! ladderd runs the same (x264 `ultrafast`, tune zerolatency) when built with
//! the `x264` feature, else openh264. The report names both sides' encoders.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::media::flv::{Demuxed, Demuxer, FileTags};
use crate::media::h264::AvcConfig;
use crate::media::{Packet, Track};
use crate::transcode::backend::{Backend, EncoderChoice, SoftEncoder};
use crate::transcode::ladder::{default_ladder, plan};
use crate::transcode::ladder_run::LadderRun;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("ffmpeg: {0}")]
    Ffmpeg(String),
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Stage(#[from] crate::transcode::StageError),
}

/// Makes (once) a test clip with ffmpeg under the system temp dir.
pub fn clip(size: &str, fps: u32, secs: u32) -> Result<PathBuf, BenchError> {
    let path = std::env::temp_dir().join(format!("ladderd-bench-{size}-{fps}-{secs}s.flv"));
    if path.exists() {
        return Ok(path);
    }
    let tmp = path.with_extension(format!("{}.flv", std::process::id()));
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate={fps}"))
        .args([
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-bf",
            "3",
            "-g",
        ])
        .arg((fps * 2).to_string())
        .arg(&tmp)
        .status()
        .map_err(|e| {
            BenchError::Ffmpeg(format!(
                "cannot run ffmpeg ({e}); install it (apt-get install ffmpeg)"
            ))
        })?;
    if !st.success() {
        return Err(BenchError::Ffmpeg(format!("making {size}@{fps} failed")));
    }
    std::fs::rename(&tmp, &path).map_err(|e| BenchError::Input(e.to_string()))?;
    Ok(path)
}

fn load(path: &Path) -> Result<(AvcConfig, f64, Vec<Packet>), BenchError> {
    let data = Bytes::from(
        std::fs::read(path).map_err(|e| BenchError::Input(format!("{}: {e}", path.display())))?,
    );
    let mut d = Demuxer::new(0);
    let now = Instant::now();
    let mut video = Vec::new();
    for tag in FileTags::new(data).map_err(|e| BenchError::Input(e.to_string()))? {
        let tag = tag.map_err(|e| BenchError::Input(e.to_string()))?;
        if tag.kind == 9 {
            if let Ok(Demuxed::Packet(p)) = d.push_video(tag.timestamp_ms, &tag.body, now) {
                if p.track == Track::Video {
                    video.push(p);
                }
            }
        }
    }
    let cfg = d
        .video_config()
        .cloned()
        .ok_or_else(|| BenchError::Input("no H.264 video".into()))?;
    let fps = cfg.fps.unwrap_or(30.0);
    Ok((cfg, fps, video))
}

/// The encoder ladderd benches with: as asked, else the one matching
/// ffmpeg's side (x264 ultrafast) when this build has it. One x264 thread per
/// rung: the rungs already run on their own threads.
pub fn bench_encoder(choice: Option<EncoderChoice>) -> SoftEncoder {
    let choice = choice.unwrap_or(if cfg!(feature = "x264") {
        EncoderChoice::X264
    } else {
        EncoderChoice::Openh264
    });
    SoftEncoder {
        choice,
        x264_preset: "ultrafast".into(),
        x264_threads: 1,
    }
}

/// Runs the whole ladder over `packets` as fast as possible; returns the wall time.
fn run_ladder(
    cfg: &AvcConfig,
    fps: f64,
    packets: &[Packet],
    soft: &SoftEncoder,
) -> Result<Duration, BenchError> {
    run_ladder_with(cfg, fps, packets, soft, true)
}

fn run_ladder_with(
    cfg: &AvcConfig,
    fps: f64,
    packets: &[Packet],
    soft: &SoftEncoder,
    telemetry: bool,
) -> Result<Duration, BenchError> {
    let backend = Backend::Cpu(soft.clone());
    let mut run = LadderRun::with_backend(cfg, fps, &default_ladder(), 2.0, &backend)?;
    run.set_telemetry(telemetry);
    let t = Instant::now();
    let mut sink = |_: usize, _| {};
    for p in packets {
        run.push(p, &mut sink)?;
    }
    run.finish(&mut sink)?;
    Ok(t.elapsed())
}

pub struct LadderReport {
    pub text: String,
    pub ratio: f64,
}

/// ladderd vs ffmpeg (split + bilinear scale + libx264 ultrafast) on one input.
pub fn ladder(
    input: Option<&Path>,
    encoder: Option<EncoderChoice>,
) -> Result<LadderReport, BenchError> {
    let soft = bench_encoder(encoder);
    soft.check().map_err(BenchError::Input)?;
    let path = match input {
        Some(p) => p.to_path_buf(),
        None => clip("1920x1080", 30, 10)?,
    };
    let (cfg, fps, packets) = load(&path)?;
    let rungs = plan(&default_ladder(), cfg.width, cfg.height, fps);
    let n = rungs.len();
    let mut filter = format!("[0:v]split={n}");
    for i in 0..n {
        filter += &format!("[s{i}]");
    }
    filter += ";";
    for (i, r) in rungs.iter().enumerate() {
        let select = if r.frame_step > 1 {
            format!("select='not(mod(n\\,{}))',", r.frame_step)
        } else {
            String::new()
        };
        filter += &format!(
            "[s{i}]{select}scale={}:{}:flags=bilinear[o{i}];",
            r.width, r.height
        );
    }
    filter.pop();
    // ffmpeg twice: one thread per encoder (its pipeline then runs on one
    // core, like a ladder without rung threads) and with its own threading.
    let ffmpeg = |threads: Option<&str>| {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-v", "error", "-y"]);
        if let Some(t) = threads {
            cmd.args(["-threads", t]);
        }
        cmd.arg("-i").arg(&path).args(["-filter_complex", &filter]);
        for (i, r) in rungs.iter().enumerate() {
            cmd.args([
                "-map",
                &format!("[o{i}]"),
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
            ]);
            if let Some(t) = threads {
                cmd.args(["-threads", t]);
            }
            cmd.args(["-b:v", &r.bitrate_bps.to_string(), "-f", "null", "-"]);
        }
        cmd
    };
    let time = |mut cmd: Command| -> Result<Duration, BenchError> {
        let t = Instant::now();
        let st = cmd
            .status()
            .map_err(|e| BenchError::Ffmpeg(e.to_string()))?;
        if !st.success() {
            return Err(BenchError::Ffmpeg("ladder run failed".into()));
        }
        Ok(t.elapsed())
    };
    // Best of two for each, same input, same run.
    let (mut ff1, mut ffn, mut ours) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..2 {
        ff1 = ff1.min(time(ffmpeg(Some("1")))?);
        ffn = ffn.min(time(ffmpeg(None))?);
        ours = ours.min(run_ladder(&cfg, fps, &packets, &soft)?);
    }
    let ff = ff1.min(ffn);
    let frames = packets.len() as f64;
    let names: Vec<&str> = rungs.iter().map(|r| r.name.as_str()).collect();
    let ratio = ff.as_secs_f64() / ours.as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let line = |label: &str, d: Duration| {
        format!(
            "{label:<52} {:>8.1} fps  {:>7.2} s\n",
            frames / d.as_secs_f64(),
            d.as_secs_f64()
        )
    };
    let text = format!(
        "bench ladder: {} ({}x{}@{fps:.0}, {} frames) -> {names:?}, decode once, {cores} cores\n{}{}{}\
         ratio ladderd / best ffmpeg: {ratio:.2}x (vs one-thread ffmpeg: {:.2}x)\n",
        path.display(),
        cfg.width,
        cfg.height,
        packets.len(),
        line("ffmpeg split+scale(bilinear)+x264 ultrafast, -threads 1", ff1),
        line("ffmpeg same, its own threading", ffn),
        line(
            &format!(
                "ladderd {} + fast_image_resize, a thread per rung",
                soft.describe()
            ),
            ours
        ),
        ff1.as_secs_f64() / ours.as_secs_f64(),
    );
    Ok(LadderReport { text, ratio })
}

/// Runs `run` on `n` threads at once; the slowest one's time (the channel
/// count benches: every channel must hold real time).
pub fn slowest_of<E: Send>(
    n: usize,
    run: impl Fn() -> Result<Duration, E> + Sync,
    panicked: impl Fn() -> E,
) -> Result<Duration, E> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(&run)).collect();
        let mut worst = Duration::ZERO;
        for h in handles {
            match h.join() {
                Ok(Ok(d)) => worst = worst.max(d),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(panicked()),
            }
        }
        Ok(worst)
    })
}

/// How many 720p30 → 3-rung ladders run at once in real time (each on its own thread).
pub fn channels(input: Option<&Path>, max: usize) -> Result<String, BenchError> {
    let path = match input {
        Some(p) => p.to_path_buf(),
        None => clip("1280x720", 30, 10)?,
    };
    let (cfg, fps, packets) = load(&path)?;
    let soft = bench_encoder(None);
    let realtime = Duration::from_secs_f64(packets.len() as f64 / fps);
    let mut text = format!(
        "bench channels: {} ({} frames = {:.1} s of video per channel), {}\n",
        path.display(),
        packets.len(),
        realtime.as_secs_f64(),
        soft.describe()
    );
    let mut held = 0;
    for n in 1..=max {
        let slowest = slowest_of(
            n,
            || run_ladder(&cfg, fps, &packets, &soft),
            || BenchError::Input("ladder thread panicked".into()),
        )?;
        let rtf = realtime.as_secs_f64() / slowest.as_secs_f64();
        text += &format!(
            "  {n} channel(s): slowest {:.2} s, real-time factor {rtf:.2}\n",
            slowest.as_secs_f64()
        );
        if rtf < 1.0 {
            break;
        }
        held = n;
    }
    text += &format!("channels held in real time: {held}\n");
    Ok(text)
}

/// The cost of telemetry: ns per recorded latency sample, and ladder fps with
/// latency recording on and off (alternating runs on the same input).
pub fn telemetry(input: Option<&Path>) -> Result<String, BenchError> {
    let mut h = crate::telemetry::latency::latency_histogram();
    let n = 10_000_000u64;
    let t = Instant::now();
    for i in 0..n {
        let _ = h.record(std::hint::black_box(1 + (i * 7919) % 50_000));
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    let path = match input {
        Some(p) => p.to_path_buf(),
        None => clip("1280x720", 30, 10)?,
    };
    let (cfg, fps, packets) = load(&path)?;
    let soft = bench_encoder(None);
    let (mut on, mut off) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..2 {
        on += run_ladder_with(&cfg, fps, &packets, &soft, true)?;
        off += run_ladder_with(&cfg, fps, &packets, &soft, false)?;
    }
    let frames = 2.0 * packets.len() as f64;
    let (fps_on, fps_off) = (frames / on.as_secs_f64(), frames / off.as_secs_f64());
    Ok(format!(
        "telemetry: {ns:.1} ns per recorded latency sample (hdrhistogram, 10M samples)\n\
         ladder {}x{} -> {} rungs: {fps_on:.1} fps with latency recording, {fps_off:.1} fps without ({:+.2}%)\n",
        cfg.width,
        cfg.height,
        plan(&default_ladder(), cfg.width, cfg.height, fps).len(),
        (fps_on / fps_off - 1.0) * 100.0
    ))
}
