//! HLS playlists: multivariant, LL-HLS media (parts, preload hint, delta
//! updates, rendition reports) and standard media playlists. Sans-IO: a
//! description of what the store holds in, playlist text out.

use std::fmt::Write;

/// One published part, as a playlist lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartEntry {
    pub duration: f64,
    pub independent: bool,
}

/// One segment (complete, or the one still receiving parts).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentEntry {
    pub msn: u64,
    pub duration: f64,
    pub pdt_ms: u64,
    pub discontinuity: bool,
    pub init_version: u32,
    pub parts: Vec<PartEntry>,
    pub complete: bool,
    /// Decode time of its first sample, in `timescale` ticks (DASH's `S@t`).
    pub start: u64,
    pub timescale: u32,
}

/// The stream-wide LL-HLS timing, identical in every rendition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub target_duration: u64,
    pub part_target: f64,
    /// The segment length the ladder aims for (boundaries fall on it).
    pub segment_target: f64,
    /// Wall-clock time (Unix ms) of media time 0: every rendition's decode
    /// times count from it (PROGRAM-DATE-TIME = this + media time), so it is
    /// DASH's `availabilityStartTime`.
    pub media_epoch_ms: u64,
}

impl Timing {
    pub fn part_hold_back(&self) -> f64 {
        3.0 * self.part_target
    }
    pub fn hold_back(&self) -> f64 {
        3.0 * self.target_duration as f64
    }
    pub fn can_skip_until(&self) -> f64 {
        6.0 * self.target_duration as f64
    }
}

/// Another rendition's newest part, for `EXT-X-RENDITION-REPORT`.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionReport {
    pub uri: String,
    pub last_msn: u64,
    pub last_part: u32,
}

/// Everything an LL-HLS media playlist shows.
#[derive(Debug, Clone)]
pub struct MediaPlaylist<'a> {
    pub timing: Timing,
    /// Oldest first; the last one may be incomplete.
    pub segments: &'a [SegmentEntry],
    pub discontinuity_sequence: u64,
    pub reports: &'a [RenditionReport],
    /// Segments whose parts are listed: the last few (spec: ≥ those within
    /// PART-HOLD-BACK of the end).
    pub part_segments: usize,
    /// `_HLS_skip=YES|v2` was asked for.
    pub skip: bool,
    /// The stream has ended: `EXT-X-ENDLIST`, no preload hint.
    pub ended: bool,
    /// In front of every object URI: the run's directory (`e{EPOCH}/`), so
    /// a URI is never reused by a later run of the NAME and caches may keep
    /// it forever; `""` where the objects sit beside the playlist.
    pub prefix: &'a str,
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time in milliseconds.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        ms % 1000
    )
}

/// A media object's file name within its rendition: what [`part_uri`],
/// [`segment_uri`], [`init_uri`] and [`long_segment_uri`] write, and
/// [`parse_object_name`] reads back (the origin's only URI grammar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectName {
    Init(u32),
    Part(u64, u32),
    Segment(u64),
    Long(u64),
}

impl ObjectName {
    pub fn uri(self) -> String {
        match self {
            ObjectName::Init(v) => init_uri(v),
            ObjectName::Part(msn, i) => part_uri(msn, i),
            ObjectName::Segment(msn) => segment_uri(msn),
            ObjectName::Long(n) => long_segment_uri(n),
        }
    }
}

/// File names the packager publishes; anything else (`..` included) is not ours.
pub fn parse_object_name(file: &str) -> Option<ObjectName> {
    fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
        // Digits only: no signs, no spaces, no leading zeros (one name per
        // object: `seg07.m4s` is not a second, separately cached `seg7.m4s`).
        // Out of the type's range: not ours either.
        let canonical = s == "0" || !s.starts_with('0');
        (!s.is_empty() && canonical && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())?
    }
    if let Some(v) = file
        .strip_prefix("init")
        .and_then(|f| f.strip_suffix(".mp4"))
    {
        return num(v).map(ObjectName::Init);
    }
    let stem = file.strip_suffix(".m4s")?;
    if let Some(rest) = stem.strip_prefix("part") {
        let (msn, i) = rest.split_once('.')?;
        return Some(ObjectName::Part(num(msn)?, num(i)?));
    }
    if let Some(n) = stem.strip_prefix("seg") {
        return num(n).map(ObjectName::Segment);
    }
    stem.strip_prefix("long")
        .and_then(num)
        .map(ObjectName::Long)
}

