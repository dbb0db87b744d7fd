//! MPEG transport stream (what SRT ingest carries), demuxed sans-IO.
//!
//! [`Demuxer::push`] takes bytes as they arrive, split anywhere (SRT messages
//! are usually 7 × 188 bytes, but nothing here relies on it); [`Demuxer::poll`]
//! hands back codec configs and [`Packet`](crate::media::Packet)s on the 90 kHz
//! timeline, as `flv::Demuxer` does for RTMP. Drive contract: after every `push` (and after
//! [`Demuxer::flush`]), call `poll` until it returns `None`; output is queued
//! until then.
//!
//! `mpeg2ts-reader` parses TS packets and PAT/PMT sections. It needs whole,
//! aligned 188-byte packets and stops at the first bad sync byte, so framing and
//! resync on 0x47 are done here. Elementary PIDs go through our own
//! [`PesFilter`](pes::PesFilter) (continuity check, unit starts), and PES
//! reassembly, the size cap and early completion of a PES with a length are
//! done here too. A video PES that lost a TS packet is passed on damaged (the
//! decoder conceals it), not dropped: at 5 % loss nearly every video frame has
//! a gap somewhere. Nothing in this module panics on malformed input (fuzzed by
//! `fuzz/fuzz_targets/mpegts.rs`); what it drops it counts in [`Counters`].
//!
//! Files: this one frames bytes into whole TS packets ([`Demuxer`]); `psi`
//! routes PIDs from the PAT/PMT, `pes` reassembles PES, `video` and `audio`
//! turn them into packets, `clock` unwraps 33-bit timestamps, `adts` parses
//! ADTS headers; `state` holds the per-publish state they share.

use std::fmt;
use std::time::Instant;

use mpeg2ts_reader::demultiplex::{Demultiplex, FilterChangeset};

use crate::media::aac::AudioSpecificConfig;
use crate::media::h264::AvcConfig;
use crate::media::{StreamId, Track};

mod adts;
mod audio;
mod clock;
mod counters;
mod output;
mod pes;
mod psi;
mod state;
mod video;

#[cfg(test)]
mod tests;

pub use adts::{AdtsError, AdtsHeader};
pub use counters::Counters;
pub use output::{Demuxed, TsError};
pub use pes::MAX_PES_BYTES;

use psi::Ctx;
use state::Core;

const TS_PACKET: usize = 188;
const SYNC: u8 = 0x47;

/// Per-publish state: TS framing, the PSI tables, PES reassembly, codec
/// configs and one clock per track.
pub struct Demuxer {
    demux: Demultiplex<Ctx>,
    ctx: Ctx,
    /// Input not yet framed into whole packets (under two packets after a push).
    pending: Vec<u8>,
    /// The 0x47 cadence is established.
    locked: bool,
    ever_locked: bool,
}

impl fmt::Debug for Demuxer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Demuxer")
            .field("stream", &self.ctx.core.stream)
            .field("counters", &self.ctx.core.counters)
            .field("video_pid", &self.ctx.core.video_pid)
            .field("audio_pid", &self.ctx.core.audio_pid)
            .field("fatal", &self.ctx.core.fatal)
            .finish_non_exhaustive()
    }
}

impl Demuxer {
    pub fn new(stream: StreamId) -> Self {
        let mut ctx = Ctx {
            changeset: FilterChangeset::default(),
            core: Core::new(stream),
        };
        Demuxer {
            demux: Demultiplex::new(&mut ctx),
            ctx,
            pending: Vec::with_capacity(2 * TS_PACKET),
            locked: false,
            ever_locked: false,
        }
    }

    /// Feeds bytes that arrived at `arrival`. An error is fatal for the
    /// publish and is returned again by every later call.
    pub fn push(&mut self, data: &[u8], arrival: Instant) -> Result<(), TsError> {
        if let Some(e) = &self.ctx.core.fatal {
            return Err(e.clone());
        }
        self.ctx.core.arrival = Some(arrival);
        self.pending.extend_from_slice(data);
        let mut pos = 0;
        while let Some(rest) = self.pending.get(pos..).filter(|r| r.len() >= TS_PACKET) {
            if rest[0] != SYNC {
                let skip = rest.iter().position(|&b| b == SYNC).unwrap_or(rest.len());
                self.locked = false;
                self.ctx.core.counters.skipped_bytes += skip as u64;
                pos += skip;
                continue;
            }
            if !self.locked {
                // A lone 0x47 in garbage is no lock: the next packet must start 188 bytes on.
                match rest.get(TS_PACKET) {
                    None => break,
                    Some(&SYNC) => {
                        self.locked = true;
                        if self.ever_locked {
                            self.ctx.core.counters.resyncs += 1;
                        }
                        self.ever_locked = true;
                    }
                    Some(_) => {
                        self.ctx.core.counters.skipped_bytes += 1;
                        pos += 1;
                        continue;
                    }
                }
            }
            let mut end = pos + TS_PACKET;
            while self.pending.len() >= end + TS_PACKET && self.pending[end] == SYNC {
                end += TS_PACKET;
            }
            self.ctx.core.counters.ts_packets += ((end - pos) / TS_PACKET) as u64;
            self.demux.push(&mut self.ctx, &self.pending[pos..end]);
            pos = end;
        }
        self.pending.drain(..pos);
        match &self.ctx.core.fatal {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// End of input: completes the PES in progress on each track (a video PES
    /// without a length otherwise waits for the next one to start).
    pub fn flush(&mut self, arrival: Instant) {
        self.ctx.core.arrival = Some(arrival);
        for track in [Track::Video, Track::Audio] {
            self.ctx.core.pes_end(track);
        }
    }

    /// The next config or packet, in the order the input carried them.
    pub fn poll(&mut self) -> Option<Demuxed> {
        self.ctx.core.out.pop_front()
    }

    pub fn counters(&self) -> &Counters {
        &self.ctx.core.counters
    }

    pub fn video_config(&self) -> Option<&AvcConfig> {
        self.ctx.core.video.config.as_ref()
    }

    pub fn audio_config(&self) -> Option<&AudioSpecificConfig> {
        self.ctx.core.audio.config.as_ref()
    }
}
