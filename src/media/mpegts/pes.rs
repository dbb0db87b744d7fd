//! PES reassembly: one elementary PID's TS packets cut into PES, with the
//! continuity check, the size cap and early completion by declared length.

use mpeg2ts_reader::packet::{ContinuityCounter, Packet as TsPacket};
use mpeg2ts_reader::pes::{PesContents, PesHeader, PesLength, PtsDts};

use super::state::{Core, PesState};
use crate::media::Track;

/// Largest PES we reassemble: far above any real access unit (a 4K intra frame
/// is a few MiB), small enough that a PES without end cannot exhaust memory.
pub const MAX_PES_BYTES: usize = 8 << 20;

/// One elementary PID's TS packets, cut into PES pieces for [`Core`]. Ours,
/// not mpeg2ts-reader's `PesPacketFilter`: that one ignores the rest of a PES
/// after a continuity error, so one lost or miscounted TS packet cost a whole
/// access unit, and with 5 % of packets affected no video came through at all.
pub(super) struct PesFilter {
    pub(super) track: Track,
    /// The last packet's continuity counter.
    pub(super) cc: Option<ContinuityCounter>,
    /// A unit start has been seen (data before the first one is not a PES).
    pub(super) started: bool,
}

impl PesFilter {
    pub(super) fn consume(&mut self, core: &mut Core, pk: &TsPacket<'_>) {
        // The PES header length is private to the crate: keep the TS payload
        // size so the header's size follows from the payload's.
        core.ts_payload_len = pk.payload().map_or(0, <[u8]>::len);
        let cc = pk.continuity_counter();
        if let Some(last) = self.cc {
            // The counter moves only with a payload (ISO/IEC 13818-1 §2.4.3.3).
            let continuous = if pk.adaptation_control().has_payload() {
                cc.follows(last)
            } else {
                cc.count() == last.count()
            };
            // A break the muxer announces (discontinuity_indicator) loses nothing.
            let announced = pk
                .adaptation_field()
                .is_some_and(|af| af.discontinuity_indicator());
            if !continuous && !announced {
                core.continuity_error(self.track);
            }
        }
        self.cc = Some(cc);
        if pk.payload_unit_start_indicator() {
            if self.started {
                core.pes_end(self.track);
            } else {
                self.started = true;
                core.pes_start(self.track);
            }
            match pk.payload().and_then(PesHeader::from_bytes) {
                Some(header) => core.pes_begin(self.track, header),
                None => core.pes_unreadable(self.track),
            }
        } else if self.started {
            if let Some(data) = pk.payload().filter(|d| !d.is_empty()) {
                core.pes_continue(self.track, data);
            }
        }
    }
}

impl Core {
    /// A new filter for the PID (first PES, or a PAT/PMT update rebuilt it):
    /// a PES still open lost its tail with the old filter.
    fn pes_start(&mut self, track: Track) {
        let pes = self.pes_mut(track);
        if pes.state == PesState::Open {
            pes.state = PesState::Idle;
            pes.data.clear();
            self.counters.dropped_pes += 1;
        }
    }

    /// A unit start whose PES header cannot be read (no 00 00 01 prefix, too
    /// short): its data until the next start is dropped.
    fn pes_unreadable(&mut self, track: Track) {
        let pes = self.pes_mut(track);
        pes.state = PesState::Dropped;
        pes.data.clear();
        self.counters.dropped_pes += 1;
    }

