//! FLV tags (the payload format of RTMP audio/video messages and of `.flv` files).
//!
//! Sans-IO: [`parse_video_tag`] / [`parse_audio_tag`] classify one tag body,
//! [`Demuxer`] turns a publish's tags into [`Packet`]s on the 90 kHz timeline,
//! and [`FileTags`] walks an `.flv` file. Every length is checked; nothing here
//! panics on malformed input (fuzzed by `fuzz/fuzz_targets/flv_tag.rs`).

use std::time::Instant;

use bytes::Bytes;

use crate::media::aac::{AscError, AudioSpecificConfig};
use crate::media::h264::{AvcConfig, AvcConfigError};
use crate::media::mp3::{Mp3Config, Mp3Error};
use crate::media::timeline::Unwrapper;
use crate::media::{ms_to_ticks, CodecConfig, Packet, StreamId, Track};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FlvError {
    #[error("{track:?} tag of {len} bytes is too short")]
    Short { track: Track, len: usize },
    #[error("unsupported codec: {0} (ladderd ingests H.264 video and AAC or MP3 audio)")]
    UnsupportedCodec(String),
    #[error("AVC sequence header: {0}")]
    AvcConfig(#[from] AvcConfigError),
    #[error("AAC sequence header: {0}")]
    AacConfig(#[from] AscError),
    #[error("MP3 audio: {0}")]
    Mp3(#[from] Mp3Error),
    #[error("{0:?} data arrived before its sequence header")]
    NoConfig(Track),
    #[error("AVC packet type {0} is reserved")]
    AvcPacketType(u8),
    #[error("AVC access unit has a bad NAL length prefix at byte {offset}")]
    NalLength { offset: usize },
    #[error("not an FLV file (signature {0:02x?})")]
    Signature([u8; 3]),
    #[error("FLV file truncated at byte {0}")]
    FileTruncated(usize),
}

impl FlvError {
    /// A fatal error ends the publish (the stream cannot be carried at all);
    /// anything else costs only the one tag.
    pub fn is_fatal(&self) -> bool {
        matches!(self, FlvError::UnsupportedCodec(_) | FlvError::Signature(_))
    }
}

/// One video tag body, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoTag {
    AvcSequenceHeader(Bytes),
    AvcNalu {
        keyframe: bool,
        /// Composition time offset (pts − dts) in milliseconds.
        cts_ms: i32,
        data: Bytes,
    },
    AvcEndOfSequence,
    /// Video info / command frames (frame type 5): carry no picture.
    Command,
}

/// One audio tag body, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioTag {
    AacSequenceHeader(Bytes),
    AacRaw(Bytes),
    /// MP3 frame(s) (sound format 2, or 14 for "MP3 8 kHz").
    Mp3(Bytes),
}

const CODEC_AVC: u8 = 7;
const SOUND_AAC: u8 = 10;
const SOUND_MP3: u8 = 2;
const SOUND_MP3_8K: u8 = 14;

pub fn parse_video_tag(body: &Bytes) -> Result<VideoTag, FlvError> {
    let short = || FlvError::Short {
        track: Track::Video,
        len: body.len(),
    };
    let first = *body.first().ok_or_else(short)?;
    if first & 0x80 != 0 {
        // Enhanced RTMP: IsExHeader, then a FourCC names the codec.
        let fourcc = body.get(1..5).ok_or_else(short)?;
        return Err(FlvError::UnsupportedCodec(format!(
            "enhanced RTMP video '{}'",
            String::from_utf8_lossy(fourcc)
        )));
    }
    let frame_type = first >> 4;
    let codec = first & 0x0f;
    if frame_type == 5 {
        return Ok(VideoTag::Command);
    }
    if codec != CODEC_AVC {
        return Err(FlvError::UnsupportedCodec(format!(
            "FLV video codec id {codec} ({})",
            video_codec_name(codec)
        )));
    }
    let header = body.get(..5).ok_or_else(short)?;
    let cts = i32::from_be_bytes([0, header[2], header[3], header[4]]);
    let cts_ms = (cts << 8) >> 8; // sign-extend SI24
    match header[1] {
        0 => Ok(VideoTag::AvcSequenceHeader(body.slice(5..))),
        1 => Ok(VideoTag::AvcNalu {
            keyframe: frame_type == 1,
            cts_ms,
            data: body.slice(5..),
        }),
        2 => Ok(VideoTag::AvcEndOfSequence),
        t => Err(FlvError::AvcPacketType(t)),
    }
}

pub fn parse_audio_tag(body: &Bytes) -> Result<AudioTag, FlvError> {
    let short = || FlvError::Short {
        track: Track::Audio,
        len: body.len(),
    };
    let first = *body.first().ok_or_else(short)?;
    let format = first >> 4;
    if format == SOUND_MP3 || format == SOUND_MP3_8K {
        return Ok(AudioTag::Mp3(body.slice(1..)));
    }
    if format != SOUND_AAC {
        return Err(FlvError::UnsupportedCodec(format!(
            "FLV audio format {format} ({})",
            audio_codec_name(format)
        )));
    }
    match *body.get(1).ok_or_else(short)? {
        0 => Ok(AudioTag::AacSequenceHeader(body.slice(2..))),
        _ => Ok(AudioTag::AacRaw(body.slice(2..))),
    }
}

fn video_codec_name(id: u8) -> &'static str {
    match id {
        2 => "Sorenson H.263",
        3 => "Screen video",
        4 => "On2 VP6",
        5 => "On2 VP6 alpha",
        6 => "Screen video v2",
        12 => "HEVC (non-standard id 12)",
        13 => "AV1 (non-standard id 13)",
        _ => "unknown",
    }
}

