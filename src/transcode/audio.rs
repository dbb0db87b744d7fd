//! AAC encode (fdk-aac, the Fraunhofer encoder, built from the crate's bundled
//! source): the demo's tone, and the ladder's audio rendition whenever the
//! source's audio must be re-encoded (asked for, or MP3 from the publisher).

use bytes::Bytes;
use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};

use crate::media::aac::AudioSpecificConfig;
use crate::media::mp3::Mp3Config;
use crate::media::Packet;
use crate::transcode::StageError;

/// AAC-LC samples per access unit.
pub const FRAME_SAMPLES: u64 = 1024;

pub struct AacEncoder {
    inner: Encoder,
    config: AudioSpecificConfig,
    channels: usize,
    /// Encoded bytes of the access unit being written, reused.
    out: Vec<u8>,
    /// Access units produced so far (their index gives their first sample).
    units: u64,
    /// Samples per channel the encoder holds back (priming), reported so a
    /// caller can align audio with video.
    pub delay_samples: u32,
}

fn err(reason: impl std::fmt::Debug) -> StageError {
    StageError::Encode {
        rung: "audio".into(),
        pts: -1,
        reason: format!("{reason:?}"),
    }
}

impl AacEncoder {
    /// AAC-LC at `bitrate_bps` CBR, raw access units (CMAF carries no ADTS).
    pub fn new(sample_rate: u32, channels: u8, bitrate_bps: u32) -> Result<Self, StageError> {
        let mode = match channels {
            1 => ChannelMode::Mono,
            2 => ChannelMode::Stereo,
            n => {
                return Err(StageError::Unavailable {
                    stage: "AAC encoder",
                    reason: format!("{n} channels (mono or stereo only)"),
                })
            }
        };
        let inner = Encoder::new(EncoderParams {
            bit_rate: BitRate::Cbr(bitrate_bps),
            sample_rate,
            transport: Transport::Raw,
            channels: mode,
            audio_object_type: AudioObjectType::Mpeg4LowComplexity,
        })
        .map_err(|e| StageError::Unavailable {
            stage: "AAC encoder",
            reason: format!("{e:?}"),
        })?;
        let info = inner.info().map_err(err)?;
        let asc = info.confBuf[..(info.confSize as usize).min(info.confBuf.len())].to_vec();
        let config =
            AudioSpecificConfig::parse(Bytes::from(asc)).map_err(|e| StageError::Unavailable {
                stage: "AAC encoder",
                reason: format!("its AudioSpecificConfig does not parse: {e}"),
            })?;
        Ok(AacEncoder {
            inner,
            config,
            channels: channels as usize,
            out: vec![0; (info.maxOutBufBytes as usize).max(8192)],
            units: 0,
            delay_samples: info.nDelay,
        })
    }

    pub fn config(&self) -> &AudioSpecificConfig {
        &self.config
    }

    /// Interleaved 16-bit PCM in; each finished access unit out with the
    /// index of its first sample (per channel).
    pub fn encode(
        &mut self,
        pcm: &[i16],
        out: &mut dyn FnMut(u64, Bytes),
    ) -> Result<(), StageError> {
        let mut pos = 0;
        loop {
            let info = self.inner.encode(&pcm[pos..], &mut self.out).map_err(err)?;
            pos += info.input_consumed;
            if info.output_size > 0 {
                out(
                    self.units * FRAME_SAMPLES,
                    Bytes::copy_from_slice(&self.out[..info.output_size]),
                );
                self.units += 1;
            }
            // Done once a call neither produced a unit nor had anything left
            // to consume (the encoder holds partial frames between calls).
            if info.output_size == 0 && (pos >= pcm.len() || info.input_consumed == 0) {
                return Ok(());
            }
        }
    }

    pub fn channels(&self) -> usize {
        self.channels
    }
}

