//! The clocks, read in one place. Sans-IO cores take `now` as an
//! argument; the glue that calls them reads it here.

use std::time::Instant;

/// Monotonic now.
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock now, Unix milliseconds (0 on a clock before 1970).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
