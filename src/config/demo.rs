//! `[demo]`: the built-in test stream.

use serde::Deserialize;

use super::invalid::{ensure, range, Invalid};
use super::streams::{valid_name, StreamConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    pub enabled: bool,
    /// Public stream name of the demo.
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    /// A 1 kHz tone at −18 dBFS (EBU alignment level), AAC-LC 48 kHz stereo.
    pub tone: bool,
    pub audio_kbps: u32,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            enabled: false,
            name: "demo".into(),
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_kbps: 4000,
            tone: true,
            audio_kbps: 128,
        }
    }
}

impl DemoConfig {
    /// Its keys; its name must not be a configured stream's while it runs.
    pub fn validate(&self, streams: &[StreamConfig]) -> Result<(), Invalid> {
        ensure(
            valid_name(&self.name),
            "demo.name",
            "use 1-64 characters from A-Z a-z 0-9 _ - .",
        )?;
        ensure(
            !(self.enabled && streams.iter().any(|s| s.name == self.name)),
            "demo.name",
            format!("{:?} is also a configured stream", self.name),
        )?;
        ensure(
            (64..=3840).contains(&self.width) && self.width % 2 == 0,
            "demo.width",
            "must be even, between 64 and 3840",
        )?;
        ensure(
            (64..=2160).contains(&self.height) && self.height % 2 == 0,
            "demo.height",
            "must be even, between 64 and 2160",
        )?;
        range("demo.fps", self.fps, 1..=120, "must be between 1 and 120")?;
        range(
            "demo.bitrate_kbps",
            self.bitrate_kbps,
            100..=50_000,
            "must be between 100 and 50000",
        )
    }
}
