//! A NAME's DVR timeline: each rendition's records on disk per run, and how
//! the runs of a NAME chain into one playlist (media and discontinuity
//! sequences that never go back). Pure bookkeeping, no I/O.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::index::Record;
use crate::package::hls::SegmentEntry;

/// One rendition's segments on disk, oldest first.
#[derive(Default)]
pub(super) struct OnDisk {
    pub(super) records: VecDeque<Record>,
    pub(super) inits: BTreeSet<u32>,
    /// Discontinuity tags before the oldest record (evicted with their
    /// segments): EXT-X-DISCONTINUITY-SEQUENCE within the run.
    pub(super) discontinuity_sequence: u64,
    /// Segments evicted so far: the media sequence within the run.
    pub(super) evicted: u64,
    /// Records evicted since the index was last compacted.
    pub(super) stale: usize,
    /// The newest record evicted while none followed it: whether a tag
    /// stands between it and the next one is known when that one comes.
    pub(super) evicted_last: Option<Record>,
    /// Where the run continues its NAME's DVR timeline; None until the
    /// rendition's first object of the run is on the storage thread.
    pub(super) chain: Option<Chain>,
    /// Bytes of its files other than segments (inits, index, chain): they
    /// count against `max_disk_gb` too.
    pub(super) overhead: u64,
    /// The index file's bytes (part of `overhead`).
    pub(super) index_bytes: u64,
}

/// Where one run (`NAME/EPOCH`) of a rendition continues the NAME's DVR
/// timeline, so a NAME resumed after a restart or a long outage keeps the
/// earlier runs seekable behind one playlist: the media sequence and the
/// discontinuity sequence of the run's first segment carry on from the run
/// before (its segments, then a discontinuity), and every run of a chain
/// shares the first one's epoch as its MPD's `availabilityStartTime`.
/// Persisted per rendition (`chain`) when the run starts, so the numbers
/// never go back over a restart. A chain starts afresh when the run before
/// has nothing left on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    pub sequence: u64,
    pub discontinuities: u64,
    pub origin_ms: u64,
}

impl Chain {
    pub(super) fn encode(&self) -> String {
        format!(
            "{} {} {}\n",
            self.sequence, self.discontinuities, self.origin_ms
        )
    }

    pub(super) fn decode(text: &str) -> Option<Chain> {
        let mut it = text.split_whitespace().map(|v| v.parse::<u64>().ok());
        let c = Chain {
            sequence: it.next()??,
            discontinuities: it.next()??,
            origin_ms: it.next()??,
        };
        it.next().is_none().then_some(c)
    }
}

/// One run of a rendition in a NAME's DVR timeline, for the DVR playlist
/// and MPD.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSegments {
    pub epoch_ms: u64,
    /// Oldest first.
    pub segments: Vec<SegmentEntry>,
    /// Media sequence and discontinuity sequence of the first one.
    pub sequence: u64,
    pub discontinuity_sequence: u64,
    /// The chain's first epoch (the DVR MPD's `availabilityStartTime`).
    pub origin_ms: u64,
}

/// Whether a playlist puts EXT-X-DISCONTINUITY between two segments of a
/// run: a flagged one, or a gap (a segment that was never kept).
pub(super) fn tag_between(prev: &Record, next: &Record) -> bool {
    next.discontinuity || next.msn != prev.msn + 1
}

pub(super) fn tags_within(records: &VecDeque<Record>) -> u64 {
    records
        .iter()
        .zip(records.iter().skip(1))
        .filter(|(a, b)| tag_between(a, b))
        .count() as u64
}

/// `NAME/EPOCH` → (NAME, EPOCH).
pub(super) fn split_key(key: &str) -> Option<(&str, u64)> {
    let (name, epoch) = key.rsplit_once('/')?;
    Some((name, epoch.parse().ok()?))
}

/// The chain a new run `key` of `rendition` starts: after the NAME's
/// latest earlier run of the rendition that still has segments on disk.
pub(super) fn chain_for(
    disk: &HashMap<String, HashMap<String, OnDisk>>,
    key: &str,
    rendition: &str,
) -> Chain {
    let Some((name, epoch)) = split_key(key) else {
        return Chain {
            sequence: 0,
            discontinuities: 0,
            origin_ms: 0,
        };
    };
    let earlier = |k: &String| {
        split_key(k)
            .filter(|(n, e)| *n == name && *e < epoch)
            .map(|(_, e)| e)
    };
    let prev = disk
        .iter()
        .filter_map(|(k, rs)| Some((earlier(k)?, rs.get(rendition)?)))
        .filter(|(_, d)| !d.records.is_empty())
        .max_by_key(|(e, _)| *e);
    if let Some((_, d)) = prev {
        if let Some(c) = d.chain {
            return Chain {
                sequence: c.sequence + d.evicted + d.records.len() as u64,
                discontinuities: c.discontinuities
                    + d.discontinuity_sequence
                    + tags_within(&d.records)
                    + 1,
                origin_ms: c.origin_ms,
            };
        }
    }
    // A rendition new to the NAME joins the chain of the others' latest run.
    let origin_ms = disk
        .iter()
        .filter_map(|(k, rs)| Some((earlier(k)?, rs)))
        .filter(|(_, rs)| rs.values().any(|d| !d.records.is_empty()))
        .max_by_key(|(e, _)| *e)
        .and_then(|(_, rs)| rs.values().find_map(|d| d.chain))
        .map_or(epoch, |c| c.origin_ms);
    Chain {
        sequence: 0,
        discontinuities: 0,
        origin_ms,
    }
}

/// Adds the newest record of a rendition.
pub(super) fn push(d: &mut OnDisk, record: Record) {
    if let Some(last) = d.evicted_last.take() {
        if d.records.is_empty() && tag_between(&last, &record) {
            d.discontinuity_sequence += 1;
        }
    }
    d.records.push_back(record);
}

/// Takes the oldest record of a rendition, keeping its playlist counts.
pub(super) fn pop(d: &mut OnDisk) -> Option<Record> {
    let r = d.records.pop_front()?;
    match d.records.front() {
        Some(n) if tag_between(&r, n) => d.discontinuity_sequence += 1,
        Some(_) => {}
        None => d.evicted_last = Some(r.clone()),
    }
    d.evicted += 1;
    d.stale += 1;
    Some(r)
}

/// A run's chain, per rendition (see [`Chain`]).
pub(super) const CHAIN_FILE: &str = "chain";
