//! Segment boundaries, decided once per stream for every rendition.
//!
//! On source keyframes while the source GOP fits the segment target (so the
//! passthrough rendition lines up with the rungs); if a segment would reach
//! [`target_duration`] + 0.5 s with no source keyframe, it is cut one frame before
//! and the stream switches to a fixed cadence for good (the passthrough rendition
//! can then no longer be offered). So every segment rounds to at most the
//! playlists' `EXT-X-TARGETDURATION`, which therefore stays the segment target
//! rounded up (2 for 2 s segments, where it was 3 when segments could run to
//! 1.5× before the fallback): players that stay 3 target durations behind live
//! (hls.js standard mode, Safari) sit 3 s closer.

use crate::media::timeline::target_duration;
use crate::media::TIMESCALE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    SourceKeyframes,
    Cadence,
}

#[derive(Debug)]
pub struct Boundaries {
    target: i64,
    /// A keyframe-mode segment must stay below this (target duration + 0.5 s).
    limit: i64,
    mode: Mode,
    last: Option<i64>,
    /// Frames since the last boundary (0 on the boundary frame itself).
    pub index_in_segment: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub boundary: bool,
    /// Set once, on the frame where keyframe mode gave up.
    pub switched_to_cadence: bool,
}

impl Boundaries {
    pub fn new(segment_secs: f64) -> Self {
        Boundaries {
            target: (segment_secs * TIMESCALE as f64).round() as i64,
            limit: (target_duration(segment_secs) as i64 * 2 + 1) * TIMESCALE as i64 / 2,
            mode: Mode::SourceKeyframes,
            last: None,
            index_in_segment: 0,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Decides for one frame, in presentation order. `half_frame` tolerates
    /// timestamps that land a hair before the target.
    pub fn next(&mut self, pts: i64, source_keyframe: bool, frame_ticks: i64) -> Decision {
        let slack = frame_ticks / 2;
        let mut switched = false;
        let boundary = match self.last {
            None => true,
            Some(last) => {
                let elapsed = pts - last;
                match self.mode {
                    Mode::SourceKeyframes if source_keyframe && elapsed + slack >= self.target => {
                        true
                    }
                    // One more frame would make a segment that rounds above the
                    // target duration: cut here.
                    Mode::SourceKeyframes if elapsed + frame_ticks >= self.limit => {
                        self.mode = Mode::Cadence;
                        switched = true;
                        true
                    }
                    Mode::SourceKeyframes => false,
                    Mode::Cadence => elapsed + slack >= self.target,
                }
            }
        };
        if boundary {
            self.last = Some(pts);
            self.index_in_segment = 0;
        } else {
            self.index_in_segment += 1;
        }
        Decision {
            boundary,
            switched_to_cadence: switched,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F30: i64 = 3000;

    fn run(frames: usize, gop: usize, secs: f64) -> (Vec<usize>, Mode) {
        let mut b = Boundaries::new(secs);
        let cuts = (0..frames)
            .filter(|&i| b.next(i as i64 * F30, i % gop == 0, F30).boundary)
            .collect();
        (cuts, b.mode())
    }

    #[test]
    fn follows_source_keyframes_when_the_gop_fits() {
        // 1 s GOP, 2 s target: every other keyframe.
        assert_eq!(
            run(181, 30, 2.0),
            (vec![0, 60, 120, 180], Mode::SourceKeyframes)
        );
    }

    #[test]
    fn falls_back_to_cadence_when_the_gop_is_too_long() {
        // 10 s GOP, 2 s target: gives up one frame before 2.5 s, then every 2 s.
        let (cuts, mode) = run(300, 300, 2.0);
        assert_eq!(cuts, vec![0, 74, 134, 194, 254]);
        assert_eq!(mode, Mode::Cadence);
    }

    /// Issue 13 (b): no segment may round above the target duration, whatever the
    /// source GOP and frame rate.
    #[test]
    fn no_segment_rounds_above_the_target_duration() {
        for secs in [0.5, 1.0, 1.5, 2.0, 4.0, 6.0] {
            for (fps_num, fps_den) in [(30, 1), (30000, 1001), (25, 1), (60, 1), (24, 1)] {
                let frame = (TIMESCALE as i64 * fps_den) / fps_num;
                for gop in [1, 7, 30, 48, 59, 60, 61, 74, 75, 76, 90, 150, 600] {
                    let mut b = Boundaries::new(secs);
                    let mut last = 0i64;
                    for i in 0..2000i64 {
                        let pts = i * frame;
                        if b.next(pts, i % gop == 0, frame).boundary && i > 0 {
                            let len = (pts - last) as f64 / TIMESCALE as f64;
                            assert!(
                                len.round() as u64 <= target_duration(secs),
                                "{secs} s, {fps_num}/{fps_den} fps, GOP {gop}: a {len} s segment"
                            );
                            last = pts;
                        }
                    }
                }
            }
        }
    }
}
