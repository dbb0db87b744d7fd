//! Which renditions a stream gets: its rungs, and how its audio becomes the
//! audio rendition. One copy, used by the live driver and `ladderd transcode`.

use crate::config::Ladder;
use crate::media::aac::AudioSpecificConfig;
use crate::media::h264::AvcConfig;
use crate::media::{CodecConfig, Packet};
use crate::package::{RungInfo, RungPicture};
use crate::transcode::audio::AudioTranscoder;
use crate::transcode::ladder::{plan, replan, Rung};
use crate::transcode::EncodedFrame;

/// How a publisher's audio becomes the stream's audio rendition.
pub enum AudioRoute {
    /// AAC passed through as sent.
    Pass(AudioSpecificConfig),
    /// Re-encoded to AAC at `ladder.audio_kbps`: configured with
    /// `ladder.audio_reencode`, and always for MP3 (players want AAC in CMAF).
    Reencode(AudioTranscoder),
    /// No audio rendition; the reason, for the log.
    Dropped(String),
}

impl AudioRoute {
    /// The route for a publisher's audio configuration. A re-encoder that cannot
    /// start falls back to passthrough for AAC (said in the returned note) and
    /// drops MP3.
    pub fn choose(config: &CodecConfig, ladder: &Ladder) -> (AudioRoute, Option<String>) {
        let bps = ladder.audio_kbps * 1000;
        match config {
            CodecConfig::Aac(asc) if ladder.audio_reencode => {
                match AudioTranscoder::new(asc, bps) {
                    Ok(t) => (AudioRoute::Reencode(t), None),
                    Err(e) => (
                        AudioRoute::Pass(asc.clone()),
                        Some(format!("audio passed through, not re-encoded: {e}")),
                    ),
                }
            }
            CodecConfig::Aac(asc) => (AudioRoute::Pass(asc.clone()), None),
            CodecConfig::Mp3(mp3) => match AudioTranscoder::from_mp3(mp3, bps) {
                Ok(t) => (AudioRoute::Reencode(t), None),
                Err(e) => {
                    let why = format!("MP3 audio dropped: {e}");
                    (AudioRoute::Dropped(why.clone()), Some(why))
                }
            },
            CodecConfig::Avc(_) => (AudioRoute::Dropped("not audio".into()), None),
        }
    }

    /// The audio rendition's configuration (what its init segment says).
    pub fn config(&self) -> Option<&AudioSpecificConfig> {
        match self {
            AudioRoute::Pass(asc) => Some(asc),
            AudioRoute::Reencode(t) => Some(t.config()),
            AudioRoute::Dropped(_) => None,
        }
    }

    /// One publisher audio packet in; the rendition's AAC frames out. A unit the
    /// re-encoder cannot take is skipped (its init is the re-encoder's), never
    /// passed through.
    pub fn push(
        &mut self,
        p: &Packet,
        out: &mut dyn FnMut(&Packet),
    ) -> Result<(), crate::transcode::StageError> {
        match self {
            AudioRoute::Pass(_) => {
                out(p);
                Ok(())
            }
            AudioRoute::Reencode(t) => t.push(p, &mut |o| out(&o)),
            AudioRoute::Dropped(_) => Ok(()),
        }
    }
}

/// The rungs for a source: the configured ladder planned for it, or, when the
/// source changes within a publish, the rungs players already hold re-fitted
/// to it (see [`replan`]).
pub fn rungs_for(
    ladder: &Ladder,
    previous: Option<&[Rung]>,
    source: &AvcConfig,
    fps: f64,
) -> Vec<Rung> {
    match previous {
        Some(previous) => replan(previous, &ladder.rungs, source.width, source.height, fps),
        None => plan(&ladder.rungs, source.width, source.height, fps),
    }
}

/// The rungs as the packager names and describes them.
pub fn rung_infos<'a>(rungs: impl IntoIterator<Item = &'a Rung>) -> Vec<RungInfo> {
    rungs
        .into_iter()
        .map(|r| RungInfo {
            name: r.name.clone(),
            fps: r.fps,
            bitrate_bps: r.bitrate_bps,
        })
        .collect()
}

/// An encoded rung picture as the packager takes it.
pub fn picture(f: &EncodedFrame) -> RungPicture<'_> {
    RungPicture {
        pts: f.pts,
        dts: f.dts,
        keyframe: f.keyframe,
        data: &f.data,
        arrival: f.arrival,
    }
}

/// The source frame rate: from the SPS, else `onMetaData`'s `framerate`, else 30.
pub fn source_fps(cfg: &AvcConfig, metadata: Option<&serde_json::Value>) -> f64 {
    cfg.fps
        .or_else(|| metadata?.get("framerate")?.as_f64())
        .filter(|f| (1.0..=240.0).contains(f))
        .unwrap_or(30.0)
}
