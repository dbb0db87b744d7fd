//! What the demuxer dropped or repaired, counted for the SRT stats.

/// What the demuxer dropped or repaired; none of it ends the publish.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Whole 188-byte packets handed to the TS parser.
    pub ts_packets: u64,
    /// Bytes skipped while looking for the 0x47 cadence (garbage, torn packets).
    pub skipped_bytes: u64,
    /// Times the cadence was lost and found again (the first lock is not counted).
    pub resyncs: u64,
    /// Continuity-counter gaps on the video or audio PID (lost or repeated TS packets).
    pub continuity_errors: u64,
    /// PES packets dropped: audio cut by a continuity error, header unreadable
    /// or split across TS packets, no timestamp to place them, or over
    /// [`MAX_PES_BYTES`](super::MAX_PES_BYTES).
    pub dropped_pes: u64,
    /// Video PES that lost (or repeated) TS packets and were kept anyway, as
    /// damaged access units: a decoder conceals a missing piece of a slice,
    /// and the frame's timing and the parameter sets that lead it are intact.
    pub damaged_pes: u64,
    /// Of `dropped_pes`, those over [`MAX_PES_BYTES`](super::MAX_PES_BYTES).
    pub oversized_pes: u64,
    /// PES packets whose declared length disagreed with the data (cut to the length, or
    /// delivered short).
    pub pes_length_mismatches: u64,
    /// Video access units dropped because no usable SPS/PPS had been seen yet.
    pub video_before_config: u64,
    /// SPS/PPS pairs that failed to parse (video waits for the next good pair).
    pub bad_parameter_sets: u64,
    /// Composition offsets (pts − dts) that were negative or beyond the gap, clamped to 0.
    pub bad_composition_offsets: u64,
    /// ADTS bytes skipped looking for a frame header.
    pub adts_skipped_bytes: u64,
    /// ADTS frames dropped: several raw blocks in one frame, a bad sample rate,
    /// or no timestamp yet.
    pub adts_dropped_frames: u64,
    /// Elementary streams in a PMT that are not demuxed (data, or a second
    /// video or audio track).
    pub ignored_streams: u64,
}
