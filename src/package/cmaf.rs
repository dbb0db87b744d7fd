//! CMAF (fMP4) boxes for one track: the init segment and `moof`+`mdat`
//! fragments. Sans-IO: samples in, bytes out. Box layouts come from
//! `mp4-atom`; only the fragmenting choices live here.

use bytes::Bytes;
use mp4_atom::{
    Audio, Avc1, Avcc, AvccExt, Codec, Dinf, Dref, Encode, Esds, Ftyp, Hdlr, Mdat, Mdhd, Mdia,
    Mfhd, Minf, Moof, Moov, Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak,
    Trex, Trun, TrunEntry, TrunSamples, Url, Visual, Vmhd,
};

use crate::media::aac::AudioSpecificConfig;
use crate::media::h264::AvcConfig;
use crate::media::{StreamCtx, TIMESCALE};

/// Every rendition is one track; its id is always 1.
const TRACK_ID: u32 = 1;

/// A sync sample: depends on no other sample.
const FLAGS_SYNC: u32 = 0x0200_0000;
/// A non-sync sample: depends on others, `sample_is_non_sync_sample` set.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

#[derive(Debug, thiserror::Error)]
pub enum CmafError {
    #[error("mp4 box encoding: {0}")]
    Encode(#[from] mp4_atom::Error),
    #[error("fragment too large for a 32-bit trun data offset")]
    TooLarge,
    /// The error and where it happened: the packager's output for a
    /// rendition adds it ([`CmafError::in_stream`]).
    #[error("{ctx}: {source}")]
    InStream {
        ctx: StreamCtx,
        #[source]
        source: Box<CmafError>,
    },
}

impl CmafError {
    /// This error as it happened in `ctx`. One that names its stream
    /// already keeps what it has.
    pub fn in_stream(self, ctx: StreamCtx) -> CmafError {
        match self {
            e @ CmafError::InStream { .. } => e,
            e => CmafError::InStream {
                ctx,
                source: Box::new(e),
            },
        }
    }

    /// The stream (and rendition, pts) this error names, if any.
    pub fn ctx(&self) -> Option<&StreamCtx> {
        match self {
            CmafError::InStream { ctx, .. } => Some(ctx),
            _ => None,
        }
    }
}

/// What one rendition's track carries.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackConfig {
    Video(AvcConfig),
    Audio(AudioSpecificConfig),
}

impl TrackConfig {
    /// Media timescale: 90 kHz for video, the sample rate for audio.
    pub fn timescale(&self) -> u32 {
        match self {
            TrackConfig::Video(_) => TIMESCALE,
            TrackConfig::Audio(a) => a.sample_rate,
        }
    }

    /// The RFC 6381 codec string for `CODECS=`.
    pub fn codec_string(&self) -> String {
        match self {
            TrackConfig::Video(v) => v.codec_string(),
            TrackConfig::Audio(a) => a.codec_string(),
        }
    }
}

/// One sample of a fragment, timestamps in the track's timescale.
#[derive(Debug, Clone)]
pub struct Sample {
    pub duration: u32,
    /// pts − dts (B-frames in a passthrough rendition).
    pub composition_offset: i32,
    pub keyframe: bool,
    /// AVCC (length-prefixed NAL units) for video, one raw AAC frame for audio.
    pub data: Bytes,
}