fn audio_codec_name(id: u8) -> &'static str {
    match id {
        0 | 3 => "PCM",
        1 => "ADPCM",
        2 => "MP3",
        4..=6 => "Nellymoser",
        7 => "G.711 A-law",
        8 => "G.711 mu-law",
        11 => "Speex",
        14 => "MP3 8 kHz",
        9 => "enhanced RTMP audio (FourCC)",
        _ => "unknown",
    }
}

/// Kind of an FLV tag (the RTMP message type carries the same numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Audio = 8,
    Video = 9,
    Script = 18,
}

/// What one tag turned into.
#[derive(Debug, Clone)]
pub enum Demuxed {
    Config(CodecConfig),
    Packet(Packet),
    /// A tag that announces a new config and carries media (MP3: no
    /// sequence header, each frame says its format).
    ConfigAndPacket(CodecConfig, Packet),
    /// A tag that carries nothing for the pipeline (end of sequence, command frame).
    Nothing,
}

/// Per-publish state: codec configs and one clock per track.
#[derive(Debug)]
pub struct Demuxer {
    stream: StreamId,
    video: Option<AvcConfig>,
    audio: Option<AudioSpecificConfig>,
    mp3: Option<Mp3Config>,
    video_clock: Unwrapper,
    audio_clock: Unwrapper,
    /// Packets whose composition offset was negative and got clamped to 0.
    pub negative_cts: u64,
}

impl Demuxer {
    pub fn new(stream: StreamId) -> Self {
        Demuxer {
            stream,
            video: None,
            audio: None,
            mp3: None,
            video_clock: Unwrapper::default(),
            audio_clock: Unwrapper::default(),
            negative_cts: 0,
        }
    }

    pub fn video_config(&self) -> Option<&AvcConfig> {
        self.video.as_ref()
    }

    pub fn audio_config(&self) -> Option<&AudioSpecificConfig> {
        self.audio.as_ref()
    }