    fn pes_begin(&mut self, track: Track, header: PesHeader<'_>) {
        let ts_payload_len = self.ts_payload_len;
        let declared = match header.pes_packet_length() {
            PesLength::Bounded(n) => Some(n.get() as usize),
            PesLength::Unbounded => None,
        };
        let PesContents::Parsed(Some(parsed)) = header.contents() else {
            // Unreadable, split across TS packets, or a stream without PES syntax.
            self.pes_mut(track).state = PesState::Dropped;
            self.counters.dropped_pes += 1;
            return;
        };
        let (pts, dts) = match parsed.pts_dts() {
            Ok(PtsDts::PtsOnly(Ok(p))) => (Some(p.value()), None),
            Ok(PtsDts::Both {
                pts: Ok(p),
                dts: Ok(d),
            }) => (Some(p.value()), Some(d.value())),
            _ => (None, None),
        };
        let mut payload = parsed.payload();
        // PES_packet_length counts from after its own field (6 bytes in).
        let header_len = ts_payload_len.saturating_sub(payload.len());
        let mut remaining = None;
        if let Some(total) = declared.and_then(|n| (n + 6).checked_sub(header_len)) {
            if payload.len() > total {
                payload = &payload[..total];
                self.counters.pes_length_mismatches += 1;
            }
            remaining = Some(total - payload.len());
        } else if declared.is_some() {
            // Shorter than its own header: treat it as if it had no length.
            self.counters.pes_length_mismatches += 1;
        }
        let pes = self.pes_mut(track);
        pes.state = PesState::Open;
        pes.data.clear();
        pes.data.extend_from_slice(payload);
        pes.pts = pts;
        pes.dts = dts;
        pes.remaining = remaining;
        pes.damaged = false;
        if remaining == Some(0) {
            self.complete(track);
        }
    }

    fn pes_continue(&mut self, track: Track, data: &[u8]) {
        let (pes, counters) = match track {
            Track::Video => (&mut self.video_pes, &mut self.counters),
            Track::Audio => (&mut self.audio_pes, &mut self.counters),
        };
        match pes.state {
            PesState::Open => {}
            PesState::Complete => {
                pes.state = PesState::Dropped;
                counters.pes_length_mismatches += 1;
                return;
            }
            PesState::Idle | PesState::Dropped => return,
        }
        let data = match pes.remaining {
            Some(r) if data.len() > r => {
                counters.pes_length_mismatches += 1;
                &data[..r]
            }
            _ => data,
        };
        if pes.data.len() + data.len() > MAX_PES_BYTES {
            pes.state = PesState::Dropped;
            pes.data = Vec::new();
            counters.dropped_pes += 1;
            counters.oversized_pes += 1;
            return;
        }
        pes.data.extend_from_slice(data);
        if let Some(r) = &mut pes.remaining {
            *r -= data.len();
            if *r == 0 {
                self.complete(track);
            }
        }
    }

    pub(super) fn pes_end(&mut self, track: Track) {
        let pes = self.pes_mut(track);
        match pes.state {
            PesState::Open => {
                if pes.remaining.is_some_and(|r| r > 0) {
                    self.counters.pes_length_mismatches += 1;
                }
                self.complete(track);
                self.pes_mut(track).state = PesState::Idle;
            }
            _ => pes.state = PesState::Idle,
        }
    }

    fn continuity_error(&mut self, track: Track) {
        self.counters.continuity_errors += 1;
        match track {
            // Keep the access unit: its start (timing, SPS/PPS, first slice) is
            // intact, and a decoder conceals what is missing.
            Track::Video => {
                if self.video_pes.state == PesState::Open {
                    self.video_pes.damaged = true;
                }
            }
            // An ADTS frame with a hole would decode as noise: drop the PES (a
            // PES of audio is one to three TS packets, a few frames).
            Track::Audio => {
                if self.audio_pes.state == PesState::Open {
                    self.counters.dropped_pes += 1;
                }
                self.audio_pes.state = PesState::Dropped;
                self.audio_pes.data.clear();
                // A carried partial frame cannot continue across lost bytes.
                self.audio.carry.clear();
                self.audio.carry_time = None;
            }
        }
    }

    fn complete(&mut self, track: Track) {
        let pes = self.pes_mut(track);
        pes.state = PesState::Complete;
        if std::mem::take(&mut pes.damaged) {
            self.counters.damaged_pes += 1;
        }
        let pes = self.pes_mut(track);
        let data = std::mem::take(&mut pes.data);
        let (pts, dts) = (pes.pts, pes.dts);
        // Always set: PES data only completes inside `push` or `flush`.
        if let Some(arrival) = self.arrival {
            match track {
                Track::Video => self.video_access_unit(&data, pts, dts, arrival),
                Track::Audio => self.audio_frames(&data, pts, arrival),
            }
        }
        // Keep the allocation for the next PES of this track.
        let pes = self.pes_mut(track);
        if pes.data.capacity() == 0 {
            pes.data = data;
            pes.data.clear();
        }
    }
}
