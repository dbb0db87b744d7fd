//! AAC `AudioSpecificConfig` (ISO/IEC 14496-3 §1.6.2.1), the part we need.

use bytes::Bytes;

const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AscError {
    #[error("AudioSpecificConfig truncated ({0} bytes)")]
    Truncated(usize),
    #[error("AudioSpecificConfig sampling frequency index {0} is reserved")]
    SampleRateIndex(u8),
    #[error("AudioSpecificConfig audio object type {0} is not AAC")]
    ObjectType(u8),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AudioSpecificConfig {
    /// The config exactly as received (goes into the CMAF `esds`).
    pub raw: Bytes,
    /// 2 = AAC-LC, 5 = SBR (HE-AAC), 29 = PS (HE-AACv2).
    pub object_type: u8,
    pub sample_rate: u32,
    /// 0 means "defined in the program config element".
    pub channels: u8,
}

impl AudioSpecificConfig {
    pub fn parse(raw: Bytes) -> Result<Self, AscError> {
        let mut bits = Bits { buf: &raw, pos: 0 };
        let trunc = |_| AscError::Truncated(raw.len());
        let mut object_type = bits.read(5).map_err(trunc)? as u8;
        if object_type == 31 {
            object_type = 32 + bits.read(6).map_err(trunc)? as u8;
        }
        let index = bits.read(4).map_err(trunc)? as u8;
        let sample_rate = match index {
            15 => bits.read(24).map_err(trunc)?,
            i => *SAMPLE_RATES
                .get(i as usize)
                .ok_or(AscError::SampleRateIndex(i))?,
        };
        let channels = bits.read(4).map_err(trunc)? as u8;
        // Object types 1..=4 (Main, LC, SSR, LTP), 5 (SBR), 29 (PS), 42 (xHE) are AAC family.
        if !matches!(object_type, 1..=6 | 29 | 42) {
            return Err(AscError::ObjectType(object_type));
        }
        Ok(AudioSpecificConfig {
            raw,
            object_type,
            sample_rate,
            channels,
        })
    }

    /// RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

struct Bits<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Result<u32, ()> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.buf.get(self.pos / 8).ok_or(())?;
            let bit = (byte >> (7 - self.pos % 8)) & 1;
            v = (v << 1) | bit as u32;
            self.pos += 1;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lc_48k_stereo() {
        // 00010 0011 0010 000 -> LC, 48 kHz, 2 channels (what ffmpeg's aac encoder writes).
        let asc = AudioSpecificConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap();
        assert_eq!(
            (asc.object_type, asc.sample_rate, asc.channels),
            (2, 48000, 2)
        );
        assert_eq!(asc.codec_string(), "mp4a.40.2");
    }

    #[test]
    fn parses_explicit_rate_and_escape_type() {
        // LC, index 15 then 24-bit 22050, mono.
        // 00010 1111 000000000101011000100010 0001
        let bytes = [0x17, 0x80, 0x2b, 0x11, 0x08];
        let asc = AudioSpecificConfig::parse(Bytes::copy_from_slice(&bytes)).unwrap();
        assert_eq!(
            (asc.object_type, asc.sample_rate, asc.channels),
            (2, 22050, 1)
        );
    }

    #[test]
    fn rejects_reserved_index_and_short_input() {
        assert_eq!(
            AudioSpecificConfig::parse(Bytes::from_static(&[0x16, 0x90])),
            Err(AscError::SampleRateIndex(13))
        );
        assert_eq!(
            AudioSpecificConfig::parse(Bytes::from_static(&[0x11])),
            Err(AscError::Truncated(1))
        );
    }
}

impl AudioSpecificConfig {
    /// The 7-byte ADTS header for one raw frame of `payload_len` bytes (no CRC).
    pub fn adts_header(&self, payload_len: usize) -> [u8; 7] {
        let index = SAMPLE_RATES
            .iter()
            .position(|&r| r == self.sample_rate)
            .unwrap_or(4) as u8; // 44.1 kHz when the rate has no index
        let profile = self.object_type.clamp(1, 4) - 1;
        let len = (payload_len + 7) as u32;
        let ch = self.channels & 0x7;
        [
            0xff,
            0xf1,
            (profile << 6) | (index << 2) | (ch >> 2),
            ((ch & 3) << 6) | ((len >> 11) as u8 & 0x3),
            (len >> 3) as u8,
            (((len & 7) as u8) << 5) | 0x1f,
            0xfc,
        ]
    }
}

#[cfg(test)]
mod adts_tests {
    use super::*;

    #[test]
    fn adts_header_for_lc_48k_stereo() {
        let asc = AudioSpecificConfig::parse(Bytes::from_static(&[0x11, 0x90])).unwrap();
        // Length 100 + 7 = 107 = 0b000_0110_1011.
        assert_eq!(
            asc.adts_header(100),
            [0xff, 0xf1, 0x4c, 0x80, 0x0d, 0x7f, 0xfc]
        );
    }
}

impl AudioSpecificConfig {
    /// The two-byte config an ADTS header implies (MPEG-TS carries AAC as ADTS
    /// and has no `esds`): `profile` is the ADTS field, object type − 1.
    pub fn from_adts(profile: u8, sample_rate_index: u8, channels: u8) -> Result<Self, AscError> {
        let object_type = (profile & 0x3) + 1;
        let (index, channels) = (sample_rate_index & 0xf, channels & 0xf);
        let raw = [
            (object_type << 3) | (index >> 1),
            ((index & 1) << 7) | (channels << 3),
        ];
        AudioSpecificConfig::parse(Bytes::copy_from_slice(&raw))
    }
}

#[cfg(test)]
mod from_adts_tests {
    use super::*;

    #[test]
    fn adts_fields_make_the_same_config_as_ffmpeg_writes() {
        // ADTS profile 1 (LC), index 3 (48 kHz), 2 channels: ffmpeg's esds says 11 90.
        let asc = AudioSpecificConfig::from_adts(1, 3, 2).unwrap();
        assert_eq!(&asc.raw[..], &[0x11, 0x90]);
        assert_eq!(
            AudioSpecificConfig::from_adts(1, 13, 2),
            Err(AscError::SampleRateIndex(13))
        );
    }
}
