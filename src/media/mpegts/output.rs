//! What the demuxer hands back: configs and packets, or the error that ends a publish.

use crate::media::{CodecConfig, Packet};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TsError {
    /// Fatal: the publish carries a codec the ladder cannot take.
    #[error(
        "unsupported stream on PID {pid:#x}: stream_type {stream_type:#04x} ({name}); \
         ladderd ingests H.264 video (0x1b) and AAC in ADTS (0x0f)"
    )]
    UnsupportedStream {
        pid: u16,
        stream_type: u8,
        name: &'static str,
    },
}

impl TsError {
    /// Every `TsError` ends the publish; what costs only a packet is counted instead.
    pub fn is_fatal(&self) -> bool {
        true
    }
}

/// What one stretch of input turned into.
#[derive(Debug, Clone)]
pub enum Demuxed {
    /// A track's config, when first seen and whenever it changes; it comes
    /// before the first packet that needs it.
    Config(CodecConfig),
    Packet(Packet),
}
