//! MPEG audio (MP3) frame headers (ISO/IEC 11172-3 §2.4.2.3, with the MPEG-2
//! and 2.5 low rates): enough to know a publisher's sample rate and channels.
//! FLV's own sound flags cannot say 48 kHz, so the frame header decides.

/// What a publisher's MP3 carries; the audio re-encoder is opened from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp3Config {
    pub sample_rate: u32,
    pub channels: u8,
}

impl Mp3Config {
    /// Parses the first frame header of `data` (one FLV MP3 tag's payload).
    pub fn from_frame(data: &[u8]) -> Result<Self, Mp3Error> {
        let h: [u8; 4] = data
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(Mp3Error::Truncated(data.len()))?;
        if h[0] != 0xff || h[1] & 0xe0 != 0xe0 {
            return Err(Mp3Error::NoSync);
        }
        let version = (h[1] >> 3) & 0b11; // 0: 2.5, 2: 2, 3: 1
        let layer = (h[1] >> 1) & 0b11;
        if version == 1 || layer == 0 {
            return Err(Mp3Error::Reserved);
        }
        let base = match (h[2] >> 2) & 0b11 {
            0 => 44_100,
            1 => 48_000,
            2 => 32_000,
            _ => return Err(Mp3Error::Reserved),
        };
        let sample_rate = match version {
            3 => base,
            2 => base / 2,
            _ => base / 4,
        };
        let channels = if h[3] >> 6 == 3 { 1 } else { 2 };
        Ok(Mp3Config {
            sample_rate,
            channels,
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Mp3Error {
    #[error("MP3 frame header truncated ({0} bytes)")]
    Truncated(usize),
    #[error("MP3 frame does not start with a frame sync")]
    NoSync,
    #[error("MP3 frame header uses a reserved version, layer or sample rate")]
    Reserved,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rate_and_channels() {
        // MPEG-1 layer III, 128 kbit/s, 44.1 kHz, joint stereo.
        let c = Mp3Config::from_frame(&[0xff, 0xfb, 0x90, 0x44, 0]).unwrap();
        assert_eq!((c.sample_rate, c.channels), (44_100, 2));
        // MPEG-1, 48 kHz, mono.
        let c = Mp3Config::from_frame(&[0xff, 0xfb, 0x94, 0xc4]).unwrap();
        assert_eq!((c.sample_rate, c.channels), (48_000, 1));
        // MPEG-2, 24 kHz.
        let c = Mp3Config::from_frame(&[0xff, 0xf3, 0x94, 0x44]).unwrap();
        assert_eq!(c.sample_rate, 24_000);
        // MPEG-2.5, 8 kHz (FLV's "MP3 8 kHz").
        let c = Mp3Config::from_frame(&[0xff, 0xe3, 0x98, 0x44]).unwrap();
        assert_eq!(c.sample_rate, 8_000);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Mp3Config::from_frame(&[0xff]), Err(Mp3Error::Truncated(1)));
        assert_eq!(
            Mp3Config::from_frame(&[0x00, 0xfb, 0x90, 0x44]),
            Err(Mp3Error::NoSync)
        );
        assert_eq!(
            Mp3Config::from_frame(&[0xff, 0xfb, 0x9c, 0x44]),
            Err(Mp3Error::Reserved)
        );
        assert_eq!(
            Mp3Config::from_frame(&[0xff, 0xeb, 0x90, 0x44]),
            Err(Mp3Error::Reserved)
        );
    }
}
