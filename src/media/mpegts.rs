//! MPEG transport stream (what SRT ingest carries), demuxed sans-IO.
//!
//! [`Demuxer::push`] takes bytes as they arrive, split anywhere (SRT messages
//! are usually 7 × 188 bytes, but nothing here relies on it); [`Demuxer::poll`]
//! hands back codec configs and [`Packet`]s on the 90 kHz timeline, as
//! `flv::Demuxer` does for RTMP. Drive contract: after every `push` (and after
//! [`Demuxer::flush`]), call `poll` until it returns `None`; output is queued
//! until then.
//!
//! `mpeg2ts-reader` parses TS packets and PAT/PMT sections. It needs whole,
//! aligned 188-byte packets and stops at the first bad sync byte, so framing and
//! resync on 0x47 are done here. Elementary PIDs go through our own
//! [`PesFilter`] (continuity check, unit starts), and PES reassembly, the size
//! cap and early completion of a PES with a length are done here too. A video
//! PES that lost a TS packet is passed on damaged (the decoder conceals it), not
//! dropped: at 5 % loss nearly every video frame has a gap somewhere. Nothing in this file panics on malformed input (fuzzed by
//! `fuzz/fuzz_targets/mpegts.rs`); what it drops it counts in [`Counters`].

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use bytes::Bytes;
use mpeg2ts_reader::demultiplex::{
    Demultiplex, DemuxContext, FilterChangeset, FilterRequest, NullPacketFilter, PacketFilter,
    PatPacketFilter, PmtPacketFilter,
};
use mpeg2ts_reader::packet::{ContinuityCounter, Packet as TsPacket};
use mpeg2ts_reader::pes::{PesContents, PesHeader, PesLength, PtsDts};
use mpeg2ts_reader::psi::pmt::PmtSection;

use crate::media::aac::AudioSpecificConfig;
use crate::media::h264::{annexb_nal_units, AvcConfig};
use crate::media::timeline::{Unwrapped, DEFAULT_MAX_GAP_MS};
use crate::media::{ms_to_ticks, CodecConfig, Packet, StreamId, Track};

const TS_PACKET: usize = 188;
const SYNC: u8 = 0x47;
const PAT_PID: u16 = 0;
const STREAM_TYPE_H264: u8 = 0x1b;
const STREAM_TYPE_ADTS: u8 = 0x0f;

/// Largest PES we reassemble: far above any real access unit (a 4K intra frame
/// is a few MiB), small enough that a PES without end cannot exhaust memory.
pub const MAX_PES_BYTES: usize = 8 << 20;

/// PTS/DTS are 33-bit counters of a 90 kHz clock: they wrap every ~26.5 hours.
const WRAP: i64 = 1 << 33;

/// Largest forward step treated as continuous time (the RTMP path's, in ticks).
const MAX_GAP: i64 = ms_to_ticks(DEFAULT_MAX_GAP_MS as i64);

/// Samples in one AAC frame (AAC-LC; HE-AAC's core frame is the same).
const AAC_FRAME_SAMPLES: i64 = 1024;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TsError {
    /// Fatal: the publish carries a codec the ladder cannot take.
    #[error(
        "unsupported stream on PID {pid:#x}: stream_type {stream_type:#04x} ({name}); \
         ladderd ingests H.264 video (0x1b) and AAC in ADTS (0x0f)"
    )]
    UnsupportedStream {
        pid: u16,
        stream_type: u8,
        name: &'static str,
    },
}

impl TsError {
    /// Every `TsError` ends the publish; what costs only a packet is counted instead.
    pub fn is_fatal(&self) -> bool {
        true
    }
}

/// What one stretch of input turned into.
#[derive(Debug, Clone)]
pub enum Demuxed {
    /// A track's config, when first seen and whenever it changes; it comes
    /// before the first packet that needs it.
    Config(CodecConfig),
    Packet(Packet),
}

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
    /// or split across TS packets, no timestamp to place them, or over [`MAX_PES_BYTES`].
    pub dropped_pes: u64,
    /// Video PES that lost (or repeated) TS packets and were kept anyway, as
    /// damaged access units: a decoder conceals a missing piece of a slice,
    /// and the frame's timing and the parameter sets that lead it are intact.
    pub damaged_pes: u64,
    /// Of `dropped_pes`, those over [`MAX_PES_BYTES`].
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

/// The mpeg2ts-reader context: its filter changeset plus our state, which the
/// PES consumers reach through it (they live inside the crate's PID table,
/// where [`Demuxer::flush`] could not reach them).
struct Ctx {
    changeset: FilterChangeset<Filter>,
    core: Core,
}

enum Filter {
    Pat(PatPacketFilter<Ctx>),
    Pmt(PmtPacketFilter<Ctx>),
    Pes(PesFilter),
    Null(NullPacketFilter<Ctx>),
}

impl PacketFilter for Filter {
    type Ctx = Ctx;

    fn consume(&mut self, ctx: &mut Ctx, pk: &TsPacket<'_>) {
        match self {
            Filter::Pat(f) => f.consume(ctx, pk),
            Filter::Pmt(f) => f.consume(ctx, pk),
            Filter::Pes(f) => f.consume(&mut ctx.core, pk),
            Filter::Null(f) => f.consume(ctx, pk),
        }
    }
}

impl DemuxContext for Ctx {
    type F = Filter;

    fn filter_changeset(&mut self) -> &mut FilterChangeset<Filter> {
        &mut self.changeset
    }

    fn construct(&mut self, req: FilterRequest<'_, '_>) -> Filter {
        match req {
            FilterRequest::ByPid(pid) if u16::from(pid) == PAT_PID => {
                Filter::Pat(PatPacketFilter::default())
            }
            FilterRequest::ByPid(_) | FilterRequest::Nit { .. } => {
                Filter::Null(NullPacketFilter::default())
            }
            FilterRequest::Pmt {
                pid,
                program_number,
            } => Filter::Pmt(PmtPacketFilter::new(pid, program_number)),
            FilterRequest::ByStream {
                program_pid,
                stream_type,
                pmt,
                stream_info,
            } => {
                let pid = u16::from(stream_info.elementary_pid());
                let program = u16::from(program_pid);
                match self.core.choose_stream(program, pid, stream_type.0, pmt) {
                    Some(track) => Filter::Pes(PesFilter {
                        track,
                        cc: None,
                        started: false,
                    }),
                    None => Filter::Null(NullPacketFilter::default()),
                }
            }
        }
    }
}

