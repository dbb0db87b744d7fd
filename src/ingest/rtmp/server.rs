//! RTMP socket glue on the I/O cores: accept, read, feed the session, write, act.
//!
//! All protocol and media logic lives in [`super::session`], [`crate::media::flv`]
//! and [`crate::ingest::auth`]; this file only moves bytes and decisions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::admission::{Refusal, Ticket};
use super::session::{Event, Output, Session, SessionError};
use crate::ingest::auth::{self, Rejection};
use crate::ingest::Ingest;
use crate::media::flv::{Demuxed, Demuxer, FlvError};
use crate::media::Track;
use crate::stream::{EndReason, Publisher};

const READ_BUF: usize = 64 * 1024;

pub async fn accept_loop(listener: TcpListener, ctx: Arc<Ingest>) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            ctx.shutdown.wait().await;
            None
        })
        .await;
        let stream = match accepted {
            None => break,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                warn!(error = %e, "rtmp accept failed");
                glommio::timer::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let ticket = match ctx.rtmp.admit(peer.ip(), crate::telemetry::clock::now()) {
            Ok(t) => t,
            Err(why) => {
                // One line a minute at most (across cores): a flood must not flood the log too.
                if let Some(unlogged) = ctx.rtmp.log_due(why, crate::telemetry::clock::now()) {
                    warn!(%peer, reason = why.label(), unlogged, "rtmp connection refused (limits.max_rtmp_connections, max_rtmp_pending_connections, max_rtmp_connections_per_ip); further refusals only counted for a minute (rtmp_connections_refused_total)");
                }
                drop(stream);
                continue;
            }
        };
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            let mut conn = Connection::new(peer, ctx, ticket);
            let result = conn.run(stream).await;
            conn.finish(result).await;
        })
        .detach();
    }
}

/// Why a connection ended, for its one log line.
#[derive(Debug)]
enum Close {
    Eof,
    Io(std::io::Error),
    Timeout,
    /// Handshake + connect + publish not done within `limits.rtmp_setup_timeout_secs`.
    SetupTimeout,
    /// The pending connections' shared buffer budget is spent.
    PendingBuffer,
    /// Not yet publishing, and its slot went to a newer connection at the pending cap.
    Evicted,
    Session(SessionError),
    Rejected,
    Stream(FlvError),
    Stopped(EndReason),
    Unpublished,
}

struct Publish {
    publisher: Publisher,
    demuxer: Demuxer,
}

struct Connection {
    peer: SocketAddr,
    ctx: Arc<Ingest>,
    session: Session,
    publish: Option<Publish>,
    outbound: Vec<u8>,
    ticket: Ticket,
}

impl Connection {
    fn new(peer: SocketAddr, ctx: Arc<Ingest>, ticket: Ticket) -> Self {
        Connection {
            peer,
            ctx,
            session: Session::new(),
            publish: None,
            outbound: Vec::new(),
            ticket,
        }
    }

    async fn run(&mut self, mut socket: TcpStream) -> Close {
        let idle = Duration::from_secs_f64(self.ctx.config.limits.rtmp_idle_timeout_secs);
        if let Err(e) = socket.set_read_timeout(Some(idle)) {
            return Close::Io(std::io::Error::other(e.to_string()));
        }
        let _ = socket.set_nodelay(true);
        // However busy a stranger keeps the socket, it must have published by then.
        let setup_deadline = crate::telemetry::clock::now()
            + Duration::from_secs_f64(self.ctx.config.limits.rtmp_setup_timeout_secs);
        let mut buf = vec![0u8; READ_BUF];
        loop {
            let stop = self.publish.as_ref().map(|p| p.publisher.stream().clone());
            let read = futures_lite::future::or(async { Ok(socket.read(&mut buf).await) }, async {
                // Ok: the stream or the process stops; Err: this connection closes.
                let shutdown = async {
                    self.ctx.shutdown.wait().await;
                    Ok(EndReason::Shutdown)
                };
                Err(match &stop {
                    Some(s) => {
                        futures_lite::future::or(async { Ok(s.stopped().await) }, shutdown).await
                    }
                    None => {
                        let setup = async {
                            glommio::timer::sleep(
                                setup_deadline
                                    .saturating_duration_since(crate::telemetry::clock::now()),
                            )
                            .await;
                            Err(Close::SetupTimeout)
                        };
                        let evicted = async {
                            self.ticket.evicted().await;
                            Err(Close::Evicted)
                        };
                        futures_lite::future::or(shutdown, futures_lite::future::or(setup, evicted))
                            .await
                    }
                })
            })
            .await;
            let n = match read {
                Err(Ok(reason)) => return Close::Stopped(reason),
                Err(Err(close)) => return close,
                Ok(Ok(0)) => return Close::Eof,
                Ok(Ok(n)) => n,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => return Close::Timeout,
                Ok(Err(e)) => return Close::Io(e),
            };
            let arrival = crate::telemetry::clock::now();
            if let Err(e) = self.session.handle_input(&buf[..n]) {
                return Close::Session(e);
            }
            match self.ticket.set_buffered(self.session.buffered()) {
                Ok(()) => {}
                Err(Refusal::Evicted) => return Close::Evicted,
                Err(_) => return Close::PendingBuffer,
            }
            if let Err(close) = self.drain(arrival).await {
                let _ = self.flush(&mut socket).await;
                return close;
            }
            if let Err(e) = self.flush(&mut socket).await {
                return Close::Io(e);
            }
        }
    }

