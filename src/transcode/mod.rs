//! From packets to the ladder: stage traits, the CPU and GPU backends, the
//! ladder plan, aligned segment boundaries, and the rung workers.
//!
//! One trait per swappable stage; the CPU backend (`cpu/`) is the reference and
//! the no-GPU path; the GPU backend implements the same traits.

pub mod audio;
pub mod backend;
pub mod boundary;
pub mod cpu;
pub mod frame;
pub mod gpu;
pub mod ladder;
pub mod ladder_run;
pub mod pattern;

use std::time::Instant;

use bytes::Bytes;

use crate::media::Packet;
pub use frame::Frame;

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("decode of packet at dts {dts}: {reason}")]
    Decode { dts: i64, reason: String },
    #[error("scale to {width}x{height}: {reason}")]
    Scale {
        width: u32,
        height: u32,
        reason: String,
    },
    #[error("encode of rung {rung} at pts {pts}: {reason}")]
    Encode {
        rung: String,
        pts: i64,
        reason: String,
    },
    #[error("{stage} backend unavailable: {reason}")]
    Unavailable { stage: &'static str, reason: String },
    /// The stage's library, opened at run time, is missing or unusable.
    #[error("{stage} backend unavailable: {source}")]
    Library {
        stage: &'static str,
        #[source]
        source: crate::dylib::Unavailable,
    },
}

/// Packets in, pictures out (in presentation order).
pub trait Decoder {
    /// Decodes one access unit; calls `out` for each picture that became ready.
    /// `out` may take the picture's planes (swapping in others, of any size):
    /// a decoder writes every plane of every picture it gives out, so the
    /// ladder hands the planes to its rungs without copying them.
    fn decode(
        &mut self,
        packet: &Packet,
        out: &mut dyn FnMut(&mut Frame),
    ) -> Result<(), StageError>;
    /// End of stream: emits the pictures still held for reordering.
    fn flush(&mut self, out: &mut dyn FnMut(&mut Frame)) -> Result<(), StageError>;
}

/// One picture to one rung's size.
pub trait Scaler: Send {
    /// Scales `src` into `dst` (already shaped to the rung's size by the caller).
    fn scale(&mut self, src: &Frame, dst: &mut Frame) -> Result<(), StageError>;
}

/// Pictures in, compressed frames out.
pub trait Encoder: Send {
    /// Encodes one picture; `force_idr` makes it an IDR (segment boundary).
    /// Returns `None` when the encoder produced nothing for this picture.
    fn encode(
        &mut self,
        frame: &Frame,
        force_idr: bool,
    ) -> Result<Option<EncodedFrame>, StageError>;
}

/// One compressed picture of one rung: Annex-B H.264 (start codes), SPS/PPS in front of IDRs.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub pts: i64,
    /// No B-frames in the ladder's encoders: dts == pts.
    pub dts: i64,
    pub keyframe: bool,
    pub data: Bytes,
    pub arrival: Instant,
}
