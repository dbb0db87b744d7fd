//! Which backend runs each stage: chosen once at start-up from `[ladder]
//! backend` and what the GPU probe found. `auto` takes the GPU when it works
//! and logs why not otherwise; `gpu` refuses to start without one. Never a
//! silent fallback.

use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::media::h264::AvcConfig;
use crate::transcode::cpu::{BilinearScaler, OpenH264Decoder, OpenH264Encoder};
use crate::transcode::gpu::{self, nvdec::NvdecDecoder, nvenc::NvencEncoder, scaler, Gpu};
use crate::transcode::ladder::Rung;
use crate::transcode::{Decoder, Encoder, Scaler, StageError};

/// Each rung's scaler and encoder, in ladder order.
pub type RungStages = Vec<(Box<dyn Scaler>, Box<dyn Encoder>)>;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    #[default]
    Auto,
    Cpu,
    Gpu,
}

/// `[ladder] encoder`: the software H.264 encoder (CPU backend, and the
/// hybrid GPU plan on cards without NVENC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EncoderChoice {
    #[default]
    Openh264,
    X264,
}

/// The software encoder with its settings, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftEncoder {
    pub choice: EncoderChoice,
    pub x264_preset: String,
    pub x264_threads: u32,
}

impl Default for SoftEncoder {
    fn default() -> Self {
        SoftEncoder {
            choice: EncoderChoice::Openh264,
            x264_preset: "veryfast".into(),
            x264_threads: 1,
        }
    }
}

impl SoftEncoder {
    /// Whether this build can run the choice (x264 needs the `x264` feature).
    pub fn check(&self) -> Result<(), String> {
        match self.choice {
            EncoderChoice::Openh264 => Ok(()),
            #[cfg(feature = "x264")]
            EncoderChoice::X264 => {
                if crate::transcode::cpu::x264::PRESETS.contains(&self.x264_preset.as_str()) {
                    Ok(())
                } else {
                    Err(format!(
                        "x264_preset {:?} is not one of {}",
                        self.x264_preset,
                        crate::transcode::cpu::x264::PRESETS.join(", ")
                    ))
                }
            }
            #[cfg(not(feature = "x264"))]
            EncoderChoice::X264 => Err("this build has no x264: build with `--features x264` \
                 (needs Debian's libx264-dev and libclang-dev)"
                .into()),
        }
    }

    /// The fastest this build has, with the encoder's own threads (no rung
    /// threads on the GPU path): x264 ultrafast, else openh264.
    pub fn fastest() -> SoftEncoder {
        SoftEncoder {
            choice: if cfg!(feature = "x264") {
                EncoderChoice::X264
            } else {
                EncoderChoice::Openh264
            },
            x264_preset: "ultrafast".into(),
            x264_threads: 0,
        }
    }

    /// One rung's encoder.
    pub fn open(&self, rung: &Rung) -> Result<Box<dyn Encoder>, StageError> {
        match self.choice {
            EncoderChoice::Openh264 => Ok(Box::new(OpenH264Encoder::new(rung)?)),
            #[cfg(feature = "x264")]
            EncoderChoice::X264 => Ok(Box::new(crate::transcode::cpu::x264::X264Encoder::new(
                rung,
                &self.x264_preset,
                self.x264_threads,
            )?)),
            #[cfg(not(feature = "x264"))]
            EncoderChoice::X264 => Err(StageError::Unavailable {
                stage: "x264 encoder",
                reason: self.check().err().unwrap_or_default(),
            }),
        }
    }

    pub fn describe(&self) -> String {
        match self.choice {
            EncoderChoice::Openh264 => "openh264 encode".into(),
            EncoderChoice::X264 => format!("x264 {} encode", self.x264_preset),
        }
    }
}

