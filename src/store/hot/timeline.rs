//! A rendition's window: the segments it keeps, their bodies and inits.

use std::collections::VecDeque;

use bytes::Bytes;

use super::answer::Object;
use crate::package::hls::SegmentEntry;

#[derive(Default)]
pub(super) struct Timeline {
    /// Init segments still referenced by the window, by version.
    pub(super) inits: Vec<(u32, Bytes)>,
    pub(super) entries: VecDeque<SegmentEntry>,
    pub(super) bodies: VecDeque<Body>,
    pub(super) discontinuity_sequence: u64,
    /// Every msn below this was published and evicted.
    pub(super) evicted_before: u64,
    /// The part being written, chunk by chunk: (msn, index, chunks).
    pub(super) open_part: Option<(u64, u32, Vec<Bytes>)>,
    pub(super) ended: bool,
    /// Where the oldest segment's continuous run (no discontinuity, one init
    /// version) began, when that was an evicted segment: its media start.
    pub(super) run_start: Option<u64>,
}

#[derive(Default)]
pub(super) struct Body {
    pub(super) parts: Vec<Bytes>,
    /// The whole segment, assembled when its last part lands.
    pub(super) data: Option<Bytes>,
}

impl Timeline {
    pub(super) fn position(&self, msn: u64) -> Option<usize> {
        let first = self.entries.front()?.msn;
        let i = usize::try_from(msn.checked_sub(first)?).ok()?;
        (i < self.entries.len()).then_some(i)
    }

    pub(super) fn find(&self, msn: u64) -> Option<&SegmentEntry> {
        self.position(msn).map(|i| &self.entries[i])
    }

    pub(super) fn newest(&mut self, msn: u64) -> Option<(&mut SegmentEntry, &mut Body)> {
        match (self.entries.back_mut(), self.bodies.back_mut()) {
            (Some(e), Some(b)) if e.msn == msn => Some((e, b)),
            _ => None,
        }
    }

    /// A segment or first part not yet started is worth waiting for only when
    /// it is the very next one.
    pub(super) fn next_in_line(&self, msn: u64, first_part: bool) -> Object {
        let next = self.entries.back().map_or(0, |e| e.msn + 1);
        if !self.ended && first_part && msn == next {
            Object::Pending
        } else {
            Object::Missing
        }
    }

    /// Drops whole segments from the front while the rest still covers the window.
    pub(super) fn evict(&mut self, window_secs: f64) {
        loop {
            let total: f64 = self
                .entries
                .iter()
                .filter(|e| e.complete)
                .map(|e| e.duration)
                .sum();
            let Some(front) = self.entries.front() else {
                break;
            };
            if !front.complete || total - front.duration < window_secs {
                break;
            }
            self.evicted_before = front.msn + 1;
            let (front_start, front_init) = (front.start, front.init_version);
            match self.entries.get(1) {
                Some(next) if next.discontinuity || next.init_version != front_init => {
                    self.run_start = None;
                }
                _ => {
                    self.run_start = Some(self.run_start.unwrap_or(front_start));
                }
            }
            if self.entries.get(1).is_some_and(|e| e.discontinuity) {
                self.discontinuity_sequence += 1;
            }
            self.entries.pop_front();
            self.bodies.pop_front();
        }
        // Keep only the init versions the window still uses.
        if let Some(oldest) = self.entries.front().map(|e| e.init_version) {
            self.inits.retain(|(v, _)| *v >= oldest);
        }
    }
}