    /// Feeds one audio or video tag body with its 32-bit millisecond timestamp.
    pub fn push_video(
        &mut self,
        timestamp_ms: u32,
        body: &Bytes,
        arrival: Instant,
    ) -> Result<Demuxed, FlvError> {
        match parse_video_tag(body)? {
            VideoTag::AvcSequenceHeader(record) => {
                let cfg = AvcConfig::parse(record)?;
                self.video = Some(cfg.clone());
                Ok(Demuxed::Config(CodecConfig::Avc(cfg)))
            }
            VideoTag::AvcNalu {
                keyframe,
                cts_ms,
                data,
            } => {
                let cfg = self
                    .video
                    .as_ref()
                    .ok_or(FlvError::NoConfig(Track::Video))?;
                check_nal_lengths(&data, cfg.nal_length_size)?;
                let t = self.video_clock.unwrap(timestamp_ms);
                if cts_ms < 0 {
                    self.negative_cts += 1;
                }
                let pts = t.ticks + ms_to_ticks(cts_ms.max(0) as i64);
                Ok(Demuxed::Packet(Packet {
                    stream: self.stream,
                    track: Track::Video,
                    dts: t.ticks,
                    pts,
                    keyframe,
                    discontinuity: t.discontinuity,
                    data,
                    arrival,
                }))
            }
            VideoTag::AvcEndOfSequence | VideoTag::Command => Ok(Demuxed::Nothing),
        }
    }

    pub fn push_audio(
        &mut self,
        timestamp_ms: u32,
        body: &Bytes,
        arrival: Instant,
    ) -> Result<Demuxed, FlvError> {
        match parse_audio_tag(body)? {
            AudioTag::AacSequenceHeader(raw) => {
                let cfg = AudioSpecificConfig::parse(raw)?;
                self.audio = Some(cfg.clone());
                self.mp3 = None;
                Ok(Demuxed::Config(CodecConfig::Aac(cfg)))
            }
            AudioTag::Mp3(data) => {
                let cfg = Mp3Config::from_frame(&data)?;
                let packet = self.audio_packet(timestamp_ms, data, arrival);
                if self.mp3 == Some(cfg) {
                    return Ok(Demuxed::Packet(packet));
                }
                self.mp3 = Some(cfg);
                self.audio = None;
                Ok(Demuxed::ConfigAndPacket(CodecConfig::Mp3(cfg), packet))
            }
            AudioTag::AacRaw(data) => {
                if self.audio.is_none() {
                    return Err(FlvError::NoConfig(Track::Audio));
                }
                Ok(Demuxed::Packet(self.audio_packet(
                    timestamp_ms,
                    data,
                    arrival,
                )))
            }
        }
    }

    /// An audio frame on the audio clock (every audio frame is a sync sample).
    fn audio_packet(&mut self, timestamp_ms: u32, data: Bytes, arrival: Instant) -> Packet {
        let t = self.audio_clock.unwrap(timestamp_ms);
        Packet {
            stream: self.stream,
            track: Track::Audio,
            dts: t.ticks,
            pts: t.ticks,
            keyframe: true,
            discontinuity: t.discontinuity,
            data,
            arrival,
        }
    }
}

/// Rejects an access unit whose length prefixes do not tile it exactly.
fn check_nal_lengths(data: &[u8], nal_length_size: u8) -> Result<(), FlvError> {
    let n = nal_length_size as usize;
    let mut pos = 0;
    while pos < data.len() {
        let prefix = data
            .get(pos..pos + n)
            .ok_or(FlvError::NalLength { offset: pos })?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        pos = pos
            .checked_add(n + len)
            .filter(|end| *end <= data.len())
            .ok_or(FlvError::NalLength { offset: pos })?;
    }
    Ok(())
}

/// One tag of an `.flv` file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileTag {
    pub kind: u8,
    pub timestamp_ms: u32,
    pub body: Bytes,
}

/// Walks the tags of an in-memory `.flv` file; stops at the first malformed tag.
pub struct FileTags {
    data: Bytes,
    pos: usize,
    failed: bool,
}

impl FileTags {
    pub fn new(data: Bytes) -> Result<Self, FlvError> {
        let header = data.get(..9).ok_or(FlvError::FileTruncated(data.len()))?;
        if &header[..3] != b"FLV" {
            return Err(FlvError::Signature([header[0], header[1], header[2]]));
        }
        let offset = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) as usize;
        // Skip the header and the first PreviousTagSize (always 0).
        Ok(FileTags {
            pos: offset.max(9) + 4,
            data,
            failed: false,
        })
    }
}

