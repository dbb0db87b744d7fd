//! From packets to the ladder: the per-stream pipeline and (later) its stages.

pub mod pipeline;
