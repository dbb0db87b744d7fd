//! Turns a publisher's 32-bit millisecond clock into a monotonic 90 kHz timeline.
//!
//! RTMP timestamps are `u32` milliseconds that wrap every ~49.7 days, and
//! publishers reset or jump them (encoder restart, OBS scene switch, a bug).
//! A forward step of up to `max_gap` is normal time; a clean 32-bit wrap is
//! unwrapped and stays continuous. Anything else (a step backwards, a jump
//! forward of more than `max_gap`) is a discontinuity: the output keeps going
//! from where it was, one nominal step later, and the packet is flagged so the
//! packager can write `EXT-X-DISCONTINUITY`. Output time never goes backwards.

use super::ms_to_ticks;

/// Largest forward step treated as continuous time.
pub const DEFAULT_MAX_GAP_MS: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unwrapped {
    /// Monotonic time in 90 kHz ticks.
    pub ticks: i64,
    pub discontinuity: bool,
}

#[derive(Debug, Clone)]
pub struct Unwrapper {
    max_gap_ms: u32,
    /// Last raw timestamp and where it landed on the output timeline (ms).
    last: Option<(u32, i64)>,
    /// Last continuous step, used to place the first packet after a jump.
    last_step_ms: i64,
}

impl Unwrapper {
    pub fn new(max_gap_ms: u32) -> Self {
        Unwrapper {
            max_gap_ms,
            last: None,
            last_step_ms: 0,
        }
    }

    /// Maps one raw timestamp; the first one sets the origin (output starts at its value).
    pub fn unwrap(&mut self, raw_ms: u32) -> Unwrapped {
        let Some((last_raw, last_out)) = self.last else {
            self.last = Some((raw_ms, raw_ms as i64));
            return Unwrapped {
                ticks: ms_to_ticks(raw_ms as i64),
                discontinuity: false,
            };
        };
        // Distance forward on the 32-bit circle: a clean wrap is a small step.
        let forward = raw_ms.wrapping_sub(last_raw);
        let (out, discontinuity) = if forward <= self.max_gap_ms {
            if forward > 0 {
                self.last_step_ms = forward as i64;
            }
            (last_out + forward as i64, false)
        } else {
            (last_out + self.last_step_ms, true)
        };
        self.last = Some((raw_ms, out));
        Unwrapped {
            ticks: ms_to_ticks(out),
            discontinuity,
        }
    }
}

impl Default for Unwrapper {
    fn default() -> Self {
        Unwrapper::new(DEFAULT_MAX_GAP_MS)
    }
}

/// `EXT-X-TARGETDURATION` for segments of `segment_secs`: the segment boundaries
/// (`transcode::boundary`) keep every segment below it + 0.5 s, so none rounds above.
pub fn target_duration(segment_secs: f64) -> u64 {
    segment_secs.ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(raw: &[u32]) -> Vec<(i64, bool)> {
        let mut u = Unwrapper::default();
        raw.iter()
            .map(|&r| {
                let o = u.unwrap(r);
                (o.ticks / 90, o.discontinuity)
            })
            .collect()
    }

    #[test]
    fn steady_time_passes_through() {
        assert_eq!(
            run(&[0, 33, 67, 100]),
            vec![(0, false), (33, false), (67, false), (100, false)]
        );
    }

    #[test]
    fn clean_32bit_wrap_is_continuous() {
        let near = u32::MAX - 20;
        assert_eq!(
            run(&[near, near + 10, 5, 40]),
            vec![
                (near as i64, false),
                (near as i64 + 10, false),
                (near as i64 + 26, false),
                (near as i64 + 61, false)
            ]
        );
    }

    #[test]
    fn backward_jump_is_a_discontinuity_and_never_negative() {
        let out = run(&[5000, 5033, 100, 133]);
        assert_eq!(
            out,
            vec![(5000, false), (5033, false), (5066, true), (5099, false)]
        );
        assert!(out.windows(2).all(|w| w[1].0 >= w[0].0));
    }

    #[test]
    fn forward_jump_beyond_gap_is_a_discontinuity() {
        let out = run(&[0, 40, 40 + 60_000, 40 + 60_040]);
        assert_eq!(out, vec![(0, false), (40, false), (80, true), (120, false)]);
    }

    #[test]
    fn repeated_timestamp_is_not_a_jump() {
        assert_eq!(
            run(&[10, 10, 20]),
            vec![(10, false), (10, false), (20, false)]
        );
    }

    #[test]
    fn extended_timestamps_above_24_bits_are_plain_time() {
        // 0xFFFFFF ms is where RTMP switches to extended timestamps; nothing special here.
        let out = run(&[0xFF_FFF0, 0xFF_FFFF, 0x100_0010]);
        assert!(out.iter().all(|(_, d)| !d));
        assert_eq!(out[2].0 - out[0].0, 0x20);
    }
}