/// `ftyp` + `moov` for one track.
pub fn init_segment(track: &TrackConfig) -> Result<Bytes, CmafError> {
    let ftyp = Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![b"iso6".into(), b"cmfc".into(), b"mp41".into()],
    };
    let timescale = track.timescale();
    let (handler, codec, minf_header, width, height, volume) = match track {
        TrackConfig::Video(v) => (
            b"vide",
            Codec::from(avc1(v)),
            (Some(Vmhd::default()), None),
            v.width,
            v.height,
            0,
        ),
        TrackConfig::Audio(a) => (
            b"soun",
            Codec::from(mp4a(a)),
            (None, Some(Smhd::default())),
            0,
            0,
            1,
        ),
    };
    let trak = Trak {
        tkhd: Tkhd {
            track_id: TRACK_ID,
            enabled: true,
            in_movie: true,
            volume: volume.into(),
            width: (width as u16).into(),
            height: (height as u16).into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: handler.into(),
                name: "ladderd".into(),
            },
            minf: Minf {
                vmhd: minf_header.0,
                smhd: minf_header.1,
                dinf: Dinf {
                    dref: Dref {
                        entries: vec![Url::default().into()],
                    },
                },
                stbl: Stbl {
                    stsd: Stsd {
                        codecs: vec![codec],
                    },
                    stco: Some(Stco::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..Default::default()
    };
    let moov = Moov {
        mvhd: Mvhd {
            timescale,
            rate: 1.into(),
            volume: 1.into(),
            next_track_id: TRACK_ID + 1,
            ..Default::default()
        },
        mvex: Some(Mvex {
            mehd: None,
            trex: vec![Trex {
                track_id: TRACK_ID,
                default_sample_description_index: 1,
                ..Default::default()
            }],
        }),
        trak: vec![trak],
        ..Default::default()
    };
    let mut out = Vec::with_capacity(1024);
    ftyp.encode(&mut out)?;
    moov.encode(&mut out)?;
    Ok(out.into())
}

fn avc1(v: &AvcConfig) -> Avc1 {
    // High and above carry the chroma/bit-depth extension in avcC.
    let ext = matches!(v.profile_idc, 100 | 110 | 122 | 144).then_some(AvccExt {
        chroma_format: 1,
        bit_depth_luma: 8,
        bit_depth_chroma: 8,
        sequence_parameter_sets_ext: vec![],
    });
    Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width: v.width as u16,
            height: v.height as u16,
            ..Default::default()
        },
        avcc: Avcc {
            configuration_version: 1,
            avc_profile_indication: v.profile_idc,
            profile_compatibility: v.constraint_flags,
            avc_level_indication: v.level_idc,
            length_size: 4,
            sequence_parameter_sets: v.sps.iter().map(|s| s.to_vec()).collect(),
            picture_parameter_sets: v.pps.iter().map(|s| s.to_vec()).collect(),
            ext,
        },
        ..Default::default()
    }
}