    async fn flush(&mut self, socket: &mut TcpStream) -> std::io::Result<()> {
        if !self.outbound.is_empty() {
            socket.write_all(&self.outbound).await?;
            self.outbound.clear();
        }
        Ok(())
    }

    /// Acts on everything the session produced. `Err` ends the connection.
    async fn drain(&mut self, arrival: Instant) -> Result<(), Close> {
        while let Some(out) = self.session.poll_output() {
            match out {
                Output::Transmit(bytes) => self.outbound.extend_from_slice(&bytes),
                Output::Event(event) => {
                    if let Err(close) = self.on_event(event, arrival).await {
                        // A refusal's answer is queued behind the event: it must
                        // reach the peer before the close (it used to be dropped).
                        while let Some(out) = self.session.poll_output() {
                            if let Output::Transmit(bytes) = out {
                                self.outbound.extend_from_slice(&bytes);
                            }
                        }
                        return Err(close);
                    }
                }
            }
        }
        Ok(())
    }

    async fn on_event(&mut self, event: Event, arrival: Instant) -> Result<(), Close> {
        match event {
            Event::ConnectRequested { request, app } => {
                if app == self.ctx.config.ingest.app {
                    self.session.accept(request).map_err(Close::Session)
                } else {
                    debug!(peer = %self.peer, app = %app, "rtmp connect to unknown app");
                    self.reject(request, None, Rejection::WrongApp)
                }
            }
            Event::PublishRequested { request, name, .. } => self.on_publish(request, &name),
            Event::PlayRequested { request } => {
                let _ = self.session.reject(
                    request,
                    "NetStream.Play.Failed",
                    "ladderd does not serve RTMP playback; use /live/NAME/master.m3u8",
                );
                Ok(())
            }
            Event::PublishFinished => Err(Close::Unpublished),
            Event::Metadata(meta) => {
                if let Some(p) = &self.publish {
                    p.publisher.metadata(metadata_json(&meta));
                }
                Ok(())
            }
            Event::Video { timestamp_ms, data } => {
                self.on_media(Track::Video, timestamp_ms, data, arrival)
                    .await
            }
            Event::Audio { timestamp_ms, data } => {
                self.on_media(Track::Audio, timestamp_ms, data, arrival)
                    .await
            }
        }
    }

    fn reject(&mut self, request: u32, name: Option<&str>, why: Rejection) -> Result<(), Close> {
        let now = crate::telemetry::clock::now();
        if let Some(unlogged) = self.ctx.streams.registry.count_rejection(why, now) {
            warn!(
                peer = %self.peer,
                stream = name.unwrap_or("-"),
                reason = why.label(),
                unlogged,
                "publish rejected: {} (counted in ladderd_publishers_rejected_total; logged once a minute per reason)",
                why.describe()
            );
        }
        let (code, description) = refusal_status(why);
        let _ = self.session.reject(request, code, description);
        Err(Close::Rejected)
    }