pub fn part_uri(msn: u64, index: u32) -> String {
    format!("part{msn}.{index}.m4s")
}
pub fn segment_uri(msn: u64) -> String {
    format!("seg{msn}.m4s")
}
pub fn init_uri(version: u32) -> String {
    format!("init{version}.mp4")
}
pub fn long_segment_uri(n: u64) -> String {
    format!("long{n}.m4s")
}

/// The tags in front of a segment: DISCONTINUITY, MAP when the init
/// segment changes, PROGRAM-DATE-TIME.
fn segment_head(
    o: &mut String,
    discontinuity: bool,
    init_version: u32,
    pdt_ms: u64,
    map: &mut Option<u32>,
    prefix: &str,
) {
    if discontinuity {
        let _ = writeln!(o, "#EXT-X-DISCONTINUITY");
    }
    if *map != Some(init_version) {
        let _ = writeln!(o, "#EXT-X-MAP:URI=\"{prefix}{}\"", init_uri(init_version));
        *map = Some(init_version);
    }
    let _ = writeln!(o, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(pdt_ms));
}

/// How many leading segments a delta update skips: those that start more
/// than CAN-SKIP-UNTIL before the end of the playlist.
pub fn skippable(segments: &[SegmentEntry], timing: &Timing) -> usize {
    let total: f64 = segments.iter().map(|s| s.duration).sum();
    let mut start = 0.0;
    let mut n = 0;
    for s in segments {
        if !s.complete || total - start <= timing.can_skip_until() {
            break;
        }
        start += s.duration;
        n += 1;
    }
    n
}

/// The LL-HLS media playlist.
pub fn media_playlist(p: &MediaPlaylist) -> String {
    let t = &p.timing;
    let mut o = String::with_capacity(2048);
    let _ = writeln!(o, "#EXTM3U");
    let _ = writeln!(o, "#EXT-X-VERSION:9");
    let _ = writeln!(o, "#EXT-X-TARGETDURATION:{}", t.target_duration);
    let _ = writeln!(
        o,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={:.1},PART-HOLD-BACK={:.3},HOLD-BACK={:.1}",
        t.can_skip_until(),
        t.part_hold_back(),
        t.hold_back()
    );
    let _ = writeln!(o, "#EXT-X-PART-INF:PART-TARGET={:.5}", t.part_target);
    let first = p.segments.first().map_or(0, |s| s.msn);
    let _ = writeln!(o, "#EXT-X-MEDIA-SEQUENCE:{first}");
    let _ = writeln!(
        o,
        "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
        p.discontinuity_sequence
    );
    let skipped = if p.skip { skippable(p.segments, t) } else { 0 };
    if skipped > 0 {
        let _ = writeln!(o, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    }
    let parts_from = p.segments.len().saturating_sub(p.part_segments);
    let mut map: Option<u32> = None;
    for (i, s) in p.segments.iter().enumerate().skip(skipped) {
        segment_head(
            &mut o,
            s.discontinuity && i > 0,
            s.init_version,
            s.pdt_ms,
            &mut map,
            p.prefix,
        );
        if i >= parts_from {
            for (k, part) in s.parts.iter().enumerate() {
                let _ = write!(
                    o,
                    "#EXT-X-PART:DURATION={:.5},URI=\"{}{}\"",
                    part.duration,
                    p.prefix,
                    part_uri(s.msn, k as u32)
                );
                let _ = writeln!(
                    o,
                    "{}",
                    if part.independent {
                        ",INDEPENDENT=YES"
                    } else {
                        ""
                    }
                );
            }
        }
        if s.complete {
            let _ = writeln!(o, "#EXTINF:{:.5},", s.duration);
            let _ = writeln!(o, "{}{}", p.prefix, segment_uri(s.msn));
        }
    }
    if p.ended {
        let _ = writeln!(o, "#EXT-X-ENDLIST");
    } else {
        // Hint the part that comes next: the next segment's first once this
        // one is as long as a segment gets.
        let (msn, part) = match p.segments.last() {
            Some(s) if !s.complete && s.duration + t.part_target / 2.0 < t.segment_target => {
                (s.msn, s.parts.len() as u32)
            }
            Some(s) => (s.msn + 1, 0),
            None => (0, 0),
        };
        let _ = writeln!(
            o,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}{}\"",
            p.prefix,
            part_uri(msn, part)
        );
    }
    for r in p.reports {
        let _ = writeln!(
            o,
            "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={},LAST-PART={}",
            r.uri, r.last_msn, r.last_part
        );
    }
    o
}

