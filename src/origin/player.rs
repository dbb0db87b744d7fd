//! The player page: the live streams at `/`, playback at `/watch/NAME` with
//! hls.js (HLS, LL-HLS) or dash.js (`?player=dash`: DASH, LL-DASH). Both come
//! from npm (`npm ci`) and are served from `hls.hls_js` and `hls.dash_js`.

use std::path::Path;

use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::response::{full, text, Body};

fn html(body: &'static str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from_static(body.as_bytes())));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

pub fn index() -> Response<Body> {
    html(include_str!("pages/index.html"))
}

pub fn watch(_name: &str) -> Response<Body> {
    // The page reads the stream name from its own URL.
    html(include_str!("pages/watch.html"))
}

/// A player library the page loads; `what` and `key` name it and its setting
/// in the 404 an operator sees when it is not installed.
pub fn script(path: &Path, what: &str, key: &str) -> Response<Body> {
    match std::fs::read(path) {
        Ok(js) => {
            let mut r = Response::new(full(Bytes::from(js)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            );
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
            r
        }
        Err(e) => text(
            StatusCode::NOT_FOUND,
            &format!("{what} not found at {} ({e}): run `npm ci` in the ladderd directory or set {key}\n", path.display()),
        ),
    }
}
