//! The player page: the live streams at `/`, hls.js playback at `/watch/NAME`.
//! hls.js comes from npm (`npm ci`) and is served from `hls.hls_js`.

use std::path::Path;

use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::routes::{full, text, Body};

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

pub fn hls_js(path: &Path) -> Response<Body> {
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
            &format!("hls.js not found at {} ({e}): run `npm ci` in the ladderd directory or set hls.hls_js\n", path.display()),
        ),
    }
}