impl Iterator for FileTags {
    type Item = Result<FileTag, FlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let Some(h) = self.data.get(self.pos..self.pos + 11) else {
            self.failed = true;
            return Some(Err(FlvError::FileTruncated(self.pos)));
        };
        let kind = h[0] & 0x1f;
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp_ms = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let start = self.pos + 11;
        let end = start + size;
        if end + 4 > self.data.len() {
            self.failed = true;
            return Some(Err(FlvError::FileTruncated(self.pos)));
        }
        self.pos = end + 4;
        Some(Ok(FileTag {
            kind,
            timestamp_ms,
            body: self.data.slice(start..end),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &[u8] = include_bytes!("../../tests/data/tiny-720p30-high.flv");

    fn demux_file() -> (Demuxer, Vec<Packet>) {
        let mut d = Demuxer::new(7);
        let now = Instant::now();
        let mut packets = Vec::new();
        for tag in FileTags::new(Bytes::from_static(TINY)).unwrap() {
            let tag = tag.unwrap();
            let out = match tag.kind {
                8 => d.push_audio(tag.timestamp_ms, &tag.body, now).unwrap(),
                9 => d.push_video(tag.timestamp_ms, &tag.body, now).unwrap(),
                _ => Demuxed::Nothing,
            };
            if let Demuxed::Packet(p) = out {
                packets.push(p);
            }
        }
        (d, packets)
    }

    #[test]
    fn demuxes_the_reference_capture() {
        // ffprobe of the capture: 15 video packets, 25 audio packets.
        let (d, packets) = demux_file();
        let cfg = d.video_config().unwrap();
        assert_eq!(cfg.codec_string(), "avc1.64001f");
        assert_eq!((cfg.width, cfg.height, cfg.fps), (1280, 720, Some(30.0)));
        let asc = d.audio_config().unwrap();
        assert_eq!((asc.sample_rate, asc.channels), (48000, 2));
        let video: Vec<_> = packets.iter().filter(|p| p.track == Track::Video).collect();
        let audio: Vec<_> = packets.iter().filter(|p| p.track == Track::Audio).collect();
        assert_eq!(video.len(), 15);
        assert_eq!(audio.len(), 25);
        assert!(video[0].keyframe);
        assert!(video.iter().all(|p| p.pts >= p.dts && p.stream == 7));
        assert!(video.windows(2).all(|w| w[1].dts > w[0].dts));
        assert!(audio.windows(2).all(|w| w[1].dts > w[0].dts));
        // B-frames: some packet is presented later than it is decoded.
        assert!(video.iter().any(|p| p.pts > p.dts));
        assert!(packets.iter().all(|p| !p.discontinuity));
        assert_eq!(d.negative_cts, 0);
    }

    #[test]
    fn composition_offset_is_signed_24_bit() {
        let body = Bytes::from_static(&[0x27, 1, 0xff, 0xff, 0xfe, 0, 0, 0, 1, 0x41]);
        assert_eq!(
            parse_video_tag(&body),
            Ok(VideoTag::AvcNalu {
                keyframe: false,
                cts_ms: -2,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
            })
        );
    }

    #[test]
    fn negative_composition_offset_is_clamped_and_counted() {
        let mut d = Demuxer::new(1);
        let now = Instant::now();
        let mut seq = vec![0x17, 0];
        seq.extend_from_slice(&[0, 0, 0]);
        seq.extend_from_slice(crate::media::h264::tests::AVCC_720P30_HIGH);
        d.push_video(0, &Bytes::from(seq), now).unwrap();
        let body = Bytes::from_static(&[0x27, 1, 0xff, 0xff, 0xfe, 0, 0, 0, 1, 0x41]);
        let Demuxed::Packet(p) = d.push_video(100, &body, now).unwrap() else {
            panic!("expected a packet")
        };
        assert_eq!((p.dts, p.pts), (9000, 9000));
        assert_eq!(d.negative_cts, 1);
    }

    #[test]
    fn unsupported_codecs_are_named_and_fatal() {
        let hevc = Bytes::from_static(&[0x91, b'h', b'v', b'c', b'1', 0, 0]);
        let av1 = Bytes::from_static(&[0x90, b'a', b'v', b'0', b'1']);
        let vp6 = Bytes::from_static(&[0x14, 0]);
        for (body, name) in [(hevc, "hvc1"), (av1, "av01"), (vp6, "VP6")] {
            let err = parse_video_tag(&body).unwrap_err();
            assert!(err.is_fatal());
            assert!(err.to_string().contains("unsupported codec"), "{err}");
            assert!(err.to_string().contains(name), "{err}");
        }
        let speex = Bytes::from_static(&[0xb6, 0]);
        let pcm = Bytes::from_static(&[0x3f, 0]);
        for (body, name) in [(speex, "Speex"), (pcm, "PCM")] {
            let err = parse_audio_tag(&body).unwrap_err();
            assert!(err.is_fatal() && err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn mp3_announces_its_config_once_then_flows() {
        let mut d = Demuxer::new(1);
        let now = Instant::now();
        let tag = Bytes::from_static(&[0x2f, 0xff, 0xfb, 0x94, 0x44, 0, 0]);
        let Demuxed::ConfigAndPacket(CodecConfig::Mp3(c), p) = d.push_audio(0, &tag, now).unwrap()
        else {
            panic!("expected the MP3 config with the first frame")
        };
        assert_eq!((c.sample_rate, c.channels), (48_000, 2));
        assert_eq!(&p.data[..], &tag[1..]);
        let Demuxed::Packet(p) = d.push_audio(24, &tag, now).unwrap() else {
            panic!("expected a packet")
        };
        assert_eq!(p.pts, 24 * 90);
        // A tag that is not an MP3 frame costs that tag only.
        let junk = Bytes::from_static(&[0x2f, 0x00, 0x11]);
        let err = d.push_audio(48, &junk, now).unwrap_err();
        assert!(!err.is_fatal(), "{err}");
    }

    #[test]
    fn data_before_config_and_bad_lengths_cost_one_tag() {
        let mut d = Demuxer::new(1);
        let now = Instant::now();
        let nalu = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]);
        let err = d.push_video(0, &nalu, now).unwrap_err();
        assert_eq!(err, FlvError::NoConfig(Track::Video));
        assert!(!err.is_fatal());
        let mut seq = vec![0x17, 0, 0, 0, 0];
        seq.extend_from_slice(crate::media::h264::tests::AVCC_720P30_HIGH);
        d.push_video(0, &Bytes::from(seq), now).unwrap();
        let bad = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 9, 0x65]);
        assert_eq!(
            d.push_video(0, &bad, now).unwrap_err(),
            FlvError::NalLength { offset: 0 }
        );
        assert!(matches!(
            d.push_video(0, &nalu, now),
            Ok(Demuxed::Packet(_))
        ));
    }

    #[test]
    fn truncated_tags_are_errors() {
        for body in [&[][..], &[0x17][..], &[0x17, 1, 0][..]] {
            assert!(parse_video_tag(&Bytes::copy_from_slice(body)).is_err());
        }
        for body in [&[][..], &[0xaf][..]] {
            assert!(parse_audio_tag(&Bytes::copy_from_slice(body)).is_err());
        }
    }

    #[test]
    fn file_walker_stops_on_truncation() {
        let cut = Bytes::from_static(&TINY[..TINY.len() - 7]);
        let results: Vec<_> = FileTags::new(cut).unwrap().collect();
        assert!(matches!(
            results.last(),
            Some(Err(FlvError::FileTruncated(_)))
        ));
        assert!(FileTags::new(Bytes::from_static(b"GIF89a..........")).is_err());
    }
}