    fn on_publish(&mut self, request: u32, raw_name: &str) -> Result<(), Close> {
        if self.publish.is_some() {
            // One publish per connection keeps ownership simple.
            return self.reject(request, None, Rejection::BadName);
        }
        // Out of the pending queue before anything is claimed: from here the slot
        // cannot be evicted (a refusal below closes the connection anyway).
        if self.ticket.published().is_err() {
            return Err(Close::Evicted);
        }
        if self.ctx.shutdown.is_triggered() {
            return self.reject(request, None, Rejection::ShuttingDown);
        }
        let (ip, now) = (self.peer.ip(), crate::telemetry::clock::now());
        if self.ctx.auth.check(ip, now).is_err() {
            return self.reject(request, None, Rejection::BackedOff);
        }
        let authorized = match auth::authorize(&self.ctx.config, raw_name) {
            Ok(a) => a,
            Err((name, why)) => {
                if auth::is_auth_failure(why) {
                    if let Some(wait) = self.ctx.auth.failed(ip, now) {
                        warn!(peer = %self.peer, wait_secs = wait.as_secs_f64(), "publish attempts from this address refused for a while: too many failed (ingest.auth_failures_before_backoff)");
                    }
                }
                return self.reject(request, name.as_deref(), why);
            }
        };
        self.ctx.auth.succeeded(ip);
        let claim = self.ctx.streams.publish(
            &authorized.name,
            self.peer,
            "rtmp",
            authorized.takeover,
            self.ctx.config.limits.max_streams,
            if authorized.backup {
                crate::stream::Role::Backup
            } else {
                crate::stream::Role::Primary
            },
        );
        let publisher = match claim {
            Ok(p) => p,
            Err(why) => return self.reject(request, Some(&authorized.name), why),
        };
        self.publish = Some(Publish {
            demuxer: Demuxer::new(publisher.stream().id),
            publisher,
        });
        self.session.publishing();
        self.session.accept(request).map_err(Close::Session)
    }

    async fn on_media(
        &mut self,
        track: Track,
        ts: u32,
        data: Bytes,
        arrival: Instant,
    ) -> Result<(), Close> {
        let Some(p) = &mut self.publish else {
            return Ok(());
        };
        let out = match track {
            Track::Video => p.demuxer.push_video(ts, &data, arrival),
            Track::Audio => p.demuxer.push_audio(ts, &data, arrival),
        };
        let (config, packet) = match out {
            Ok(Demuxed::Nothing) => return Ok(()),
            Ok(Demuxed::Config(cfg)) => (Some(cfg), None),
            Ok(Demuxed::Packet(packet)) => (None, Some(packet)),
            Ok(Demuxed::ConfigAndPacket(cfg, packet)) => (Some(cfg), Some(packet)),
            Err(e) if e.is_fatal() => return Err(Close::Stream(e)),
            Err(e) => {
                if p.publisher.tag_error() == 0 {
                    warn!(stream = %p.publisher.stream().name, ?track, timestamp_ms = ts, len = data.len(), "dropping malformed tag: {e} (further ones are only counted)");
                }
                return Ok(());
            }
        };
        // Per tag, on the hot path: at most a config then a packet.
        // Backpressure: wait for the pipeline rather than buffer without bound.
        let stopped =
            |_: crate::stream::Closed| Close::Stopped(EndReason::Error("pipeline stopped".into()));
        if let Some(cfg) = config {
            p.publisher.config(cfg).await.map_err(stopped)?;
        }
        if let Some(packet) = packet {
            // Counted as the tag's bytes, as received.
            p.publisher
                .packet(packet, data.len())
                .await
                .map_err(stopped)?;
        }
        Ok(())
    }

    /// Logs the close once and ends the publish, if any.
    async fn finish(&mut self, close: Close) {
        let reason = match &close {
            Close::Eof | Close::Unpublished => EndReason::PublisherClosed,
            Close::Timeout | Close::SetupTimeout => EndReason::Timeout,
            Close::PendingBuffer => {
                EndReason::Error("pending connections' buffer budget spent".into())
            }
            Close::Evicted => EndReason::Error("evicted for a newer connection".into()),
            Close::Stopped(r) => r.clone(),
            Close::Rejected => EndReason::PublisherClosed,
            Close::Io(e) => EndReason::Error(format!("socket: {e}")),
            Close::Session(e) => EndReason::Error(e.to_string()),
            Close::Stream(e) => EndReason::Error(e.to_string()),
        };
        let protocol = match &close {
            Close::Session(SessionError::Handshake(_)) => Some(Refusal::Handshake),
            Close::Session(_) => Some(Refusal::ProtocolError),
            _ => None,
        };
        if let Some(why) = protocol {
            self.ctx.rtmp.count(why);
        }
        match (&self.publish, &close) {
            // The publisher logs the end of the publish.
            (Some(p), Close::Stream(e)) => {
                warn!(peer = %self.peer, stream = %p.publisher.stream().name, "publish refused: {e}")
            }
            (Some(_), _) => {}
            (None, Close::Session(e)) => {
                // Anyone can send a broken handshake: every one is counted, one a minute logged.
                let why = protocol.unwrap_or(Refusal::ProtocolError);
                match self.ctx.rtmp.log_due(why, crate::telemetry::clock::now()) {
                    Some(unlogged) => {
                        warn!(peer = %self.peer, reason = why.label(), unlogged, "rtmp connection closed: {e}; further ones only counted for a minute (rtmp_connections_refused_total)")
                    }
                    None => {
                        debug!(peer = %self.peer, reason = why.label(), "rtmp connection closed: {e}")
                    }
                }
            }
            (None, Close::Timeout) => debug!(peer = %self.peer, "rtmp connection idle; closed"),
            // Counted and logged (once a minute) where the slot was given away.
            (None, Close::Evicted) => {
                debug!(peer = %self.peer, "rtmp connection closed: evicted for a newer one at the pending cap")
            }
            (None, Close::SetupTimeout) => {
                self.ctx.rtmp.count(Refusal::SetupTimeout);
                debug!(peer = %self.peer, limit_secs = self.ctx.config.limits.rtmp_setup_timeout_secs, "rtmp connection did not publish in time (limits.rtmp_setup_timeout_secs); closed")
            }
            (None, Close::PendingBuffer) => {
                if let Some(unlogged) = self
                    .ctx
                    .rtmp
                    .log_due(Refusal::PendingBuffer, crate::telemetry::clock::now())
                {
                    warn!(peer = %self.peer, buffered = self.session.buffered(), unlogged, "rtmp connection closed: unauthenticated connections' buffer budget spent (limits.rtmp_pending_buffer_bytes); further ones only counted for a minute")
                }
            }
            (None, _) => debug!(peer = %self.peer, ?close, "rtmp connection closed"),
        }
        if let Some(p) = self.publish.take() {
            p.publisher.end(reason).await;
        }
    }
}

