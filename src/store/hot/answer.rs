//! What a lookup or a blocking reload gets back from a rendition.

use bytes::Bytes;

/// A lookup's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Ready(Bytes),
    /// Not published yet, but next in line: worth waiting for.
    Pending,
    /// A part being written: its chunks so far (chunked parts).
    Growing(Vec<Bytes>),
    /// Was published and has left the window.
    Gone,
    Missing,
}

/// How a blocking playlist request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    Ready,
    Wait,
    /// Asked too far ahead of the live edge.
    TooFar,
}
