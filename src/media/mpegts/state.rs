//! The per-publish state the demuxer's parts share: PES being reassembled,
//! each track's config and clock, the output queue and the counters.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::clock::Clock;
use super::counters::Counters;
use super::output::{Demuxed, TsError};
use crate::media::aac::AudioSpecificConfig;
use crate::media::h264::AvcConfig;
use crate::media::StreamId;
use crate::media::Track;

/// Samples in one AAC frame (AAC-LC; HE-AAC's core frame is the same).
const AAC_FRAME_SAMPLES: i64 = 1024;

#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub(super) enum PesState {
    #[default]
    Idle,
    Open,
    /// Completed by its declared length; data until the next start is excess.
    Complete,
    /// Dropped; data until the next start is ignored.
    Dropped,
}

/// One PES being reassembled.
#[derive(Debug, Default)]
pub(super) struct Pes {
    pub(super) state: PesState,
    pub(super) data: Vec<u8>,
    pub(super) pts: Option<u64>,
    pub(super) dts: Option<u64>,
    /// Payload bytes still due, when the PES declared its length.
    pub(super) remaining: Option<usize>,
    /// TS packets of it were lost or repeated (video only: audio is dropped instead).
    pub(super) damaged: bool,
}

#[derive(Debug, Default)]
pub(super) struct VideoState {
    pub(super) config: Option<AvcConfig>,
    /// Latest in-band parameter sets.
    pub(super) sps: Option<Bytes>,
    pub(super) pps: Option<Bytes>,
    /// A pair that failed to parse, not retried until one of them changes.
    pub(super) rejected: Option<(Bytes, Bytes)>,
    pub(super) clock: Clock,
}

#[derive(Debug, Default)]
pub(super) struct AudioState {
    pub(super) config: Option<AudioSpecificConfig>,
    /// The start of an ADTS frame that continues in the next PES.
    pub(super) carry: Vec<u8>,
    /// Where the next frame falls: a PES timestamp and frames counted since.
    pub(super) next: Option<AacTime>,
    /// The carried frame's place (the next PES's timestamp is for frames starting in it).
    pub(super) carry_time: Option<AacTime>,
    pub(super) last_pts: Option<i64>,
    /// The clock jumped: flag the next frame emitted.
    pub(super) discontinuity: bool,
    pub(super) clock: Clock,
}

/// A frame's time as PES pts + index × 1024 × 90000 / rate (no accumulated rounding).
#[derive(Debug, Clone, Copy)]
pub(super) struct AacTime {
    pub(super) anchor: i64,
    pub(super) index: i64,
}

impl AacTime {
    pub(super) fn pts(&self, sample_rate: u32) -> i64 {
        self.anchor + self.index * AAC_FRAME_SAMPLES * 90_000 / sample_rate.max(1) as i64
    }
}

pub(super) struct Core {
    pub(super) stream: StreamId,
    /// When the bytes being demuxed arrived; set by every `push` and `flush`.
    pub(super) arrival: Option<Instant>,
    pub(super) out: VecDeque<Demuxed>,
    pub(super) fatal: Option<TsError>,
    pub(super) counters: Counters,
    /// (PMT PID, elementary PID) feeding each track.
    pub(super) video_pid: Option<(u16, u16)>,
    pub(super) audio_pid: Option<(u16, u16)>,
    /// Payload size of the TS packet being consumed on a PES PID.
    pub(super) ts_payload_len: usize,
    pub(super) video_pes: Pes,
    pub(super) audio_pes: Pes,
    pub(super) video: VideoState,
    pub(super) audio: AudioState,
}

impl Core {
    pub(super) fn new(stream: StreamId) -> Self {
        Core {
            stream,
            arrival: None,
            out: VecDeque::new(),
            fatal: None,
            counters: Counters::default(),
            video_pid: None,
            audio_pid: None,
            ts_payload_len: 0,
            video_pes: Pes::default(),
            audio_pes: Pes::default(),
            video: VideoState::default(),
            audio: AudioState::default(),
        }
    }

    pub(super) fn pes_mut(&mut self, track: Track) -> &mut Pes {
        match track {
            Track::Video => &mut self.video_pes,
            Track::Audio => &mut self.audio_pes,
        }
    }
}