/// A standard-HLS segment made of `group` consecutive LL segments.
#[derive(Debug, Clone, PartialEq)]
pub struct LongSegment {
    pub n: u64,
    pub duration: f64,
    pub pdt_ms: u64,
    pub discontinuity: bool,
    pub init_version: u32,
}

/// Groups complete LL segments into standard-HLS segments: `n` covers msns
/// `n*group .. (n+1)*group`, and only whole groups are listed. A discontinuity
/// inside a group ends it there (one segment never spans a timeline break or
/// two init segments): the group is whole up to the break, the LL segments
/// from the break to the next group are left out of standard HLS, and the
/// next group carries the discontinuity.
pub fn long_segments(segments: &[SegmentEntry], group: u64) -> Vec<LongSegment> {
    let group = group.max(1);
    let mut out: Vec<LongSegment> = Vec::new();
    let mut members = 0;
    // The last group was cut short by a discontinuity inside it.
    let mut cut = false;
    let mut pending_discontinuity = false;
    for s in segments.iter().filter(|s| s.complete) {
        let n = s.msn / group;
        match out.last_mut() {
            Some(last) if last.n == n && cut => {}
            Some(last) if last.n == n && s.discontinuity => {
                cut = true;
                pending_discontinuity = true;
            }
            Some(last) if last.n == n => {
                last.duration += s.duration;
                members += 1;
            }
            _ => {
                if members != group && !cut && !out.is_empty() {
                    out.pop();
                }
                cut = false;
                if s.msn % group != 0 {
                    // The window starts inside this group: it is not whole.
                    members = 0;
                    pending_discontinuity |= s.discontinuity;
                    continue;
                }
                out.push(LongSegment {
                    n,
                    duration: s.duration,
                    pdt_ms: s.pdt_ms,
                    discontinuity: s.discontinuity || std::mem::take(&mut pending_discontinuity),
                    init_version: s.init_version,
                });
                members = 1;
            }
        }
    }
    if members != group && !cut {
        out.pop();
    }
    out
}

/// The head of a media playlist of whole segments (no parts): the standard
/// and DVR playlists.
fn whole_segments_head(
    o: &mut String,
    target: u64,
    media_sequence: u64,
    discontinuity_sequence: u64,
) {
    let _ = writeln!(o, "#EXTM3U");
    let _ = writeln!(o, "#EXT-X-VERSION:7");
    let _ = writeln!(o, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(o, "#EXT-X-MEDIA-SEQUENCE:{media_sequence}");
    let _ = writeln!(o, "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}");
}

/// The standard (non-LL) media playlist over whole groups; `prefix` as in
/// [`MediaPlaylist::prefix`].
pub fn standard_playlist(
    segments: &[LongSegment],
    discontinuity_sequence: u64,
    ended: bool,
    prefix: &str,
) -> String {
    let target = segments
        .iter()
        .map(|s| s.duration.round() as u64)
        .max()
        .unwrap_or(6)
        .max(1);
    let mut o = String::with_capacity(1024);
    whole_segments_head(
        &mut o,
        target,
        segments.first().map_or(0, |s| s.n),
        discontinuity_sequence,
    );
    let mut map = None;
    for (i, s) in segments.iter().enumerate() {
        segment_head(
            &mut o,
            s.discontinuity && i > 0,
            s.init_version,
            s.pdt_ms,
            &mut map,
            prefix,
        );
        let _ = writeln!(o, "#EXTINF:{:.5},", s.duration);
        let _ = writeln!(o, "{prefix}{}", long_segment_uri(s.n));
    }
    if ended {
        let _ = writeln!(o, "#EXT-X-ENDLIST");
    }
    o
}

/// A run of a NAME's DVR timeline as a playlist lists it: its segments,
/// and the prefix of their URIs (`e{EPOCH}/`; `""` for a recording's flat
/// directory).
#[derive(Debug, Clone, Copy)]
pub struct DvrRun<'a> {
    pub prefix: &'a str,
    pub segments: &'a [SegmentEntry],
}

