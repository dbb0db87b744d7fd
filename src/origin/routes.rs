//! Routes: playback (`/live/…`) and the player page (`/`, `/watch/NAME`).
//! The operators' routes (`/healthz`, `/readyz`, `/metrics`, `/api/…`) are
//! answered by `admin` through [`super::AdminRoutes`]; this file only counts
//! them and adds the common headers.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ALLOW, CACHE_CONTROL,
    CONTENT_LENGTH, CONTENT_TYPE,
};
use hyper::{Method, Request, Response, StatusCode};

use super::Origin;
use super::{playback, player, Surface};

/// Whole bodies, or a part streamed as its CMAF chunks are written. Not
/// `Send`: a streamed part waits on the executor's timer (connections never
/// leave their core).
pub type Body = std::pin::Pin<Box<dyn hyper::body::Body<Data = Bytes, Error = BodyError>>>;

/// Why a body stopped before its end. The connection is cut rather than the
/// body ended cleanly, so no client or cache takes a short body for the whole
/// (immutable) object.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("{object} of {rendition} not complete {secs} s after the request")]
    Late {
        rendition: String,
        /// The part or segment's name (`part12.3.m4s`, `seg12.m4s`).
        object: String,
        secs: u64,
    },
    #[error("{object} of {rendition} abandoned while it was being written")]
    Abandoned { rendition: String, object: String },
}

pub fn full(b: Bytes) -> Body {
    Box::pin(Full::new(b).map_err(|never| match never {}))
}

/// No bytes and no claimed length: the answer to a HEAD whose GET body has no
/// known length (hyper then sends no Content-Length rather than a wrong `0`).
struct UnknownLength;

impl hyper::body::Body for UnknownLength {
    type Data = Bytes;
    type Error = BodyError;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        std::task::Poll::Ready(None)
    }
    fn is_end_stream(&self) -> bool {
        true
    }
}

pub async fn handle(ctx: &Origin, req: Request<Incoming>, surface: Surface) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let route = route_label(&unsigned(&segments));
    let admin_route = matches!(segments.as_slice(), ["api", ..] | ["metrics"]);
    let health = matches!(segments.as_slice(), ["healthz"] | ["readyz"]);
    let here = match surface {
        Surface::Admin => admin_route || health,
        Surface::Public => !admin_route || ctx.config.admin.listen.is_none(),
    };
    let mut resp = if !super::limits::host_ok(req.version(), req.headers()) {
        text(
            StatusCode::BAD_REQUEST,
            "an HTTP/1.1 request needs one Host header\n",
        )
    } else if here {
        dispatch(ctx, &req, &segments).await
    } else {
        text(StatusCode::NOT_FOUND, "not found\n")
    };
    let h = resp.headers_mut();
    // Players on other origins read playlists and media.
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Length, Content-Range, ETag"),
    );
    let len = resp.body().size_hint().exact();
    if req.method() == Method::HEAD {
        // Say how long the GET body would be when that is known (never a
        // guess: a streamed part's length is not), then send none.
        match len {
            Some(len) => {
                resp.headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from(len));
                *resp.body_mut() = full(Bytes::new());
            }
            None => {
                resp.headers_mut().remove(CONTENT_LENGTH);
                *resp.body_mut() = Box::pin(UnknownLength);
            }
        }
    }
    ctx.http.count(route, resp.status().as_u16());
    resp
}

/// The path without a signed URL's token directory (`live/NAME/t/TOKEN/…`).
fn unsigned<'a>(segments: &[&'a str]) -> Vec<&'a str> {
    match segments {
        [kind @ ("live" | "vod"), name, "t", _, "auth"] => vec![kind, name, "auth"],
        [kind @ ("live" | "vod"), name, "t", _, rest @ ..] => {
            let mut v = vec![*kind, *name];
            v.extend_from_slice(rest);
            v
        }
        _ => segments.to_vec(),
    }
}

/// A bounded label per route (never a path a client made up).
fn route_label(segments: &[&str]) -> &'static str {
    match segments {
        ["live" | "vod", _, "auth"] => "auth",
        ["live", _, f] if f.ends_with(".m3u8") => "multivariant",
        ["live", _, f] if f.ends_with(".mpd") => "mpd",
        ["live", _, "steering.json"] => "steering",
        ["live", _, _, f] if f.ends_with(".m3u8") => "media_playlist",
        ["live", _, _, f] if f.starts_with("part") => "part",
        ["live", _, _, f] if f.starts_with("init") => "init",
        ["live", ..] => "segment",
        ["vod", ..] => "vod",
        [""] | ["watch", _] | ["assets", _] => "player",
        ["healthz"] | ["readyz"] => "health",
        ["time"] => "time",
        ["metrics"] => "metrics",
        ["api", ..] => "api",
        _ => "other",
    }
}

