//! Routes: playback (`/live/…`) and the player page (`/`, `/watch/NAME`).
//! The operators' routes (`/healthz`, `/readyz`, `/metrics`, `/api/…`) are
//! answered by `admin` through [`super::AdminRoutes`]; this file only counts
//! them and adds the common headers.

use bytes::Bytes;
use hyper::body::{Body as _, Incoming};
use hyper::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ALLOW, CACHE_CONTROL,
    CONTENT_LENGTH,
};
use hyper::{Method, Request, Response, StatusCode};

use super::path::{LiveFile, Named, Route, VodFile, OTHER};
use super::response::{full, text, Body, UnknownLength};
use super::signing::Scope;
use super::Origin;
use super::{playback, player, Surface};
use crate::telemetry::clock::unix_ms;

/// One request, its path already parsed (`route`, from `path`).
pub async fn handle(
    ctx: &Origin,
    req: Request<Incoming>,
    path: &str,
    route: Option<Route<'_>>,
    surface: Surface,
) -> Response<Body> {
    let label = route.as_ref().map_or(OTHER, Route::label);
    let admin_route = route.as_ref().is_some_and(Route::is_admin);
    let health = route == Some(Route::Health);
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
        dispatch(ctx, &req, path, route).await
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
    ctx.http.count(label, resp.status().as_u16());
    resp
}

/// The answer to `req`, whose path is `path` and names `route`.
async fn dispatch(
    ctx: &Origin,
    req: &Request<Incoming>,
    path: &str,
    route: Option<Route<'_>>,
) -> Response<Body> {
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
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let Some(r) = (ctx.admin)(method, &segments, req.headers()) {
        let (parts, body) = r.into_parts();
        return Response::from_parts(parts, full(body));
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
        return r;
    }
    let head = method == Method::HEAD;
    match route {
        Some(Route::Live(named)) => {
            let auth = named.file == LiveFile::Auth;
            match access(ctx, Scope::Live, &named, auth) {
                Ok(dir) => {
                    let query = req.uri().query();
                    playback::handle(
                        ctx,
                        named.name,
                        named.file,
                        &dir,
                        query,
                        req.headers(),
                        head,
                    )
                    .await
                }
                Err(answer) => *answer,
            }
        }
        Some(Route::Vod(named)) => {
            match access(ctx, Scope::Vod, &named, named.file == VodFile::Auth) {
                Ok(_) => super::vod::handle(ctx, named.name, named.file, req.headers()).await,
                Err(answer) => *answer,
            }
        }
        Some(Route::Index) => player::index(),
        Some(Route::Watch(name)) => player::watch(name),
        Some(Route::Asset("hls.min.js")) => {
            player::script(&ctx.config.hls.hls_js, "hls.js", "hls.hls_js")
        }
        Some(Route::Asset("dash.all.min.js")) => {
            player::script(&ctx.config.hls.dash_js, "dash.js", "hls.dash_js")
        }
        Some(Route::Time) => time(),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Who may read `/live/NAME/…` and `/vod/ID/…`: with `[playback]
/// signing_key`, only a signed URL (`…/t/TOKEN/…`, see [`super::signing`]).
/// `scope`: the scope the token must be signed for. `auth`: the path is
/// `…/auth` (an edge's token check when behind a token).
/// Ok: the token directory (`t/TOKEN/`, for URIs written absolute).
/// Err: the answer (403; or an edge's token check, `…/t/TOKEN/auth`).
fn access<F>(
    ctx: &Origin,
    scope: Scope,
    named: &Named<'_, F>,
    auth: bool,
) -> Result<String, Box<Response<Body>>> {
    let key = ctx.keys.signing();
    let name = named.name;
    let now = unix_ms() / 1000;
    let max_age = |expires: u64| {
        u64::from(ctx.config.playback.auth_cache_secs)
            .min(expires.saturating_sub(now))
            .max(1)
    };
    match (key, named.token) {
        // An edge asks once per token whether it is good (deploy/varnish).
        (key, Some(token)) if auth => {
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
        (None, _) => Ok(String::new()),
        (Some(k), Some(token)) => match k.check(scope, name, token, &named.rest.join("/"), now) {
            Ok(_) => Ok(format!("t/{token}/")),
            Err(why) => Err(Box::new(denied(ctx, name, why))),
        },
        (Some(_), None) => Err(Box::new(denied(ctx, name, super::signing::Denied::Missing))),
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
    let now = crate::package::hls::iso8601(unix_ms());
    text(StatusCode::OK, &now)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http_body_util::BodyExt;

    use super::*;
    use crate::origin::path::parse_route;
    use crate::origin::signing::SigningKey;

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
        let path = format!("/{kind}/cam1/{}", rest.join("/"));
        let resp = match parse_route(&path) {
            Some(Route::Live(n)) => access(ctx, Scope::Live, &n, n.file == LiveFile::Auth),
            Some(Route::Vod(n)) => access(ctx, Scope::Vod, &n, n.file == VodFile::Auth),
            other => panic!("{path}: {other:?}"),
        }
        .err()?;
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
        let soon = unix_ms() / 1000 + 60;
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
        let now = unix_ms() / 1000;
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