#[derive(Clone)]
pub enum Backend {
    Cpu(SoftEncoder),
    /// `soft` encodes when the plan has no NVENC (hybrid).
    Gpu {
        gpu: Arc<Gpu>,
        plan: gpu::Plan,
        soft: SoftEncoder,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Backend {
    /// Resolves the configured choice. `Ok` carries the backend and, for
    /// `auto` on the CPU, why the GPU was not taken.
    pub fn select(
        choice: BackendChoice,
        device: usize,
        soft: SoftEncoder,
    ) -> Result<(Backend, Option<String>), String> {
        match choice {
            BackendChoice::Cpu => Ok((Backend::Cpu(soft), None)),
            BackendChoice::Gpu => gpu::open(device)
                .map(|(gpu, plan)| (Backend::Gpu { gpu, plan, soft }, None))
                .map_err(|why| format!("backend = \"gpu\": {why}")),
            BackendChoice::Auto => Ok(match gpu::open(device) {
                Ok((gpu, plan)) => (Backend::Gpu { gpu, plan, soft }, None),
                Err(why) => (Backend::Cpu(soft), Some(why)),
            }),
        }
    }

    /// The CPU backend with the default encoder (openh264).
    pub fn cpu() -> Backend {
        Backend::Cpu(SoftEncoder::default())
    }

    /// `cpu`, or the GPU plan (`gpu: NVDEC + CUDA scale + NVENC on …`).
    pub fn describe(&self) -> String {
        match self {
            Backend::Cpu(soft) => {
                format!("cpu: openh264 decode + SIMD scale + {}", soft.describe())
            }
            Backend::Gpu { plan, .. } => plan.describe(),
        }
    }

    /// `cpu`, `gpu` or `hybrid`, for the metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Cpu(_) => "cpu",
            Backend::Gpu { plan, .. } if plan.nvdec && plan.nvenc => "gpu",
            Backend::Gpu { .. } => "hybrid",
        }
    }

    pub fn decoder(&self, config: &AvcConfig) -> Result<Box<dyn Decoder>, StageError> {
        match self {
            Backend::Gpu { gpu, plan, .. } if plan.nvdec => {
                NvdecDecoder::new(gpu.clone(), config.clone())
                    .map(|d| Box::new(d) as Box<dyn Decoder>)
                    .map_err(|e| StageError::Unavailable {
                        stage: "NVDEC decoder",
                        reason: e.to_string(),
                    })
            }
            _ => Ok(Box::new(OpenH264Decoder::new(config.clone())?)),
        }
    }

    /// A scaler and an encoder for each rung, in order.
    pub fn rung_stages(&self, rungs: &[Rung], segment_secs: f64) -> Result<RungStages, StageError> {
        match self {
            Backend::Cpu(soft) => rungs
                .iter()
                .map(|r| {
                    Ok((
                        Box::new(BilinearScaler::new()) as Box<dyn Scaler>,
                        soft.open(r)?,
                    ))
                })
                .collect(),
            Backend::Gpu { gpu, plan, soft } => {
                let sizes: Vec<(u32, u32)> = rungs.iter().map(|r| (r.width, r.height)).collect();
                let shared: Arc<Mutex<scaler::LadderScaler>> =
                    scaler::LadderScaler::new(gpu.clone(), &sizes).map_err(|e| {
                        StageError::Unavailable {
                            stage: "CUDA scaler",
                            reason: e.to_string(),
                        }
                    })?;
                rungs
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let (encoder, to_host): (Box<dyn Encoder>, bool) = if plan.nvenc {
                            match NvencEncoder::new(gpu.clone(), r, segment_secs) {
                                Ok(e) => (Box::new(e), false),
                                // No NVENC session for this rung (the card's
                                // session cap, or NVENC out of memory): this
                                // rung encodes on the CPU from one copy per
                                // picture; the others stay on NVENC.
                                Err(e) => {
                                    gpu::nvenc::CPU_FALLBACK_RUNGS
                                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                    tracing::warn!(
                                        rung = %r.name,
                                        "NVENC unavailable for this rung, encoding it on the CPU ({}): {e}",
                                        soft.describe()
                                    );
                                    (soft.open(r)?, true)
                                }
                            }
                        } else {
                            (soft.open(r)?, true)
                        };
                        let scaler = scaler::GpuRungScaler::new(shared.clone(), i, to_host);
                        Ok((Box::new(scaler) as Box<dyn Scaler>, encoder))
                    })
                    .collect()
            }
        }
    }
}