async fn dispatch(ctx: &Origin, req: &Request<Incoming>, segments: &[&str]) -> Response<Body> {
    let method = req.method();
    if method == Method::OPTIONS {
        let mut r = text(StatusCode::NO_CONTENT, "");
        *r.body_mut() = full(Bytes::new());
        let h = r.headers_mut();
        h.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        h.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Range, If-None-Match"),
        );
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        return r;
    }
    if let Some(r) = (ctx.admin)(method, segments, req.headers()) {
        let (parts, body) = r.into_parts();
        return Response::from_parts(parts, full(body));
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
        return r;
    }
    match segments {
        [kind @ ("live" | "vod"), name, rest @ ..] => {
            let (dir, rest) = match access(ctx, kind, name, rest) {
                Ok(scope) => scope,
                Err(answer) => return *answer,
            };
            let mut path = vec![*name];
            path.extend_from_slice(rest);
            if *kind == "vod" {
                return super::vod::handle(ctx, &path, req.headers()).await;
            }
            let head = method == Method::HEAD;
            playback::handle(ctx, &path, &dir, req.uri().query(), req.headers(), head).await
        }
        [""] => player::index(),
        ["watch", name] => player::watch(name),
        ["assets", "hls.min.js"] => player::script(&ctx.config.hls.hls_js, "hls.js", "hls.hls_js"),
        ["assets", "dash.all.min.js"] => {
            player::script(&ctx.config.hls.dash_js, "dash.js", "hls.dash_js")
        }
        ["time"] => time(),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Who may read `/live/NAME/…` and `/vod/ID/…`: with `[playback]
/// signing_key`, only a signed URL (`…/t/TOKEN/…`, see [`super::signing`]).
/// `kind`: `live` or `vod`, the scope the token must be signed for.
/// Ok: the token directory (`t/TOKEN/`, for URIs written absolute) and the
/// path after it. Err: the answer (403; or an edge's token check, `…/auth`).
fn access<'a>(
    ctx: &Origin,
    kind: &str,
    name: &str,
    rest: &'a [&'a str],
) -> Result<(String, &'a [&'a str]), Box<Response<Body>>> {
    let key = ctx.keys.signing();
    let scope = match kind {
        "vod" => super::signing::Scope::Vod,
        _ => super::signing::Scope::Live,
    };
    let now = playback::unix_ms() / 1000;
    let max_age = |expires: u64| {
        u64::from(ctx.config.playback.auth_cache_secs)
            .min(expires.saturating_sub(now))
            .max(1)
    };
    match (key, rest) {
        // An edge asks once per token whether it is good (deploy/varnish).
        (key, ["t", token, "auth"]) => {
            let verdict = match &key {
                Some(k) => k
                    .verify(scope, name, token, now)
                    .map(|(t, _)| max_age(t.expires)),
                None => Ok(u64::from(ctx.config.playback.auth_cache_secs).max(1)),
            };
            Err(Box::new(match verdict {
                Ok(secs) => {
                    let mut r = text(StatusCode::NO_CONTENT, "");
                    *r.body_mut() = full(Bytes::new());
                    r.headers_mut().insert(
                        CACHE_CONTROL,
                        HeaderValue::from_str(&format!("public, max-age={secs}"))
                            .unwrap_or(HeaderValue::from_static("max-age=1")),
                    );
                    r
                }
                Err(why) => denied(ctx, name, why),
            }))
        }
        // Signing off: a URL signed earlier still plays.
        (None, ["t", _, tail @ ..]) => Ok((String::new(), tail)),
        (None, tail) => Ok((String::new(), tail)),
        (Some(k), ["t", token, tail @ ..]) => {
            match k.check(scope, name, token, &tail.join("/"), now) {
                Ok(_) => Ok((format!("t/{token}/"), tail)),
                Err(why) => Err(Box::new(denied(ctx, name, why))),
            }
        }
        (Some(_), _) => Err(Box::new(denied(ctx, name, super::signing::Denied::Missing))),
    }
}

/// 403, counted by reason; logged at debug only (a scan must not flood the log).
/// The body is the same whatever the reason: it said which, so a prober could
/// tell a forged token from an expired one (issue 30); the reason stays in
/// the log and in `playback_denied_total{reason}`.
fn denied(ctx: &Origin, name: &str, why: super::signing::Denied) -> Response<Body> {
    ctx.http.count_denied(why.label());
    tracing::debug!(
        stream = name,
        reason = why.label(),
        "playback refused: {why}"
    );
    text(StatusCode::FORBIDDEN, "forbidden\n")
}

