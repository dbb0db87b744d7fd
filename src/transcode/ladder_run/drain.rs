//! The pictures a decoder holds, given out while the input pauses
//! ([`super::LadderRun::drain`]), the decoder left as it is.
//!
//! A decoder gives a picture out only once later packets show that no
//! earlier one is still to come (H.264's reorder delay: 2–4 pictures with
//! B-frames, a picture more per libavcodec frame thread), so a publisher
//! that goes silent leaves the rungs that far behind the source. Ending the
//! decoder's stream (`Decoder::flush`) gives them out, but going on after
//! that is lossy or differs by API: openh264's flush outside the end of a
//! stream loses reordered pictures (see `cpu/decoder.rs`), libavcodec needs
//! `avcodec_flush_buffers`, which drops the references the next packet
//! needs, and NVDEC's parser starts over after its end-of-stream flag.
//! So a second decoder of the same kind decodes the packets since the
//! latest keyframe and is flushed: the pictures it gives out that the rungs
//! have not had go to them. The cost (a GOP's decode at most) falls while
//! the input is silent, not when it comes back, and it is paid a few
//! packets at a time ([`Replay::step`]) so the stream's core goes on
//! serving its input (a blocking replay held it past `slate_after_ms` on a
//! loaded box); a video packet that arrives meanwhile cancels the replay,
//! since the live decoder then gives out what it held.
//!
//! The live decoder goes on untouched. The pictures it gives out later up
//! to the drain point are passed over (the drain gave them out) or dropped
//! and counted: a B-frame sent after the pause that shows before a picture
//! the drain gave out (the input paused inside a mini-GOP) would take the
//! timeline backwards.

use std::collections::HashSet;

use crate::media::Packet;
use crate::transcode::{Decoder, Frame, StageError};

/// Packets kept for a drain, at most (33 s at 30 fps); a longer GOP is not
/// drained until its next keyframe.
const GOP_MAX: usize = 1000;

/// What a drain needs and what it left behind.
#[derive(Default)]
pub(super) struct Held {
    /// Video packets since the latest keyframe, decoded without an error.
    gop: Vec<Packet>,
    /// The GOP is incomplete (too long, or a decode error): no drain until
    /// the next keyframe.
    broken: bool,
    /// Packets pushed since the last drain.
    fresh: bool,
    /// The latest pts pushed: beyond the latest handed to the rungs, the
    /// decoder holds pictures (else a replay would give nothing: a stream
    /// without B-frames on a decoder without delay).
    last_in: Option<i64>,
    /// The latest pts handed to the rungs.
    last_out: Option<i64>,
    /// After a drain: its point (the latest pts it gave out) and the
    /// pictures it gave out that the live decoder has still to give out.
    guard: Option<(i64, HashSet<i64>)>,
    /// Drains that gave out at least one picture.
    pub drains: u64,
    /// Pictures dropped for showing before a drain's point.
    pub dropped: u64,
    /// Drains cancelled before they were over (input came back first).
    pub cancelled: u64,
}

/// A drain under way: the spare decoder and the packets it replays, a few
/// per [`Self::step`].
pub(super) struct Replay {
    spare: Box<dyn Decoder>,
    gop: Vec<Packet>,
    next: usize,
    /// Pictures given out so far.
    pub gave: usize,
}

impl Replay {
    pub fn new(spare: Box<dyn Decoder>, gop: Vec<Packet>) -> Self {
        Replay {
            spare,
            gop,
            next: 0,
            gave: 0,
        }
    }

    /// Decodes up to `packets` more packets and, once every one is in,
    /// flushes the decoder; `give` says whether it gave a picture out.
    /// True when the replay is over.
    pub fn step(
        &mut self,
        packets: usize,
        give: &mut dyn FnMut(&mut Frame) -> bool,
    ) -> Result<bool, StageError> {
        let gave = &mut self.gave;
        let mut out = |f: &mut Frame| *gave += usize::from(give(f));
        let end = self.gop.len().min(self.next.saturating_add(packets));
        while self.next < end {
            self.spare.decode(&self.gop[self.next], &mut out)?;
            self.next += 1;
        }
        if self.next < self.gop.len() {
            return Ok(false);
        }
        self.spare.flush(&mut out)?;
        Ok(true)
    }
}

