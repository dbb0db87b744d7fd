//! The operators' routes. The API and `/metrics` take the admin token when one
//! is configured; health never does (load balancers and systemd probe it).

use bytes::Bytes;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Response, StatusCode};
use serde::Serialize;

use super::Admin;
use crate::stream::{EndReason, LiveStream};

impl Admin {
    /// Answers `/healthz`, `/readyz`, `/metrics` and `/api/…`; `None` for any other path.
    pub fn handle(
        &self,
        method: &Method,
        segments: &[&str],
        headers: &HeaderMap,
    ) -> Option<Response<Bytes>> {
        let guarded = match segments {
            ["api", ..] | ["metrics"] => true,
            ["healthz"] | ["readyz"] => false,
            _ => return None,
        };
        if guarded && !self.authorized(headers) {
            let mut r = json_error(StatusCode::UNAUTHORIZED, "admin token required");
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
            return Some(r);
        }
        if method == Method::DELETE {
            return Some(match segments {
                ["api", "v1", "streams", name] => self.kick(name),
                ["api", "v1", "recordings", id] => self.delete_recording(id),
                _ => not_allowed(),
            });
        }
        if method == Method::POST {
            return Some(match segments {
                ["api", "v1", "streams", name, "failback"] => self.failback(name),
                ["api", "v1", "streams", name, "recordings"] => self.record(name),
                _ => not_allowed(),
            });
        }
        if method != Method::GET && method != Method::HEAD {
            return Some(not_allowed());
        }
        Some(match segments {
            ["healthz"] => text(StatusCode::OK, "ok\n"),
            ["readyz"] => {
                if self.health.is_ready() {
                    json(StatusCode::OK, &serde_json::json!({ "ready": true }))
                } else {
                    let reason = self.health.not_ready_reason();
                    json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &serde_json::json!({ "ready": false, "reason": reason }),
                    )
                }
            }
            ["metrics"] => self.metrics(headers),
            ["api", "v1", "streams"] => {
                let streams: Vec<_> = self
                    .streams
                    .registry
                    .live()
                    .iter()
                    .map(|s| self.stream_view(s))
                    .chain(self.on_slate().map(|name| self.slate_view(&name)))
                    .collect();
                let backups: Vec<_> = self
                    .streams
                    .registry
                    .backups()
                    .iter()
                    .map(|s| self.stream_view(s))
                    .collect();
                json(
                    StatusCode::OK,
                    &serde_json::json!({ "streams": streams, "backups": backups }),
                )
            }
            ["api", "v1", "streams", name] => match self.streams.registry.get(name) {
                Some(s) => json(StatusCode::OK, &self.stream_view(&s)),
                None if self.on_slate().any(|n| n == *name) => {
                    json(StatusCode::OK, &self.slate_view(name))
                }
                None => json_error(StatusCode::NOT_FOUND, "no such live stream"),
            },
            ["api", "v1", "sessions"] => json(
                StatusCode::OK,
                &serde_json::json!({
                    "sessions": self.streams.registry.history(),
                    "rejected": self.streams.registry.rejections(),
                }),
            ),
            ["api", "v1", "origin"] => json(StatusCode::OK, &(self.origin)()),
            ["api", "v1", "recordings"] => {
                let recordings: Vec<_> = self
                    .store
                    .dvr()
                    .map(|d| d.recordings())
                    .unwrap_or_default()
                    .iter()
                    .map(recording_view)
                    .collect();
                json(
                    StatusCode::OK,
                    &serde_json::json!({ "recordings": recordings }),
                )
            }
            ["api", "v1", "recordings", id] => self.recording(id),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        })
    }

    fn kick(&self, name: &str) -> Response<Bytes> {
        match self.streams.registry.get(name) {
            Some(s) => {
                tracing::info!(stream = %s.name, "publisher kicked through the API");
                s.stop(EndReason::Kicked);
                json(StatusCode::OK, &serde_json::json!({ "kicked": s.name }))
            }
            None => json_error(StatusCode::NOT_FOUND, "no such live stream"),
        }
    }

    /// `POST /api/v1/streams/NAME/recordings`: what the DVR holds of the
    /// live run so far becomes a recording; 202 with its id (made on the
    /// storage thread, after the segments queued before it).
    fn record(&self, name: &str) -> Response<Bytes> {
        let Some(media) = self.store.get(name).filter(|m| !m.is_ended()) else {
            return json_error(StatusCode::NOT_FOUND, "no such live stream");
        };
        let Some(id) = media.record("api") else {
            return json_error(
                StatusCode::CONFLICT,
                "recordings need the DVR (dvr.dir is not set)",
            );
        };
        tracing::info!(stream = %name, recording = %id, "recording asked through the API");
        let status = format!("/api/v1/recordings/{id}");
        let mut r = json(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "id": id, "state": "pending", "status": status }),
        );
        if let Ok(v) = HeaderValue::from_str(&status) {
            r.headers_mut().insert(hyper::header::LOCATION, v);
        }
        r
    }

    /// `GET /api/v1/recordings/ID`: 200 when made, 202 while being made.
    fn recording(&self, id: &str) -> Response<Bytes> {
        use crate::store::dvr::RecordingState;
        match self.store.dvr().and_then(|d| d.recording(id)) {
            Some(RecordingState::Done(rec)) => json(StatusCode::OK, &recording_view(&rec)),
            Some(RecordingState::Pending) => json(
                StatusCode::ACCEPTED,
                &serde_json::json!({ "id": id, "state": "pending" }),
            ),
            Some(RecordingState::Failed(why)) => json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &serde_json::json!({ "id": id, "state": "failed", "error": why }),
            ),
            None => json_error(StatusCode::NOT_FOUND, "no such recording"),
        }
    }

    fn delete_recording(&self, id: &str) -> Response<Bytes> {
        if self.store.dvr().is_some_and(|d| d.delete_recording(id)) {
            tracing::info!(recording = %id, "recording deleted through the API");
            json(StatusCode::OK, &serde_json::json!({ "deleted": id }))
        } else {
            json_error(
                StatusCode::NOT_FOUND,
                "no such recording (or still being made)",
            )
        }
    }

    /// `failback = "manual"`: back to the primary at its next chance.
    fn failback(&self, name: &str) -> Response<Bytes> {
        if self.streams.registry.get(name).is_none() {
            return json_error(StatusCode::NOT_FOUND, "no such live stream");
        }
        tracing::info!(stream = %name, "failback to the primary asked through the API");
        self.streams.registry.input(name).request_failback();
        json(
            StatusCode::ACCEPTED,
            &serde_json::json!({ "failback": name }),
        )
    }

    fn metrics(&self, headers: &HeaderMap) -> Response<Bytes> {
        let om = super::metrics::render(self);
        let wants_om = headers
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/openmetrics-text"));
        let (body, kind) = if wants_om {
            (
                om,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
        } else {
            (
                crate::telemetry::metrics::to_classic(&om),
                "text/plain; version=0.0.4; charset=utf-8",
            )
        };
        let mut r = Response::new(Bytes::from(body));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
        r.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }

    /// A live stream for the API: the registry's view plus what playback sees.
    fn stream_view(&self, s: &LiveStream) -> serde_json::Value {
        let mut v = serde_json::to_value(s.snapshot()).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            let input = self.streams.registry.input(&s.name).view();
            obj.insert(
                "input".into(),
                serde_json::to_value(input).unwrap_or_default(),
            );
        }
        self.add_media(&mut v, &s.name);
        v
    }

    /// NAMEs whose publisher has gone while the slate holds their renditions
    /// on air (the reconnect window): no publish in the registry, but a
    /// stream an operator must see.
    fn on_slate(&self) -> impl Iterator<Item = String> + '_ {
        self.streams
            .registry
            .inputs()
            .into_iter()
            .filter(|(name, input)| {
                input.active() == crate::stream::inputs::Active::Slate
                    && self.streams.registry.get(name).is_none()
            })
            .map(|(name, _)| name)
    }

    /// A NAME on the slate: its input and renditions, no publisher.
    fn slate_view(&self, name: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "name": name,
            "publisher": null,
            "input": self.streams.registry.input(name).view(),
        });
        self.add_media(&mut v, name);
        v
    }

    /// A stream's renditions and viewers, from the store.
    fn add_media(&self, v: &mut serde_json::Value, name: &str) {
        if let (Some(obj), Some(media)) = (v.as_object_mut(), self.store.get(name)) {
            let renditions: Vec<_> = media
                .renditions()
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "name": r.name,
                        "codecs": r.codecs(),
                        "parts": r.parts_published.load(std::sync::atomic::Ordering::Relaxed),
                        "segments": r.segments_published.load(std::sync::atomic::Ordering::Relaxed),
                        "last_part": r.last_part(),
                    })
                })
                .collect();
            obj.insert("viewers".into(), media.recent_requests(10).into());
            obj.insert("renditions".into(), renditions.into());
        }
    }

    /// `Authorization: Bearer TOKEN` when `admin.token` is set.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.config.admin.token else {
            return true;
        };
        headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| token.matches(t.trim()))
    }
}