/// `GET /time`: the origin's clock, ISO-8601 UTC with milliseconds (the MPD's
/// `UTCTiming`, `urn:mpeg:dash:utc:http-iso:2014`), so players time segment
/// availability by the origin's clock rather than their own.
fn time() -> Response<Body> {
    let now = crate::package::hls::iso8601(playback::unix_ms());
    text(StatusCode::OK, &now)
}

pub fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::copy_from_slice(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::origin::signing::{Scope, SigningKey};

    /// An origin with signing on (no streams: `access` is all these need).
    fn origin() -> Origin {
        let config = crate::config::Config::parse("", "t").unwrap();
        let keys = super::super::Keys::default();
        *keys.signing.write().unwrap() =
            Some(Arc::new(SigningKey::from_bytes(&[7u8; 32]).unwrap()));
        Origin {
            limits: super::super::limits::ClientLimits::new(&config.server),
            config: Arc::new(config),
            store: Arc::new(crate::store::hot::HotStore::new(30.0)),
            http: Arc::default(),
            shutdown: Arc::default(),
            admin: Arc::new(|_: &Method, _: &[&str], _: &hyper::HeaderMap| None::<Response<Bytes>>),
            keys: Arc::new(keys),
        }
    }

    /// `access` for `/KIND/cam1/REST…`: the refusal, if any.
    fn refusal(ctx: &Origin, kind: &str, rest: &[&str]) -> Option<(StatusCode, Bytes)> {
        let resp = access(ctx, kind, "cam1", rest).err()?;
        let status = resp.status();
        let body = futures_lite::future::block_on(resp.into_body().collect())
            .unwrap()
            .to_bytes();
        Some((status, body))
    }

    /// Issue 30: `ladderd sign ID` (live) played `/vod/ID`, and `sign NAME
    /// --vod` played `/live/NAME`; an edge's token check (`…/auth`) alike.
    #[test]
    fn a_token_opens_only_its_scope() {
        let ctx = origin();
        let key = ctx.keys.signing().unwrap();
        let soon = playback::unix_ms() / 1000 + 60;
        let live = key.token(Scope::Live, "cam1", soon, None).unwrap();
        let vod = key.token(Scope::Vod, "cam1", soon, None).unwrap();
        for file in ["master.m3u8", "auth"] {
            let open = |kind: &str, t: &str| match refusal(&ctx, kind, &["t", t, file]) {
                None => true,
                Some((status, _)) => status == StatusCode::NO_CONTENT,
            };
            assert!(open("live", &live), "{file}");
            assert!(open("vod", &vod), "{file}");
            assert!(!open("vod", &live), "{file}");
            assert!(!open("live", &vod), "{file}");
        }
    }

    /// Issue 30: each reason had its own 403 body (`forbidden: the token has
    /// expired`), so forged and expired tokens could be told apart from
    /// outside. One answer now; the reason only in the count (and the log).
    #[test]
    fn every_refusal_reads_the_same() {
        let ctx = origin();
        let key = ctx.keys.signing().unwrap();
        let now = playback::unix_ms() / 1000;
        let good = key.token(Scope::Live, "cam1", now + 60, None).unwrap();
        let other = key.token(Scope::Live, "cam2", now + 60, None).unwrap();
        let expired = key.token(Scope::Live, "cam1", now - 1, None).unwrap();
        let narrow = key
            .token(Scope::Live, "cam1", now + 60, Some("240p30"))
            .unwrap();
        assert_eq!(refusal(&ctx, "live", &["t", &good, "master.m3u8"]), None);
        let refused: Vec<_> = [
            vec!["master.m3u8"],
            vec!["t", "1~zz", "master.m3u8"],
            vec!["t", &other, "master.m3u8"],
            vec!["t", &expired, "master.m3u8"],
            vec!["t", &narrow, "master.m3u8"],
            vec!["t", &expired, "auth"],
        ]
        .iter()
        .map(|rest| refusal(&ctx, "live", rest).unwrap())
        .collect();
        for r in &refused {
            assert_eq!(r, &(StatusCode::FORBIDDEN, Bytes::from("forbidden\n")));
        }
        let denied = ctx.http.denied.lock().unwrap().clone();
        let want: std::collections::BTreeMap<&str, u64> = [
            ("missing", 1),
            ("malformed", 1),
            ("forged", 1),
            ("expired", 2),
            ("prefix", 1),
        ]
        .into();
        assert_eq!(denied, want);
    }
}
