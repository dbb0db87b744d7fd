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

#[derive(Clone)]
pub enum Backend {
    Cpu,
    Gpu { gpu: Arc<Gpu>, plan: gpu::Plan },
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
    ) -> Result<(Backend, Option<String>), String> {
        match choice {
            BackendChoice::Cpu => Ok((Backend::Cpu, None)),
            BackendChoice::Gpu => gpu::open(device)
                .map(|(gpu, plan)| (Backend::Gpu { gpu, plan }, None))
                .map_err(|why| format!("backend = \"gpu\": {why}")),
            BackendChoice::Auto => Ok(match gpu::open(device) {
                Ok((gpu, plan)) => (Backend::Gpu { gpu, plan }, None),
                Err(why) => (Backend::Cpu, Some(why)),
            }),
        }
    }

    /// `cpu`, or the GPU plan (`gpu: NVDEC + CUDA scale + NVENC on …`).
    pub fn describe(&self) -> String {
        match self {
            Backend::Cpu => "cpu: openh264 decode + SIMD scale + openh264 encode".into(),
            Backend::Gpu { plan, .. } => plan.describe(),
        }
    }

    /// `cpu`, `gpu` or `hybrid`, for the metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Gpu { plan, .. } if plan.nvdec && plan.nvenc => "gpu",
            Backend::Gpu { .. } => "hybrid",
        }
    }

    pub fn decoder(&self, config: &AvcConfig) -> Result<Box<dyn Decoder>, StageError> {
        match self {
            Backend::Gpu { gpu, plan } if plan.nvdec => {
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
            Backend::Cpu => rungs
                .iter()
                .map(|r| {
                    Ok((
                        Box::new(BilinearScaler::new()) as Box<dyn Scaler>,
                        Box::new(OpenH264Encoder::new(r)?) as Box<dyn Encoder>,
                    ))
                })
                .collect(),
            Backend::Gpu { gpu, plan } => {
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
                        let encoder: Box<dyn Encoder> = if plan.nvenc {
                            Box::new(NvencEncoder::new(gpu.clone(), r, segment_secs).map_err(
                                |e| StageError::Unavailable {
                                    stage: "NVENC encoder",
                                    reason: format!("rung {}: {e}", r.name),
                                },
                            )?)
                        } else {
                            Box::new(OpenH264Encoder::new(r)?)
                        };
                        let scaler = scaler::GpuRungScaler::new(shared.clone(), i, !plan.nvenc);
                        Ok((Box::new(scaler) as Box<dyn Scaler>, encoder))
                    })
                    .collect()
            }
        }
    }
}