/// What a publisher's audio is decoded with before the re-encode.
enum SourceDecoder {
    Aac(Box<fdk_aac::dec::Decoder>),
    Mp3 {
        decoder: Box<dyn symphonia::core::codecs::Decoder>,
        channels: usize,
    },
}

/// Why one source access unit did not decode (counted; the unit is skipped).
#[derive(Debug, thiserror::Error)]
enum UnitError {
    #[error("fdk-aac: {0}")]
    Aac(fdk_aac::dec::DecoderError),
    #[error("MP3: {0}")]
    Mp3(#[from] symphonia::core::errors::Error),
    #[error("MP3 decoder panicked on this frame")]
    Mp3Panicked,
    #[error("MP3 decoder gave a sample format other than f32")]
    Mp3SampleFormat,
}

impl SourceDecoder {
    /// One access unit to interleaved PCM in `pcm` (at most the encoder's
    /// channel count); returns the samples written (all channels).
    fn decode(&mut self, data: &[u8], pcm: &mut Vec<i16>) -> Result<usize, UnitError> {
        match self {
            SourceDecoder::Aac(d) => {
                d.fill(data).map_err(UnitError::Aac)?;
                d.decode_frame(pcm).map_err(UnitError::Aac)?;
                Ok(d.decoded_frame_size().min(pcm.len()))
            }
            SourceDecoder::Mp3 { decoder, channels } => {
                use symphonia::core::audio::{AudioBufferRef, Signal};
                let packet = symphonia::core::formats::Packet::new_from_slice(0, 0, 0, data);
                // Publisher bytes into a third-party decoder: a panic costs
                // this frame (and the decoder's state), never the stream.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    decoder.decode(&packet).map(|_| ())
                }));
                match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e.into()),
                    Err(_) => {
                        decoder.reset();
                        return Err(UnitError::Mp3Panicked);
                    }
                }
                let decoded = decoder.last_decoded();
                let AudioBufferRef::F32(buf) = decoded else {
                    return Err(UnitError::Mp3SampleFormat);
                };
                let (frames, have) = (buf.frames(), buf.spec().channels.count());
                if have == 0 {
                    return Ok(0);
                }
                pcm.resize(frames * *channels, 0);
                for c in 0..*channels {
                    let plane = buf.chan(c.min(have - 1));
                    for (i, x) in plane.iter().enumerate() {
                        pcm[i * *channels + c] = (x.clamp(-1.0, 1.0) * 32767.0) as i16;
                    }
                }
                Ok(frames * *channels)
            }
        }
    }
}

/// A publisher's audio re-encoded as AAC at the ladder's audio bitrate: AAC
/// (fdk-aac) or MP3 (symphonia) decoded, down-mixed to at most two channels,
/// encoded again. Output access units are timed from the first input packet's
/// pts on the sample clock.
pub struct AudioTranscoder {
    decoder: SourceDecoder,
    encoder: AacEncoder,
    pcm: Vec<i16>,
    sample_rate: u32,
    /// pts (90 kHz) of the first input packet: output sample 0.
    base_pts: Option<i64>,
    /// Source units that did not decode (skipped).
    pub decode_errors: u64,
}

impl AudioTranscoder {
    /// From the publisher's AAC.
    pub fn new(source: &AudioSpecificConfig, bitrate_bps: u32) -> Result<Self, StageError> {
        let mut decoder = fdk_aac::dec::Decoder::new(fdk_aac::dec::Transport::Raw);
        decoder
            .config_raw(&source.raw)
            .map_err(|e| StageError::Unavailable {
                stage: "AAC re-encode",
                reason: format!("source config: {e:?}"),
            })?;
        let channels = source.channels.clamp(1, 2);
        let _ = decoder.set_max_output_channels(channels as usize);
        Self::with(
            SourceDecoder::Aac(Box::new(decoder)),
            source.sample_rate,
            channels,
            bitrate_bps,
        )
    }

