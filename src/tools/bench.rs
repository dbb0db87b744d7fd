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
use crate::transcode::backend::{Backend, EncoderChoice, SoftCodecs};
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
pub fn bench_encoder(choice: Option<EncoderChoice>) -> SoftCodecs {
    let choice = choice.unwrap_or(if cfg!(feature = "x264") {
        EncoderChoice::X264
    } else {
        EncoderChoice::Openh264
    });
    SoftCodecs {
        choice,
        x264_preset: "ultrafast".into(),
        x264_threads: 1,
        ..SoftCodecs::default()
    }
}

/// Runs the whole ladder over `packets` as fast as possible; returns the wall time.
fn run_ladder(
    cfg: &AvcConfig,
    fps: f64,
    packets: &[Packet],
    soft: &SoftCodecs,
) -> Result<Duration, BenchError> {
    Ok(run_ladder_cpu(cfg, fps, packets, soft, true)?.0)
}

fn run_ladder_with(
    cfg: &AvcConfig,
    fps: f64,
    packets: &[Packet],
    soft: &SoftCodecs,
    telemetry: bool,
) -> Result<Duration, BenchError> {
    Ok(run_ladder_cpu(cfg, fps, packets, soft, telemetry)?.0)
}

/// CPU per source picture by stage (ms): decode (with the hand-off to the
/// rungs), scale and encode (all rungs together).
#[derive(Debug, Clone, Copy, Default)]
pub struct StageCpu {
    pub decode: f64,
    pub scale: f64,
    pub encode: f64,
}

impl StageCpu {
    fn text(&self) -> String {
        format!(
            "CPU per picture: decode {:.2} ms, scale {:.2} ms, encode {:.2} ms (all rungs), total {:.2} ms",
            self.decode,
            self.scale,
            self.encode,
            self.decode + self.scale + self.encode
        )
    }
}