fn mp4a(a: &AudioSpecificConfig) -> Mp4a {
    use mp4_atom::esds::{DecoderConfig, DecoderSpecific, EsDescriptor};
    Mp4a {
        audio: Audio {
            data_reference_index: 1,
            channel_count: a.channels.max(1) as u16,
            sample_size: 16,
            sample_rate: (a.sample_rate.min(u16::MAX as u32) as u16).into(),
        },
        esds: Esds {
            es_desc: EsDescriptor {
                es_id: TRACK_ID as u16,
                dec_config: DecoderConfig {
                    // MPEG-4 audio, audio stream.
                    object_type_indication: 0x40,
                    stream_type: 5,
                    dec_specific: Some(DecoderSpecific {
                        profile: a.object_type,
                        raw: a.raw.to_vec(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        btrt: None,
        taic: None,
    }
}

/// One `moof`+`mdat`: `sequence` counts fragments of the rendition from 1,
/// `base_decode_time` is the first sample's decode time (track timescale).
pub fn fragment(
    sequence: u32,
    base_decode_time: u64,
    samples: &[Sample],
) -> Result<Bytes, CmafError> {
    let entries = samples
        .iter()
        .map(|s| TrunEntry {
            duration: Some(s.duration),
            size: Some(s.data.len() as u32),
            flags: Some(if s.keyframe {
                FLAGS_SYNC
            } else {
                FLAGS_NON_SYNC
            }),
            cts: Some(s.composition_offset as i64),
        })
        .collect();
    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: TRACK_ID,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: base_decode_time,
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                samples: TrunSamples::Explicit(entries),
            }],
            ..Default::default()
        }],
    };
    // The data offset counts from the start of the moof to the first media
    // byte: encode once to learn the moof's size (the field's width is fixed).
    let mut probe = Vec::new();
    moof.encode(&mut probe)?;
    let payload: usize = samples.iter().map(|s| s.data.len()).sum();
    let offset = i32::try_from(probe.len() + 8).map_err(|_| CmafError::TooLarge)?;
    moof.traf[0].trun[0].data_offset = Some(offset);
    let mut out = Vec::with_capacity(probe.len() + 8 + payload);
    moof.encode(&mut out)?;
    let mut data = Vec::with_capacity(payload);
    for s in samples {
        data.extend_from_slice(&s.data);
    }
    Mdat { data }.encode(&mut out)?;
    Ok(out.into())
}

/// Annex-B (start codes) to AVCC with 4-byte lengths, dropping parameter
/// sets and AUDs: the init segment carries SPS/PPS.
pub fn annexb_to_avcc(annexb: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(annexb.len());
    for nal in crate::media::h264::annexb_nal_units(annexb) {
        let Some(&header) = nal.first() else { continue };
        if matches!(header & 0x1f, 7 | 8 | 9) {
            continue;
        }
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out.into()
}

/// AVCC with `nal_length_size`-byte lengths to 4-byte lengths (what the init
/// segment declares); other bytes unchanged.
pub fn avcc_to_len4(data: &Bytes, nal_length_size: u8) -> Bytes {
    if nal_length_size == 4 {
        return data.clone();
    }
    let mut out = Vec::with_capacity(data.len() + 16);
    for nal in crate::media::h264::avcc_nal_units(data, nal_length_size) {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_in_a_stream_names_the_stream_rendition_and_pts() {
        let e = CmafError::TooLarge.in_stream(StreamCtx::new("cam1").rendition("720p").pts(123456));
        assert_eq!(
            e.to_string(),
            r#"stream "cam1", rendition 720p, pts 123456: fragment too large for a 32-bit trun data offset"#
        );
        assert_eq!(e.ctx().and_then(|c| c.rendition.as_deref()), Some("720p"));
        let again = e.in_stream(StreamCtx::new("other"));
        assert_eq!(again.ctx().map(|c| c.stream.as_str()), Some("cam1"));
    }

    /// Top-level boxes of a buffer: (type, offset, size).
    fn boxes(b: &[u8]) -> Vec<(String, usize, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 8 <= b.len() {
            let size = u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
            out.push((
                String::from_utf8_lossy(&b[at + 4..at + 8]).into_owned(),
                at,
                size,
            ));
            assert!(size >= 8, "box size {size} at {at}");
            at += size;
        }
        assert_eq!(at, b.len(), "boxes cover the buffer exactly");
        out
    }

    fn avc() -> AvcConfig {
        // SPS/PPS of a 640x360 Baseline stream (openh264).
        let sps = [
            0x67, 0x42, 0xc0, 0x1e, 0x8c, 0x68, 0x0a, 0x02, 0xff, 0x96, 0x01, 0xe1, 0x10, 0x8d,
            0x40,
        ];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        AvcConfig::from_parameter_sets(&sps, &pps).unwrap()
    }

    #[test]
    fn init_segment_is_ftyp_then_moov_with_avcc() {
        let init = init_segment(&TrackConfig::Video(avc())).unwrap();
        let b = boxes(&init);
        assert_eq!(
            b.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
            ["ftyp", "moov"]
        );
        assert_eq!(&init[8..12], b"iso6");
        for inner in [&b"cmfc"[..], b"mvex", b"trex", b"avc1", b"avcC", b"vmhd"] {
            assert!(
                init.windows(4).any(|w| w == inner),
                "{}",
                String::from_utf8_lossy(inner)
            );
        }
    }

    #[test]
    fn fragment_points_trun_at_the_mdat_payload() {
        let samples = [
            Sample {
                duration: 3000,
                composition_offset: 0,
                keyframe: true,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
            },
            Sample {
                duration: 3000,
                composition_offset: 6000,
                keyframe: false,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
            },
        ];
        let frag = fragment(7, 123_456, &samples).unwrap();
        let b = boxes(&frag);
        assert_eq!(
            b.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
            ["moof", "mdat"]
        );
        let (moof_size, mdat_at) = (b[0].2, b[1].1);
        assert_eq!(
            &frag[mdat_at + 8..],
            &[0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 1, 0x41]
        );
        // trun: after its full-box header come sample_count then data_offset.
        let trun = frag.windows(4).position(|w| w == b"trun").unwrap();
        let count = u32::from_be_bytes(frag[trun + 8..trun + 12].try_into().unwrap());
        let offset = i32::from_be_bytes(frag[trun + 12..trun + 16].try_into().unwrap());
        assert_eq!(count, 2);
        assert_eq!(
            offset as usize,
            moof_size + 8,
            "data offset = moof + mdat header"
        );
        // tfdt carries the base decode time; mfhd the sequence number.
        let tfdt = frag.windows(4).position(|w| w == b"tfdt").unwrap();
        let version = frag[tfdt + 4];
        let base = if version == 1 {
            u64::from_be_bytes(frag[tfdt + 8..tfdt + 16].try_into().unwrap())
        } else {
            u32::from_be_bytes(frag[tfdt + 8..tfdt + 12].try_into().unwrap()) as u64
        };
        assert_eq!(base, 123_456);
        let mfhd = frag.windows(4).position(|w| w == b"mfhd").unwrap();
        assert_eq!(
            u32::from_be_bytes(frag[mfhd + 8..mfhd + 12].try_into().unwrap()),
            7
        );
    }

    #[test]
    fn annexb_becomes_length_prefixed_without_parameter_sets() {
        let annexb = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 9, 9,
        ];
        assert_eq!(&annexb_to_avcc(&annexb)[..], &[0, 0, 0, 4, 0x65, 9, 9, 9]);
    }
}
