//! Test sources made in-process: the demo's picture (colour bars, a moving
//! box, a frame counter and the wall clock burned in) encoded to H.264, and a
//! 1 kHz tone encoded to AAC. The demo stream paces them in real time; `hwtest`
//! and the benches take clips of them as fast as they encode.

use std::time::Duration;

use bytes::Bytes;

use crate::media::h264::{annexb_nal_units, AvcConfig};
use crate::media::{Packet, StreamId, Track, TIMESCALE};
use crate::transcode::audio::{AacEncoder, Tone};
use crate::transcode::cpu::OpenH264Encoder;
use crate::transcode::ladder::Rung;
use crate::transcode::{Encoder, Frame, StageError};

/// Why a test source made no picture or sound.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("test pattern encoder: {0}")]
    Encode(#[from] StageError),
    #[error("the first test pattern frame carries no SPS/PPS")]
    NoParameterSets,
    #[error("test pattern parameter sets: {0}")]
    ParameterSets(#[from] crate::media::h264::AvcConfigError),
}

/// The test pattern, encoded: one H.264 packet (AVCC, parameter sets in the
/// config, not the packets) per call, a keyframe every `gop` frames, timed at
/// `fps` from 0 and stamped with the wall clock as it is made. The demo stream
/// paces it in real time; `hwtest` takes a clip of it as fast as it encodes.
pub struct PatternSource {
    encoder: OpenH264Encoder,
    frame: Frame,
    fps: u32,
    gop: u64,
    n: u64,
    config_sent: bool,
    picture: Picture,
}

/// What a [`PatternSource`] draws.
enum Picture {
    /// Colour bars, a moving box, a frame counter and the clock.
    Bars,
    /// "SIGNAL LOST", the stream's name and the clock: what a stream shows
    /// while its input is gone, so players keep playing.
    Slate { name: String },
}

impl PatternSource {
    pub fn new(
        width: u32,
        height: u32,
        fps: u32,
        bitrate_kbps: u32,
        gop: u64,
    ) -> Result<Self, PatternError> {
        Self::drawing(width, height, fps, bitrate_kbps, gop, Picture::Bars)
    }

    /// The "signal lost" slate for stream `name`, same encoding as the pattern.
    pub fn slate(
        width: u32,
        height: u32,
        fps: u32,
        bitrate_kbps: u32,
        gop: u64,
        name: &str,
    ) -> Result<Self, PatternError> {
        let picture = Picture::Slate {
            name: name.to_string(),
        };
        Self::drawing(width, height, fps, bitrate_kbps, gop, picture)
    }

    fn drawing(
        width: u32,
        height: u32,
        fps: u32,
        bitrate_kbps: u32,
        gop: u64,
        picture: Picture,
    ) -> Result<Self, PatternError> {
        let rung = Rung {
            name: "demo-source".into(),
            width,
            height,
            frame_step: 1,
            fps: fps as f64,
            bitrate_bps: bitrate_kbps * 1000,
        };
        Ok(PatternSource {
            encoder: OpenH264Encoder::new(&rung)?,
            frame: Frame::new(width, height),
            fps,
            gop: gop.max(1),
            n: 0,
            config_sent: false,
            picture,
        })
    }

    /// The next picture's packet, with the stream's config on the first one.
    /// `None` when the encoder produced nothing for this picture.
    #[allow(clippy::type_complexity)]
    pub fn next(
        &mut self,
        stream: StreamId,
    ) -> Result<Option<(Option<AvcConfig>, Packet)>, PatternError> {
        let n = self.n;
        self.n += 1;
        match &self.picture {
            Picture::Bars => draw(&mut self.frame, n, self.fps),
            Picture::Slate { name } => draw_slate(&mut self.frame, name),
        }
        self.frame.pts = n as i64 * (TIMESCALE as i64 / self.fps as i64);
        self.frame.arrival = crate::telemetry::clock::now();
        let Some(encoded) = self.encoder.encode(&self.frame, n % self.gop == 0)? else {
            return Ok(None);
        };
        let mut config = None;
        if !self.config_sent {
            let nals: Vec<&[u8]> = annexb_nal_units(&encoded.data).collect();
            let sps = nals.iter().find(|n| n.first().map(|b| b & 0x1f) == Some(7));
            let pps = nals.iter().find(|n| n.first().map(|b| b & 0x1f) == Some(8));
            let (Some(sps), Some(pps)) = (sps, pps) else {
                return Err(PatternError::NoParameterSets);
            };
            config = Some(AvcConfig::from_parameter_sets(sps, pps)?);
            self.config_sent = true;
        }
        // Parameter sets travel in the config, not the packets.
        let mut avcc = Vec::with_capacity(encoded.data.len() + 16);
        for nal in annexb_nal_units(&encoded.data)
            .filter(|n| !matches!(n.first().map(|b| b & 0x1f), Some(7) | Some(8)))
        {
            avcc.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            avcc.extend_from_slice(nal);
        }
        Ok(Some((
            config,
            Packet {
                stream,
                track: Track::Video,
                dts: encoded.dts,
                pts: encoded.pts,
                keyframe: encoded.keyframe,
                discontinuity: false,
                data: Bytes::from(avcc),
                arrival: self.frame.arrival,
            },
        )))
    }
}

/// The demo's audio: a 1 kHz tone at −18 dBFS, 48 kHz stereo, AAC-LC,
/// timed on the same clock as the pictures (sample 0 = pts 0).
pub struct ToneSource {
    tone: Tone,
    encoder: AacEncoder,
    rate: u32,
    produced: u64,
    pcm: Vec<i16>,
}

impl ToneSource {
    pub fn new(bitrate_bps: u32) -> Result<Self, PatternError> {
        Self::with(-18.0, 48_000, 2, bitrate_bps)
    }

    /// Digital silence as AAC-LC at `rate` and `channels` (a slate's audio, in
    /// the layout of the stream it stands in for).
    pub fn silence(rate: u32, channels: u8, bitrate_bps: u32) -> Result<Self, PatternError> {
        Self::with(f64::NEG_INFINITY, rate, channels, bitrate_bps)
    }

    fn with(
        level_dbfs: f64,
        rate: u32,
        channels: u8,
        bitrate_bps: u32,
    ) -> Result<Self, PatternError> {
        Ok(ToneSource {
            tone: Tone::new(1000.0, level_dbfs, rate, channels as usize),
            encoder: AacEncoder::new(rate, channels, bitrate_bps)?,
            rate,
            produced: 0,
            pcm: Vec::new(),
        })
    }

    pub fn config(&self) -> &crate::media::aac::AudioSpecificConfig {
        self.encoder.config()
    }

    /// Encodes the tone up to media time `t`; each access unit becomes a packet.
    pub fn until(
        &mut self,
        t: Duration,
        stream: StreamId,
        out: &mut dyn FnMut(Packet),
    ) -> Result<(), PatternError> {
        let due = (t.as_secs_f64() * self.rate as f64) as u64;
        if due <= self.produced {
            return Ok(());
        }
        self.pcm.clear();
        self.tone
            .fill((due - self.produced) as usize, &mut self.pcm);
        self.produced = due;
        let now = crate::telemetry::clock::now();
        self.encoder
            .encode(&self.pcm, &mut |first, au| {
                let pts = (first as i128 * TIMESCALE as i128 / self.rate as i128) as i64;
                out(Packet {
                    stream,
                    track: Track::Audio,
                    dts: pts,
                    pts,
                    keyframe: true,
                    discontinuity: false,
                    data: au,
                    arrival: now,
                })
            })
            .map_err(PatternError::from)
    }
}

/// Colour bars, a box moving across, the frame number and the wall clock.
fn draw(f: &mut Frame, n: u64, fps: u32) {
    let (w, h) = (f.width as usize, f.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    // Seven bars (Y, U, V) at 75 %: white, yellow, cyan, green, magenta, red, blue.
    const BARS: [(u8, u8, u8); 7] = [
        (180, 128, 128),
        (162, 44, 142),
        (131, 156, 44),
        (112, 72, 58),
        (84, 184, 198),
        (65, 100, 212),
        (35, 212, 114),
    ];
    for y in 0..h {
        for x in 0..w {
            f.y[y * w + x] = BARS[x * 7 / w].0;
        }
    }
    for y in 0..ch {
        for x in 0..cw {
            let b = BARS[x * 7 / cw];
            f.u[y * cw + x] = b.1;
            f.v[y * cw + x] = b.2;
        }
    }
    // A box sweeping left to right once every 4 seconds.
    let size = h / 6;
    let period = (fps as u64 * 4).max(1);
    let bx = ((n % period) as usize * (w - size)) / period as usize;
    let by = h / 2 - size / 2;
    for y in by..by + size {
        f.y[y * w + bx..y * w + bx + size].fill(235);
    }
    // Frame counter and UTC wall clock, burned in.
    let ms = crate::telemetry::clock::unix_ms();
    let day_ms = ms % 86_400_000;
    let clock = format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    );
    let scale = (h / 120).max(2);
    text(f, &format!("{n:08}"), w / 20, h / 12, scale);
    text(f, &clock, w / 20, h - h / 12 - 7 * scale, scale);
}

/// The slate: a dark field, "SIGNAL LOST", the stream's name and the UTC
/// clock (so a viewer sees the stream is alive and waiting), centred.
fn draw_slate(f: &mut Frame, name: &str) {
    let (w, h) = (f.width as usize, f.height as usize);
    f.y.fill(40);
    f.u.fill(140);
    f.v.fill(120);
    let ms = crate::telemetry::clock::unix_ms();
    let day_ms = ms % 86_400_000;
    let clock = format!(
        "{:02}:{:02}:{:02} UTC",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
    );
    let big = (h / 60).max(2);
    let small = (h / 120).max(1);
    let centred = |s: &str, scale: usize| w.saturating_sub(s.chars().count() * 6 * scale) / 2;
    let title = "SIGNAL LOST";
    text(f, title, centred(title, big), h / 3, big);
    // Only what the font draws (stream keys and names are ASCII).
    let name: String = name.chars().take(40).collect();
    text(f, &name, centred(&name, small), h / 2, small);
    text(f, &clock, centred(&clock, small), h / 2 + 12 * small, small);
}

/// A 5x7 bitmap glyph (bit 4 is the left column): digits, A–Z (any case),
/// ':', '.', '-', '_', '/'; anything else is blank.
fn glyph(c: char) -> [u8; 7] {
    const DIGITS: [[u8; 7]; 10] = [
        [14, 17, 19, 21, 25, 17, 14],
        [4, 12, 4, 4, 4, 4, 14],
        [14, 17, 1, 2, 4, 8, 31],
        [31, 2, 4, 2, 1, 17, 14],
        [2, 6, 10, 18, 31, 2, 2],
        [31, 16, 30, 1, 1, 17, 14],
        [6, 8, 16, 30, 17, 17, 14],
        [31, 1, 2, 4, 8, 8, 8],
        [14, 17, 17, 14, 17, 17, 14],
        [14, 17, 17, 15, 1, 2, 12],
    ];
    const LETTERS: [[u8; 7]; 26] = [
        [14, 17, 17, 31, 17, 17, 17],
        [30, 17, 17, 30, 17, 17, 30],
        [14, 17, 16, 16, 16, 17, 14],
        [30, 17, 17, 17, 17, 17, 30],
        [31, 16, 16, 30, 16, 16, 31],
        [31, 16, 16, 30, 16, 16, 16],
        [14, 17, 16, 23, 17, 17, 15],
        [17, 17, 17, 31, 17, 17, 17],
        [14, 4, 4, 4, 4, 4, 14],
        [7, 2, 2, 2, 2, 18, 12],
        [17, 18, 20, 24, 20, 18, 17],
        [16, 16, 16, 16, 16, 16, 31],
        [17, 27, 21, 21, 17, 17, 17],
        [17, 17, 25, 21, 19, 17, 17],
        [14, 17, 17, 17, 17, 17, 14],
        [30, 17, 17, 30, 16, 16, 16],
        [14, 17, 17, 17, 21, 18, 13],
        [30, 17, 17, 30, 20, 18, 17],
        [15, 16, 16, 14, 1, 1, 30],
        [31, 4, 4, 4, 4, 4, 4],
        [17, 17, 17, 17, 17, 17, 14],
        [17, 17, 17, 17, 17, 10, 4],
        [17, 17, 17, 21, 21, 21, 10],
        [17, 17, 10, 4, 10, 17, 17],
        [17, 17, 10, 4, 4, 4, 4],
        [31, 1, 2, 4, 8, 16, 31],
    ];
    match c {
        '0'..='9' => DIGITS[c as usize - '0' as usize],
        'a'..='z' => LETTERS[c as usize - 'a' as usize],
        'A'..='Z' => LETTERS[c as usize - 'A' as usize],
        ':' => [0, 4, 4, 0, 4, 4, 0],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        '_' => [0, 0, 0, 0, 0, 0, 31],
        '/' => [1, 1, 2, 4, 8, 16, 16],
        _ => [0; 7],
    }
}

/// Draws `s` with the 5x7 font ([`glyph`]), white on a black box.
fn text(f: &mut Frame, s: &str, x0: usize, y0: usize, scale: usize) {
    let w = f.width as usize;
    let h = f.height as usize;
    let adv = 6 * scale;
    let (bw, bh) = (s.chars().count() * adv + scale, 9 * scale);
    for y in y0.saturating_sub(scale)..(y0 + bh).min(h) {
        let row = &mut f.y[y * w..(y + 1) * w];
        row[x0.saturating_sub(scale)..(x0 + bw).min(w)].fill(16);
    }
    for (i, c) in s.chars().enumerate() {
        for (gy, bits) in glyph(c).iter().enumerate() {
            for gx in 0..5 {
                if bits & (16 >> gx) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    let y = y0 + gy * scale + dy;
                    let x = x0 + i * adv + gx * scale;
                    if y < h && x + scale <= w {
                        f.y[y * w + x..y * w + x + scale].fill(235);
                    }
                }
            }
        }
    }
}
