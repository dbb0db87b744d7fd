//! What the storage thread is asked to do, in the order it was asked.

use bytes::Bytes;

use super::recordings::Recording;
use crate::package::hls::{RenditionSummary, SegmentEntry};

pub(super) enum Job {
    Init {
        key: String,
        rendition: String,
        version: u32,
        data: Bytes,
    },
    Segment {
        key: String,
        rendition: String,
        entry: SegmentEntry,
        data: Bytes,
        queued: std::time::Instant,
    },
    Record {
        key: String,
        recording: Recording,
        summaries: Vec<RenditionSummary>,
    },
    /// Answered once every job queued before it is done (a graceful stop).
    Flush(std::sync::mpsc::Sender<()>),
}
