//! `[ladder]`: the rungs, the backend and the software codecs chosen; the
//! choices are plain data here, what they do is `transcode`'s.

use std::collections::HashSet;

use serde::Deserialize;

use super::invalid::{ensure, range, Invalid};
use super::streams::valid_name;

/// `[ladder]`. The software codecs it names become a
/// `transcode::backend::SoftCodecs` there (`Ladder::soft_codecs`, defined in
/// `transcode`: what the choices do is the transcoder's business).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ladder {
    /// Transcode live streams into the ladder (off: ingest only).
    pub enabled: bool,
    /// Segment duration; every rung gets an IDR at each segment boundary.
    pub segment_secs: f64,
    /// A stream whose oldest queued packet is older than this drops frames
    /// up to its next keyframe (counted) instead of falling further behind.
    pub max_lag_secs: f64,
    /// The rungs, largest first. Rungs above a source's size or frame rate are dropped.
    pub rungs: Vec<RungConfig>,
    /// `auto` (the GPU when it probes usable, else the CPU, saying why),
    /// `cpu`, or `gpu` (start-up fails with the reason when there is none).
    pub backend: BackendChoice,
    /// CUDA device ordinal the GPU backend uses.
    pub gpu_device: usize,
    /// CPU backend: the rungs scale and encode in parallel on the rung
    /// worker pool (false: one after another on the stream's media core).
    pub rung_threads: bool,
    /// Threads in the rung worker pool, shared by every stream's rungs
    /// (0: one per core ladderd runs on).
    pub rung_workers: usize,
    /// Pictures a rung thread may have queued; a rung whose queue is full
    /// drops pictures up to its next IDR (counted) while the others go on.
    /// Bounds memory (one source-size picture each) and how far a rung may lag.
    pub rung_queue_frames: usize,
    /// Re-encode the publisher's AAC at `audio_kbps` (false: passed through).
    pub audio_reencode: bool,
    pub audio_kbps: u32,
    /// Software H.264 encoder: `openh264` or `x264` (builds with `--features x264`).
    pub encoder: EncoderChoice,
    /// x264's preset (`ultrafast` … `placebo`); tune is always `zerolatency`.
    pub x264_preset: String,
    /// x264's own threads per rung encoder (0: x264 decides). 1 suits rung
    /// threads, which already run the rungs in parallel.
    pub x264_threads: u32,
    /// Software H.264 decoder: `auto` (libavcodec when the box has it, else
    /// openh264), `libavcodec` (start-up fails without it), `openh264`.
    pub decoder: DecoderChoice,
    /// libavcodec frame threads per stream: each adds a picture of delay;
    /// 1 (the default) decodes in the stream's own thread.
    pub decoder_threads: u32,
    /// CPU scaler: `auto` (libswscale when the box has it, else
    /// fast_image_resize), `swscale` (start-up fails without it),
    /// `fast_image_resize`.
    pub scaler: ScalerChoice,
    /// CPU backend: the rungs below the largest rung of at most 720 lines
    /// scale from its picture, made once, not from the source (on by
    /// default; off: each rung from the source).
    pub cascade: bool,
}

impl Default for Ladder {
    fn default() -> Self {
        Ladder {
            enabled: true,
            segment_secs: 2.0,
            max_lag_secs: 3.0,
            rungs: default_ladder(),
            backend: Default::default(),
            gpu_device: 0,
            rung_threads: true,
            rung_workers: 0,
            rung_queue_frames: 60,
            audio_reencode: false,
            audio_kbps: 128,
            encoder: Default::default(),
            x264_preset: "veryfast".into(),
            x264_threads: 1,
            decoder: Default::default(),
            decoder_threads: 1,
            scaler: Default::default(),
            cascade: true,
        }
    }
}