/// One elementary PID's TS packets, cut into PES pieces for [`Core`]. Ours,
/// not mpeg2ts-reader's `PesPacketFilter`: that one ignores the rest of a PES
/// after a continuity error, so one lost or miscounted TS packet cost a whole
/// access unit, and with 5 % of packets affected no video came through at all.
struct PesFilter {
    track: Track,
    /// The last packet's continuity counter.
    cc: Option<ContinuityCounter>,
    /// A unit start has been seen (data before the first one is not a PES).
    started: bool,
}

impl PesFilter {
    fn consume(&mut self, core: &mut Core, pk: &TsPacket<'_>) {
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

#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
enum PesState {
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
struct Pes {
    state: PesState,
    data: Vec<u8>,
    pts: Option<u64>,
    dts: Option<u64>,
    /// Payload bytes still due, when the PES declared its length.
    remaining: Option<usize>,
    /// TS packets of it were lost or repeated (video only: audio is dropped instead).
    damaged: bool,
}

#[derive(Debug, Default)]
struct VideoState {
    config: Option<AvcConfig>,
    /// Latest in-band parameter sets.
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    /// A pair that failed to parse, not retried until one of them changes.
    rejected: Option<(Bytes, Bytes)>,
    clock: Clock,
}

#[derive(Debug, Default)]
struct AudioState {
    config: Option<AudioSpecificConfig>,
    /// The start of an ADTS frame that continues in the next PES.
    carry: Vec<u8>,
    /// Where the next frame falls: a PES timestamp and frames counted since.
    next: Option<AacTime>,
    /// The carried frame's place (the next PES's timestamp is for frames starting in it).
    carry_time: Option<AacTime>,
    last_pts: Option<i64>,
    /// The clock jumped: flag the next frame emitted.
    discontinuity: bool,
    clock: Clock,
}

/// A frame's time as PES pts + index × 1024 × 90000 / rate (no accumulated rounding).
#[derive(Debug, Clone, Copy)]
struct AacTime {
    anchor: i64,
    index: i64,
}

impl AacTime {
    fn pts(&self, sample_rate: u32) -> i64 {
        self.anchor + self.index * AAC_FRAME_SAMPLES * 90_000 / sample_rate.max(1) as i64
    }
}

struct Core {
    stream: StreamId,
    /// When the bytes being demuxed arrived; set by every `push` and `flush`.
    arrival: Option<Instant>,
    out: VecDeque<Demuxed>,
    fatal: Option<TsError>,
    counters: Counters,
    /// (PMT PID, elementary PID) feeding each track.
    video_pid: Option<(u16, u16)>,
    audio_pid: Option<(u16, u16)>,
    /// Payload size of the TS packet being consumed on a PES PID.
    ts_payload_len: usize,
    video_pes: Pes,
    audio_pes: Pes,
    video: VideoState,
    audio: AudioState,
}

impl Core {
    fn new(stream: StreamId) -> Self {
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

    /// Picks the track a PMT entry feeds, or none. An unsupported audio or video
    /// codec is fatal only when the PMT has no supported stream of that kind:
    /// a broadcast feed's extra AC-3 track beside its AAC costs nothing.
    fn choose_stream(
        &mut self,
        program: u16,
        pid: u16,
        stream_type: u8,
        pmt: &PmtSection<'_>,
    ) -> Option<Track> {
        let track = match stream_type {
            STREAM_TYPE_H264 => Track::Video,
            STREAM_TYPE_ADTS => Track::Audio,
            other => {
                if let Some((name, kind)) = unsupported_codec(other) {
                    let has_supported = pmt
                        .streams()
                        .any(|s| s.stream_type().0 == supported_type(kind));
                    if !has_supported && self.fatal.is_none() {
                        self.fatal = Some(TsError::UnsupportedStream {
                            pid,
                            stream_type: other,
                            name,
                        });
                    }
                }
                self.counters.ignored_streams += 1;
                return None;
            }
        };
        let slot = match track {
            Track::Video => self.video_pid,
            Track::Audio => self.audio_pid,
        };
        match slot {
            Some(owner) if owner == (program, pid) => return Some(track),
            // The first program that carries a track keeps it (an MPTS has several).
            Some((p, _)) if p != program => {
                self.counters.ignored_streams += 1;
                return None;
            }
            // An update of the same PMT: the first stream of the type keeps
            // the track while it is still listed.
            Some((_, old)) => {
                let still_listed = pmt.streams().any(|s| {
                    u16::from(s.elementary_pid()) == old
                        && s.stream_type().0 == supported_type(track)
                });
                if still_listed {
                    self.counters.ignored_streams += 1;
                    return None;
                }
                *self.pes_mut(track) = Pes::default();
            }
            None => {}
        }
        match track {
            Track::Video => self.video_pid = Some((program, pid)),
            Track::Audio => self.audio_pid = Some((program, pid)),
        }
        Some(track)
    }

    fn pes_mut(&mut self, track: Track) -> &mut Pes {
        match track {
            Track::Video => &mut self.video_pes,
            Track::Audio => &mut self.audio_pes,
        }
    }

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

    fn pes_end(&mut self, track: Track) {
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

    /// One PES of H.264 is one access unit: Annex-B in, AVCC (4-byte lengths) out.
    fn video_access_unit(
        &mut self,
        annexb: &[u8],
        pts: Option<u64>,
        dts: Option<u64>,
        arrival: Instant,
    ) {
        let Some(pts_raw) = pts else {
            self.counters.dropped_pes += 1;
            return;
        };
        let dts_raw = dts.unwrap_or(pts_raw);
        let mut avcc = Vec::with_capacity(annexb.len() + 16);
        let mut keyframe = false;
        for nal in annexb_nal_units(annexb) {
            let Some(&header) = nal.first() else { continue };
            match header & 0x1f {
                9 => continue, // access unit delimiter: AVCC has no use for it
                7 => self.video.sps = Some(Bytes::copy_from_slice(nal)),
                8 => self.video.pps = Some(Bytes::copy_from_slice(nal)),
                5 => keyframe = true,
                _ => {}
            }
            avcc.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            avcc.extend_from_slice(nal);
        }
        self.update_avc_config();
        if self.video.config.is_none() {
            self.counters.video_before_config += 1;
            return;
        }
        if avcc.is_empty() {
            self.counters.dropped_pes += 1;
            return;
        }
        let other = self.audio.clock.last;
        let t = self.video.clock.unwrap(dts_raw, other);
        let mut cts = signed_33(pts_raw, dts_raw);
        if !(0..=MAX_GAP).contains(&cts) {
            self.counters.bad_composition_offsets += 1;
            cts = 0;
        }
        self.out.push_back(Demuxed::Packet(Packet {
            stream: self.stream,
            track: Track::Video,
            dts: t.ticks,
            pts: t.ticks + cts,
            keyframe,
            discontinuity: t.discontinuity,
            data: Bytes::from(avcc),
            arrival,
        }));
    }

    /// Announces a config built from the latest SPS/PPS when they differ from
    /// the current one; a pair that does not parse leaves video without config.
    fn update_avc_config(&mut self) {
        let v = &mut self.video;
        let (Some(sps), Some(pps)) = (&v.sps, &v.pps) else {
            return;
        };
        let current = v
            .config
            .as_ref()
            .is_some_and(|c| c.sps.first() == Some(sps) && c.pps.first() == Some(pps));
        let rejected = v
            .rejected
            .as_ref()
            .is_some_and(|(s, p)| s == sps && p == pps);
        if current || rejected {
            return;
        }
        match AvcConfig::from_parameter_sets(sps, pps) {
            Ok(cfg) => {
                v.rejected = None;
                v.config = Some(cfg.clone());
                self.out.push_back(Demuxed::Config(CodecConfig::Avc(cfg)));
            }
            Err(_) => {
                v.rejected = Some((sps.clone(), pps.clone()));
                v.config = None;
                self.counters.bad_parameter_sets += 1;
            }
        }
    }

    /// Splits one PES of ADTS into raw AAC frames, one packet each; a frame may
    /// start in one PES and end in the next.
    fn audio_frames(&mut self, payload: &[u8], pts: Option<u64>, arrival: Instant) {
        if let Some(raw) = pts {
            let other = self.video.clock.last;
            let t = self.audio.clock.unwrap(raw, other);
            self.audio.discontinuity |= t.discontinuity;
        }
        let mut buf = std::mem::take(&mut self.audio.carry);
        let carried = buf.len();
        buf.extend_from_slice(payload);
        let base = pts.and_then(|_| self.audio.clock.last.map(|(_, out)| out));
        let mut time = if carried > 0 {
            self.audio.carry_time
        } else {
            base.map(|anchor| AacTime { anchor, index: 0 })
                .or(self.audio.next)
        };
        let mut in_new = carried == 0;
        let mut pos = 0;
        while pos < buf.len() {
            if !in_new && pos >= carried {
                // Frames that start in this PES are timed by its PTS.
                in_new = true;
                if let Some(anchor) = base {
                    time = Some(AacTime { anchor, index: 0 });
                }
            }
            let rest = &buf[pos..];
            let header = match AdtsHeader::parse(rest) {
                Ok(h) => h,
                Err(AdtsError::Truncated) => break,
                Err(_) => {
                    let skip = rest
                        .iter()
                        .skip(1)
                        .position(|&b| b == 0xff)
                        .map_or(rest.len(), |p| p + 1);
                    self.counters.adts_skipped_bytes += skip as u64;
                    pos += skip;
                    continue;
                }
            };
            let Some(frame) = rest.get(..header.frame_len) else {
                break; // continues in the next PES
            };
            pos += header.frame_len;
            let t = time.unwrap_or(AacTime {
                anchor: 0,
                index: 0,
            });
            time = time.map(|t| AacTime {
                index: t.index + 1,
                ..t
            });
            let raw = frame.get(header.header_len..).unwrap_or_default();
            if header.raw_blocks != 1 || time.is_none() {
                self.counters.adts_dropped_frames += 1;
                continue;
            }
            let Ok(cfg) = AudioSpecificConfig::from_adts(
                header.profile,
                header.sample_rate_index,
                header.channels,
            ) else {
                self.counters.adts_dropped_frames += 1;
                continue;
            };
            let mut pts = t.pts(cfg.sample_rate);
            // Rounding of a PES pts never takes audio time backwards.
            if let Some(last) = self.audio.last_pts {
                pts = pts.max(last);
            }
            self.audio.last_pts = Some(pts);
            if self.audio.config.as_ref() != Some(&cfg) {
                self.audio.config = Some(cfg.clone());
                self.out.push_back(Demuxed::Config(CodecConfig::Aac(cfg)));
            }
            self.out.push_back(Demuxed::Packet(Packet {
                stream: self.stream,
                track: Track::Audio,
                dts: pts,
                pts,
                keyframe: true,
                discontinuity: std::mem::take(&mut self.audio.discontinuity),
                data: Bytes::copy_from_slice(raw),
                arrival,
            }));
        }
        if !in_new && pos >= carried {
            if let Some(anchor) = base {
                time = Some(AacTime { anchor, index: 0 });
            }
        }
        buf.drain(..pos.min(buf.len()));
        self.audio.carry = buf;
        self.audio.carry_time = time;
        self.audio.next = time;
    }
}

/// A 33-bit timestamp clock unwrapped onto the monotonic 90 kHz timeline, with
/// `timeline::Unwrapper`'s rules: a forward step up to the gap (a wrap
/// included) is time; any other step is a discontinuity, and the output moves
/// on by the last normal step instead.
#[derive(Debug, Default, Clone)]
struct Clock {
    /// Last raw timestamp and where it landed.
    last: Option<(u64, i64)>,
    last_step: i64,
}

impl Clock {
    /// Maps one raw timestamp. The first one starts where the other track's
    /// clock puts it, when that is near: the PTS origin is arbitrary and may
    /// wrap between the tracks' first packets.
    fn unwrap(&mut self, raw: u64, other: Option<(u64, i64)>) -> Unwrapped {
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
fn signed_33(a: u64, b: u64) -> i64 {
    let d = (a as i64 - b as i64).rem_euclid(WRAP);
    if d >= WRAP / 2 {
        d - WRAP
    } else {
        d
    }
}

/// The stream type we demux for a track.
fn supported_type(track: Track) -> u8 {
    match track {
        Track::Video => STREAM_TYPE_H264,
        Track::Audio => STREAM_TYPE_ADTS,
    }
}

/// Audio and video codecs a PMT may announce that the ladder does not take.
fn unsupported_codec(stream_type: u8) -> Option<(&'static str, Track)> {
    Some(match stream_type {
        0x01 => ("MPEG-1 video", Track::Video),
        0x02 => ("MPEG-2 video", Track::Video),
        0x10 => ("MPEG-4 Part 2 video", Track::Video),
        0x20 => ("H.264 MVC", Track::Video),
        0x24 => ("HEVC", Track::Video),
        0x33 => ("VVC", Track::Video),
        0x42 => ("AVS video", Track::Video),
        0xd2 => ("AVS2 video", Track::Video),
        0xea => ("VC-1", Track::Video),
        0x03 => ("MPEG-1 audio", Track::Audio),
        0x04 => ("MPEG-2 audio", Track::Audio),
        0x11 => ("AAC in LATM", Track::Audio),
        0x1c => ("MPEG-4 audio without transport syntax", Track::Audio),
        0x81 => ("AC-3", Track::Audio),
        0x82 => ("DTS", Track::Audio),
        0x83 => ("Dolby TrueHD", Track::Audio),
        0x84 | 0x87 => ("E-AC-3", Track::Audio),
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdtsError {
    #[error("ADTS header truncated")]
    Truncated,
    #[error("no ADTS sync word")]
    NoSync,
    #[error("ADTS layer is not 0")]
    Layer,
    #[error("ADTS frame length {0} is shorter than its header")]
    Length(usize),
}

/// The fixed and variable ADTS header (ISO/IEC 13818-7 §6.2), the fields we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    /// Audio object type − 1 (1 = AAC-LC).
    pub profile: u8,
    pub sample_rate_index: u8,
    pub channels: u8,
    /// 7, or 9 with the CRC (which is stripped with the header, not checked).
    pub header_len: usize,
    /// Header included.
    pub frame_len: usize,
    /// Raw data blocks in the frame (we take frames of one).
    pub raw_blocks: u8,
}

impl AdtsHeader {
    pub fn parse(b: &[u8]) -> Result<Self, AdtsError> {
        let h = b.get(..7).ok_or(AdtsError::Truncated)?;
        if h[0] != 0xff || h[1] & 0xf0 != 0xf0 {
            return Err(AdtsError::NoSync);
        }
        if h[1] & 0x06 != 0 {
            return Err(AdtsError::Layer);
        }
        let header_len = if h[1] & 1 == 1 { 7 } else { 9 };
        let frame_len =
            ((h[3] as usize & 0x3) << 11) | ((h[4] as usize) << 3) | (h[5] as usize >> 5);
        if frame_len < header_len {
            return Err(AdtsError::Length(frame_len));
        }
        if b.len() < header_len {
            return Err(AdtsError::Truncated);
        }
        Ok(AdtsHeader {
            profile: h[2] >> 6,
            sample_rate_index: (h[2] >> 2) & 0xf,
            channels: ((h[2] & 1) << 2) | (h[3] >> 6),
            header_len,
            frame_len,
            raw_blocks: (h[6] & 0x3) + 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h264::avcc_nal_units;

    const AV: &[u8] = include_bytes!("testdata/h264-aac-320x240.ts");
    const AV_PACKETS: &str = include_str!("testdata/h264-aac-320x240.packets.txt");
    const HEVC: &[u8] = include_bytes!("testdata/hevc-pat-pmt.ts");
    const VIDEO_PID: u16 = 0x100;
    const AUDIO_PID: u16 = 0x101;

    /// Output without the arrival instant, comparable across runs.
    #[derive(Debug, Clone, PartialEq)]
    enum Out {
        Config(CodecConfig),
        Packet(Track, i64, i64, bool, bool, Bytes),
    }

    fn drain(d: &mut Demuxer, out: &mut Vec<Out>) {
        while let Some(x) = d.poll() {
            out.push(match x {
                Demuxed::Config(c) => Out::Config(c),
                Demuxed::Packet(p) => {
                    assert_eq!(p.stream, 9);
                    Out::Packet(p.track, p.dts, p.pts, p.keyframe, p.discontinuity, p.data)
                }
            });
        }
    }

    /// Demuxes `data` in chunks of the given sizes (cycled), then flushes.
    fn demux_chunked(data: &[u8], sizes: &[usize]) -> (Vec<Out>, Counters) {
        let mut d = Demuxer::new(9);
        let now = Instant::now();
        let mut out = Vec::new();
        let mut rest = data;
        for &n in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(n.min(rest.len()));
            d.push(chunk, now).unwrap();
            drain(&mut d, &mut out);
            rest = tail;
        }
        d.flush(now);
        drain(&mut d, &mut out);
        (out, *d.counters())
    }

    fn demux(data: &[u8]) -> (Vec<Out>, Counters) {
        demux_chunked(data, &[data.len().max(1)])
    }

    /// (dts, pts, keyframe, data) of one track's packets.
    fn track(out: &[Out], want: Track) -> Vec<(i64, i64, bool, Bytes)> {
        out.iter()
            .filter_map(|o| match o {
                Out::Packet(t, dts, pts, key, _, data) if *t == want => {
                    Some((*dts, *pts, *key, data.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// ffprobe's packets of one stream index: (dts, pts, size, keyframe).
    fn reference(index: u32) -> Vec<(i64, i64, usize, bool)> {
        AV_PACKETS
            .lines()
            .filter_map(|line| {
                let field = |name: &str| {
                    line.split('|')
                        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                        .unwrap()
                };
                (field("stream_index") == index.to_string()).then(|| {
                    (
                        field("dts").parse().unwrap(),
                        field("pts").parse().unwrap(),
                        field("size").parse().unwrap(),
                        field("flags").starts_with('K'),
                    )
                })
            })
            .collect()
    }

    #[test]
    fn demuxes_the_reference_capture_like_ffprobe() {
        let (out, counters) = demux(AV);
        let video = track(&out, Track::Video);
        let audio = track(&out, Track::Audio);
        let (ref_video, ref_audio) = (reference(0), reference(1));
        assert_eq!((video.len(), audio.len()), (30, 48));
        // Same times and keyframes as ffprobe, packet for packet.
        let times = |v: &[(i64, i64, bool, Bytes)]| -> Vec<_> {
            v.iter().map(|(d, p, k, _)| (*d, *p, *k)).collect()
        };
        let ref_times: Vec<_> = ref_video.iter().map(|(d, p, _, k)| (*d, *p, *k)).collect();
        assert_eq!(times(&video), ref_times);
        let keyframes: Vec<usize> = (0..30).filter(|&i| video[i].2).collect();
        assert_eq!(keyframes, vec![0, 15]);
        assert!(video.windows(2).all(|w| w[1].0 > w[0].0));
        assert!(video.iter().all(|(d, p, _, _)| p >= d));
        assert!(video.iter().any(|(d, p, _, _)| p > d), "B-frames reorder");
        // Audio: ffprobe's sizes include the 7-byte ADTS header we strip.
        let audio_ref: Vec<_> = ref_audio.iter().map(|(_, p, s, _)| (*p, s - 7)).collect();
        let audio_got: Vec<_> = audio.iter().map(|(_, p, _, d)| (*p, d.len())).collect();
        assert_eq!(audio_got, audio_ref);
        assert!(audio.windows(2).all(|w| w[1].1 - w[0].1 == 1920));
        assert!(audio.iter().all(|(d, p, k, _)| d == p && *k));
        // AVCC with 4-byte lengths, no AUD, in-band SPS/PPS kept on keyframes.
        for (i, (_, _, key, data)) in video.iter().enumerate() {
            let nals: Vec<&[u8]> = avcc_nal_units(data, 4).collect();
            let len: usize = nals.iter().map(|n| n.len() + 4).sum();
            assert_eq!(len, data.len(), "packet {i} tiles exactly");
            let types: Vec<u8> = nals.iter().map(|n| n[0] & 0x1f).collect();
            assert!(!types.contains(&9), "packet {i} has an AUD");
            assert_eq!(*key, types.contains(&5));
            if *key {
                assert!(types.contains(&7) && types.contains(&8), "{types:?}");
            }
            // ffprobe's size is Annex-B with the 6-byte AUD (00 00 00 01 09 f0).
            let annexb_size = ref_video[i].2;
            assert!(data.len() < annexb_size, "packet {i}");
        }
        // One config per track, each before the track's first packet.
        let configs: Vec<&CodecConfig> = out
            .iter()
            .filter_map(|o| match o {
                Out::Config(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(configs.len(), 2);
        let first = |f: &dyn Fn(&Out) -> bool| out.iter().position(f).unwrap();
        let avc_at = first(&|o| matches!(o, Out::Config(CodecConfig::Avc(_))));
        let aac_at = first(&|o| matches!(o, Out::Config(CodecConfig::Aac(_))));
        assert!(avc_at < first(&|o| matches!(o, Out::Packet(Track::Video, ..))));
        assert!(aac_at < first(&|o| matches!(o, Out::Packet(Track::Audio, ..))));
        let Out::Config(CodecConfig::Avc(avc)) = &out[avc_at] else {
            unreachable!()
        };
        assert_eq!((avc.width, avc.height, avc.fps), (320, 240, Some(30.0)));
        assert_eq!((avc.profile_name(), avc.nal_length_size), ("High", 4));
        assert_eq!(avc.codec_string(), "avc1.64000d");
        let Out::Config(CodecConfig::Aac(aac)) = &out[aac_at] else {
            unreachable!()
        };
        assert_eq!(
            (aac.object_type, aac.sample_rate, aac.channels),
            (2, 48000, 2)
        );
        assert_eq!(&aac.raw[..], &[0x11, 0x90]);
        assert_eq!(
            counters,
            Counters {
                ts_packets: (AV.len() / TS_PACKET) as u64,
                ..Counters::default()
            }
        );
    }

    #[test]
    fn any_chunking_gives_the_same_output() {
        let (whole, _) = demux(AV);
        for sizes in [
            &[1][..],
            &[7 * TS_PACKET][..],
            &[187, 189, 1, 376, 5][..],
            &[1316, 13, 2048, 100, 1][..],
        ] {
            let (out, counters) = demux_chunked(AV, sizes);
            assert_eq!(out, whole, "chunks {sizes:?}");
            assert_eq!(counters.skipped_bytes, 0);
        }
    }

    #[test]
    fn garbage_prefix_is_skipped_and_sync_found() {
        // Pseudo-random bytes with stray sync bytes that lead nowhere.
        let mut seed = 0x2545_f491_u32;
        let mut garbage: Vec<u8> = (0..1000)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                match (seed >> 16) as u8 {
                    SYNC => 0,
                    b => b,
                }
            })
            .collect();
        for i in (0..1000).step_by(97) {
            garbage[i] = SYNC;
        }
        let mut data = garbage.clone();
        data.extend_from_slice(AV);
        let (clean, _) = demux(AV);
        for sizes in [&[data.len()][..], &[1][..], &[1316][..]] {
            let (out, counters) = demux_chunked(&data, sizes);
            assert_eq!(out, clean);
            assert_eq!(counters.skipped_bytes, 1000);
            assert_eq!(counters.resyncs, 0);
        }
    }

    #[test]
    fn torn_packet_costs_a_resync_and_damages_one_access_unit() {
        // Cut 100 bytes out of a video packet in the middle of the file.
        let at = find_packet(AV, VIDEO_PID, false, 60) + 50;
        let mut data = AV[..at].to_vec();
        data.extend_from_slice(&AV[at + 100..]);
        let (out, counters) = demux_chunked(&data, &[1316]);
        assert_eq!(counters.resyncs, 1);
        assert!(counters.skipped_bytes > 0);
        assert_eq!(counters.continuity_errors, 1);
        assert_eq!((counters.damaged_pes, counters.dropped_pes), (1, 0));
        assert_eq!(track(&out, Track::Video).len(), 30);
        assert_eq!(track(&out, Track::Audio).len(), 48);
    }

    #[test]
    fn continuity_errors_are_counted_not_fatal() {
        // Drop one TS packet from the middle of a video PES: that access unit
        // comes out 184 bytes short, at its time; every other one intact.
        let at = find_packet(AV, VIDEO_PID, false, 40);
        let mut data = AV[..at].to_vec();
        data.extend_from_slice(&AV[at + TS_PACKET..]);
        let (out, counters) = demux(&data);
        assert_eq!(counters.continuity_errors, 1);
        assert_eq!((counters.damaged_pes, counters.dropped_pes), (1, 0));
        let video = track(&out, Track::Video);
        let clean = track(&demux(AV).0, Track::Video);
        assert_eq!(video.len(), 30);
        let differ: Vec<usize> = (0..30).filter(|&i| video[i] != clean[i]).collect();
        assert_eq!(differ.len(), 1, "{differ:?}");
        let i = differ[0];
        assert_eq!(video[i].0, clean[i].0);
        assert_eq!(video[i].3.len() + 184, clean[i].3.len());
    }

    /// Sets a wrong continuity counter on about `percent` % of the TS packets of
    /// `pids` (a fixed pseudo-random pattern); the data stays intact.
    fn corrupt_cc(ts: &[u8], pids: &[u16], percent: u64) -> (Vec<u8>, usize) {
        let mut out = ts.to_vec();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut hit = 0;
        for p in out.chunks_mut(TS_PACKET) {
            let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if pids.contains(&pid) && seed % 100 < percent {
                let cc = p[3] & 0x0f;
                p[3] = (p[3] & 0xf0) | ((cc + 1 + (seed >> 8) as u8 % 15) & 0x0f);
                hit += 1;
            }
        }
        (out, hit)
    }

    /// Issue 30: with 5 % of TS packets carrying bad continuity counters (a
    /// lossy UDP contribution), 12 s of publish gave 0 video packets: every
    /// PES with a gap was dropped, and a video PES spans dozens of packets.
    /// A damaged PES is now kept: every access unit comes out, its bytes intact.
    #[test]
    fn five_percent_bad_continuity_counters_keep_every_video_frame() {
        let (clean, _) = demux(AV);
        let (data, hit) = corrupt_cc(AV, &[VIDEO_PID, AUDIO_PID], 5);
        assert!(hit >= 8, "{hit} packets corrupted");
        let (out, counters) = demux_chunked(&data, &[1316]);
        let (video, clean_video) = (track(&out, Track::Video), track(&clean, Track::Video));
        assert_eq!(video.len(), clean_video.len(), "{counters:?}");
        assert!(video == clean_video, "access units differ: {counters:?}");
        assert!(
            out.iter()
                .any(|o| matches!(o, Out::Config(CodecConfig::Avc(_)))),
            "no video config"
        );
        // A bad counter breaks the run twice (into it and out of it).
        assert!(counters.continuity_errors >= hit as u64, "{counters:?}");
        assert!(counters.damaged_pes > 0, "{counters:?}");
        // Audio with a gap is still dropped (a few frames), the rest comes out.
        let audio = track(&out, Track::Audio).len();
        assert!((40..=48).contains(&audio), "{audio} audio frames");
    }

    /// The same loss as missing packets: video keeps coming, one access unit
    /// per PES that started, damaged where a piece is gone.
    #[test]
    fn five_percent_lost_packets_keep_the_video_going() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut lost_starts = 0;
        let data: Vec<u8> = AV
            .chunks(TS_PACKET)
            .filter(|p| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
                let lose = pid == VIDEO_PID && seed % 100 < 5;
                lost_starts += usize::from(lose && p[1] & 0x40 != 0);
                !lose
            })
            .flatten()
            .copied()
            .collect();
        let (out, counters) = demux_chunked(&data, &[1316]);
        let video = track(&out, Track::Video);
        // A lost unit start merges that frame's tail into the one before.
        assert_eq!(video.len(), 30 - lost_starts, "{counters:?}");
        assert!(counters.damaged_pes > 0 && counters.continuity_errors > 0);
        assert!(video.windows(2).all(|w| w[1].0 > w[0].0));
        assert_eq!(track(&out, Track::Audio).len(), 48);
    }

    #[test]
    fn pts_wrap_is_unwrapped_into_continuous_time() {
        let (clean, _) = demux(AV);
        // Video wraps after its 9th frame; then the wrap falls between the
        // first video (2^33 − 2000) and the first audio (2080) packet.
        for offset in [WRAP - 150_000, WRAP - 128_000] {
            let wrapped = rewrite_timestamps(AV, |_, t| Some((t as i64 + offset) as u64));
            let (out, counters) = demux(&wrapped);
            assert_eq!(counters.bad_composition_offsets, 0);
            for want in [Track::Video, Track::Audio] {
                let (a, b) = (track(&clean, want), track(&out, want));
                assert_eq!(a.len(), b.len());
                for (x, y) in a.iter().zip(&b) {
                    assert_eq!((y.0 - x.0, y.1 - x.1), (offset, offset), "{want:?}");
                }
            }
            assert!(out
                .iter()
                .all(|o| !matches!(o, Out::Packet(_, _, _, _, true, _))));
        }
    }

    #[test]
    fn backward_jump_is_a_discontinuity_and_time_keeps_going() {
        // From 0.5 s on, every PES is stamped 20 s earlier (an encoder restart).
        let cut = 126_000 + 45_000;
        let jumped = rewrite_timestamps(AV, |_, t| {
            Some(if t >= cut {
                t + WRAP as u64 - 1_800_000
            } else {
                t
            })
        });
        let (out, _) = demux(&jumped);
        for want in [Track::Video, Track::Audio] {
            let flags: Vec<bool> = out
                .iter()
                .filter_map(|o| match o {
                    Out::Packet(t, _, _, _, disc, _) if *t == want => Some(*disc),
                    _ => None,
                })
                .collect();
            assert_eq!(flags.iter().filter(|d| **d).count(), 1, "{want:?}");
            let packets = track(&out, want);
            assert!(packets.windows(2).all(|w| w[1].0 >= w[0].0), "{want:?}");
            assert!(packets.iter().all(|(d, p, _, _)| p >= d));
        }
    }

    #[test]
    fn hevc_is_refused_by_name() {
        let mut d = Demuxer::new(1);
        let now = Instant::now();
        let err = d.push(HEVC, now).unwrap_err();
        assert_eq!(
            err,
            TsError::UnsupportedStream {
                pid: 0x100,
                stream_type: 0x24,
                name: "HEVC"
            }
        );
        assert!(err.is_fatal());
        let text = err.to_string();
        assert!(text.contains("HEVC") && text.contains("0x24"), "{text}");
        // The publish stays refused.
        assert_eq!(d.push(AV, now), Err(err));
    }

    #[test]
    fn unsupported_audio_is_refused_unless_aac_is_there_too() {
        let now = Instant::now();
        let mut d = Demuxer::new(1);
        let err = d.push(&psi(&[(0x1b, 0x100), (0x04, 0x101)]), now);
        assert!(
            matches!(&err, Err(e) if e.to_string().contains("MPEG-2 audio")),
            "{err:?}"
        );
        let mut d = Demuxer::new(1);
        d.push(
            &psi(&[(0x1b, 0x100), (0x0f, 0x101), (0x81, 0x102), (0x86, 0x103)]),
            now,
        )
        .unwrap();
        assert_eq!(d.counters().ignored_streams, 2);
    }

    #[test]
    fn adts_with_crc_split_across_pes_at_44100() {
        let mut ts = psi(&[(0x0f, AUDIO_PID)]);
        let frame = |payload: &[u8]| {
            // ADTS, protection present (9-byte header), LC, 44.1 kHz, stereo, one block.
            let len = payload.len() + 9;
            let mut f = vec![
                0xff,
                0xf0,
                (1 << 6) | (4 << 2),
                (2 << 6) | (len >> 11) as u8,
                (len >> 3) as u8,
                ((len & 7) << 5) as u8 | 0x1f,
                0xfc,
                0xab,
                0xcd,
            ];
            f.extend_from_slice(payload);
            f
        };
        let (a, b, c) = (frame(&[1; 10]), frame(&[2; 20]), frame(&[3; 30]));
        let mut first = a.clone();
        first.extend_from_slice(&b[..12]);
        let mut second = b[12..].to_vec();
        second.extend_from_slice(&c);
        let mut cc = 0;
        let p1 = 900_000;
        let p2 = p1 + 2 * 2090;
        ts.extend(ts_packets(
            AUDIO_PID,
            &mut cc,
            &pes(0xc0, Some(p1), None, &first, true),
        ));
        ts.extend(ts_packets(
            AUDIO_PID,
            &mut cc,
            &pes(0xc0, Some(p2), None, &second, true),
        ));
        let (out, counters) = demux(&ts);
        assert_eq!(counters.adts_skipped_bytes, 0);
        let audio = track(&out, Track::Audio);
        let got: Vec<_> = audio.iter().map(|(_, p, _, d)| (*p, d.clone())).collect();
        let p1 = p1 as i64;
        assert_eq!(
            got,
            vec![
                (p1, Bytes::from(vec![1; 10])),
                (p1 + 2089, Bytes::from(vec![2; 20])), // 1024 × 90000 / 44100 = 2089.8
                (p2 as i64, Bytes::from(vec![3; 30])),
            ]
        );
        let Some(Out::Config(CodecConfig::Aac(cfg))) = out.first() else {
            panic!("config first: {out:?}")
        };
        assert_eq!((cfg.sample_rate, cfg.channels), (44100, 2));
    }

    #[test]
    fn video_waits_for_parameter_sets_and_follows_their_changes() {
        let (clean, _) = demux(AV);
        let Some(Out::Config(CodecConfig::Avc(small))) = clean
            .iter()
            .find(|o| matches!(o, Out::Config(CodecConfig::Avc(_))))
        else {
            panic!("no AVC config")
        };
        let big = AvcConfig::parse(Bytes::from_static(
            crate::media::h264::tests::AVCC_720P30_HIGH,
        ))
        .unwrap();
        let annexb = |nals: &[&[u8]]| {
            let mut v = Vec::new();
            for n in nals {
                v.extend_from_slice(&[0, 0, 0, 1]);
                v.extend_from_slice(n);
            }
            v
        };
        let aud: &[u8] = &[0x09, 0xf0];
        let idr: &[u8] = &[0x65, 0x88, 0x84];
        let mut ts = psi(&[(0x1b, VIDEO_PID)]);
        let mut cc = 0;
        let units = [
            annexb(&[aud, idr]),
            annexb(&[
                aud,
                &small.sps[0],
                &small.pps[0],
                &[0x06, 5, 1, 0xff, 0x80],
                idr,
            ]),
            annexb(&[aud, &[0x41, 0x9a]]),
            annexb(&[aud, &big.sps[0], &big.pps[0], idr]),
        ];
        for (i, au) in units.iter().enumerate() {
            let t = 90_000 + 3000 * i as u64;
            ts.extend(ts_packets(
                VIDEO_PID,
                &mut cc,
                &pes(0xe0, Some(t), Some(t), au, false),
            ));
        }
        let (out, counters) = demux(&ts);
        assert_eq!(counters.video_before_config, 1);
        let kinds: Vec<String> = out
            .iter()
            .map(|o| match o {
                Out::Config(CodecConfig::Avc(c)) => format!("config {}x{}", c.width, c.height),
                Out::Packet(_, dts, _, key, _, data) => {
                    let types: Vec<u8> = avcc_nal_units(data, 4).map(|n| n[0] & 0x1f).collect();
                    format!("{dts} {key} {types:?}")
                }
                o => format!("{o:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                "config 320x240",
                "93000 true [7, 8, 6, 5]",
                "96000 false [1]",
                "config 1280x720",
                "99000 true [7, 8, 5]",
            ]
        );
    }

    #[test]
    fn oversized_pes_is_dropped_and_counted() {
        let mut ts = psi(&[(0x1b, VIDEO_PID)]);
        let mut cc = 0;
        let mut body = vec![0, 0, 0, 1, 0x65];
        body.resize(MAX_PES_BYTES + 1000, 0x11);
        ts.extend(ts_packets(
            VIDEO_PID,
            &mut cc,
            &pes(0xe0, Some(0), None, &body, false),
        ));
        ts.extend(ts_packets(
            VIDEO_PID,
            &mut cc,
            &pes(0xe0, Some(3000), None, &[0, 0, 1, 0x09], false),
        ));
        let (out, counters) = demux(&ts);
        assert_eq!((counters.oversized_pes, counters.dropped_pes), (1, 1));
        assert!(out.is_empty());
    }

    /// Issue 30: PES whose headers cannot be read (no 00 00 01 prefix) behind a
    /// valid PAT/PMT give nothing, and each is counted (it was silent).
    #[test]
    fn unreadable_pes_headers_give_nothing_and_are_counted() {
        let mut ts = psi(&[(0x1b, VIDEO_PID), (0x0f, AUDIO_PID)]);
        let (mut vcc, mut acc) = (0, 0);
        for i in 0..20u8 {
            let junk: Vec<u8> = (0..400).map(|j| (j as u8).wrapping_mul(31) ^ i).collect();
            ts.extend(ts_packets(VIDEO_PID, &mut vcc, &junk));
            ts.extend(ts_packets(AUDIO_PID, &mut acc, &junk[..100]));
        }
        let (out, counters) = demux(&ts);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(counters.dropped_pes, 40);
        assert_eq!(counters.continuity_errors, 0);
    }

    #[test]
    fn bogus_pes_lengths_never_overrun() {
        // An audio PES that claims 20 bytes but carries a whole ADTS frame of 40.
        let mut ts = psi(&[(0x0f, AUDIO_PID)]);
        let mut cc = 0;
        let mut frame = vec![0xff, 0xf1, 0x4c, 0x80, 0x05, 0x1f, 0xfc];
        frame.resize(40, 7);
        let mut p = pes(0xc0, Some(0), None, &frame, true);
        p[4..6].copy_from_slice(&20u16.to_be_bytes());
        ts.extend(ts_packets(AUDIO_PID, &mut cc, &p));
        let (out, counters) = demux(&ts);
        assert!(counters.pes_length_mismatches >= 1);
        assert!(track(&out, Track::Audio).is_empty());
    }

    #[test]
    fn adts_header_fields() {
        // ffmpeg's first frame header: LC, 48 kHz, stereo, no CRC.
        let h = AdtsHeader::parse(&[0xff, 0xf1, 0x4c, 0x80, 0x11, 0x7f, 0xfc]).unwrap();
        assert_eq!(
            (
                h.profile,
                h.sample_rate_index,
                h.channels,
                h.header_len,
                h.frame_len,
                h.raw_blocks
            ),
            (1, 3, 2, 7, 139, 1)
        );
        assert_eq!(AdtsHeader::parse(&[0xff, 0xf1]), Err(AdtsError::Truncated));
        assert_eq!(
            AdtsHeader::parse(&[0xff, 0x01, 0, 0, 0, 0, 0]),
            Err(AdtsError::NoSync)
        );
        assert_eq!(
            AdtsHeader::parse(&[0xff, 0xf1, 0x4c, 0x80, 0x00, 0x1f, 0xfc]),
            Err(AdtsError::Length(0))
        );
    }

    // --- builders for hand-made streams ---

    /// Byte offset of the `nth` TS packet on `pid` with (or without) unit start.
    fn find_packet(ts: &[u8], pid: u16, start: bool, nth: usize) -> usize {
        ts.chunks(TS_PACKET)
            .enumerate()
            .filter(|(_, p)| {
                (u16::from(p[1] & 0x1f) << 8 | u16::from(p[2])) == pid
                    && (p[1] & 0x40 != 0) == start
            })
            .nth(nth)
            .map(|(i, _)| i * TS_PACKET)
            .unwrap()
    }

    /// Rewrites every PTS and DTS on the video and audio PIDs; `f` gets the
    /// PES's decode time (its DTS, else PTS) and a timestamp.
    fn rewrite_timestamps(ts: &[u8], f: impl Fn(u64, u64) -> Option<u64>) -> Vec<u8> {
        let mut out = ts.to_vec();
        for p in out.chunks_mut(TS_PACKET) {
            let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
            if p[1] & 0x40 == 0 || (pid != VIDEO_PID && pid != AUDIO_PID) {
                continue;
            }
            let start = if p[3] & 0x20 != 0 {
                5 + p[4] as usize
            } else {
                4
            };
            let pes = &mut p[start..];
            assert_eq!(&pes[..3], &[0, 0, 1]);
            let flags = pes[7] >> 6;
            let read = |b: &[u8]| {
                (u64::from(b[0] & 0x0e) << 29)
                    | u64::from(b[1]) << 22
                    | u64::from(b[2] >> 1) << 15
                    | u64::from(b[3]) << 7
                    | u64::from(b[4] >> 1)
            };
            let pts = read(&pes[9..14]);
            let dts = if flags == 3 { read(&pes[14..19]) } else { pts };
            let shift = |t: u64| f(dts, t).unwrap() % WRAP as u64;
            let (new_pts, new_dts) = (shift(pts), shift(dts));
            write_ts(&mut pes[9..14], new_pts);
            if flags == 3 {
                write_ts(&mut pes[14..19], new_dts);
            }
        }
        out
    }

    /// Writes a 33-bit timestamp, keeping the 4-bit prefix already there.
    fn write_ts(b: &mut [u8], t: u64) {
        b[0] = (b[0] & 0xf0) | ((t >> 29) as u8 & 0x0e) | 1;
        b[1] = (t >> 22) as u8;
        b[2] = ((t >> 14) as u8 & 0xfe) | 1;
        b[3] = (t >> 7) as u8;
        b[4] = ((t << 1) as u8) | 1;
    }

    /// A PES packet; `bounded` writes its length (else 0, as for video).
    fn pes(
        stream_id: u8,
        pts: Option<u64>,
        dts: Option<u64>,
        payload: &[u8],
        bounded: bool,
    ) -> Vec<u8> {
        let mut header = Vec::new();
        let flags = match (pts, dts) {
            (Some(p), Some(d)) => {
                header.extend_from_slice(&[0x31, 0, 0, 0, 0, 0x11, 0, 0, 0, 0]);
                write_ts(&mut header[..5], p);
                write_ts(&mut header[5..], d);
                0xc0
            }
            (Some(p), None) => {
                header.extend_from_slice(&[0x21, 0, 0, 0, 0]);
                write_ts(&mut header[..5], p);
                0x80
            }
            _ => 0,
        };
        let len = if bounded {
            3 + header.len() + payload.len()
        } else {
            0
        };
        let mut v = vec![0, 0, 1, stream_id, (len >> 8) as u8, len as u8, 0x80, flags];
        v.push(header.len() as u8);
        v.extend_from_slice(&header);
        v.extend_from_slice(payload);
        v
    }

    /// Splits a PES into TS packets, the last one padded with adaptation stuffing.
    fn ts_packets(pid: u16, cc: &mut u8, pes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, chunk) in pes.chunks(184).enumerate() {
            let start = if i == 0 { 0x40 } else { 0 };
            out.extend_from_slice(&[SYNC, start | (pid >> 8) as u8, pid as u8]);
            if chunk.len() == 184 {
                out.push(0x10 | *cc);
            } else {
                out.push(0x30 | *cc);
                let af = 183 - chunk.len();
                out.push(af as u8);
                if af > 0 {
                    out.push(0);
                    out.resize(out.len() + af - 1, 0xff);
                }
            }
            out.extend_from_slice(chunk);
            *cc = (*cc + 1) & 0xf;
        }
        out
    }

    /// A PAT (program 1 on PID 0x1000) and its PMT listing `streams` (type, PID).
    fn psi(streams: &[(u8, u16)]) -> Vec<u8> {
        let pat = [0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00];
        let mut pmt = vec![0x00, 0x01, 0xc1, 0x00, 0x00, 0xe1, 0x00, 0xf0, 0x00];
        for &(kind, pid) in streams {
            pmt.extend_from_slice(&[kind, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0x00]);
        }
        let mut out = section_packet(0, 0x00, &pat);
        out.extend(section_packet(0x1000, 0x02, &pmt));
        out
    }

    fn section_packet(pid: u16, table_id: u8, body: &[u8]) -> Vec<u8> {
        let len = body.len() + 4;
        let mut section = vec![table_id, 0xb0 | (len >> 8) as u8, len as u8];
        section.extend_from_slice(body);
        let crc = mpeg2ts_reader::mpegts_crc::sum32(&section);
        section.extend_from_slice(&crc.to_be_bytes());
        let mut p = vec![SYNC, 0x40 | (pid >> 8) as u8, pid as u8, 0x10, 0];
        p.extend_from_slice(&section);
        p.resize(TS_PACKET, 0xff);
        p
    }
}
