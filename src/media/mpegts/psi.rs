//! The PAT/PMT side: mpeg2ts-reader's context and filters, and which
//! elementary PIDs feed the video and audio tracks.

use mpeg2ts_reader::demultiplex::{
    DemuxContext, FilterChangeset, FilterRequest, NullPacketFilter, PacketFilter, PatPacketFilter,
    PmtPacketFilter,
};
use mpeg2ts_reader::packet::Packet as TsPacket;
use mpeg2ts_reader::psi::pmt::PmtSection;

use super::output::TsError;
use super::pes::PesFilter;
use super::state::{Core, Pes};
use crate::media::Track;

const PAT_PID: u16 = 0;
const STREAM_TYPE_H264: u8 = 0x1b;
const STREAM_TYPE_ADTS: u8 = 0x0f;

/// The mpeg2ts-reader context: its filter changeset plus our state, which the
/// PES consumers reach through it (they live inside the crate's PID table,
/// where [`Demuxer::flush`](super::Demuxer::flush) could not reach them).
pub(super) struct Ctx {
    pub(super) changeset: FilterChangeset<Filter>,
    pub(super) core: Core,
}

pub(super) enum Filter {
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

impl Core {
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