/// A recording as the API lists it: what it is and where it plays (not
/// its segment lists: hours of segments are the playlists' business).
fn recording_view(rec: &crate::store::dvr::recordings::Recording) -> serde_json::Value {
    let id = &rec.id;
    serde_json::json!({
        "id": id,
        "state": "done",
        "stream": rec.stream,
        "epoch_ms": rec.epoch_ms,
        "created_ms": rec.created_ms,
        "reason": rec.reason,
        "start": crate::package::hls::iso8601(rec.start_ms),
        "duration_secs": rec.duration_secs,
        "renditions": rec.renditions.iter().map(|r| serde_json::json!({
            "name": r.summary.name,
            "codecs": r.summary.codecs,
            "segments": r.segments.len(),
        })).collect::<Vec<_>>(),
        "hls": format!("/vod/{id}/master.m3u8"),
        "dash": format!("/vod/{id}/manifest.mpd"),
        "watch": format!("/watch/{id}?mode=vod"),
    })
}

fn not_allowed() -> Response<Bytes> {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
    r
}

fn text(status: StatusCode, body: &str) -> Response<Bytes> {
    let mut r = Response::new(Bytes::copy_from_slice(body.as_bytes()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Bytes> {
    let body = match serde_json::to_vec_pretty(value) {
        Ok(b) => b,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("serialize: {e}\n"),
            )
        }
    };
    let mut r = Response::new(Bytes::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json_error(status: StatusCode, message: &str) -> Response<Bytes> {
    json(status, &serde_json::json!({ "error": message }))
}
