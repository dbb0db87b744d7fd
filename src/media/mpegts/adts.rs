//! The ADTS frame header.

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
}