/// `onMetaData` as JSON, for the API (numbers, strings and booleans only).
fn metadata_json(m: &rml_rtmp::sessions::StreamMetadata) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    let mut put = |k: &str, v: Option<serde_json::Value>| {
        if let Some(v) = v {
            o.insert(k.into(), v);
        }
    };
    put("width", m.video_width.map(Into::into));
    put("height", m.video_height.map(Into::into));
    put("videocodecid", m.video_codec_id.map(Into::into));
    put(
        "framerate",
        m.video_frame_rate
            .map(|f| serde_json::json!((f as f64 * 1000.0).round() / 1000.0)),
    );
    put("videodatarate", m.video_bitrate_kbps.map(Into::into));
    put("audiocodecid", m.audio_codec_id.map(Into::into));
    put("audiodatarate", m.audio_bitrate_kbps.map(Into::into));
    put("audiosamplerate", m.audio_sample_rate.map(Into::into));
    put("audiochannels", m.audio_channels.map(Into::into));
    put("stereo", m.audio_is_stereo.map(Into::into));
    put("encoder", m.encoder.clone().map(Into::into));
    serde_json::Value::Object(o)
}

/// What a refused publisher reads (its encoder shows it): one wording for a
/// wrong key, a missing key and an unknown NAME, so a guesser cannot tell which
/// NAMEs exist; the log line and `ladderd_publishers_rejected_total{reason}`
/// say which it was.
const NOT_AUTHORIZED: &str = "publish refused: check the stream name and key (NAME?key=SECRET)";

/// The RTMP status code and description sent back before the connection closes.
fn refusal_status(why: Rejection) -> (&'static str, &'static str) {
    match why {
        Rejection::WrongApp => ("NetConnection.Connect.Rejected", why.describe()),
        Rejection::UnknownStream | Rejection::MissingKey | Rejection::BadKey => {
            ("NetStream.Publish.Denied", NOT_AUTHORIZED)
        }
        Rejection::BadName | Rejection::AlreadyLive => {
            ("NetStream.Publish.BadName", why.describe())
        }
        Rejection::TooManyStreams | Rejection::ShuttingDown | Rejection::BackedOff => {
            ("NetStream.Publish.Denied", why.describe())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 30: a wrong key, a missing key and an unknown NAME get the same
    /// answer, code and words; the others say what happened.
    #[test]
    fn refusals_do_not_say_whether_the_key_or_the_name_was_wrong() {
        let auth = [
            Rejection::UnknownStream,
            Rejection::MissingKey,
            Rejection::BadKey,
        ]
        .map(refusal_status);
        assert!(auth.iter().all(|s| *s == auth[0]), "{auth:?}");
        assert_eq!(auth[0].0, "NetStream.Publish.Denied");
        let words = auth[0].1.to_lowercase();
        for leak in ["wrong", "missing", "unknown", "no such", "configured"] {
            assert!(!words.contains(leak), "{words}");
        }
        assert_eq!(
            refusal_status(Rejection::BackedOff).0,
            "NetStream.Publish.Denied"
        );
        assert_eq!(
            refusal_status(Rejection::AlreadyLive).0,
            "NetStream.Publish.BadName"
        );
    }
}
