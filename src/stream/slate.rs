//! What a stream shows while its input is lost: a "signal lost" picture with
//! the stream's name and the clock, plus silence, made in-process at the
//! source's size and frame rate and paced in real time. It enters the
//! driver as [`Input`]s like a publisher's, so every rendition goes on and
//! players keep playing; the packager's re-base puts it on the same clock.

use std::time::{Duration, Instant};

use crate::media::aac::AudioSpecificConfig;
use crate::media::{CodecConfig, StreamId, Track};
use crate::stream::Input;
use crate::transcode::pattern::{PatternError, PatternSource, ToneSource};

/// The slate's video bitrate: a still picture needs little.
const VIDEO_KBPS: u32 = 400;
const AUDIO_BPS: u32 = 64_000;

pub struct Slate {
    video: PatternSource,
    audio: Option<ToneSource>,
    fps: u32,
    started: Instant,
    /// Pictures made so far.
    n: u64,
    stream: StreamId,
}

impl Slate {
    /// A slate of the source's `size`, `fps` (rounded, 1–60), a keyframe every
    /// `segment_secs`, with silence in `audio`'s rate and layout (none when
    /// the stream has no audio rendition).
    pub fn new(
        name: &str,
        size: (u32, u32),
        fps: f64,
        segment_secs: f64,
        audio: Option<&AudioSpecificConfig>,
        stream: StreamId,
        now: Instant,
    ) -> Result<Slate, PatternError> {
        let fps = (fps.round() as u32).clamp(1, 60);
        let gop = ((fps as f64 * segment_secs).round() as u64).max(1);
        let video =
            PatternSource::slate(size.0.max(16), size.1.max(16), fps, VIDEO_KBPS, gop, name)?;
        let audio = match audio {
            Some(a) if a.sample_rate > 0 && (1..=2).contains(&a.channels) => {
                Some(ToneSource::silence(a.sample_rate, a.channels, AUDIO_BPS)?)
            }
            _ => None,
        };
        Ok(Slate {
            video,
            audio,
            fps,
            started: now,
            n: 0,
            stream,
        })
    }

    /// When the next picture is due.
    pub fn next_due(&self) -> Instant {
        self.started + self.at(self.n)
    }

    fn at(&self, n: u64) -> Duration {
        Duration::from_secs_f64(n as f64 / self.fps as f64)
    }

    /// Every picture (and the silence up to it) due by `now`, in time order;
    /// the video configuration comes before the first picture.
    pub fn due(&mut self, now: Instant, out: &mut Vec<Input>) -> Result<(), PatternError> {
        while self.next_due() <= now {
            self.n += 1;
            if let Some((config, packet)) = self.video.next(self.stream)? {
                if let Some(config) = config {
                    out.push(Input::Config(CodecConfig::Avc(config)));
                }
                out.push(Input::Packet(packet));
            }
            let until = self.at(self.n);
            if let Some(a) = &mut self.audio {
                a.until(until, self.stream, &mut |p| {
                    debug_assert_eq!(p.track, Track::Audio);
                    out.push(Input::Packet(p));
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second of slate: 30 pictures (the first a keyframe after the
    /// config, decodable as H.264) and 48 kHz silence up to the last one,
    /// every timestamp rising from 0.
    #[test]
    fn a_second_of_slate_is_pictures_and_silence_on_one_clock() {
        let asc = AudioSpecificConfig {
            raw: bytes::Bytes::from_static(&[0x11, 0x90]),
            object_type: 2,
            sample_rate: 48_000,
            channels: 2,
        };
        let t0 = Instant::now();
        let mut slate = Slate::new("live/cam", (320, 180), 30.0, 2.0, Some(&asc), 7, t0).unwrap();
        let mut out = Vec::new();
        slate
            .due(t0 + Duration::from_millis(999), &mut out)
            .unwrap();
        assert!(matches!(out[0], Input::Config(CodecConfig::Avc(_))));
        let packets: Vec<_> = out
            .iter()
            .filter_map(|i| match i {
                Input::Packet(p) => Some(p),
                _ => None,
            })
            .collect();
        let video: Vec<_> = packets.iter().filter(|p| p.track == Track::Video).collect();
        let audio: Vec<_> = packets.iter().filter(|p| p.track == Track::Audio).collect();
        assert_eq!(video.len(), 30);
        assert!(video[0].keyframe && video[0].pts == 0);
        assert!(video.windows(2).all(|w| w[1].pts == w[0].pts + 3000));
        // 1 s of 48 kHz in 1024-sample AAC frames, less the encoder's delay.
        assert!((40..=47).contains(&audio.len()), "{}", audio.len());
        assert!(audio.windows(2).all(|w| w[1].pts > w[0].pts));
        // Nothing more is due until the next picture's time.
        out.clear();
        slate
            .due(t0 + Duration::from_millis(999), &mut out)
            .unwrap();
        assert!(out.is_empty());
        assert_eq!(slate.next_due(), t0 + Duration::from_secs(1));
    }
}
