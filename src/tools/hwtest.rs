//! `ladderd hwtest`: the suite a hardware lab runs on a GPU box (one command:
//! `bash hwtest/run.sh`). It needs nothing but the binary and the NVIDIA
//! driver: the input is the demo pattern encoded here at 1080p60.
//!
//! Checks: probe; the CUDA scaler against the CPU scaler (PSNR ≥ 45 dB per
//! rung); NVDEC fps and frame count; scale µs per rung and for the whole
//! ladder in one launch; NVENC fps per rung where NVENC exists; full-ladder
//! p50/p99 per picture; device→host bytes on the ladder; and how many
//! 1080p60 → full-ladder channels hold real time. A failed step is a failed
//! row, never an abort.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::media::h264::AvcConfig;
use crate::media::Packet;
use crate::telemetry::latency::Percentiles;
use crate::transcode::backend::{Backend, SoftCodecs};
use crate::transcode::cpu::{BilinearScaler, OpenH264Decoder};
use crate::transcode::frame::psnr;
use crate::transcode::gpu::context::DEVICE_TO_HOST_BYTES;
use crate::transcode::gpu::nvdec::NvdecDecoder;
use crate::transcode::gpu::nvenc::NvencEncoder;
use crate::transcode::gpu::scaler::{GpuRungScaler, LadderScaler};
use crate::transcode::gpu::{self, Gpu, GpuReport, Plan};
use crate::transcode::ladder::{self, default_ladder, Rung};
use crate::transcode::ladder_run::LadderRun;
use crate::transcode::pattern::PatternSource;
use crate::transcode::{Decoder, Encoder, Frame, Scaler};

pub struct Options {
    /// Length of the 1080p60 test clip.
    pub seconds: f64,
    /// Stop the channel count here.
    pub max_channels: usize,
    pub device: usize,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub check: String,
    pub result: String,
    /// None: a measurement with no pass/fail bar.
    pub pass: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// On NVIDIA hardware (false on ladderd's CPU stand-in driver).
    pub ran_on_gpu: bool,
    /// Set when the driver is ladderd's CPU stand-in (CI): the rows check our
    /// use of the APIs; no number in them is a hardware figure.
    pub stand_in: Option<String>,
    pub rows: Vec<Row>,
    pub probe: GpuReport,
}

impl Report {
    fn row(&mut self, check: impl Into<String>, result: impl Into<String>, pass: Option<bool>) {
        let result = result.into();
        self.rows.push(Row {
            check: check.into(),
            result: match self.stand_in {
                Some(_) => format!("[stand-in, not hardware] {result}"),
                None => result,
            },
            pass,
        });
    }

    /// No row failed (whatever it ran on).
    pub fn rows_passed(&self) -> bool {
        self.rows.iter().all(|r| r.pass != Some(false))
    }

    fn fail(&mut self, check: &str, e: impl std::fmt::Display) {
        self.row(check, format!("error: {e}"), Some(false));
    }

    pub fn passed(&self) -> bool {
        self.ran_on_gpu && self.rows_passed()
    }

