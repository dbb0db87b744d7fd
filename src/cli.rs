//! Command line (clap derive). Thin: parse, then call into the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;
use crate::telemetry::log::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "ladderd",
    version,
    about = "Live-video transcoding appliance: RTMP in, ABR ladder, LL-HLS out"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Configuration file (TOML); see ladderd.example.toml.
    #[arg(long, global = true, env = "LADDERD_CONFIG")]
    pub config: Option<PathBuf>,
    /// RTMP listen address, overriding server.rtmp_listen.
    #[arg(long, global = true, value_name = "ADDR")]
    pub rtmp_listen: Option<SocketAddr>,
    /// HTTP listen address, overriding server.http_listen.
    #[arg(long, global = true, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// SRT listen address (UDP), overriding server.srt_listen.
    #[arg(long, global = true, value_name = "ADDR")]
    pub srt_listen: Option<SocketAddr>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Global {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            rtmp_listen: self.rtmp_listen,
            http_listen: self.http_listen,
            srt_listen: self.srt_listen,
            demo: false,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the appliance (the default).
    Serve {
        /// Also run the built-in demo stream `demo`.
        #[arg(long)]
        demo: bool,
    },
    /// Report what hardware and kernel facilities were found, and why anything is unavailable.
    Probe {
        #[arg(long)]
        json: bool,
    },
    /// The hardware lab's GPU suite: probe, kernel correctness, NVDEC/NVENC
    /// throughput, full-ladder latency, device->host bytes, channel count.
    /// Exit 0 all passed, 1 a check failed, 2 no usable GPU (nothing ran).
    Hwtest {
        /// Length of the 1080p60 test clip, seconds.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Stop counting real-time channels here.
        #[arg(long, default_value_t = 16)]
        max_channels: usize,
        /// CUDA device ordinal.
        #[arg(long, default_value_t = 0)]
        device: usize,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Transcode a file (FLV or Annex-B H.264) into the configured ladder:
    /// one CMAF file per rendition (NAME.mp4) in OUT.
    Transcode {
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Software encoder, overriding ladder.encoder.
        #[arg(long, value_enum)]
        encoder: Option<crate::transcode::backend::EncoderChoice>,
        /// x264 preset, overriding ladder.x264_preset.
        #[arg(long)]
        x264_preset: Option<String>,
    },
    /// Benchmarks against a peer measured in the same run.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print a signed playback URL for stream NAME (or recording ID with
    /// --vod), with the key in playback.signing_key.
    Sign {
        name: String,
        /// How long it plays: 90s, 30m, 1h, 2d.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Only paths under NAME starting with this (a rendition, say).
        #[arg(long)]
        prefix: Option<String>,
        /// A recording (`/vod/ID/…`) rather than a live stream.
        #[arg(long)]
        vod: bool,
        /// Where viewers reach this box or its CDN; default: server.http_listen.
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file; exit 2 naming the key at fault.
    Check { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The full ladder, ladderd vs ffmpeg (same input, same run); prints fps and the ratio.
    Ladder {
        /// FLV input (default: a 10 s 1080p30 clip made with ffmpeg).
        #[arg(long)]
        input: Option<PathBuf>,
        /// ladderd's encoder (default: x264 ultrafast, like ffmpeg's side,
        /// when built with the x264 feature; else openh264).
        #[arg(long, value_enum)]
        encoder: Option<crate::transcode::backend::EncoderChoice>,
    },
    /// How many 720p30 -> 3-rung ladders hold real time at once.
    Channels {
        #[arg(long)]
        input: Option<PathBuf>,
        /// Stop after this many channels.
        #[arg(long, default_value_t = 16)]
        max: usize,
    },
    /// The cost of telemetry: ns per latency sample, ladder fps with recording on vs off.
    Telemetry {
        /// FLV input (default: a 10 s 720p30 clip made with ffmpeg).
        #[arg(long)]
        input: Option<PathBuf>,
    },
}