/// The ladder over `packets` as fast as it goes: wall time and CPU by stage.
fn run_ladder_cpu(
    cfg: &AvcConfig,
    fps: f64,
    packets: &[Packet],
    soft: &SoftCodecs,
    telemetry: bool,
) -> Result<(Duration, StageCpu), BenchError> {
    let backend = Backend::Cpu(soft.clone());
    let mut run = LadderRun::with_backend(cfg, fps, &default_ladder(), 2.0, &backend)?;
    run.set_telemetry(telemetry);
    let t = Instant::now();
    let mut sink = |_: usize, _| {};
    for p in packets {
        run.push(p, &mut sink)?;
    }
    run.finish(&mut sink)?;
    let wall = t.elapsed();
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / packets.len().max(1) as f64;
    let (scale, encode) = run
        .rungs()
        .fold((Duration::ZERO, Duration::ZERO), |(s, e), (_, st)| {
            (s + st.scale_cpu, e + st.encode_cpu)
        });
    Ok((
        wall,
        StageCpu {
            decode: per(run.decode_cpu),
            scale: per(scale),
            encode: per(encode),
        },
    ))
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
    soft.check().map_err(|e| BenchError::Input(e.to_string()))?;
    let path = match input {
        Some(p) => p.to_path_buf(),
        None => clip("1920x1080", 30, 10)?,
    };
    let (cfg, fps, packets) = load(&path)?;
    let rungs = plan(&default_ladder(), cfg.width, cfg.height, fps);
    // ffmpeg twice: one thread per encoder (its pipeline then runs on one
    // core, like a ladder without rung threads) and with its own threading.
    let ffmpeg = |threads: Option<&str>| ffmpeg_ladder(&path, &rungs, threads, false);
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
    // The same ladder with openh264 decoding and fast_image_resize scaling:
    // the stages before libavcodec and libswscale.
    let openh264 = SoftCodecs {
        decoder: crate::config::DecoderChoice::Openh264,
        scaler: crate::config::ScalerChoice::FastImageResize,
        ..soft.clone()
    };
    // Best of two for each, same input, same run.
    let (mut ff1, mut ffn, mut ours, mut before) =
        (Duration::MAX, Duration::MAX, Duration::MAX, Duration::MAX);
    let (mut cpu, mut cpu_before) = (StageCpu::default(), StageCpu::default());
    // And without cascade scaling (`[ladder] cascade`, on by default).
    let cascading = SoftCodecs {
        cascade: !soft.cascade,
        ..soft.clone()
    };
    let (mut cascaded, mut cpu_cascade) = (Duration::MAX, StageCpu::default());
    for _ in 0..2 {
        ff1 = ff1.min(time(ffmpeg(Some("1")))?);
        ffn = ffn.min(time(ffmpeg(None))?);
        let (d, c) = run_ladder_cpu(&cfg, fps, &packets, &soft, true)?;
        if d < ours {
            (ours, cpu) = (d, c);
        }
        let (d, c) = run_ladder_cpu(&cfg, fps, &packets, &cascading, true)?;
        if d < cascaded {
            (cascaded, cpu_cascade) = (d, c);
        }
        if openh264 != soft {
            let (d, c) = run_ladder_cpu(&cfg, fps, &packets, &openh264, true)?;
            if d < before {
                (before, cpu_before) = (d, c);
            }
        }
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
    let decoder = soft.decoder_name().unwrap_or_else(|e| e.to_string());
    let scaler = soft.scaler_name().unwrap_or_else(|e| e.to_string());
    let mut text = format!(
        "bench ladder: {} ({}x{}@{fps:.0}, {} frames) -> {names:?}, decode once, {cores} cores\n{}{}{}\
         ratio ladderd / best ffmpeg: {ratio:.2}x (vs one-thread ffmpeg: {:.2}x)\n  ladderd {}\n",
        path.display(),
        cfg.width,
        cfg.height,
        packets.len(),
        line("ffmpeg split+scale(bilinear)+x264 ultrafast, -threads 1", ff1),
        line("ffmpeg same, its own threading", ffn),
        line(
            &format!(
                "ladderd {decoder} + {scaler} + {}, rungs on the worker pool",
                soft.describe()
            ),
            ours
        ),
        ff1.as_secs_f64() / ours.as_secs_f64(),
        cpu.text(),
    );
    text += &line(
        &format!("ladderd the same with cascade = {}", cascading.cascade),
        cascaded,
    );
    text += &format!(
        "  ratio with cascade = {} / best ffmpeg: {:.2}x; {}\n",
        cascading.cascade,
        ff.as_secs_f64() / cascaded.as_secs_f64(),
        cpu_cascade.text()
    );
    if before != Duration::MAX {
        text += &line(
            "ladderd the same, openh264 decode + fast_image_resize (before)",
            before,
        );
        text += &format!(
            "  ratio before / best ffmpeg: {:.2}x; {}\n",
            ff.as_secs_f64() / before.as_secs_f64(),
            cpu_before.text()
        );
    }
    Ok(LadderReport { text, ratio })
}

/// ffmpeg running the same ladder as ladderd: split, bilinear scale per rung
/// (every `frame_step`th picture for a lower frame rate), libx264 ultrafast
/// at each rung's bitrate (`zerolatency`: as ladderd's live encoders), output
/// discarded. `threads`: `-threads` for the decoder and each encoder.
fn ffmpeg_ladder(
    path: &Path,
    rungs: &[crate::transcode::ladder::Rung],
    threads: Option<&str>,
    zerolatency: bool,
) -> Command {
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
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y"]);
    if let Some(t) = threads {
        cmd.args(["-threads", t]);
    }
    cmd.arg("-i").arg(path).args(["-filter_complex", &filter]);
    for (i, r) in rungs.iter().enumerate() {
        cmd.args([
            "-map",
            &format!("[o{i}]"),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ]);
        if zerolatency {
            cmd.args(["-tune", "zerolatency"]);
        }
        if let Some(t) = threads {
            cmd.args(["-threads", t]);
        }
        cmd.args(["-b:v", &r.bitrate_bps.to_string(), "-f", "null", "-"]);
    }
    cmd
}

/// Runs `n` ffmpeg ladders at once; the slowest one's time.
fn ffmpeg_slowest(n: usize, make: impl Fn() -> Command) -> Result<Duration, BenchError> {
    let t = Instant::now();
    let mut children = Vec::new();
    for _ in 0..n {
        let child = make()
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| BenchError::Ffmpeg(e.to_string()))?;
        children.push(child);
    }
    let mut worst = Duration::ZERO;
    let mut failed = false;
    for mut c in children {
        failed |= !c.wait().is_ok_and(|s| s.success());
        worst = worst.max(t.elapsed());
    }
    if failed {
        return Err(BenchError::Ffmpeg("ladder run failed".into()));
    }
    Ok(worst)
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
        "bench channels: {} ({} frames = {:.1} s of video per channel), {} decode, {}\n",
        path.display(),
        packets.len(),
        realtime.as_secs_f64(),
        soft.decoder_name().unwrap_or_else(|e| e.to_string()),
        soft.describe()
    );
    let rungs = plan(&default_ladder(), cfg.width, cfg.height, fps);
    let mut ffmpeg_held = 0;
    for n in 1..=max {
        let slowest = ffmpeg_slowest(n, || ffmpeg_ladder(&path, &rungs, None, true))?;
        let rtf = realtime.as_secs_f64() / slowest.as_secs_f64();
        text += &format!(
            "  ffmpeg, {n} process(es): slowest {:.2} s, real-time factor {rtf:.2}\n",
            slowest.as_secs_f64()
        );
        if rtf < 1.0 {
            break;
        }
        ffmpeg_held = n;
    }
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
    text += &format!(
        "channels held in real time: ladderd {held}, ffmpeg {ffmpeg_held} (one process per channel, \
         split + bilinear scale + x264 ultrafast zerolatency, same rungs and bitrates): {:.2}x\n",
        held as f64 / ffmpeg_held.max(1) as f64
    );
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