    pub fn to_table(&self) -> String {
        let w = self
            .rows
            .iter()
            .map(|r| r.check.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut s = match &self.stand_in {
            Some(who) => {
                format!("STAND-IN DRIVER ({who}): API-use checks only, no hardware figures\n")
            }
            None => String::new(),
        };
        s += &format!(
            "| {:<w$} | result | ok |\n|{}|---|---|\n",
            "check",
            "-".repeat(w + 2)
        );
        for r in &self.rows {
            let ok = match r.pass {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            s += &format!("| {:<w$} | {} | {ok} |\n", r.check, r.result);
        }
        s
    }
}

/// Why a check stopped before its end (its row says so).
#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error(transparent)]
    Stage(#[from] crate::transcode::StageError),
    #[error(transparent)]
    Gpu(#[from] gpu::GpuError),
    #[error(transparent)]
    Pattern(#[from] crate::transcode::pattern::PatternError),
    /// What the check compared did not match.
    #[error("{0}")]
    Mismatch(String),
    /// Something the check needs did not come.
    #[error("{0}")]
    Missing(&'static str),
}

/// The 1080p60 pattern, encoded (2 s GOPs at 12 Mbit/s).
fn clip(frames: usize) -> Result<(AvcConfig, Vec<Packet>), CheckError> {
    let mut src = PatternSource::new(1920, 1080, 60, 12_000, 120)?;
    let mut config = None;
    let mut packets = Vec::with_capacity(frames);
    while packets.len() < frames {
        if let Some((c, p)) = src.next(0)? {
            config = config.or(c);
            packets.push(p);
        }
    }
    let config = config.ok_or(CheckError::Missing("no config from the pattern encoder"))?;
    Ok((config, packets))
}

pub fn run(opts: &Options) -> Report {
    let probe = gpu::probe();
    let stand_in = gpu::cuda::stand_in();
    // On the stand-in every kernel runs on the CPU: a short clip, few
    // iterations, one channel (the rows still exercise every path).
    let quick = stand_in.is_some();
    let mut report = Report {
        ran_on_gpu: false,
        stand_in,
        rows: Vec::new(),
        probe,
    };
    let p = &report.probe;
    let summary = (p.driver.clone(), p.backend.clone(), p.nvrtc.clone());
    report.row("driver", summary.0, None);
    let devices: Vec<String> = report
        .probe
        .devices
        .iter()
        .map(|d| {
            format!(
                "{}: {}; NVDEC h264 {}; NVENC {}",
                d.info.ordinal,
                d.info.summary(),
                if d.nvdec_h264() { "yes" } else { "no" },
                match &d.nvenc {
                    Ok(c) => c.join(","),
                    Err(e) => format!("none ({e})"),
                }
            )
        })
        .collect();
    for d in devices {
        report.row("device", d, None);
    }
    report.row(
        "nvrtc",
        match summary.2 {
            Ok(v) => v,
            Err(e) => format!("missing: {e}"),
        },
        None,
    );
    report.row("backend (auto)", summary.1, None);
    let (gpu, plan) = match gpu::open(opts.device) {
        Ok(x) => x,
        Err(why) => {
            report.row("gpu", format!("not run: {why}"), Some(false));
            return report;
        }
    };
    report.ran_on_gpu = !quick;
    let frames = if quick {
        30
    } else {
        ((opts.seconds * 60.0).round() as usize).max(120)
    };
    let iters = if quick { 3 } else { 300 };
    let t = Instant::now();
    let (config, packets) = match clip(frames) {
        Ok(c) => c,
        Err(e) => {
            report.fail("test clip", e);
            return report;
        }
    };
    report.row(
        "test clip",
        format!(
            "{}x{}@60 pattern, {} frames, encoded in {:.1} s",
            config.width,
            config.height,
            packets.len(),
            t.elapsed().as_secs_f64()
        ),
        None,
    );
    let rungs = ladder::plan(&default_ladder(), config.width, config.height, 60.0);
    kernel_correctness(&mut report, &gpu, &config, &packets, &rungs);
    nvdec_throughput(&mut report, &gpu, &plan, &config, &packets);
    scale_timing(&mut report, &gpu, &config, &packets, &rungs, iters);
    if plan.nvenc {
        nvenc_throughput(&mut report, &gpu, &config, &packets, &rungs, iters);
    } else {
        report.row(
            "nvenc fps",
            format!("not measured: {}", plan.describe()),
            None,
        );
    }
    let backend = Backend::Gpu {
        gpu: gpu.clone(),
        plan: plan.clone(),
        soft: SoftCodecs::fastest(),
    };
    full_ladder(&mut report, &backend, &plan, &config, &packets);
    let max_channels = if quick { 1 } else { opts.max_channels };
    channels(&mut report, &backend, &config, &packets, max_channels);
    report
}

/// A few CPU-decoded pictures of the clip (host frames).
fn host_pictures(
    config: &AvcConfig,
    packets: &[Packet],
    n: usize,
) -> Result<Vec<Frame>, CheckError> {
    let mut dec = OpenH264Decoder::new(config.clone())?;
    let mut out = Vec::new();
    for p in packets {
        dec.decode(p, &mut |f| out.push(f.clone()))?;
        if out.len() >= n {
            break;
        }
    }
    Ok(out)
}

fn kernel_correctness(
    r: &mut Report,
    gpu: &Arc<Gpu>,
    config: &AvcConfig,
    packets: &[Packet],
    rungs: &[Rung],
) {
    let check = "kernel vs CPU scaler";
    let result = (|| -> Result<Vec<(String, f64, f64)>, CheckError> {
        let pics = host_pictures(config, packets, 31)?;
        let src = pics
            .last()
            .ok_or_else(|| CheckError::Missing("no decoded picture"))?;
        let sizes: Vec<(u32, u32)> = rungs.iter().map(|r| (r.width, r.height)).collect();
        let shared = LadderScaler::new(gpu.clone(), &sizes)?;
        let mut out = Vec::new();
        for (i, rung) in rungs.iter().enumerate() {
            let mut g = Frame::new(rung.width, rung.height);
            GpuRungScaler::new(shared.clone(), i, true).scale(src, &mut g)?;
            let mut c = Frame::new(rung.width, rung.height);
            BilinearScaler::new().scale(src, &mut c)?;
            let uv = (psnr(&g.u, &c.u) + psnr(&g.v, &c.v)) / 2.0;
            out.push((rung.name.clone(), psnr(&g.y, &c.y), uv));
        }
        Ok(out)
    })();
    match result {
        Err(e) => r.fail(check, e),
        Ok(rows) => {
            for (name, y, uv) in rows {
                let pass = y >= 45.0 && uv >= 45.0;
                r.row(
                    format!("{check} {name}"),
                    format!("PSNR Y {y:.1} dB, UV {uv:.1} dB (≥ 45)"),
                    Some(pass),
                );
            }
        }
    }
}

fn nvdec_throughput(
    r: &mut Report,
    gpu: &Arc<Gpu>,
    plan: &Plan,
    config: &AvcConfig,
    packets: &[Packet],
) {
    let check = "nvdec 1080p60 h264";
    if !plan.nvdec {
        // Every NVIDIA GPU ladderd targets has NVDEC: absent means libnvcuvid
        // is not reachable (a container without the `video` driver capability).
        r.row(
            check,
            format!(
                "NVDEC unavailable ({}): in a container, add the `video` driver capability",
                plan.describe()
            ),
            Some(false),
        );
        return;
    }
    let result = (|| -> Result<(usize, Duration), CheckError> {
        let mut dec = NvdecDecoder::new(gpu.clone(), config.clone())?;
        let mut n = 0usize;
        let t = Instant::now();
        for p in packets {
            dec.decode(p, &mut |_| n += 1)?;
        }
        dec.flush(&mut |_| n += 1)?;
        Ok((n, t.elapsed()))
    })();
    match result {
        Err(e) => r.fail(check, e),
        Ok((n, d)) => r.row(
            check,
            format!(
                "{:.0} fps ({n} of {} pictures out)",
                n as f64 / d.as_secs_f64(),
                packets.len()
            ),
            Some(n == packets.len()),
        ),
    }
    nvdec_exact(r, gpu, config, packets);
}

/// NVDEC's pictures against the software decoder's, every sample of every
/// picture (H.264 decoding is exact), and how many packets gave their picture
/// back within the same `decode()` call (the low-latency contract: all of them).
fn nvdec_exact(r: &mut Report, gpu: &Arc<Gpu>, config: &AvcConfig, packets: &[Packet]) {
    let check = "nvdec pictures = software decoder";
    let result = (|| -> Result<(usize, usize, usize), CheckError> {
        let mut dec = NvdecDecoder::new(gpu.clone(), config.clone())?;
        let mut soft = OpenH264Decoder::new(config.clone())?;
        let mut want = std::collections::HashMap::new();
        let (mut same, mut compared, mut prompt) = (0usize, 0usize, 0usize);
        let mut err = None;
        for p in packets {
            soft.decode(p, &mut |f| {
                want.insert(f.pts, f.clone());
            })?;
            let mut got = Vec::new();
            dec.decode(p, &mut |f| got.push(host_copy(gpu, f)))?;
            if got.iter().any(|g| matches!(g, Ok(f) if f.pts == p.pts)) {
                prompt += 1;
            }
            for g in got {
                let g = g?;
                let Some(w) = want.remove(&g.pts) else {
                    err.get_or_insert(format!("pts {}: no software picture", g.pts));
                    continue;
                };
                compared += 1;
                if w.y == g.y && w.u == g.u && w.v == g.v {
                    same += 1;
                } else {
                    err.get_or_insert(format!("pts {}: samples differ", g.pts));
                }
            }
        }
        match err {
            Some(e) if same == 0 => Err(CheckError::Mismatch(e)),
            _ => Ok((same, compared, prompt)),
        }
    })();
    match result {
        Err(e) => r.fail(check, e),
        Ok((same, compared, prompt)) => {
            r.row(
                check,
                format!(
                    "{same} of {compared} pictures identical ({} packets)",
                    packets.len()
                ),
                Some(same == compared && compared == packets.len()),
            );
            r.row(
                "nvdec picture out in the same decode() call",
                format!("{prompt} of {} packets", packets.len()),
                Some(prompt == packets.len()),
            );
        }
    }
}

/// A decoded device picture (NV12, pitched) as a host I420 frame.
fn host_copy(gpu: &Arc<Gpu>, f: &Frame) -> Result<Frame, CheckError> {
    let d = f
        .device
        .as_ref()
        .ok_or_else(|| CheckError::Missing("NVDEC gave a picture without device memory"))?;
    let (w, h) = (f.width as usize, f.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut luma = vec![0u8; d.pitch * h];
    let mut chroma = vec![0u8; d.pitch * ch];
    gpu.download(&gpu.stream, d.luma, &mut luma)?;
    gpu.download(&gpu.stream, d.chroma, &mut chroma)?;
    let mut out = Frame::new(f.width, f.height);
    out.pts = f.pts;
    for y in 0..h {
        out.y[y * w..(y + 1) * w].copy_from_slice(&luma[y * d.pitch..y * d.pitch + w]);
    }
    for y in 0..ch {
        for x in 0..cw {
            out.u[y * cw + x] = chroma[y * d.pitch + 2 * x];
            out.v[y * cw + x] = chroma[y * d.pitch + 2 * x + 1];
        }
    }
    Ok(out)
}

fn time_scaler(
    shared: &Arc<Mutex<LadderScaler>>,
    src: &Frame,
    index: usize,
    iters: usize,
) -> Result<f64, CheckError> {
    let mut s = GpuRungScaler::new(shared.clone(), index, false);
    let mut dst = Frame::new(2, 2);
    let mut src = src.clone();
    let t = Instant::now();
    for i in 0..iters {
        src.pts = i as i64; // a new picture each time, so the launch really runs
        s.scale(&src, &mut dst)?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / iters as f64)
}

fn scale_timing(
    r: &mut Report,
    gpu: &Arc<Gpu>,
    config: &AvcConfig,
    packets: &[Packet],
    rungs: &[Rung],
    iters: usize,
) {
    let result = (|| -> Result<(Vec<(String, f64)>, f64), CheckError> {
        let pics = host_pictures(config, packets, 1)?;
        let host = pics
            .first()
            .ok_or_else(|| CheckError::Missing("no decoded picture"))?;
        // A source picture on the device, as NVDEC would leave it.
        let staging = LadderScaler::new(gpu.clone(), &[(host.width, host.height)])?;
        let mut src = Frame::new(host.width, host.height);
        GpuRungScaler::new(staging.clone(), 0, false).scale(host, &mut src)?;
        let mut per = Vec::new();
        for rung in rungs {
            let one = LadderScaler::new(gpu.clone(), &[(rung.width, rung.height)])?;
            per.push((rung.name.clone(), time_scaler(&one, &src, 0, iters)?));
        }
        let sizes: Vec<(u32, u32)> = rungs.iter().map(|r| (r.width, r.height)).collect();
        let all = LadderScaler::new(gpu.clone(), &sizes)?;
        Ok((per, time_scaler(&all, &src, 0, iters)?))
    })();
    match result {
        Err(e) => r.fail("scale", e),
        Ok((per, all)) => {
            for (name, us) in per {
                r.row(
                    format!("scale {name}"),
                    format!("{us:.0} µs per picture (launch + sync)"),
                    None,
                );
            }
            r.row(
                "scale all rungs, one launch",
                format!("{all:.0} µs per picture"),
                None,
            );
        }
    }
}

fn nvenc_throughput(
    r: &mut Report,
    gpu: &Arc<Gpu>,
    config: &AvcConfig,
    packets: &[Packet],
    rungs: &[Rung],
    iters: usize,
) {
    let result = (|| -> Result<Vec<(String, f64)>, CheckError> {
        let pics = host_pictures(config, packets, 1)?;
        let host = pics
            .first()
            .ok_or_else(|| CheckError::Missing("no decoded picture"))?;
        let sizes: Vec<(u32, u32)> = rungs.iter().map(|r| (r.width, r.height)).collect();
        let shared = LadderScaler::new(gpu.clone(), &sizes)?;
        let mut out = Vec::new();
        for (i, rung) in rungs.iter().enumerate() {
            let mut pic = Frame::new(rung.width, rung.height);
            GpuRungScaler::new(shared.clone(), i, false).scale(host, &mut pic)?;
            let mut enc = NvencEncoder::new(gpu.clone(), rung, 2.0)?;
            let n = iters;
            let t = Instant::now();
            for k in 0..n {
                pic.pts = k as i64 * 1500;
                enc.encode(&pic, k % 120 == 0)?;
            }
            out.push((rung.name.clone(), n as f64 / t.elapsed().as_secs_f64()));
        }
        Ok(out)
    })();
    match result {
        Err(e) => r.fail("nvenc", e),
        Ok(rows) => {
            for (name, fps) in rows {
                r.row(format!("nvenc {name}"), format!("{fps:.0} fps"), None);
            }
        }
    }
}

fn ladder_once(
    backend: &Backend,
    config: &AvcConfig,
    packets: &[Packet],
) -> Result<(LadderRun, Duration), CheckError> {
    let mut run = LadderRun::with_backend(config, 60.0, &default_ladder(), 2.0, backend)?;
    let mut sink = |_: usize, _| {};
    let t = Instant::now();
    for p in packets {
        run.push(p, &mut sink)?;
    }
    run.finish(&mut sink)?;
    Ok((run, t.elapsed()))
}

fn full_ladder(
    r: &mut Report,
    backend: &Backend,
    plan: &Plan,
    config: &AvcConfig,
    packets: &[Packet],
) {
    let before = DEVICE_TO_HOST_BYTES.load(Relaxed);
    let fallbacks_before = crate::transcode::gpu::nvenc::CPU_FALLBACK_RUNGS.load(Relaxed);
    match ladder_once(backend, config, packets) {
        Err(e) => r.fail("full ladder", e),
        Ok((run, wall)) => {
            let copied = DEVICE_TO_HOST_BYTES.load(Relaxed) - before;
            let dec = Percentiles::of(&run.latency.decode_us);
            let lad = Percentiles::of(&run.latency.ladder_us);
            let names: Vec<&str> = run.rungs().map(|(r, _)| r.name.as_str()).collect();
            r.row(
                "full ladder",
                format!(
                    "{} -> {names:?}: {:.0} fps; per picture decode p50 {:.2} ms p99 {:.2} ms, scale+encode all rungs p50 {:.2} ms p99 {:.2} ms",
                    backend.describe(),
                    packets.len() as f64 / wall.as_secs_f64(),
                    dec.p50_ms,
                    dec.p99_ms,
                    lad.p50_ms,
                    lad.p99_ms
                ),
                None,
            );
            // Rungs the card's NVENC session cap sent to the CPU read back too.
            let on_cpu =
                crate::transcode::gpu::nvenc::CPU_FALLBACK_RUNGS.load(Relaxed) - fallbacks_before;
            let all_gpu = plan.nvdec && plan.nvenc && on_cpu == 0;
            r.row(
                "device->host bytes, full ladder",
                format!(
                    "{copied} ({})",
                    if all_gpu {
                        "all-GPU ladder: must be 0".to_string()
                    } else if plan.nvenc {
                        format!("{on_cpu} rung(s) on the CPU: no NVENC session (the card's cap)")
                    } else {
                        "hybrid: CPU encode reads each rung back".to_string()
                    }
                ),
                all_gpu.then_some(copied == 0),
            );
        }
    }
}

fn channels(r: &mut Report, backend: &Backend, config: &AvcConfig, packets: &[Packet], max: usize) {
    let clip = &packets[..packets.len().min(240)];
    let realtime = clip.len() as f64 / 60.0;
    let mut held = 0;
    let mut detail = Vec::new();
    for n in 1..=max.max(1) {
        let slowest = crate::tools::bench::slowest_of(
            n,
            || ladder_once(backend, config, clip).map(|(_, d)| d),
            || CheckError::Missing("ladder thread panicked"),
        );
        match slowest {
            Err(e) => {
                detail.push(format!("{n}: {e}"));
                break;
            }
            Ok(d) => {
                let rtf = realtime / d.as_secs_f64();
                detail.push(format!("{n}: rtf {rtf:.2}"));
                if rtf < 1.0 {
                    break;
                }
                held = n;
            }
        }
    }
    r.row(
        "1080p60 full-ladder channels in real time",
        format!("{held} ({})", detail.join(", ")),
        None,
    );
}
