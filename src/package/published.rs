//! What the packager gives: values the store (or a file writer) applies, in order.

use bytes::Bytes;

use super::chunker::Chunk;

/// What a rendition carries, for the multivariant playlist.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RenditionKind {
    Video {
        width: u32,
        height: u32,
        fps: f64,
        /// The encoder's target (rungs); 0 for passthrough (measured instead).
        nominal_bps: u64,
    },
    Audio {
        channels: u8,
        nominal_bps: u64,
    },
}

/// What the packager publishes, in order; the store (or a file writer) applies it.
#[derive(Debug, Clone)]
pub enum Published {
    /// A rendition appears (it replaces one of the same name).
    Rendition {
        name: String,
        codecs: String,
        kind: RenditionKind,
        /// Its playlist's PART-TARGET (s): audio parts are whole AAC frames.
        part_target: f64,
    },
    /// A rendition's (next) init segment; later chunks use it.
    Init { rendition: String, init: Bytes },
    /// What the multivariant playlist says of a rendition, after a new configuration.
    Describe {
        rendition: String,
        codecs: String,
        kind: RenditionKind,
    },
    /// A chunk, part or segment boundary of a rendition.
    Chunk { rendition: String, chunk: Chunk },
    /// The rendition is closed (`EXT-X-ENDLIST`).
    End { rendition: String },
    /// Every rendition of the stream is closed.
    StreamEnd,
}
