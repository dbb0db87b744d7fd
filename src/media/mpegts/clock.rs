//! 33-bit PTS/DTS unwrapped onto the 90 kHz timeline.

use crate::media::ms_to_ticks;
use crate::media::timeline::{Unwrapped, DEFAULT_MAX_GAP_MS};

/// PTS/DTS are 33-bit counters of a 90 kHz clock: they wrap every ~26.5 hours.
pub(super) const WRAP: i64 = 1 << 33;

/// Largest forward step treated as continuous time (the RTMP path's, in ticks).
pub(super) const MAX_GAP: i64 = ms_to_ticks(DEFAULT_MAX_GAP_MS as i64);

/// A 33-bit timestamp clock unwrapped onto the monotonic 90 kHz timeline, with
/// `timeline::Unwrapper`'s rules: a forward step up to the gap (a wrap
/// included) is time; any other step is a discontinuity, and the output moves
/// on by the last normal step instead.
#[derive(Debug, Default, Clone)]
pub(super) struct Clock {
    /// Last raw timestamp and where it landed.
    pub(super) last: Option<(u64, i64)>,
    pub(super) last_step: i64,
}

impl Clock {
    /// Maps one raw timestamp. The first one starts where the other track's
    /// clock puts it, when that is near: the PTS origin is arbitrary and may
    /// wrap between the tracks' first packets.
    pub(super) fn unwrap(&mut self, raw: u64, other: Option<(u64, i64)>) -> Unwrapped {
        let raw = raw & (WRAP as u64 - 1);
        let Some((last_raw, last_out)) = self.last else {
            let out = other
                .map(|(o_raw, o_out)| (o_out, signed_33(raw, o_raw)))
                .filter(|(_, d)| d.abs() <= MAX_GAP)
                .map_or(raw as i64, |(o_out, d)| o_out + d);
            self.last = Some((raw, out));
            return Unwrapped {
                ticks: out,
                discontinuity: false,
            };
        };
        let forward = (raw as i64 - last_raw as i64).rem_euclid(WRAP);
        let (out, discontinuity) = if forward <= MAX_GAP {
            if forward > 0 {
                self.last_step = forward;
            }
            (last_out + forward, false)
        } else {
            (last_out + self.last_step, true)
        };
        self.last = Some((raw, out));
        Unwrapped {
            ticks: out,
            discontinuity,
        }
    }
}

/// `a − b` on the 33-bit circle, in −2³²..2³².
pub(super) fn signed_33(a: u64, b: u64) -> i64 {
    let d = (a as i64 - b as i64).rem_euclid(WRAP);
    if d >= WRAP / 2 {
        d - WRAP
    } else {
        d
    }
}