impl Held {
    /// A packet goes to the live decoder.
    pub fn pushed(&mut self, p: &Packet) {
        if p.keyframe {
            self.gop.clear();
            self.broken = false;
        }
        if self.broken {
            return;
        }
        if self.gop.len() == GOP_MAX {
            self.failed();
            return;
        }
        self.gop.push(p.clone());
        self.fresh = true;
        self.last_in = Some(self.last_in.map_or(p.pts, |l| l.max(p.pts)));
    }

    /// The live decoder failed on the latest packet (the ladder skips to its
    /// next keyframe).
    pub fn failed(&mut self) {
        self.gop.clear();
        self.broken = true;
    }

    /// Packets to replay for a drain, if one is due (a copy: the live
    /// decoder's packets go on into the GOP while the replay runs).
    pub fn take_replay(&mut self) -> Option<Vec<Packet>> {
        let held = self.last_in > self.last_out;
        if !self.fresh || self.broken || self.gop.is_empty() || !held {
            return None;
        }
        self.fresh = false;
        Some(self.gop.clone())
    }

    /// The drain is over: whether it gave anything out.
    pub fn replayed(&mut self, gave: usize) {
        self.drains += u64::from(gave > 0);
    }

    /// A drain was cancelled: the input came back (or ended) first.
    pub fn cancelled(&mut self) {
        self.cancelled += 1;
    }

    /// Whether a picture of the live decoder goes to the rungs.
    pub fn passes(&mut self, pts: i64) -> bool {
        if let Some((point, given)) = &mut self.guard {
            if pts <= *point {
                if !given.remove(&pts) {
                    self.dropped += 1;
                }
                return false;
            }
            // Past the drain point: the live decoder has caught up.
            self.guard = None;
        }
        self.last_out = Some(self.last_out.map_or(pts, |l| l.max(pts)));
        true
    }

    /// Whether a picture of the drain goes to the rungs: one they have not had.
    pub fn drained(&mut self, pts: i64) -> bool {
        if self.last_out.is_some_and(|l| pts <= l) {
            return false;
        }
        self.last_out = Some(pts);
        let (point, given) = self.guard.get_or_insert_with(|| (pts, HashSet::new()));
        *point = pts;
        given.insert(pts);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pts: i64, keyframe: bool) -> Packet {
        Packet {
            stream: 1,
            track: crate::media::Track::Video,
            dts: pts,
            pts,
            keyframe,
            discontinuity: false,
            data: bytes::Bytes::new(),
            arrival: std::time::Instant::now(),
        }
    }

    /// After a drain gave out up to pts 4: the live decoder's 4 again is
    /// passed over, its 1-3 (B-frames sent after the pause) dropped and
    /// counted, 5 goes on and ends the guard.
    #[test]
    fn the_live_decoder_resumes_after_the_drain_point() {
        let mut h = Held::default();
        h.pushed(&packet(0, true));
        assert!(h.passes(0));
        assert!(h.take_replay().is_none(), "the decoder holds nothing");
        h.pushed(&packet(4, false));
        let gop = h.take_replay().unwrap();
        assert_eq!(gop.len(), 2, "the GOP since the keyframe");
        assert!(h.take_replay().is_none(), "nothing new since");
        assert!(!h.drained(0), "the rungs had it");
        assert!(h.drained(4));
        h.replayed(1);
        assert_eq!(h.drains, 1);
        let passed: Vec<i64> = [1, 2, 3, 4, 5, 6]
            .into_iter()
            .filter(|&p| h.passes(p))
            .collect();
        assert_eq!(passed, [5, 6]);
        assert_eq!(h.dropped, 3);
        assert!(h.guard.is_none());
    }

    /// No replay after a decode error until the next keyframe.
    #[test]
    fn a_broken_gop_is_not_replayed() {
        let mut h = Held::default();
        h.pushed(&packet(0, true));
        h.failed();
        h.pushed(&packet(1, false));
        assert!(h.take_replay().is_none());
        h.pushed(&packet(2, true));
        assert_eq!(h.take_replay().map(|g| g.len()), Some(1));
    }
}
