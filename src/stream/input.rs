//! What a stream's input hands its driver: the values ingest (through a
//! [`Publisher`](super::Publisher)) and the slate send down a stream's channel.

use crate::media::{CodecConfig, Packet};
use crate::stream::registry::EndReason;

/// What ingest sends down a stream's channel.
#[derive(Debug)]
pub enum Input {
    Config(CodecConfig),
    Packet(Packet),
    /// Ingest is done with the stream; no more input follows.
    End(EndReason),
}
