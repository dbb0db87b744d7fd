//! Media values that travel between boxes: packets, codec configs, media time.
//!
//! Pure data and parsing; nothing here does I/O.

pub mod aac;
pub mod ctx;
pub mod flv;
pub mod h264;
pub mod mp3;
pub mod mpegts;
pub mod timeline;

use std::time::Instant;

use bytes::Bytes;

pub use ctx::StreamCtx;

/// Media time runs at 90 kHz from ingest to packager (DESIGN: "time is one clock").
pub const TIMESCALE: u32 = 90_000;

/// Converts milliseconds (RTMP/FLV time) into 90 kHz ticks.
pub const fn ms_to_ticks(ms: i64) -> i64 {
    ms * 90
}

/// Which elementary stream of a publish a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Track {
    Video,
    Audio,
}

/// Process-wide identity of one publish session (a reconnect gets a new one).
pub type StreamId = u64;

/// One access unit as it leaves ingest.
///
/// Video data is AVCC (length-prefixed NAL units, the size given by the
/// stream's [`h264::AvcConfig::nal_length_size`]); audio data is one raw AAC
/// frame, or the MP3 frame(s) of one FLV tag when the track's config is MP3.
#[derive(Debug, Clone)]
pub struct Packet {
    pub stream: StreamId,
    pub track: Track,
    /// Decode time, 90 kHz, monotonic non-decreasing per track.
    pub dts: i64,
    /// Presentation time, 90 kHz, never below `dts`.
    pub pts: i64,
    pub keyframe: bool,
    /// Set on the first packet after a timestamp jump, wrap or reset at ingest.
    pub discontinuity: bool,
    pub data: Bytes,
    /// When the bytes carrying this packet arrived, for per-stage latency.
    pub arrival: Instant,
}

/// Codec configuration of a track, as announced by the publisher.
#[derive(Debug, Clone, PartialEq)]
pub enum CodecConfig {
    Avc(h264::AvcConfig),
    Aac(aac::AudioSpecificConfig),
    /// MP3 audio (FLV allows it; the ladder re-encodes it as AAC).
    Mp3(mp3::Mp3Config),
}

impl CodecConfig {
    /// The audio config, for audio tracks.
    pub fn audio(&self) -> Option<AudioConfig> {
        match self {
            CodecConfig::Avc(_) => None,
            CodecConfig::Aac(a) => Some(AudioConfig::Aac(a.clone())),
            CodecConfig::Mp3(m) => Some(AudioConfig::Mp3(*m)),
        }
    }
}

/// A publisher's audio, as the stream API shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioConfig {
    Aac(aac::AudioSpecificConfig),
    Mp3(mp3::Mp3Config),
}

impl AudioConfig {
    /// `mp4a.40.2`-style for AAC; `mp3` for MP3 (never served as such).
    pub fn codec_string(&self) -> String {
        match self {
            AudioConfig::Aac(a) => a.codec_string(),
            AudioConfig::Mp3(_) => "mp3".into(),
        }
    }

    pub fn sample_rate(&self) -> u32 {
        match self {
            AudioConfig::Aac(a) => a.sample_rate,
            AudioConfig::Mp3(m) => m.sample_rate,
        }
    }

    pub fn channels(&self) -> u8 {
        match self {
            AudioConfig::Aac(a) => a.channels,
            AudioConfig::Mp3(m) => m.channels,
        }
    }
}
