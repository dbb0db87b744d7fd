//! One rendition being packaged: its chunker, its breaks marked, its latency.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hdrhistogram::Histogram;
use tracing::warn;

use crate::media::StreamCtx;
use crate::package::chunker::{Chunk, Chunker, Frame};
use crate::package::cmaf;
use crate::package::published::{Published, RenditionKind};
use crate::telemetry::latency::{latency_histogram, StageBuckets};

/// Where the stream's timeline broke (a timestamp jump or reset at ingest, or
/// a new video configuration), shared by every rendition: each marks
/// `EXT-X-DISCONTINUITY` on its first segment that starts at or after `at`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Break {
    /// Tells one break from the next (an output remembers the last it marked).
    pub(super) id: u64,
    /// Decode time (90 kHz) of the first frame after the break.
    pub(super) at: i64,
    /// Where the first video rendition started its segment for the break: the
    /// audio cuts its own segment there, so every rendition breaks at the same
    /// boundary.
    pub(super) boundary: Option<i64>,
}

/// A video rendition's next configuration: its init segment, and what the
/// multivariant playlist says of it.
pub(super) struct NewConfig {
    pub(super) init: Bytes,
    pub(super) codecs: String,
    pub(super) kind: RenditionKind,
}

/// One rendition being packaged.
pub(super) struct Output {
    pub(super) rendition: Name,
    pub(super) chunker: Chunker,
    pub(super) failed: bool,
    /// Closed (`EXT-X-ENDLIST`): takes no more frames.
    pub(super) ended: bool,
    /// The id of the last [`Break`] this rendition marked.
    pub(super) marked: Option<u64>,
    /// A rung whose encoder restarted: its next IDR brings new parameter sets.
    pub(super) reinit: bool,
    /// Ingest arrival → the frame's part published (µs).
    pub(super) ingest_to_published: Histogram<u64>,
    /// Frame ready (encoded) → its part published (µs).
    pub(super) ready_to_published: Histogram<u64>,
}

/// A rendition's name, cheap to copy into every value it publishes.
#[derive(Debug, Clone)]
pub(super) struct Name(pub(super) Arc<str>);

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Output {
    pub(super) fn new(rendition: Name, chunker: Chunker) -> Self {
        Output {
            rendition,
            chunker,
            failed: false,
            ended: false,
            marked: None,
            reinit: false,
            ingest_to_published: latency_histogram(),
            ready_to_published: latency_histogram(),
        }
    }

    pub(super) fn push(&mut self, frame: Frame, stream: &str, out: &mut Vec<Published>) {
        if self.ended {
            return;
        }
        let (now, pts) = (frame.ready, frame.pts);
        match self.chunker.push(frame) {
            Ok(chunks) => self.publish(chunks, now, out),
            Err(e) => self.fail(e.in_stream(self.ctx(stream).pts(pts))),
        }
    }

    /// Pushes the first frame of a new configuration, then publishes its init
    /// segment: the chunks `frame` completes all belong to earlier frames (the
    /// chunker holds one), and the segment `frame` starts is published later,
    /// under the new init (`EXT-X-MAP`).
    pub(super) fn push_with_init(
        &mut self,
        frame: Frame,
        new: NewConfig,
        stream: &str,
        out: &mut Vec<Published>,
    ) {
        self.push(frame, stream, out);
        if !self.ended {
            out.push(Published::Init {
                rendition: self.rendition.to_string(),
                init: new.init,
            });
            out.push(Published::Describe {
                rendition: self.rendition.to_string(),
                codecs: new.codecs,
                kind: new.kind,
            });
        }
    }

    /// Whether a frame at `t` carries the stream's newest break: the first
    /// one at or after it that starts a segment. The first video rendition to
    /// cut there fixes the break's boundary.
    pub(super) fn carries(
        &mut self,
        brk: &mut Option<Break>,
        t: i64,
        starts_segment: bool,
    ) -> bool {
        let Some(b) = brk.as_mut() else {
            return false;
        };
        if self.marked == Some(b.id) || !starts_segment || t < b.at {
            return false;
        }
        self.marked = Some(b.id);
        b.boundary.get_or_insert(t);
        true
    }

    pub(super) fn finish(&mut self, stream: &str, now: Instant, out: &mut Vec<Published>) {
        if self.ended {
            return;
        }
        self.ended = true;
        match self.chunker.finish() {
            Ok(chunks) => self.publish(chunks, now, out),
            Err(e) => self.fail(e.in_stream(self.ctx(stream))),
        }
        self.end(out);
    }

    /// Closed without flushing (the source rendition withdrawn).
    pub(super) fn end(&mut self, out: &mut Vec<Published>) {
        self.ended = true;
        out.push(Published::End {
            rendition: self.rendition.to_string(),
        });
    }

    pub(super) fn publish(&mut self, chunks: Vec<Chunk>, now: Instant, out: &mut Vec<Published>) {
        for c in chunks {
            let frames = match &c {
                Chunk::Part { frames, .. } => frames.clone(),
                _ => Vec::new(),
            };
            out.push(Published::Chunk {
                rendition: self.rendition.to_string(),
                chunk: c,
            });
            for (arrival, ready) in frames {
                let _ = self
                    .ingest_to_published
                    .record(now.saturating_duration_since(arrival).as_micros() as u64);
                let _ = self
                    .ready_to_published
                    .record(now.saturating_duration_since(ready).as_micros() as u64);
            }
        }
    }

    pub(super) fn buckets(&self) -> [StageBuckets; 2] {
        let name = Some(self.rendition.to_string());
        [
            StageBuckets::of(
                "ingest_to_published",
                name.clone(),
                &self.ingest_to_published,
            ),
            StageBuckets::of("encoded_to_published", name, &self.ready_to_published),
        ]
    }

    /// `stream` and this rendition, for an error.
    fn ctx(&self, stream: &str) -> StreamCtx {
        StreamCtx::new(stream).rendition(&*self.rendition.0)
    }

    /// A packaging error (named in its stream), logged once per rendition.
    pub(super) fn fail(&mut self, e: cmaf::CmafError) {
        if !self.failed {
            warn!("packaging: {e}");
            self.failed = true;
        }
    }
}
