//! Routes: `/healthz`, `/api/v1/streams[/NAME]`, `/api/v1/sessions`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;

use crate::runtime::Context;

pub type Body = Full<Bytes>;

pub async fn handle(ctx: &Context, req: Request<Incoming>) -> Response<Body> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let path = req.uri().path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut resp = match segments.as_slice() {
        ["healthz"] => text(StatusCode::OK, "ok\n"),
        ["api", "v1", "streams"] => {
            let streams: Vec<_> = ctx.registry.live().iter().map(|s| s.snapshot()).collect();
            json(StatusCode::OK, &serde_json::json!({ "streams": streams }))
        }
        ["api", "v1", "streams", name] => match ctx.registry.get(name) {
            Some(s) => json(StatusCode::OK, &s.snapshot()),
            None => json_error(StatusCode::NOT_FOUND, "no such live stream"),
        },
        ["api", "v1", "sessions"] => json(
            StatusCode::OK,
            &serde_json::json!({
                "sessions": ctx.registry.history(),
                "rejected": ctx.registry.rejections(),
            }),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    if head {
        *resp.body_mut() = Full::new(Bytes::new());
    }
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = match serde_json::to_vec_pretty(value) {
        Ok(b) => b,
        Err(e) => {
            return text_owned(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("serialize: {e}\n"),
            )
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

fn text_owned(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}
