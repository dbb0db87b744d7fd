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

use crate::media::{Packet, StreamCtx};
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
    /// A stage's error and the stream it happened in: a decoder or encoder
    /// does not know the stream, its owner adds it ([`StageError::in_stream`]).
    #[error("{ctx}: {source}")]
    InStream {
        ctx: StreamCtx,
        #[source]
        source: Box<StageError>,
    },
}

impl StageError {
    /// This error as it happened in `ctx`. One that names its stream
    /// already keeps what it has.
    pub fn in_stream(self, ctx: StreamCtx) -> StageError {
        match self {
            e @ StageError::InStream { .. } => e,
            e => StageError::InStream {
                ctx,
                source: Box::new(e),
            },
        }
    }

    /// The stream (and rendition, pts) this error names, if any.
    pub fn ctx(&self) -> Option<&StreamCtx> {
        match self {
            StageError::InStream { ctx, .. } => Some(ctx),
            _ => None,
        }
    }

    /// The stage's own error, under its context if it has one.
    pub fn stage(&self) -> &StageError {
        match self {
            StageError::InStream { source, .. } => source.stage(),
            e => e,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::StageError;
    use crate::media::StreamCtx;

    #[test]
    fn an_error_in_a_stream_names_the_stream_rendition_and_pts() {
        let e = StageError::Scale {
            width: 1280,
            height: 720,
            reason: "bad stride".into(),
        }
        .in_stream(StreamCtx::new("cam1").rendition("720p").pts(123456));
        assert_eq!(
            e.to_string(),
            r#"stream "cam1", rendition 720p, pts 123456: scale to 1280x720: bad stride"#
        );
        assert_eq!(e.ctx().and_then(|c| c.pts), Some(123456));
        assert!(matches!(e.stage(), StageError::Scale { width: 1280, .. }));
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("scale to 1280x720: bad stride"));
    }

    #[test]
    fn a_rung_error_gets_the_stream_once() {
        let e = StageError::Encode {
            rung: "720p".into(),
            pts: 3003,
            reason: "rc -1".into(),
        }
        .in_stream(StreamCtx::new("cam1"))
        .in_stream(StreamCtx::new("other"));
        assert_eq!(
            e.to_string(),
            r#"stream "cam1": encode of rung 720p at pts 3003: rc -1"#
        );
        assert!(StageError::Decode {
            dts: 0,
            reason: String::new()
        }
        .ctx()
        .is_none());
    }
}
