//! H.264 configuration: the `avcC` record (ISO/IEC 14496-15) and what its SPS says.

use bytes::Bytes;
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{decode_nal, BitReader};

/// Largest picture we accept from a publisher, in pixels per side (8K and then some).
const MAX_DIMENSION: u32 = 8192;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AvcConfigError {
    #[error("avcC record truncated at byte {offset} (needed {needed} more)")]
    Truncated { offset: usize, needed: usize },
    #[error("avcC configurationVersion is {0}, expected 1")]
    Version(u8),
    #[error("avcC carries no SPS")]
    NoSps,
    #[error("avcC carries no PPS")]
    NoPps,
    #[error("SPS is not a valid NAL unit: {0}")]
    Sps(String),
    #[error("picture size {width}x{height} is outside 16..={MAX_DIMENSION}")]
    Dimensions { width: u32, height: u32 },
}

/// A parsed `AVCDecoderConfigurationRecord` plus the facts of its first SPS.
#[derive(Debug, Clone, PartialEq)]
pub struct AvcConfig {
    /// The record exactly as received (goes into the CMAF `avcC` box).
    pub record: Bytes,
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// Bytes of the length prefix in front of each NAL unit (1, 2 or 4).
    pub nal_length_size: u8,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
    pub width: u32,
    pub height: u32,
    /// Frame rate from the SPS VUI timing info, when the encoder wrote it.
    pub fps: Option<f64>,
}

impl AvcConfig {
    /// Parses an `avcC` record; every length is checked against the buffer.
    pub fn parse(record: Bytes) -> Result<Self, AvcConfigError> {
        let mut r = Reader {
            buf: &record,
            pos: 0,
        };
        let version = r.u8()?;
        if version != 1 {
            return Err(AvcConfigError::Version(version));
        }
        let profile_idc = r.u8()?;
        let constraint_flags = r.u8()?;
        let level_idc = r.u8()?;
        let nal_length_size = (r.u8()? & 0x03) + 1;
        let num_sps = (r.u8()? & 0x1f) as usize;
        let mut sps = Vec::with_capacity(num_sps);
        for _ in 0..num_sps {
            let len = r.u16()? as usize;
            let (start, end) = r.take(len)?;
            sps.push(record.slice(start..end));
        }
        let num_pps = r.u8()? as usize;
        let mut pps = Vec::with_capacity(num_pps);
        for _ in 0..num_pps {
            let len = r.u16()? as usize;
            let (start, end) = r.take(len)?;
            pps.push(record.slice(start..end));
        }
        // High-profile trailers (chroma format, bit depth, SPS ext) are optional
        // and ignored: the SPS itself says the same.
        let first_sps = sps.first().ok_or(AvcConfigError::NoSps)?;
        if pps.is_empty() {
            return Err(AvcConfigError::NoPps);
        }
        let info = SpsInfo::parse(first_sps)?;
        Ok(AvcConfig {
            profile_idc,
            constraint_flags,
            level_idc,
            nal_length_size,
            width: info.width,
            height: info.height,
            fps: info.fps,
            sps,
            pps,
            record,
        })
    }

    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }

    /// Human name of the profile, for logs and the API.
    pub fn profile_name(&self) -> &'static str {
        match self.profile_idc {
            66 if self.constraint_flags & 0x40 != 0 => "Constrained Baseline",
            66 => "Baseline",
            77 => "Main",
            88 => "Extended",
            100 => "High",
            110 => "High 10",
            122 => "High 4:2:2",
            244 => "High 4:4:4",
            _ => "other",
        }
    }
}

/// What the appliance needs to know from a sequence parameter set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpsInfo {
    pub width: u32,
    pub height: u32,
    pub fps: Option<f64>,
}

