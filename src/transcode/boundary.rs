//! Segment boundaries, decided once per stream for every rendition.
//!
//! On source keyframes while the source GOP fits the segment target (so the
//! passthrough rendition lines up with the rungs); if a segment runs past 1.5×
//! the target with no source keyframe, the stream switches to a fixed cadence
//! for good, and the passthrough rendition can no longer be offered.

use crate::media::TIMESCALE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    SourceKeyframes,
    Cadence,
}

#[derive(Debug)]
pub struct Boundaries {
    target: i64,
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
                    Mode::SourceKeyframes if elapsed + slack >= self.target * 3 / 2 => {
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
        // 10 s GOP, 2 s target: gives up at 3 s, then every 2 s.
        let (cuts, mode) = run(300, 300, 2.0);
        assert_eq!(cuts, vec![0, 90, 150, 210, 270]);
        assert_eq!(mode, Mode::Cadence);
    }
}