/// A DVR media playlist: every whole segment of the rewind window (earlier
/// runs of the NAME from disk, then this run's on disk, then those only in
/// RAM so far). A new run, or a segment whose number does not follow the
/// one before (one the disk lost), starts with a discontinuity, so a player
/// never plays across the hole as if it were not there. `media_sequence`
/// and `discontinuity_sequence` are the first segment's.
pub fn dvr_playlist(
    runs: &[DvrRun],
    media_sequence: u64,
    discontinuity_sequence: u64,
    ended: bool,
) -> String {
    whole_segments_playlist(runs, media_sequence, discontinuity_sequence, ended, false)
}

/// A recording's media playlist (live-to-VOD): every segment,
/// `EXT-X-PLAYLIST-TYPE:VOD` and `EXT-X-ENDLIST`.
pub fn vod_playlist(segments: &[SegmentEntry]) -> String {
    let first = segments.first().map_or(0, |s| s.msn);
    whole_segments_playlist(
        &[DvrRun {
            prefix: "",
            segments,
        }],
        first,
        0,
        true,
        true,
    )
}

fn whole_segments_playlist(
    runs: &[DvrRun],
    media_sequence: u64,
    discontinuity_sequence: u64,
    ended: bool,
    vod: bool,
) -> String {
    let all = || {
        runs.iter()
            .flat_map(|r| r.segments.iter().map(move |s| (r.prefix, s)))
    };
    let target = all()
        .map(|(_, s)| s.duration.round() as u64)
        .max()
        .unwrap_or(2)
        .max(1);
    let count = all().count();
    let mut o = String::with_capacity(64 * count + 256);
    whole_segments_head(&mut o, target, media_sequence, discontinuity_sequence);
    if vod {
        let _ = writeln!(o, "#EXT-X-PLAYLIST-TYPE:VOD");
    }
    let mut map = None;
    let mut prev: Option<(&str, &SegmentEntry)> = None;
    for (prefix, s) in all() {
        let tag =
            prev.is_some_and(|(p, last)| p != prefix || s.discontinuity || last.msn + 1 != s.msn);
        if tag {
            let _ = writeln!(o, "#EXT-X-DISCONTINUITY");
        }
        if map != Some((prefix, s.init_version)) {
            let _ = writeln!(o, "#EXT-X-MAP:URI=\"{prefix}{}\"", init_uri(s.init_version));
            map = Some((prefix, s.init_version));
        }
        let _ = writeln!(o, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(s.pdt_ms));
        let _ = writeln!(o, "#EXTINF:{:.5},", s.duration);
        let _ = writeln!(o, "{prefix}seg{}.m4s", s.msn);
        prev = Some((prefix, s));
    }
    if ended {
        let _ = writeln!(o, "#EXT-X-ENDLIST");
    }
    o
}

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
    pub kind: super::RenditionKind,
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
    use super::RenditionKind;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_round_trip_through_the_origin_grammar() {
        let names = [
            ObjectName::Init(0),
            ObjectName::Init(7),
            ObjectName::Part(0, 0),
            ObjectName::Part(12, 3),
            ObjectName::Part(u64::MAX, u32::MAX),
            ObjectName::Segment(0),
            ObjectName::Segment(123_456),
            ObjectName::Long(2),
        ];
        for n in names {
            assert_eq!(parse_object_name(&n.uri()), Some(n), "{}", n.uri());
        }
        for bad in [
            "seg07.m4s",
            "seg-1.m4s",
            "part1.m4s",
            "part1.2.3.m4s",
            "init.mp4",
            "seg1.mp4",
            "../seg1.m4s",
            "seg 1.m4s",
            "seg18446744073709551616.m4s",
            "long.m4s",
        ] {
            assert_eq!(parse_object_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn multivariant_lists_uris_the_origin_parses() {
        use crate::package::RenditionKind;
        let video = |name: &str, h: u32, nominal: u64| RenditionSummary {
            name: name.into(),
            codecs: "avc1.64001f".into(),
            kind: RenditionKind::Video {
                width: h * 16 / 9,
                height: h,
                fps: 30.0,
                nominal_bps: nominal,
            },
            measured_bps: Some((nominal * 9 / 10, nominal * 11 / 10)),
            ended: false,
        };
        let mut rs = vec![
            video("360p30", 360, 800_000),
            video("720p30", 720, 3_000_000),
            RenditionSummary {
                name: "audio".into(),
                codecs: "mp4a.40.2".into(),
                kind: RenditionKind::Audio {
                    channels: 2,
                    nominal_bps: 128_000,
                },
                measured_bps: Some((120_000, 130_000)),
                ended: false,
            },
        ];
        rs.push(RenditionSummary {
            measured_bps: None,
            ..video("480p30", 480, 1_500_000)
        });
        let text = multivariant(&rs, "index.m3u8", None).unwrap();
        // Highest first; a rendition without a whole segment is not listed yet.
        let uris: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        // The audio-only variant last, at the audio's own peak.
        assert_eq!(
            uris,
            ["720p30/index.m3u8", "360p30/index.m3u8", "audio/index.m3u8"]
        );
        assert!(text.contains("BANDWIDTH=3430000,"), "{text}");
        assert!(
            text.contains(
                "#EXT-X-STREAM-INF:BANDWIDTH=130000,AVERAGE-BANDWIDTH=120000,CODECS=\"mp4a.40.2\"\naudio/index.m3u8\n"
            ),
            "{text}"
        );
        assert!(text.contains("CODECS=\"avc1.64001f,mp4a.40.2\""), "{text}");
        assert!(text.contains("URI=\"audio/index.m3u8\""), "{text}");
        // Every URI a media playlist lists parses back to the object it names.
        let segments: Vec<_> = (0..4).map(|m| seg(m, 6, m < 3)).collect();
        let p = media_playlist(&MediaPlaylist {
            timing: TIMING,
            segments: &segments,
            discontinuity_sequence: 0,
            reports: &[],
            part_segments: 3,
            skip: false,
            ended: false,
            prefix: "",
        });
        let mut uris = 0;
        for line in p.lines() {
            let uri = match line.split_once("URI=\"") {
                Some((_, rest)) => rest.split('"').next().unwrap_or(""),
                None if !line.starts_with('#') && !line.is_empty() => line,
                None => continue,
            };
            uris += 1;
            let name = parse_object_name(uri).unwrap_or_else(|| panic!("{uri} does not parse"));
            assert_eq!(name.uri(), uri);
        }
        assert!(uris > 10, "{p}");
        let long = standard_playlist(&long_segments(&segments[..3], 3), 0, false, "");
        for line in long
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let uri = line
                .split_once("URI=\"")
                .map_or(line, |(_, r)| r.split('"').next().unwrap_or(""));
            assert!(parse_object_name(uri).is_some(), "{uri}");
        }
    }

    fn seg(msn: u64, parts: usize, complete: bool) -> SegmentEntry {
        SegmentEntry {
            msn,
            duration: parts as f64 / 3.0,
            pdt_ms: 1_764_028_800_000 + msn * 2000,
            discontinuity: false,
            init_version: 0,
            parts: (0..parts)
                .map(|i| PartEntry {
                    duration: 1.0 / 3.0,
                    independent: i == 0,
                })
                .collect(),
            complete,
            start: 2 * 90_000 + msn * 2 * 90_000,
            timescale: 90_000,
        }
    }

    const TIMING: Timing = Timing {
        target_duration: 2,
        part_target: 1.0 / 3.0,
        segment_target: 2.0,
        media_epoch_ms: 1_764_028_798_000,
    };

    #[test]
    fn iso8601_matches_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_764_028_800_123), "2025-11-25T00:00:00.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn ll_playlist_lines() {
        let segments = [seg(7, 6, true), seg(8, 2, false)];
        let reports = [RenditionReport {
            uri: "../360p30/playlist.m3u8".into(),
            last_msn: 8,
            last_part: 1,
        }];
        let text = media_playlist(&MediaPlaylist {
            timing: TIMING,
            segments: &segments,
            discontinuity_sequence: 0,
            reports: &reports,
            part_segments: 3,
            skip: false,
            ended: false,
            prefix: "",
        });
        let expected = "\
#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.000,HOLD-BACK=6.0
#EXT-X-PART-INF:PART-TARGET=0.33333
#EXT-X-MEDIA-SEQUENCE:7
#EXT-X-DISCONTINUITY-SEQUENCE:0
#EXT-X-MAP:URI=\"init0.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2025-11-25T00:00:14.000Z
#EXT-X-PART:DURATION=0.33333,URI=\"part7.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"part7.1.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"part7.2.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"part7.3.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"part7.4.m4s\"
#EXT-X-PART:DURATION=0.33333,URI=\"part7.5.m4s\"
#EXTINF:2.00000,
seg7.m4s
#EXT-X-PROGRAM-DATE-TIME:2025-11-25T00:00:16.000Z
#EXT-X-PART:DURATION=0.33333,URI=\"part8.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33333,URI=\"part8.1.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part8.2.m4s\"
#EXT-X-RENDITION-REPORT:URI=\"../360p30/playlist.m3u8\",LAST-MSN=8,LAST-PART=1
";
        assert_eq!(text, expected);
    }

    /// Apple's rules, as assertions over a generated playlist.
    #[test]
    fn apple_rules_hold() {
        let segments: Vec<_> = (0..12)
            .map(|m| seg(m, 6, true))
            .chain([seg(12, 3, false)])
            .collect();
        let text = media_playlist(&MediaPlaylist {
            timing: TIMING,
            segments: &segments,
            discontinuity_sequence: 0,
            reports: &[],
            part_segments: 3,
            skip: false,
            ended: false,
            prefix: "",
        });
        // PART-HOLD-BACK ≥ 3 × PART-TARGET (we promise 3×); HOLD-BACK ≥ 3 × TD.
        assert!(TIMING.part_hold_back() >= 3.0 * TIMING.part_target);
        assert!(TIMING.hold_back() >= 3.0 * TIMING.target_duration as f64);
        // Every EXTINF rounds to ≤ TARGETDURATION; every part ≤ PART-TARGET.
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("#EXTINF:") {
                let d: f64 = v.trim_end_matches(',').parse().unwrap();
                assert!(d.round() as u64 <= TIMING.target_duration);
            }
            if let Some(v) = line.strip_prefix("#EXT-X-PART:DURATION=") {
                let d: f64 = v.split(',').next().unwrap().parse().unwrap();
                assert!(d <= TIMING.part_target + 1e-5);
            }
        }
        // Parts only for the last few segments.
        assert!(!text.contains("part8.0"));
        assert!(text.contains("part10.0") && text.contains("part12.2"));
        // Exactly one preload hint, for the next part.
        assert_eq!(text.matches("PRELOAD-HINT").count(), 1);
        assert!(text.contains("URI=\"part12.3.m4s\""));
    }

    #[test]
    fn delta_update_skips_all_but_the_last_can_skip_until() {
        let segments: Vec<_> = (0..12)
            .map(|m| seg(m, 6, true))
            .chain([seg(12, 3, false)])
            .collect();
        // 12 × 2 s + 1 s: segments starting more than 12 s before the end go.
        assert_eq!(skippable(&segments, &TIMING), 7);
        let text = media_playlist(&MediaPlaylist {
            timing: TIMING,
            segments: &segments,
            discontinuity_sequence: 0,
            reports: &[],
            part_segments: 3,
            skip: true,
            ended: false,
            prefix: "",
        });
        assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=7\n"));
        assert!(!text.contains("seg6.m4s") && text.contains("seg7.m4s"));
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0"));
        // Too short to skip anything.
        assert_eq!(skippable(&segments[..4], &TIMING), 0);
    }

    #[test]
    fn long_segments_are_whole_groups() {
        let segments: Vec<_> = (1..11)
            .map(|m| seg(m, 6, true))
            .chain([seg(11, 2, false)])
            .collect();
        let long = long_segments(&segments, 3);
        // msn 1..2 is a partial group, 3..5, 6..8 whole, 9..10 incomplete.
        assert_eq!(long.iter().map(|l| l.n).collect::<Vec<_>>(), vec![1, 2]);
        assert!((long[0].duration - 6.0).abs() < 1e-9);
        let text = standard_playlist(&long, 0, false, "");
        assert!(text.contains("#EXT-X-TARGETDURATION:6\n"));
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:1\n"));
        assert!(text.contains("long2.m4s\n"));
    }

    /// A break inside a group ends that long segment at the break (bytes of
    /// one init, one timeline); the next whole group carries the discontinuity.
    #[test]
    fn long_segments_end_at_a_discontinuity_inside_the_group() {
        let mut segments: Vec<_> = (0..10).map(|m| seg(m, 6, true)).collect();
        for s in &mut segments[4..] {
            s.init_version = 1;
        }
        segments[4].discontinuity = true;
        let long = long_segments(&segments, 3);
        // 0..2 whole; 3 then the break at 4: group 1 is seg3 alone; 4, 5 left
        // out; 6..8 whole, with the discontinuity and the new init; 9 open.
        assert_eq!(long.iter().map(|l| l.n).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!((long[1].duration - 2.0).abs() < 1e-9);
        assert_eq!(
            long.iter()
                .map(|l| (l.discontinuity, l.init_version))
                .collect::<Vec<_>>(),
            vec![(false, 0), (false, 0), (true, 1)]
        );
        let text = standard_playlist(&long, 0, false, "");
        assert!(text.contains("long1.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init1.mp4\"\n"));
        // A break on a group's first segment changes nothing but the flag.
        let mut segments: Vec<_> = (0..9).map(|m| seg(m, 6, true)).collect();
        segments[3].discontinuity = true;
        let long = long_segments(&segments, 3);
        assert_eq!(
            long.iter()
                .map(|l| (l.n, l.discontinuity))
                .collect::<Vec<_>>(),
            vec![(0, false), (1, true), (2, false)]
        );
    }

    /// A timestamp reset: the segment after it carries EXT-X-DISCONTINUITY,
    /// and evicted discontinuities count in DISCONTINUITY-SEQUENCE.
    #[test]
    fn discontinuity_tags() {
        let mut segments = vec![seg(4, 6, true), seg(5, 6, true), seg(6, 2, false)];
        segments[1].discontinuity = true;
        let text = media_playlist(&MediaPlaylist {
            timing: TIMING,
            segments: &segments,
            discontinuity_sequence: 2,
            reports: &[],
            part_segments: 3,
            skip: false,
            ended: false,
            prefix: "",
        });
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:2\n"));
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
        let at = text.find("#EXT-X-DISCONTINUITY\n").unwrap();
        assert!(text[at..].find("part5.0").unwrap() < text[at..].find("part6.0").unwrap());
        assert!(text[..at].contains("seg4.m4s") && !text[..at].contains("part5.0"));
    }

    #[test]
    fn multivariant_lines() {
        let v = Variant {
            uri: "360p30/playlist.m3u8".into(),
            bandwidth: 1_100_000,
            average_bandwidth: 928_000,
            codecs: "avc1.42c01e,mp4a.40.2".into(),
            video: Some(VideoFormat {
                width: 640,
                height: 360,
                frame_rate: 30.0,
            }),
        };
        let audio_only = Variant {
            uri: "audio/playlist.m3u8".into(),
            bandwidth: 140_000,
            average_bandwidth: 130_000,
            codecs: "mp4a.40.2".into(),
            video: None,
        };
        let a = AudioMedia {
            uri: "audio/playlist.m3u8".into(),
            channels: 2,
        };
        assert_eq!(
            multivariant_playlist(&[v, audio_only], Some(&a), None),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/playlist.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=1100000,AVERAGE-BANDWIDTH=928000,CODECS=\"avc1.42c01e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO=\"aud\"\n\
360p30/playlist.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=140000,AVERAGE-BANDWIDTH=130000,CODECS=\"mp4a.40.2\"\n\
audio/playlist.m3u8\n"
        );
    }

    /// Steering: every variant once per pathway, under the CDN's address,
    /// with its own audio group; the steering tag names the first pathway.
    #[test]
    fn multivariant_with_pathways() {
        let v = Variant {
            uri: "360p30/playlist.m3u8".into(),
            bandwidth: 1_100_000,
            average_bandwidth: 928_000,
            codecs: "avc1.42c01e,mp4a.40.2".into(),
            video: Some(VideoFormat {
                width: 640,
                height: 360,
                frame_rate: 30.0,
            }),
        };
        let a = AudioMedia {
            uri: "audio/playlist.m3u8".into(),
            channels: 2,
        };
        let pathways = [
            (
                "cdn-a".to_string(),
                "https://a.example/live/cam/".to_string(),
            ),
            (
                "cdn-b".to_string(),
                "http://b.example:6081/live/cam/".to_string(),
            ),
        ];
        let text = multivariant_playlist(
            &[v],
            Some(&a),
            Some(Steering {
                server_uri: "steering.json",
                pathways: &pathways,
            }),
        );
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-CONTENT-STEERING:SERVER-URI=\"steering.json\",PATHWAY-ID=\"cdn-a\"\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-cdn-a\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"https://a.example/live/cam/audio/playlist.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=1100000,AVERAGE-BANDWIDTH=928000,CODECS=\"avc1.42c01e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO=\"aud-cdn-a\",PATHWAY-ID=\"cdn-a\",STABLE-VARIANT-ID=\"360p30\"\n\
https://a.example/live/cam/360p30/playlist.m3u8\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud-cdn-b\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"http://b.example:6081/live/cam/audio/playlist.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=1100000,AVERAGE-BANDWIDTH=928000,CODECS=\"avc1.42c01e,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO=\"aud-cdn-b\",PATHWAY-ID=\"cdn-b\",STABLE-VARIANT-ID=\"360p30\"\n\
http://b.example:6081/live/cam/360p30/playlist.m3u8\n"
        );
    }

    /// A recording's playlist: VOD type, every segment, the end; a segment
    /// that starts a new timeline is marked, as in the live one.
    #[test]
    fn vod_playlist_is_whole_and_ended() {
        let mut segs: Vec<SegmentEntry> = (4..8).map(|m| seg(m, 6, true)).collect();
        segs[2].discontinuity = true;
        let text = vod_playlist(&segs);
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n"), "{text}");
        assert!(text.ends_with("seg7.m4s\n#EXT-X-ENDLIST\n"), "{text}");
        assert_eq!(text.matches("#EXTINF:2.00000,").count(), 4, "{text}");
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
        let runs = [DvrRun {
            prefix: "",
            segments: &segs,
        }];
        assert!(!dvr_playlist(&runs, 4, 0, false).contains("PLAYLIST-TYPE"));
    }

    /// A NAME's earlier run and the current one in one DVR playlist: the
    /// earlier run's URIs (segments and init) under `e{EPOCH}/`, a
    /// discontinuity where the current run starts, and the sequences given.
    #[test]
    fn dvr_playlist_carries_earlier_runs() {
        let old: Vec<SegmentEntry> = (40..43).map(|m| seg(m, 6, true)).collect();
        let new: Vec<SegmentEntry> = (0..2).map(|m| seg(m, 6, true)).collect();
        let runs = [
            DvrRun {
                prefix: "e1764028800000/",
                segments: &old,
            },
            DvrRun {
                prefix: "",
                segments: &new,
            },
        ];
        let text = dvr_playlist(&runs, 1040, 3, false);
        assert!(
            text.contains("#EXT-X-MEDIA-SEQUENCE:1040\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n"),
            "{text}"
        );
        assert!(
            text.contains("#EXT-X-MAP:URI=\"e1764028800000/init0.mp4\"\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "\ne1764028800000/seg42.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init0.mp4\"\n"
            ),
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
        assert_eq!(text.matches("#EXTINF:").count(), 5, "{text}");
        assert!(text.ends_with("\nseg1.m4s\n"), "{text}");
    }
}