impl SpsInfo {
    /// Parses an SPS NAL unit (header byte included).
    pub fn parse(nal: &[u8]) -> Result<Self, AvcConfigError> {
        let sps_err = |e: String| AvcConfigError::Sps(e);
        if nal.first().map(|b| b & 0x1f) != Some(7) {
            return Err(sps_err("NAL unit type is not 7 (SPS)".into()));
        }
        let rbsp = decode_nal(nal).map_err(|e| sps_err(e.to_string()))?;
        // h264-reader is a third-party parser fed with network bytes; contain
        // any panic in it to this one config (STYLE: never trust the network).
        let parsed =
            std::panic::catch_unwind(|| SeqParameterSet::from_bits(BitReader::new(&rbsp[..])))
                .map_err(|_| sps_err("SPS parser panicked".into()))?
                .map_err(|e| sps_err(format!("{e:?}")))?;
        // Bound the macroblock counts before h264-reader multiplies them.
        let mbs_limit = MAX_DIMENSION / 16;
        if parsed.pic_width_in_mbs_minus1 >= mbs_limit
            || parsed.pic_height_in_map_units_minus1 >= mbs_limit
        {
            return Err(AvcConfigError::Dimensions {
                width: parsed
                    .pic_width_in_mbs_minus1
                    .saturating_add(1)
                    .saturating_mul(16),
                height: parsed
                    .pic_height_in_map_units_minus1
                    .saturating_add(1)
                    .saturating_mul(16),
            });
        }
        let (width, height) = parsed
            .pixel_dimensions()
            .map_err(|e| sps_err(format!("{e:?}")))?;
        if !(16..=MAX_DIMENSION).contains(&width) || !(16..=MAX_DIMENSION).contains(&height) {
            return Err(AvcConfigError::Dimensions { width, height });
        }
        let fps = parsed
            .vui_parameters
            .as_ref()
            .and_then(|v| v.timing_info.as_ref())
            .filter(|t| t.num_units_in_tick > 0 && t.time_scale > 0)
            .map(|t| t.time_scale as f64 / (2.0 * t.num_units_in_tick as f64));
        Ok(SpsInfo { width, height, fps })
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<(usize, usize), AvcConfigError> {
        let have = self.buf.len() - self.pos;
        if have < n {
            return Err(AvcConfigError::Truncated {
                offset: self.pos,
                needed: n - have,
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok((start, self.pos))
    }
    fn u8(&mut self) -> Result<u8, AvcConfigError> {
        let (s, _) = self.take(1)?;
        Ok(self.buf[s])
    }
    fn u16(&mut self) -> Result<u16, AvcConfigError> {
        let (s, _) = self.take(2)?;
        Ok(u16::from_be_bytes([self.buf[s], self.buf[s + 1]]))
    }
}

impl AvcConfig {
    /// Builds the `avcC` record for one SPS and one PPS (e.g. from our own encoder).
    pub fn from_parameter_sets(sps: &[u8], pps: &[u8]) -> Result<Self, AvcConfigError> {
        if sps.len() < 4 {
            return Err(AvcConfigError::NoSps);
        }
        if pps.is_empty() {
            return Err(AvcConfigError::NoPps);
        }
        let mut r = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
        r.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        r.extend_from_slice(sps);
        r.push(1);
        r.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        r.extend_from_slice(pps);
        AvcConfig::parse(Bytes::from(r))
    }
}

/// One access unit of a raw Annex-B stream, as AVCC with 4-byte lengths.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    pub data: Bytes,
    /// Contains an IDR slice.
    pub keyframe: bool,
}

/// Splits a raw Annex-B elementary stream into access units (decode order)
/// and builds its `avcC` from the first SPS and PPS. An access unit ends
/// before an AUD, SEI, SPS or PPS, or before a slice with `first_mb_in_slice`
/// = 0, once it holds a slice. Parameter sets stay out of the units.
pub fn annexb_access_units(data: &[u8]) -> Result<(AvcConfig, Vec<AccessUnit>), AvcConfigError> {
    let (mut sps, mut pps) = (None, None);
    let mut units = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let (mut has_slice, mut key) = (false, false);
    let flush = |cur: &mut Vec<u8>, key: &mut bool, units: &mut Vec<AccessUnit>| {
        if !cur.is_empty() {
            units.push(AccessUnit {
                data: Bytes::from(std::mem::take(cur)),
                keyframe: *key,
            });
        }
        *key = false;
    };
    for nal in annexb_nal_units(data) {
        let Some(&header) = nal.first() else { continue };
        let kind = header & 0x1f;
        let slice = matches!(kind, 1 | 5);
        // first_mb_in_slice is ue(v): 0 is the single bit '1'.
        let first_slice = slice && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        let starts_unit = matches!(kind, 6..=9 | 14..=18) || first_slice;
        if has_slice && starts_unit {
            flush(&mut cur, &mut key, &mut units);
            has_slice = false;
        }
        match kind {
            7 => {
                sps.get_or_insert(nal);
                continue;
            }
            8 => {
                pps.get_or_insert(nal);
                continue;
            }
            9 => continue,
            _ => {}
        }
        has_slice |= slice;
        key |= kind == 5;
        cur.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        cur.extend_from_slice(nal);
    }
    if has_slice {
        flush(&mut cur, &mut key, &mut units);
    }
    let config = AvcConfig::from_parameter_sets(
        sps.ok_or(AvcConfigError::NoSps)?,
        pps.ok_or(AvcConfigError::NoPps)?,
    )?;
    Ok((config, units))
}

/// Iterates the NAL units of an Annex-B buffer (3- or 4-byte start codes).
pub fn annexb_nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            let mut e = s - 3;
            while e > 0 && data[e - 1] == 0 {
                e -= 1;
            }
            e
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .map(move |(s, e)| &data[s..e.max(s)])
}

/// Rewrites one AVCC access unit as Annex-B into `out` (cleared first), with
/// the stream's SPS/PPS in front when it is a keyframe: what hardware and
/// software decoders alike take.
pub fn avcc_to_annexb(config: &AvcConfig, data: &[u8], keyframe: bool, out: &mut Vec<u8>) {
    const START: [u8; 4] = [0, 0, 0, 1];
    out.clear();
    if keyframe {
        for ps in config.sps.iter().chain(&config.pps) {
            out.extend_from_slice(&START);
            out.extend_from_slice(ps);
        }
    }
    for nal in avcc_nal_units(data, config.nal_length_size) {
        out.extend_from_slice(&START);
        out.extend_from_slice(nal);
    }
}

/// Whether an Annex-B access unit holds an IDR slice (NAL type 5): how a
/// hardware encoder's output says it is a keyframe.
pub fn annexb_has_idr(data: &[u8]) -> bool {
    annexb_nal_units(data).any(|n| n.first().is_some_and(|b| b & 0x1f == 5))
}

/// Iterates the NAL units of one AVCC access unit; stops at the first bad length.
pub fn avcc_nal_units(data: &[u8], nal_length_size: u8) -> impl Iterator<Item = &[u8]> {
    let n = nal_length_size as usize;
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.len() < n || n == 0 {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        let body = rest.get(n..n + len)?;
        rest = &rest[n + len..];
        Some(body)
    })
}

impl AvcConfig {
    /// The configuration an access unit's in-band SPS (and PPS) starts,
    /// when it changes the picture size, profile or level: an encoder that
    /// repeats its parameter sets in-band (`repeat-headers`) can change them
    /// there without a new FLV sequence header. `None` when the unit has no
    /// SPS, the same one, or one that does not parse.
    pub fn in_band_change(&self, access_unit: &[u8]) -> Option<AvcConfig> {
        let (mut sps, mut pps) = (None, None);
        for nal in avcc_nal_units(access_unit, self.nal_length_size) {
            match nal.first().map(|b| b & 0x1f) {
                Some(7) if sps.is_none() => sps = Some(nal),
                Some(8) if pps.is_none() => pps = Some(nal),
                _ => {}
            }
        }
        let sps = sps?;
        if self.sps.first().is_some_and(|s| s[..] == *sps) || sps.len() < 4 {
            return None;
        }
        let info = SpsInfo::parse(sps).ok()?;
        let (profile, level) = (sps[1], sps[3]);
        if (info.width, info.height, profile, level)
            == (self.width, self.height, self.profile_idc, self.level_idc)
        {
            return None;
        }
        let pps = pps.or_else(|| self.pps.first().map(|p| &p[..]))?;
        let mut cfg = AvcConfig::from_parameter_sets(sps, pps).ok()?;
        // The packets keep their length prefixes: so does the record.
        let mut record = cfg.record.to_vec();
        record[4] = 0xfc | (self.nal_length_size - 1);
        cfg.record = Bytes::from(record);
        cfg.nal_length_size = self.nal_length_size;
        Some(cfg)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Exp-Golomb bit writer for hand-made parameter sets.
    #[derive(Default)]
    pub(crate) struct Bits {
        out: Vec<u8>,
        n: u32,
    }

    impl Bits {
        fn bit(&mut self, b: u32) {
            if self.n % 8 == 0 {
                self.out.push(0);
            }
            if b != 0 {
                *self.out.last_mut().unwrap() |= 0x80 >> (self.n % 8);
            }
            self.n += 1;
        }
        fn bits(&mut self, v: u32, n: u32) {
            for i in (0..n).rev() {
                self.bit((v >> i) & 1);
            }
        }
        fn ue(&mut self, v: u32) {
            let len = 32 - (v + 1).leading_zeros();
            self.bits(0, len - 1);
            self.bits(v + 1, len);
        }
        /// RBSP trailing bits, then emulation prevention.
        fn nal(mut self, header: u8) -> Vec<u8> {
            self.bit(1);
            while self.n % 8 != 0 {
                self.bit(0);
            }
            let mut nal = vec![header];
            let mut zeros = 0;
            for b in self.out {
                if zeros >= 2 && b <= 3 {
                    nal.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                nal.push(b);
            }
            nal
        }
    }

    /// A Baseline SPS for `width`x`height` (cropped from whole macroblocks).
    pub(crate) fn sps(width: u32, height: u32, level: u8) -> Vec<u8> {
        let mut b = Bits::default();
        b.bits(66, 8);
        b.bits(0xc0, 8);
        b.bits(level as u32, 8);
        b.ue(0); // seq_parameter_set_id
        b.ue(0); // log2_max_frame_num_minus4
        b.ue(2); // pic_order_cnt_type
        b.ue(1); // max_num_ref_frames
        b.bit(0); // gaps_in_frame_num_value_allowed_flag
        let (mbw, mbh) = (width.div_ceil(16), height.div_ceil(16));
        b.ue(mbw - 1);
        b.ue(mbh - 1);
        b.bit(1); // frame_mbs_only_flag
        b.bit(1); // direct_8x8_inference_flag
        let (crop_r, crop_b) = ((mbw * 16 - width) / 2, (mbh * 16 - height) / 2);
        b.bit((crop_r + crop_b > 0) as u32);
        if crop_r + crop_b > 0 {
            b.ue(0);
            b.ue(crop_r);
            b.ue(0);
            b.ue(crop_b);
        }
        b.bit(0); // vui_parameters_present_flag
        b.nal(0x67)
    }

    #[test]
    fn idr_is_found_among_annexb_nal_units() {
        let idr = [
            0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88,
        ];
        let p = [0, 0, 0, 1, 0x41, 0x9a, 0x00];
        assert!(annexb_has_idr(&idr));
        assert!(!annexb_has_idr(&p));
        assert!(!annexb_has_idr(&[]));
    }

    /// avcC of `tests/data/tiny-720p30-high.flv` (x264 High, level 3.1, 1280x720@30),
    /// bytes 0x138..0x165 of that file; README in tests/data says how it was made.
    pub(crate) const AVCC_720P30_HIGH: &[u8] = &[
        0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40,
        0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0,
        0xf1, 0x83, 0x19, 0x60, 0x01, 0x00, 0x04, 0x68, 0xef, 0x8f, 0xcb, 0xfd, 0xf8, 0xf8, 0x00,
    ];

    #[test]
    fn parses_x264_high_720p30() {
        let cfg = AvcConfig::parse(Bytes::from_static(AVCC_720P30_HIGH)).unwrap();
        assert_eq!(cfg.profile_idc, 100);
        assert_eq!(cfg.level_idc, 31);
        assert_eq!(cfg.nal_length_size, 4);
        assert_eq!((cfg.width, cfg.height), (1280, 720));
        assert_eq!(cfg.fps, Some(30.0));
        assert_eq!(cfg.codec_string(), "avc1.64001f");
        assert_eq!(cfg.profile_name(), "High");
        assert_eq!(cfg.sps.len(), 1);
        assert_eq!(cfg.pps.len(), 1);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        // The last 4 bytes are the optional High-profile trailer.
        for n in 0..AVCC_720P30_HIGH.len() - 4 {
            let r = AvcConfig::parse(Bytes::copy_from_slice(&AVCC_720P30_HIGH[..n]));
            assert!(r.is_err(), "prefix of {n} bytes parsed");
        }
    }

    #[test]
    fn rejects_wrong_version_and_missing_sets() {
        let mut v = AVCC_720P30_HIGH.to_vec();
        v[0] = 2;
        assert_eq!(
            AvcConfig::parse(Bytes::from(v)),
            Err(AvcConfigError::Version(2))
        );
        let no_sps = [0x01, 0x64, 0x00, 0x1f, 0xff, 0xe0, 0x00];
        assert_eq!(
            AvcConfig::parse(Bytes::copy_from_slice(&no_sps)),
            Err(AvcConfigError::NoSps)
        );
    }

    #[test]
    fn splits_annexb_and_rebuilds_avcc() {
        let cfg = AvcConfig::parse(Bytes::from_static(AVCC_720P30_HIGH)).unwrap();
        let mut annexb = vec![0, 0, 0, 1];
        annexb.extend_from_slice(&cfg.sps[0]);
        annexb.extend_from_slice(&[0, 0, 1]);
        annexb.extend_from_slice(&cfg.pps[0]);
        let nals: Vec<&[u8]> = annexb_nal_units(&annexb).collect();
        assert_eq!(nals, vec![&cfg.sps[0][..], &cfg.pps[0][..]]);
        let rebuilt = AvcConfig::from_parameter_sets(nals[0], nals[1]).unwrap();
        assert_eq!(
            (rebuilt.width, rebuilt.height, rebuilt.fps),
            (1280, 720, Some(30.0))
        );
        assert_eq!(rebuilt.codec_string(), cfg.codec_string());
    }

    #[test]
    fn splits_avcc_access_units() {
        let au = [0, 0, 0, 2, 0x65, 0xaa, 0, 0, 0, 1, 0x06, 0, 0, 0, 9];
        let nals: Vec<&[u8]> = avcc_nal_units(&au, 4).collect();
        assert_eq!(nals, vec![&[0x65, 0xaa][..], &[0x06][..]]);
    }

    /// Issue 30: 720p then 1080p in-band (`repeat-headers`) under one FLV
    /// sequence header: the 1080p keyframe's SPS starts a new configuration
    /// (size and level changed); the same SPS again, or a unit without one,
    /// does not.
    #[test]
    fn an_in_band_sps_that_changes_size_starts_a_new_configuration() {
        const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];
        let (s720, s1080) = (sps(1280, 720, 31), sps(1920, 1080, 40));
        let current = AvcConfig::from_parameter_sets(&s720, &PPS).unwrap();
        let au = |nals: &[&[u8]]| {
            let mut v = Vec::new();
            for n in nals {
                v.extend_from_slice(&(n.len() as u32).to_be_bytes());
                v.extend_from_slice(n);
            }
            v
        };
        let idr: &[u8] = &[0x65, 0x88, 0x84];
        assert_eq!(current.in_band_change(&au(&[&s720, &PPS, idr])), None);
        assert_eq!(current.in_band_change(&au(&[idr])), None);
        let next = current
            .in_band_change(&au(&[&s1080, &PPS, idr]))
            .expect("a new configuration");
        assert_eq!((next.width, next.height, next.level_idc), (1920, 1080, 40));
        assert_eq!(next.nal_length_size, 4);
        assert_eq!(AvcConfig::parse(next.record.clone()).unwrap(), next);
        // Garbage or a truncated unit is no change, never a panic.
        assert_eq!(current.in_band_change(&[0, 0, 0, 9, 0x67, 1]), None);
        assert_eq!(current.in_band_change(&au(&[&[0x67, 0x42]])), None);
    }
}
