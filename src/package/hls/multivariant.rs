//! The multivariant playlist: variants, the audio group, content steering.

use std::fmt::Write;

use crate::package::published::RenditionKind;

/// One variant of the multivariant playlist: a video rendition (with the
/// audio group), or the audio rendition alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub uri: String,
    /// Peak and average bits per second, audio included.
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    pub codecs: String,
    /// `None`: the audio-only variant (no RESOLUTION, no AUDIO group: its URI
    /// is the audio).
    pub video: Option<VideoFormat>,
}

/// A video variant's picture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoFormat {
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
}

/// The audio rendition every variant refers to.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioMedia {
    pub uri: String,
    pub channels: u8,
}

pub const AUDIO_GROUP: &str = "aud";

/// What the multivariant playlist needs to know of one rendition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RenditionSummary {
    pub name: String,
    pub codecs: String,
    pub kind: RenditionKind,
    /// (average, peak) bits per second of its complete segments; `None` until
    /// it has one (it is listed only then: a whole segment to start from).
    pub measured_bps: Option<(u64, u64)>,
    pub ended: bool,
}

/// A video rendition's peak bits per second as the playlists state it: the
/// measured peak, never below the measured average or the encoder's target.
/// (HLS's BANDWIDTH adds the audio's; DASH lists audio on its own.)
pub fn video_peak_bps((average, peak): (u64, u64), nominal_bps: u64) -> u64 {
    peak.max(average.max(nominal_bps))
}

/// The multivariant playlist of a stream's renditions (`NAME/PLAYLIST` URIs),
/// or `None` while no video rendition can be listed. BANDWIDTH is the peak
/// (never below the average or the encoder's target), audio included;
/// AVERAGE-BANDWIDTH the measured average, audio included.
pub fn multivariant(
    renditions: &[RenditionSummary],
    playlist_name: &str,
    steering: Option<Steering<'_>>,
) -> Option<String> {
    let audio = renditions.iter().find_map(|r| match r.kind {
        RenditionKind::Audio {
            channels,
            nominal_bps,
        } => Some((r, channels, nominal_bps)),
        _ => None,
    });
    let audio_bps = audio.map_or(0, |(r, _, nominal)| r.measured_bps.map_or(nominal, |m| m.1));
    let audio_avg_bps = audio.map_or(0, |(r, _, nominal)| r.measured_bps.map_or(nominal, |m| m.0));
    let mut variants = Vec::new();
    for r in renditions {
        let RenditionKind::Video {
            width,
            height,
            fps,
            nominal_bps,
        } = r.kind
        else {
            continue;
        };
        let Some((avg, peak)) = r.measured_bps else {
            continue;
        };
        if r.ended {
            continue;
        }
        // What it measured, not the encoder's target: an easy picture comes in
        // far under the target, and players choosing by AVERAGE-BANDWIDTH would
        // step down for nothing.
        let average = avg + audio_avg_bps;
        let mut codecs = r.codecs.clone();
        if let Some((a, _, _)) = audio {
            codecs = format!("{codecs},{}", a.codecs);
        }
        variants.push(Variant {
            uri: format!("{}/{playlist_name}", r.name),
            bandwidth: video_peak_bps((avg, peak), nominal_bps) + audio_bps,
            average_bandwidth: average,
            codecs,
            video: Some(VideoFormat {
                width,
                height,
                frame_rate: fps,
            }),
        });
    }
    if variants.is_empty() {
        return None;
    }
    // Highest first: players that take the first variant start on the best.
    variants.sort_by_key(|v| std::cmp::Reverse(v.bandwidth));
    // The audio-only variant (the seed's "audio-only mode"), listed last so no
    // player starts on it; hls.js drops it from a master with video variants.
    if let Some((a, _, nominal)) = audio.filter(|(a, _, _)| !a.ended) {
        if let Some((avg, peak)) = a.measured_bps {
            variants.push(Variant {
                uri: format!("{}/{playlist_name}", a.name),
                bandwidth: video_peak_bps((avg, peak), nominal),
                average_bandwidth: avg,
                codecs: a.codecs.clone(),
                video: None,
            });
        }
    }
    let audio_media = audio.map(|(r, channels, _)| AudioMedia {
        uri: format!("{}/{playlist_name}", r.name),
        channels,
    });
    Some(multivariant_playlist(
        &variants,
        audio_media.as_ref(),
        steering,
    ))
}

/// Content steering in a multivariant playlist: every variant is listed once
/// per pathway (CDN), under that CDN's address, and the player asks
/// `server_uri` which pathway to use.
#[derive(Debug, Clone, Copy)]
pub struct Steering<'a> {
    /// `SERVER-URI`: where the steering manifest is.
    pub server_uri: &'a str,
    /// (`PATHWAY-ID`, the stream's directory on that CDN ending in `/`), in priority order.
    pub pathways: &'a [(String, String)],
}

pub fn multivariant_playlist(
    variants: &[Variant],
    audio: Option<&AudioMedia>,
    steering: Option<Steering<'_>>,
) -> String {
    let mut o = String::with_capacity(1024);
    let _ = writeln!(o, "#EXTM3U");
    let _ = writeln!(o, "#EXT-X-VERSION:7");
    let _ = writeln!(o, "#EXT-X-INDEPENDENT-SEGMENTS");
    // Without steering, one unnamed pathway with relative URIs.
    let one = [(String::new(), String::new())];
    let pathways: &[(String, String)] = match steering {
        Some(s) if !s.pathways.is_empty() => {
            let _ = writeln!(
                o,
                "#EXT-X-CONTENT-STEERING:SERVER-URI=\"{}\",PATHWAY-ID=\"{}\"",
                s.server_uri, s.pathways[0].0
            );
            s.pathways
        }
        _ => &one,
    };
    for (id, base) in pathways {
        // A rendition group per pathway: a group's URIs are one CDN's, and
        // hls.js tells a failing audio load's pathway by its group.
        let group = if id.is_empty() {
            AUDIO_GROUP.to_string()
        } else {
            format!("{AUDIO_GROUP}-{id}")
        };
        if let Some(a) = audio {
            let _ = writeln!(
                o,
                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{group}\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"{}\",URI=\"{base}{}\"",
                a.channels, a.uri
            );
        }
        for v in variants {
            let _ = write!(
                o,
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"",
                v.bandwidth, v.average_bandwidth, v.codecs
            );
            if let Some(f) = v.video {
                let _ = write!(
                    o,
                    ",RESOLUTION={}x{},FRAME-RATE={:.3}",
                    f.width, f.height, f.frame_rate
                );
                if audio.is_some() {
                    let _ = write!(o, ",AUDIO=\"{group}\"");
                }
            }
            if !id.is_empty() {
                // The same variant on every pathway: a player keeps its
                // rendition when it changes CDN.
                let stable = v.uri.split('/').next().unwrap_or_default();
                let _ = write!(o, ",PATHWAY-ID=\"{id}\",STABLE-VARIANT-ID=\"{stable}\"");
            }
            let _ = writeln!(o);
            let _ = writeln!(o, "{base}{}", v.uri);
        }
    }
    o
}
