//! `/vod/ID/…`: recordings (live-to-VOD) played back from the DVR directory:
//! a VOD master and media playlists (`EXT-X-PLAYLIST-TYPE:VOD`, `ENDLIST`),
//! a static MPD, and the recorded objects. A recording never changes, so
//! everything is served as immutable.

use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::path::VodFile;
use super::response::{media_object, object_type, playlist, text, Body, IMMUTABLE};
use super::Origin;
use crate::package::{dash, hls};
use crate::store::dvr::recordings::Recording;
use crate::store::dvr::RecordingState;

/// `/vod/ID/FILE`.
pub async fn handle(
    ctx: &Origin,
    id: &str,
    file: VodFile<'_>,
    headers: &HeaderMap,
) -> Response<Body> {
    let Some(dvr) = ctx.store.dvr() else {
        return text(
            StatusCode::NOT_FOUND,
            "no recordings (dvr.dir is not set)\n",
        );
    };
    let rec = match dvr.recording(id) {
        Some(RecordingState::Done(rec)) => rec,
        Some(RecordingState::Pending) => {
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "recording being made\n");
            r.headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
        _ => return text(StatusCode::NOT_FOUND, "no such recording\n"),
    };
    match file {
        VodFile::Master => {
            let summaries: Vec<hls::RenditionSummary> =
                rec.renditions.iter().map(|r| r.summary.clone()).collect();
            match hls::multivariant(&summaries, "index.m3u8", None) {
                Some(body) => playlist(body, headers, IMMUTABLE),
                None => text(StatusCode::NOT_FOUND, "the recording has no video\n"),
            }
        }
        VodFile::Manifest => match static_mpd(&rec) {
            Ok(body) => {
                let mut r = playlist(body, headers, IMMUTABLE);
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/dash+xml"),
                );
                r
            }
            Err(e) => text(StatusCode::NOT_FOUND, &format!("{e}\n")),
        },
        VodFile::Playlist { rendition } => match rec.rendition(rendition) {
            Some(r) => playlist(hls::vod_playlist(&r.segments), headers, IMMUTABLE),
            None => text(StatusCode::NOT_FOUND, "no such rendition\n"),
        },
        VodFile::Object { rendition, file } => match dvr.read_recorded(id, rendition, file).await {
            Some(data) => media_object(
                data,
                object_type(file),
                &format!("\"{id}-{rendition}-{file}\""),
                headers,
            ),
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The recording as a static MPD (the live MPD's shapes: one Period per
/// continuous timeline, the same Representation ids and object names).
fn static_mpd(rec: &Recording) -> Result<String, dash::MpdError> {
    let windows: Vec<dash::RenditionWindow> = rec
        .renditions
        .iter()
        .map(|r| dash::RenditionWindow {
            summary: r.summary.clone(),
            segments: r.segments.clone(),
            run_start: None,
        })
        .collect();
    let longest = rec
        .renditions
        .iter()
        .flat_map(|r| &r.segments)
        .map(|s| s.duration)
        .fold(rec.segment_target, f64::max);
    dash::manifest(&dash::Manifest {
        timing: hls::Timing {
            target_duration: longest.ceil() as u64,
            part_target: rec.segment_target,
            segment_target: rec.segment_target,
            media_epoch_ms: rec.epoch_ms,
        },
        renditions: &windows,
        window_secs: rec.duration_secs,
        now_ms: rec.created_ms,
        low_latency: false,
        audio_only: false,
        vod: true,
        utc_timing: "",
        earlier: &[],
        offset_ms: 0,
        prefix: "",
        steering: None,
    })
}