    /// From the publisher's MP3 (always re-encoded: CMAF players want AAC).
    pub fn from_mp3(source: &Mp3Config, bitrate_bps: u32) -> Result<Self, StageError> {
        use symphonia::core::codecs::{CodecParameters, DecoderOptions, CODEC_TYPE_MP3};
        let mut params = CodecParameters::new();
        params
            .for_codec(CODEC_TYPE_MP3)
            .with_sample_rate(source.sample_rate);
        let decoder = symphonia::default::get_codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|e| StageError::Unavailable {
                stage: "MP3 decoder",
                reason: e.to_string(),
            })?;
        let channels = source.channels.clamp(1, 2);
        Self::with(
            SourceDecoder::Mp3 {
                decoder,
                channels: channels as usize,
            },
            source.sample_rate,
            channels,
            bitrate_bps,
        )
    }

    fn with(
        decoder: SourceDecoder,
        sample_rate: u32,
        channels: u8,
        bitrate_bps: u32,
    ) -> Result<Self, StageError> {
        Ok(AudioTranscoder {
            decoder,
            encoder: AacEncoder::new(sample_rate, channels, bitrate_bps)?,
            pcm: vec![0; 8 * 2048],
            sample_rate,
            base_pts: None,
            decode_errors: 0,
        })
    }

    /// The re-encoded stream's config (for the packager's audio rendition).
    pub fn config(&self) -> &AudioSpecificConfig {
        self.encoder.config()
    }

    /// One source access unit in; re-encoded packets out. A unit that does not
    /// decode is counted and skipped (the next one decodes on its own).
    pub fn push(&mut self, packet: &Packet, out: &mut dyn FnMut(Packet)) -> Result<(), StageError> {
        let base = *self.base_pts.get_or_insert(packet.pts);
        let mut pcm = std::mem::take(&mut self.pcm);
        let n = match self.decoder.decode(&packet.data, &mut pcm) {
            Ok(n) => n,
            Err(_) => {
                self.decode_errors += 1;
                self.pcm = pcm;
                return Ok(());
            }
        };
        let (rate, stream, arrival) = (self.sample_rate as i128, packet.stream, packet.arrival);
        let r = self.encoder.encode(&pcm[..n], &mut |first, au| {
            let pts = base + (first as i128 * crate::media::TIMESCALE as i128 / rate) as i64;
            out(Packet {
                stream,
                track: crate::media::Track::Audio,
                dts: pts,
                pts,
                keyframe: true,
                discontinuity: false,
                data: au,
                arrival,
            })
        });
        if pcm.len() < 8 * 2048 {
            pcm.resize(8 * 2048, 0);
        }
        self.pcm = pcm;
        // The encoder knows no time: the error names the unit it came from.
        r.map_err(|e| match e {
            StageError::Encode { rung, reason, .. } => StageError::Encode {
                rung,
                pts: packet.pts,
                reason,
            },
            e => e,
        })
    }
}

/// A sine tone, interleaved stereo or mono 16-bit: `level_dbfs` (e.g. −18,
/// the EBU alignment level) at `hz`, continuing phase across calls.
pub struct Tone {
    hz: f64,
    amplitude: f64,
    sample_rate: u32,
    channels: usize,
    n: u64,
}

impl Tone {
    pub fn new(hz: f64, level_dbfs: f64, sample_rate: u32, channels: usize) -> Self {
        Tone {
            hz,
            amplitude: 32767.0 * 10f64.powf(level_dbfs / 20.0),
            sample_rate,
            channels,
            n: 0,
        }
    }

