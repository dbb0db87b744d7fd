//! Which backend runs each stage: chosen once at start-up from `[ladder]
//! backend` and what the GPU probe found. `auto` takes the GPU when it works
//! and logs why not otherwise; `gpu` refuses to start without one. Never a
//! silent fallback.

use std::sync::{Arc, Mutex};

use crate::media::h264::AvcConfig;
use crate::transcode::cpu::cascade;
use crate::transcode::cpu::libav::LibavDecoder;
use crate::transcode::cpu::swscale::SwsScaler;
use crate::transcode::cpu::{BilinearScaler, OpenH264Decoder, OpenH264Encoder};
use crate::transcode::gpu::{self, nvdec::NvdecDecoder, nvenc::NvencEncoder, scaler, Gpu};
use crate::transcode::ladder::Rung;
use crate::transcode::{Decoder, Encoder, Scaler, StageError};

/// Each rung's scaler and encoder, in ladder order.
pub type RungStages = Vec<(Box<dyn Scaler>, Box<dyn Encoder>)>;

/// Why a configured stage cannot run here; start-up stops with it.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend = \"gpu\": {0}")]
    Gpu(gpu::context::GpuError),
    #[error("decoder = \"libavcodec\": {0}")]
    Libavcodec(crate::dylib::Unavailable),
    #[error("scaler = \"swscale\": {0}")]
    Swscale(crate::dylib::Unavailable),
}

pub use crate::config::{BackendChoice, DecoderChoice, EncoderChoice, ScalerChoice};
use crate::config::{EncoderUnusable, Ladder};

/// The software codecs with their settings, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftCodecs {
    /// The encoder.
    pub choice: EncoderChoice,
    pub x264_preset: String,
    pub x264_threads: u32,
    pub decoder: DecoderChoice,
    /// libavcodec's frame threads per stream (1: no added delay).
    pub decoder_threads: u32,
    pub scaler: ScalerChoice,
    /// Rungs below 720p scale from the 720p picture ([`crate::transcode::cpu::cascade`]).
    pub cascade: bool,
}

impl Default for SoftCodecs {
    fn default() -> Self {
        SoftCodecs {
            choice: EncoderChoice::Openh264,
            x264_preset: "veryfast".into(),
            x264_threads: 1,
            decoder: DecoderChoice::Auto,
            decoder_threads: 1,
            scaler: ScalerChoice::Auto,
            cascade: true,
        }
    }
}

impl SoftCodecs {
    /// Whether this build can run the choice (x264 needs the `x264` feature);
    /// the same check `ladder.encoder` gets when the configuration loads.
    pub fn check(&self) -> Result<(), EncoderUnusable> {
        crate::config::encoder_usable(self.choice, &self.x264_preset)
    }

    /// The fastest this build has, with the encoder's own threads (no rung
    /// threads on the GPU path): x264 ultrafast, else openh264.
    pub fn fastest() -> SoftCodecs {
        SoftCodecs {
            choice: if cfg!(feature = "x264") {
                EncoderChoice::X264
            } else {
                EncoderChoice::Openh264
            },
            x264_preset: "ultrafast".into(),
            x264_threads: 0,
            decoder: DecoderChoice::Auto,
            decoder_threads: 1,
            scaler: ScalerChoice::Auto,
            cascade: true,
        }
    }
}

/// `[ladder]`'s software codec choices as the transcoder runs them (an
/// inherent method of the config type, written here so that what the
/// choices mean stays in `transcode`).
impl Ladder {
    pub fn soft_codecs(&self) -> SoftCodecs {
        SoftCodecs {
            choice: self.encoder,
            x264_preset: self.x264_preset.clone(),
            x264_threads: self.x264_threads,
            decoder: self.decoder,
            decoder_threads: self.decoder_threads,
            scaler: self.scaler,
            cascade: self.cascade,
        }
    }
}