impl Ladder {
    pub fn validate(&self) -> Result<(), Invalid> {
        encoder_usable(self.encoder, &self.x264_preset)
            .map_err(|why| Invalid::new("ladder.encoder", why))?;
        range(
            "ladder.rung_workers",
            self.rung_workers,
            ..=1024,
            "must be at most 1024 (0: one per core)",
        )?;
        range(
            "ladder.decoder_threads",
            self.decoder_threads,
            1..=16,
            "must be between 1 and 16",
        )?;
        range(
            "ladder.segment_secs",
            self.segment_secs,
            0.5..=12.0,
            "must be between 0.5 and 12",
        )?;
        range(
            "ladder.max_lag_secs",
            self.max_lag_secs,
            0.1..=60.0,
            "must be between 0.1 and 60",
        )?;
        let mut names = HashSet::new();
        for (i, r) in self.rungs.iter().enumerate() {
            r.validate(&format!("ladder.rungs[{i}]"), &mut names)?;
        }
        Ok(())
    }
}

/// Why this build cannot run an encoder choice (`ladder.encoder`,
/// `ladderd transcode --encoder`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncoderUnusable {
    #[error(
        "this build has no x264: build with `--features x264` \
         (needs Debian's libx264-dev and libclang-dev)"
    )]
    NoX264,
    #[error("x264_preset {preset:?} is not one of {presets}", presets = X264_PRESETS.join(", "))]
    Preset { preset: String },
}

/// Whether this build can run `choice` (x264 needs the `x264` feature) with
/// `x264_preset`.
pub fn encoder_usable(choice: EncoderChoice, x264_preset: &str) -> Result<(), EncoderUnusable> {
    match choice {
        EncoderChoice::Openh264 => Ok(()),
        EncoderChoice::X264 if !cfg!(feature = "x264") => Err(EncoderUnusable::NoX264),
        EncoderChoice::X264 if X264_PRESETS.contains(&x264_preset) => Ok(()),
        EncoderChoice::X264 => Err(EncoderUnusable::Preset {
            preset: x264_preset.to_string(),
        }),
    }
}

/// x264's presets, fastest first.
pub const X264_PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// One configured rung: the largest picture and frame rate it may have.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RungConfig {
    pub name: String,
    /// Output height; width follows the source's aspect ratio.
    pub height: u32,
    pub fps: f64,
    pub bitrate_kbps: u32,
}

/// The broadcast ladder: 1080p60 6 Mbps · 1080p30 4.5 · 720p30 3 · 480p30 1.5 · 360p30 0.8.
pub fn default_ladder() -> Vec<RungConfig> {
    [
        ("1080p60", 1080, 60.0, 6000),
        ("1080p30", 1080, 30.0, 4500),
        ("720p30", 720, 30.0, 3000),
        ("480p30", 480, 30.0, 1500),
        ("360p30", 360, 30.0, 800),
    ]
    .into_iter()
    .map(|(n, h, f, b)| RungConfig {
        name: n.into(),
        height: h,
        fps: f,
        bitrate_kbps: b,
    })
    .collect()
}

impl RungConfig {
    /// One rung, `key` being `ladder.rungs[I]`; `names` are the rungs' so far.
    fn validate<'a>(&'a self, key: &str, names: &mut HashSet<&'a str>) -> Result<(), Invalid> {
        let key = |f: &str| format!("{key}.{f}");
        ensure(
            self.name != "source" && self.name != "audio",
            key("name"),
            format!("{:?} is reserved for a rendition", self.name),
        )?;
        ensure(
            valid_name(&self.name) && names.insert(&self.name),
            key("name"),
            format!(
                "{:?}: must be a unique name of A-Z a-z 0-9 _ - .",
                self.name
            ),
        )?;
        range(
            key("height"),
            self.height,
            64..=4320,
            "must be between 64 and 4320",
        )?;
        range(
            key("fps"),
            self.fps,
            1.0..=120.0,
            "must be between 1 and 120",
        )?;
        range(
            key("bitrate_kbps"),
            self.bitrate_kbps,
            50..=100_000,
            "must be between 50 and 100000",
        )
    }
}

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

/// `[ladder] decoder`: the software H.264 decoder (the CPU backend, and a
/// GPU plan without NVDEC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DecoderChoice {
    /// libavcodec when the box has it (loaded at run time), else openh264.
    #[default]
    Auto,
    Libavcodec,
    Openh264,
}

/// `[ladder] scaler`: the CPU scaler (bilinear either way).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ScalerChoice {
    /// libswscale when the box has it (loaded at run time), else fast_image_resize.
    #[default]
    Auto,
    Swscale,
    FastImageResize,
}