    /// The next `samples` samples per channel, appended to `pcm`.
    pub fn fill(&mut self, samples: usize, pcm: &mut Vec<i16>) {
        for _ in 0..samples {
            let t = self.n as f64 / self.sample_rate as f64;
            let v =
                (self.amplitude * (2.0 * std::f64::consts::PI * self.hz * t).sin()).round() as i16;
            for _ in 0..self.channels {
                pcm.push(v);
            }
            self.n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoder's own config is AAC-LC at the asked rate and layout; a second
    /// of tone gives ~47 access units averaging the asked bitrate.
    #[test]
    fn tone_encodes_to_aac_lc_at_the_bitrate() {
        let mut enc = AacEncoder::new(48_000, 2, 128_000).unwrap();
        assert_eq!(enc.config().object_type, 2);
        assert_eq!(enc.config().sample_rate, 48_000);
        assert_eq!(enc.config().channels, 2);
        let mut tone = Tone::new(1000.0, -18.0, 48_000, 2);
        let (mut units, mut bytes, mut last) = (0u64, 0usize, None);
        for _ in 0..10 {
            let mut pcm = Vec::new();
            tone.fill(4800, &mut pcm);
            enc.encode(&pcm, &mut |first, au| {
                if let Some(prev) = last {
                    assert_eq!(first, prev + FRAME_SAMPLES);
                }
                last = Some(first);
                units += 1;
                bytes += au.len();
            })
            .unwrap();
        }
        // 48000 samples in, minus what the encoder still holds.
        assert!((44..=47).contains(&units), "{units} access units");
        let kbps = bytes as f64 * 8.0 / (units as f64 * 1024.0 / 48_000.0) / 1000.0;
        assert!((110.0..=145.0).contains(&kbps), "{kbps:.1} kbit/s");
    }

    /// 128 kbit/s in, 64 kbit/s out: one output unit per input unit (after the
    /// encoder's priming), timed on the sample clock from the first pts, and
    /// the new bitrate.
    #[test]
    fn reencode_changes_the_bitrate_and_keeps_the_clock() {
        let mut src = AacEncoder::new(48_000, 2, 128_000).unwrap();
        let mut tone = Tone::new(1000.0, -18.0, 48_000, 2);
        let mut pcm = Vec::new();
        tone.fill(48_000 * 3, &mut pcm);
        let mut units = Vec::new();
        src.encode(&pcm, &mut |first, au| units.push((first, au)))
            .unwrap();
        let mut tx = AudioTranscoder::new(src.config(), 64_000).unwrap();
        assert_eq!(tx.config().sample_rate, 48_000);
        let now = std::time::Instant::now();
        let mut out = Vec::new();
        for (first, au) in &units {
            let p = Packet {
                stream: 1,
                track: crate::media::Track::Audio,
                pts: 900_000 + (*first as i64) * 90_000 / 48_000,
                dts: 900_000 + (*first as i64) * 90_000 / 48_000,
                keyframe: true,
                discontinuity: false,
                data: au.clone(),
                arrival: now,
            };
            tx.push(&p, &mut |o| out.push(o)).unwrap();
        }
        assert_eq!(tx.decode_errors, 0);
        assert!(
            out.len() + 3 >= units.len() && out.len() <= units.len(),
            "{} of {}",
            out.len(),
            units.len()
        );
        assert_eq!(out[0].pts, 900_000);
        assert!(
            out.windows(2).all(|w| w[1].pts - w[0].pts == 1920),
            "1024 samples = 1920 ticks"
        );
        let bytes: usize = out.iter().map(|p| p.data.len()).sum();
        let kbps = bytes as f64 * 8.0 / (out.len() as f64 * 1024.0 / 48_000.0) / 1000.0;
        assert!((55.0..=75.0).contains(&kbps), "{kbps:.1} kbit/s");
    }

    #[test]
    fn tone_level_is_what_was_asked() {
        let mut t = Tone::new(1000.0, -18.0, 48_000, 1);
        let mut pcm = Vec::new();
        t.fill(48_000, &mut pcm);
        let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap() as f64;
        let dbfs = 20.0 * (peak / 32767.0).log10();
        assert!((dbfs + 18.0).abs() < 0.1, "{dbfs:.2} dBFS");
    }
}