impl SoftCodecs {
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
                reason: self
                    .check()
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            }),
        }
    }

    /// A stream's decoder as `[ladder] decoder` says.
    pub fn decoder(&self, config: &AvcConfig) -> Result<Box<dyn Decoder>, StageError> {
        let libav = || LibavDecoder::new(config.clone(), self.decoder_threads);
        Ok(match self.decoder {
            DecoderChoice::Openh264 => Box::new(OpenH264Decoder::new(config.clone())?),
            DecoderChoice::Libavcodec => Box::new(libav()?),
            DecoderChoice::Auto => match libav() {
                Ok(d) => Box::new(d),
                Err(_) => Box::new(OpenH264Decoder::new(config.clone())?),
            },
        })
    }

    /// A rung's scaler as `[ladder] scaler` says.
    pub fn scaler(&self) -> Result<Box<dyn Scaler>, StageError> {
        Ok(match self.scaler {
            ScalerChoice::FastImageResize => Box::new(BilinearScaler::new()),
            ScalerChoice::Swscale => Box::new(SwsScaler::new()?),
            ScalerChoice::Auto => match SwsScaler::new() {
                Ok(s) => Box::new(s),
                Err(_) => Box::new(BilinearScaler::new()),
            },
        })
    }

    /// The scaler rungs will get (as [`Self::decoder_name`]).
    pub fn scaler_name(&self) -> Result<String, BackendError> {
        let sws = crate::transcode::cpu::swscale::probe();
        match (self.scaler, sws) {
            (ScalerChoice::FastImageResize, _) => Ok("fast_image_resize".into()),
            (_, Ok(v)) => Ok(v),
            (ScalerChoice::Swscale, Err(why)) => Err(BackendError::Swscale(why)),
            (ScalerChoice::Auto, Err(why)) => {
                Ok(format!("fast_image_resize (no libswscale: {why})"))
            }
        }
    }

    /// The decoder streams will get: `libavcodec` without the library is an
    /// error (start-up stops, saying why); `auto` says what it took.
    pub fn decoder_name(&self) -> Result<String, BackendError> {
        let libav = crate::transcode::cpu::libav::probe();
        match (self.decoder, libav) {
            (DecoderChoice::Openh264, _) => Ok("openh264".into()),
            (_, Ok(v)) => Ok(format!("{v} x{} threads", self.decoder_threads)),
            (DecoderChoice::Libavcodec, Err(why)) => Err(BackendError::Libavcodec(why)),
            (DecoderChoice::Auto, Err(why)) => Ok(format!("openh264 (no libavcodec: {why})")),
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
    Cpu(SoftCodecs),
    /// `soft` encodes when the plan has no NVENC (hybrid).
    Gpu {
        gpu: Arc<Gpu>,
        plan: gpu::Plan,
        soft: SoftCodecs,
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
        soft: SoftCodecs,
    ) -> Result<(Backend, Option<gpu::context::GpuError>), BackendError> {
        match choice {
            BackendChoice::Cpu => Ok((Backend::Cpu(soft), None)),
            BackendChoice::Gpu => gpu::open(device)
                .map(|(gpu, plan)| (Backend::Gpu { gpu, plan, soft }, None))
                .map_err(BackendError::Gpu),
            BackendChoice::Auto => Ok(match gpu::open(device) {
                Ok((gpu, plan)) => (Backend::Gpu { gpu, plan, soft }, None),
                Err(why) => (Backend::Cpu(soft), Some(why)),
            }),
        }
    }

    /// The CPU backend with the default encoder (openh264).
    pub fn cpu() -> Backend {
        Backend::Cpu(SoftCodecs::default())
    }

    /// `cpu`, or the GPU plan (`gpu: NVDEC + CUDA scale + NVENC on …`).
    pub fn describe(&self) -> String {
        match self {
            Backend::Cpu(soft) => {
                let decoder = soft.decoder_name().unwrap_or_else(|e| e.to_string());
                let scaler = soft.scaler_name().unwrap_or_else(|e| e.to_string());
                format!(
                    "cpu: {decoder} decode + {scaler} scale + {}",
                    soft.describe()
                )
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
            Backend::Gpu { soft, .. } | Backend::Cpu(soft) => soft.decoder(config),
        }
    }

    /// A scaler and an encoder for each rung, in order (`source`: the
    /// decoded picture's size, for cascade scaling).
    pub fn rung_stages(
        &self,
        rungs: &[Rung],
        segment_secs: f64,
        source: (u32, u32),
    ) -> Result<RungStages, StageError> {
        match self {
            Backend::Cpu(soft) => {
                let mut stages = rungs
                    .iter()
                    .map(|r| Ok((soft.scaler()?, soft.open(r)?)))
                    .collect::<Result<RungStages, StageError>>()?;
                let sizes: Vec<(u32, u32, u32)> = rungs
                    .iter()
                    .map(|r| (r.width, r.height, r.frame_step))
                    .collect();
                if let Some((mid, below)) = soft
                    .cascade
                    .then(|| cascade::plan(&sizes, source))
                    .flatten()
                {
                    let middle =
                        cascade::Middle::new(rungs[mid].width, rungs[mid].height, soft.scaler()?);
                    for i in std::iter::once(mid).chain(below) {
                        let own =
                            std::mem::replace(&mut stages[i].0, Box::new(BilinearScaler::new()));
                        stages[i].0 = Box::new(cascade::CascadeScaler::new(middle.clone(), own));
                    }
                }
                Ok(stages)
            }
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
impl crate::telemetry::metrics::Report for Backend {
    fn report(&self, m: &mut crate::telemetry::metrics::MetricSet) {
        use crate::telemetry::metrics::l;
        use std::sync::atomic::Ordering::Relaxed;
        let backend = self;
        let device = match backend {
            crate::transcode::backend::Backend::Gpu { plan, .. } => plan.device.clone(),
            crate::transcode::backend::Backend::Cpu(_) => String::new(),
        };
        m.gauge(
        "ladderd_gpu_backend_info",
        "Where the ladder runs: backend cpu, gpu (NVDEC+CUDA+NVENC) or hybrid (CPU decode or encode).",
        l(&[("backend", backend.kind()), ("device", &device)]),
        1,
    );
        use crate::transcode::gpu::context::{DEVICE_TO_HOST_BYTES, HOST_TO_DEVICE_BYTES};
        for (direction, v) in [
            ("device_to_host", &DEVICE_TO_HOST_BYTES),
            ("host_to_device", &HOST_TO_DEVICE_BYTES),
        ] {
            m.counter(
            "ladderd_gpu_copied_bytes",
            "Picture bytes copied across the bus by the GPU backend (0 device_to_host on an all-GPU ladder).",
            l(&[("direction", direction)]),
            v.load(Relaxed),
        );
        }
        m.gauge(
            "ladderd_gpu_nvenc_sessions",
            "NVENC sessions open (consumer cards cap them).",
            vec![],
            crate::transcode::gpu::nvenc::SESSIONS.load(Relaxed) as i64,
        );
        m.counter(
        "ladderd_gpu_nvenc_fallback_rungs",
        "Rungs that got no NVENC session (the card's session cap) and encode on the CPU instead.",
        vec![],
        crate::transcode::gpu::nvenc::CPU_FALLBACK_RUNGS.load(Relaxed) as u64,
    );
    }
}
