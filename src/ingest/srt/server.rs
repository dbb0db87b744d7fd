//! SRT listener glue: libsrt's blocking API on plain threads (its own threads
//! do the UDP work). The listen callback runs on libsrt's thread: it only
//! parses the stream id, looks the stream up and sets the passphrase on the
//! new socket (never blocks, panics contained). Each accepted publisher gets a
//! thread that reads TS messages, demuxes them and hands packets to its stream.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::access::{self, PerIp, Refused};
use super::ffi::{self, Srt, SrtSocket};
use super::stats::{classify, ts_unusable_input, LogLine};
use crate::ingest::auth::{self, Rejection};
use crate::ingest::Ingest;
use crate::media::mpegts::{Counters, Demuxed, Demuxer};
use crate::stream::registry::TransportStats;
use crate::stream::{EndReason, Publisher};

/// Largest SRT live-mode payload (SRTO_PAYLOADSIZE 1316 by default; 1456 max).
const MAX_MESSAGE: usize = 1500;
/// How often a blocked receive wakes to look at shutdown and kicks.
const RECV_TIMEOUT_MS: c_int = 250;
/// A publisher silent this long is gone (SRT's own peer-idle timeout is 5 s);
/// so is one whose data yields no media for this long.
const IDLE: Duration = Duration::from_secs(5);

/// Whether a publish still brings anything: data at all (a dead encoder) and
/// media the demuxer can use (a broken one: random bytes, or PES it cannot
/// read, used to hold the NAME for good while only libsrt's counters moved).
/// Both get [`IDLE`]; media is timed from the publish's start. Time comes in.
#[derive(Debug, Clone, Copy)]
struct Watch {
    last_data: Instant,
    last_media: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gone {
    /// No data for [`IDLE`].
    Silent,
    /// Data, but no media packet out of it for [`IDLE`].
    Unusable,
}

impl Watch {
    fn new(now: Instant) -> Watch {
        Watch {
            last_data: now,
            last_media: now,
        }
    }

    fn data(&mut self, now: Instant) {
        self.last_data = now;
    }

    fn media(&mut self, now: Instant) {
        self.last_media = now;
    }

    fn check(&self, now: Instant) -> Option<Gone> {
        if now.saturating_duration_since(self.last_data) > IDLE {
            Some(Gone::Silent)
        } else if now.saturating_duration_since(self.last_media) > IDLE {
            Some(Gone::Unusable)
        } else {
            None
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SrtError {
    /// Its Display is the loader's ("libsrt unavailable (tried …): …").
    #[error(transparent)]
    Unavailable(#[from] crate::dylib::Unavailable),
    #[error("cannot listen on {addr} (SRT, UDP): {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

/// A running listener; dropping it does not stop it (shutdown does).
pub struct Listener {
    pub addr: SocketAddr,
}

/// What the listen callback reads: the configuration, through the ingest handle.
struct CallbackCtx {
    ingest: Arc<Ingest>,
}

/// Binds the SRT listener and starts its accept thread.
pub fn start(ingest: Arc<Ingest>) -> Result<Listener, SrtError> {
    let srt = ffi::srt()?;
    install_log_handler(srt, ingest.srt.clone());
    let addr = ingest.config.server.srt_listen;
    let bind_err = |reason: String| SrtError::Bind { addr, reason };
    // SAFETY: no preconditions; returns an id or SRT_INVALID_SOCK.
    let lsn = unsafe { (srt.create_socket)() };
    if lsn == ffi::SRT_INVALID_SOCK {
        return Err(bind_err(srt.last_error()));
    }
    let fail = |e: String| {
        srt.close_socket(lsn);
        bind_err(e)
    };
    // Exclusive port: a second ladderd must fail to bind, not share the traffic.
    srt.set_int(lsn, ffi::SRTO_REUSEADDR, 0)
        .map_err(|e| fail(e.to_string()))?;
    srt.set_int(
        lsn,
        ffi::SRTO_RCVLATENCY,
        ingest.config.ingest.srt_latency_ms as c_int,
    )
    .map_err(|e| fail(e.to_string()))?;
    let sa = socket2::SockAddr::from(addr);
    // SAFETY: `sa` is a valid sockaddr of the length passed.
    if unsafe { (srt.bind)(lsn, sa.as_ptr(), sa.len() as c_int) } < 0 {
        return Err(fail(srt.last_error()));
    }
    // The callback context lives as long as the process: the listener is never
    // re-created, and libsrt may call the hook until the socket is closed.
    let ctx = Box::into_raw(Box::new(CallbackCtx {
        ingest: ingest.clone(),
    }));
    // SAFETY: `on_connect` matches srt_listen_callback_fn; `ctx` stays valid (leaked).
    if unsafe { (srt.listen_callback)(lsn, on_connect, ctx as *mut c_void) } < 0 {
        return Err(fail(srt.last_error()));
    }
    // SAFETY: a bound socket id.
    if unsafe { (srt.listen)(lsn, 64) } < 0 {
        return Err(fail(srt.last_error()));
    }
    for (name, why) in access::unusable_streams(&ingest.config) {
        warn!(stream = %name, "stream cannot publish over SRT: {why}");
    }
    info!(%addr, latency_ms = ingest.config.ingest.srt_latency_ms, "SRT listener ready");
    let accept_ingest = ingest.clone();
    std::thread::Builder::new()
        .name("ladderd-srt-accept".into())
        .spawn(move || accept_loop(srt, lsn, accept_ingest))
        .map_err(|e| bind_err(e.to_string()))?;
    // Shutdown closes the listener, which ends srt_accept.
    std::thread::Builder::new()
        .name("ladderd-srt-stop".into())
        .spawn(move || {
            futures_lite::future::block_on(ingest.shutdown.wait());
            // The accept thread's srt_accept fails on the closed listener, and
            // libsrt would log that as an error: shutting down is not one.
            // SAFETY: sets libsrt's global log threshold (2: critical only).
            unsafe { (srt.setloglevel)(2) };
            srt.close_socket(lsn);
        })
        .map_err(|e| bind_err(e.to_string()))?;
    Ok(Listener { addr })
}

/// libsrt's listen hook: 0 lets the caller in, -1 refuses it (with the reason
/// code set on the new socket). Runs on libsrt's receive thread.
unsafe extern "C" fn on_connect(
    opaque: *mut c_void,
    ns: SrtSocket,
    _hsversion: c_int,
    peer: *const libc::sockaddr,
    streamid: *const c_char,
) -> c_int {
    let decide = || {
        // SAFETY: `opaque` is the leaked `CallbackCtx` registered with this hook.
        let ctx = unsafe { &*(opaque as *const CallbackCtx) };
        let srt = ffi::srt().ok()?;
        let id = if streamid.is_null() {
            String::new()
        } else {
            // SAFETY: libsrt passes a NUL-terminated stream id (or null).
            unsafe { CStr::from_ptr(streamid) }
                .to_string_lossy()
                .into_owned()
        };
        // SAFETY: libsrt passes the caller's address (or null).
        let ip = unsafe { hook_peer(peer) };
        let ingest = &ctx.ingest;
        let now = crate::telemetry::clock::now();
        if let Some(ip) = ip {
            if ingest.auth.check(ip, now).is_err() {
                refuse(
                    srt,
                    ns,
                    ingest,
                    &id,
                    Refused::Overload(Rejection::BackedOff),
                );
                return Some(-1);
            }
            if ingest.srt.full(ip) {
                // SAFETY: `ns` is the socket this hook was called for.
                unsafe { (srt.setrejectreason)(ns, ffi::SRT_REJX_OVERLOAD) };
                let mut last = PER_IP_LOGGED.lock().unwrap_or_else(|e| e.into_inner());
                if last.is_none_or(|t| now.saturating_duration_since(t) > Duration::from_secs(60)) {
                    *last = Some(now);
                    warn!(%ip, limit = ingest.config.limits.max_srt_connections_per_ip, "SRT caller refused: too many connections from its address (limits.max_srt_connections_per_ip); further refusals only counted for a minute");
                }
                return Some(-1);
            }
        }
        let decision = access::admit(&ingest.config, &id);
        if let (Some(ip), Err(Refused::Forbidden(why))) = (ip, &decision) {
            if auth::is_auth_failure(*why) {
                if let Some(wait) = ingest.auth.failed(ip, now) {
                    warn!(%ip, wait_secs = wait.as_secs_f64(), "publish attempts from this address refused for a while: too many failed (ingest.auth_failures_before_backoff)");
                }
            }
        }
        Some(match decision {
            Ok(a) => {
                let set = match &a.passphrase {
                    Some(p) => srt.set_str(ns, ffi::SRTO_PASSPHRASE, p),
                    None => Ok(()),
                }
                .and_then(|()| srt.set_int(ns, ffi::SRTO_RCVLATENCY, a.latency_ms as c_int));
                match set {
                    Ok(()) => 0,
                    Err(e) => {
                        warn!(stream = %a.name, "SRT caller refused: {e}");
                        // SAFETY: `ns` is the socket this hook was called for.
                        unsafe { (srt.setrejectreason)(ns, ffi::SRT_REJX_FORBIDDEN) };
                        -1
                    }
                }
            }
            Err(refused) => {
                refuse(srt, ns, &ctx.ingest, &id, refused);
                -1
            }
        })
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decide)) {
        Ok(Some(rc)) => rc,
        _ => -1,
    }
}

/// When the last per-address refusal was logged (one line a minute).
static PER_IP_LOGGED: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);

/// The caller's address from the hook's `sockaddr`.
///
/// # Safety
/// `sa` is null or points to a `sockaddr_in` / `sockaddr_in6` as its family says.
unsafe fn hook_peer(sa: *const libc::sockaddr) -> Option<std::net::IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the caller's contract: a valid sockaddr of its family.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let v4 = &*(sa as *const libc::sockaddr_in);
                Some(std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)).into())
            }
            libc::AF_INET6 => {
                let v6 = &*(sa as *const libc::sockaddr_in6);
                Some(std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr).into())
            }
            _ => None,
        }
    }
}

fn refuse(srt: &Srt, ns: SrtSocket, ingest: &Ingest, id: &str, why: Refused) {
    // SAFETY: `ns` is the socket the listen hook was called for.
    unsafe { (srt.setrejectreason)(ns, why.code()) };
    let r = why.rejection();
    let Some(unlogged) = ingest
        .streams
        .registry
        .count_rejection(r, crate::telemetry::clock::now())
    else {
        return;
    };
    // Stream ids are public names, never keys: safe to log (truncated).
    let shown: String = id.chars().take(120).collect();
    warn!(stream_id = %shown, reason = r.label(), code = why.code(), unlogged, "SRT publish refused: {} (counted in ladderd_publishers_rejected_total; logged once a minute per reason)", r.describe());
}

fn accept_loop(srt: &'static Srt, lsn: SrtSocket, ingest: Arc<Ingest>) {
    loop {
        let mut storage: libc::sockaddr_storage =
            // SAFETY: an all-zero sockaddr_storage is a valid (empty) address.
            unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as c_int;
        // SAFETY: `storage` has room for any address; `len` says how much.
        let s =
            unsafe { (srt.accept)(lsn, &mut storage as *mut _ as *mut libc::sockaddr, &mut len) };
        if s == ffi::SRT_INVALID_SOCK {
            if ingest.shutdown.is_triggered() {
                return;
            }
            warn!("SRT accept: {}", srt.last_error());
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let peer = peer_addr(&storage, len);
        // The hook's check can be raced by a burst of handshakes; this one cannot.
        let Some(place) = ingest.srt.enter(peer.ip()) else {
            debug!(%peer, "SRT connection closed: at limits.max_srt_connections_per_ip");
            srt.close_socket(s);
            continue;
        };
        let ingest = ingest.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ladderd-srt-{s}"))
            .spawn(move || {
                let _place = place;
                let c = ingest.clone();
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    connection(srt, s, peer, &c)
                }));
                if run.is_err() {
                    warn!(%peer, "SRT connection thread panicked; connection closed");
                }
                srt.close_socket(s);
            });
        if let Err(e) = spawned {
            warn!(%peer, "SRT connection not served: {e}");
            srt.close_socket(s);
        }
    }
}

fn peer_addr(storage: &libc::sockaddr_storage, len: c_int) -> SocketAddr {
    // SAFETY: libsrt filled `storage` with an address of `len` bytes.
    let sa = unsafe {
        socket2::SockAddr::new(
            std::ptr::read(storage as *const libc::sockaddr_storage as *const _),
            len as libc::socklen_t,
        )
    };
    sa.as_socket()
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// The stream id the caller sent (`SRTO_STREAMID`), read back on the accepted socket.
fn stream_id(srt: &Srt, s: SrtSocket) -> String {
    let mut buf = [0u8; 513];
    let mut len = buf.len() as c_int;
    // SAFETY: `buf` has `len` bytes of room; libsrt writes at most that.
    let rc = unsafe {
        (srt.getsockflag)(
            s,
            ffi::SRTO_STREAMID,
            buf.as_mut_ptr() as *mut c_void,
            &mut len,
        )
    };
    if rc < 0 {
        return String::new();
    }
    let n = (len.max(0) as usize).min(buf.len());
    String::from_utf8_lossy(&buf[..n])
        .trim_end_matches('\0')
        .to_string()
}

/// One publisher: claim its stream, read TS, demux, hand packets on.
fn connection(srt: &Srt, s: SrtSocket, peer: SocketAddr, ingest: &Ingest) {
    let id = stream_id(srt, s);
    let admitted = match access::admit(&ingest.config, &id) {
        Ok(a) => a,
        Err(why) => {
            // The hook let it in and the configuration cannot change: not expected.
            warn!(%peer, code = why.code(), "SRT publish refused after the handshake");
            return;
        }
    };
    if ingest.shutdown.is_triggered() {
        return;
    }
    let publish = match ingest.streams.publish(
        &admitted.name,
        peer,
        "srt",
        admitted.takeover,
        ingest.config.limits.max_streams,
        if admitted.backup {
            crate::stream::Role::Backup
        } else {
            crate::stream::Role::Primary
        },
    ) {
        Ok(p) => p,
        Err(why) => {
            let now = crate::telemetry::clock::now();
            if let Some(unlogged) = ingest.streams.registry.count_rejection(why, now) {
                warn!(%peer, stream = %admitted.name, reason = why.label(), unlogged, "SRT publish rejected: {} (counted in ladderd_publishers_rejected_total; logged once a minute per reason)", why.describe());
            }
            return;
        }
    };
    let stream = publish.stream().clone();
    // The passphrase matched (libsrt let it through): the address starts clean.
    ingest.auth.succeeded(peer.ip());
    info!(%peer, stream = %stream.name, latency_ms = admitted.latency_ms, "SRT receive latency");
    let _ = srt.set_int(s, ffi::SRTO_RCVTIMEO, RECV_TIMEOUT_MS);
    let mut demuxer = Demuxer::new(stream.id);
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut watch = Watch::new(crate::telemetry::clock::now());
    let mut last_stats = crate::telemetry::clock::now();
    // The demuxer's counters as last exported, and whether its trouble was logged.
    let mut seen = Counters::default();
    let mut logged_unusable = false;
    let reason = loop {
        if let Some(r) = stream.stop_requested() {
            break r;
        }
        if ingest.shutdown.is_triggered() {
            break EndReason::Shutdown;
        }
        match watch.check(crate::telemetry::clock::now()) {
            None => {}
            Some(Gone::Silent) => break EndReason::Timeout,
            Some(Gone::Unusable) => {
                ingest.srt.stats.unusable_publishes.fetch_add(1, Relaxed);
                let c = demuxer.counters();
                warn!(%peer, stream = %stream.name, ts_packets = c.ts_packets, skipped_bytes = c.skipped_bytes, resyncs = c.resyncs, dropped_pes = c.dropped_pes, pes_length_mismatches = c.pes_length_mismatches, video_before_config = c.video_before_config, "SRT publish ended: data but no usable media for {}s (not MPEG-TS with H.264/AAC the demuxer can read); the NAME is free again (srt_unusable_publishes_total)", IDLE.as_secs());
                break EndReason::Error(format!("no usable media for {}s", IDLE.as_secs()));
            }
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            publish_stats(srt, s, &publish, admitted.latency_ms);
            last_stats = crate::telemetry::clock::now();
        }
        // SAFETY: `buf` has MAX_MESSAGE bytes of room.
        let n = unsafe { (srt.recvmsg)(s, buf.as_mut_ptr() as *mut c_char, buf.len() as c_int) };
        if n < 0 {
            let code = srt.last_error_code();
            if code == ffi::SRT_EASYNCRCV || code == ffi::SRT_ETIMEOUT {
                continue;
            }
            debug!(stream = %stream.name, code, "SRT receive ended: {}", srt.last_error());
            break EndReason::PublisherClosed;
        }
        let n = n as usize;
        let arrival = crate::telemetry::clock::now();
        watch.data(arrival);
        let Some(data) = buf.get(..n) else { continue };
        let pushed = demuxer.push(data, arrival);
        let mut closed = false;
        while let Some(out) = demuxer.poll() {
            if matches!(out, Demuxed::Packet(_)) {
                watch.media(arrival);
            }
            closed |= !forward(&publish, out);
        }
        let c = *demuxer.counters();
        if c != seen {
            if c.continuity_errors > seen.continuity_errors {
                if seen.continuity_errors == 0 {
                    warn!(stream = %stream.name, "MPEG-TS continuity errors (lost TS packets): a video frame with a gap goes on damaged (the decoder conceals it), an audio PES with one is dropped; counted (ingest_continuity_errors_total), the stream goes on");
                }
            }
            publish.ts_demux(&c);
            if !logged_unusable && ts_unusable_input(&c) {
                logged_unusable = true;
                warn!(stream = %stream.name, skipped_bytes = c.skipped_bytes, resyncs = c.resyncs, dropped_pes = c.dropped_pes, pes_length_mismatches = c.pes_length_mismatches, "MPEG-TS input the demuxer cannot fully use (bytes between packets, PES it cannot read or place); counted (srt_ts_skipped_bytes_total, srt_ts_demux_events_total), further ones only counted");
            }
            ingest.srt.stats.add_ts(&seen, &c);
            seen = c;
        }
        if let Err(e) = pushed {
            warn!(stream = %stream.name, "SRT publish ended: {e}");
            break EndReason::Error(e.to_string());
        }
        if closed {
            break EndReason::Shutdown;
        }
    };
    publish_stats(srt, s, &publish, admitted.latency_ms);
    publish.end_blocking(reason);
}

/// Hands one demuxed value to the stream; `false` once the stream is gone.
fn forward(publish: &Publisher, out: Demuxed) -> bool {
    match out {
        Demuxed::Config(c) => publish.config_blocking(c).is_ok(),
        // Counted as the packet's own bytes.
        Demuxed::Packet(p) => {
            let len = p.data.len();
            publish.packet_blocking(p, len).is_ok()
        }
    }
}

fn publish_stats(srt: &Srt, s: SrtSocket, publish: &Publisher, latency_ms: u32) {
    let Some(b) = srt.stats(s) else { return };
    let t = TransportStats {
        rtt_ms: b.ms_rtt,
        receive_rate_mbps: b.mbps_recv_rate,
        packets_received: b.pkt_recv_total.max(0) as u64,
        packets_lost: b.pkt_rcv_loss_total.max(0) as u64,
        packets_retransmitted: b.pkt_rcv_retrans.max(0) as u64,
        packets_dropped: b.pkt_rcv_drop_total.max(0) as u64,
        receive_buffer_ms: b.ms_rcv_buf.max(0) as u64,
        latency_ms: if b.ms_rcv_tsbpd_delay > 0 {
            b.ms_rcv_tsbpd_delay as u64
        } else {
            latency_ms as u64
        },
    };
    publish.transport(t);
}

/// libsrt's log lines into `tracing` (warnings and errors only: its notices
/// are per-packet chatter). A rejected handshake (a wrong passphrase: four
/// lines) is counted in `srt_handshakes_rejected_total` and summed up in one
/// line a minute; its detail lines go to debug. Anyone can send handshakes.
fn install_log_handler(srt: &Srt, per_ip: Arc<PerIp>) {
    unsafe extern "C" fn handler(
        opaque: *mut c_void,
        level: c_int,
        _file: *const c_char,
        _line: c_int,
        area: *const c_char,
        message: *const c_char,
    ) {
        let _ = std::panic::catch_unwind(|| {
            let text = |p: *const c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    // SAFETY: libsrt passes NUL-terminated strings valid for the call.
                    unsafe { CStr::from_ptr(p) }
                        .to_string_lossy()
                        .trim()
                        .to_string()
                }
            };
            let (area, msg) = (text(area), text(message));
            // SAFETY: `opaque` is the `PerIp` leaked for the handler in `install_log_handler`.
            let stats = unsafe { &(*(opaque as *const PerIp)).stats };
            match classify(&msg) {
                LogLine::Rejected(why) => {
                    if let Some(unlogged) =
                        stats.handshake_rejected(why, crate::telemetry::clock::now())
                    {
                        warn!(reason = why.label(), unlogged, "SRT handshake rejected: {msg}; further ones only counted for a minute (srt_handshakes_rejected_total)");
                    }
                }
                LogLine::RejectionDetail | LogLine::Benign => {
                    debug!(target: "libsrt", area = %area, "{msg}")
                }
                LogLine::Other => match stats.other_line(&area, crate::telemetry::clock::now()) {
                    // syslog levels: 3 error, 4 warning.
                    Some(unlogged) if level <= 3 => {
                        tracing::error!(target: "libsrt", area = %area, unlogged, "{msg}")
                    }
                    Some(unlogged) => {
                        tracing::warn!(target: "libsrt", area = %area, unlogged, "{msg}")
                    }
                    None => debug!(target: "libsrt", area = %area, "{msg}"),
                },
            }
        });
    }
    // The handler may run until the process ends: its context is never freed.
    let opaque = Arc::into_raw(per_ip) as *mut c_void;
    // SAFETY: `handler` matches SRT_LOG_HANDLER_FN and never unwinds; `opaque` stays valid.
    unsafe {
        (srt.setloglevel)(4);
        (srt.setloghandler)(opaque, handler);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 30: an SRT publisher sending random bytes (or PES the demuxer
    /// cannot read) held its NAME for good; a silent one was ended after
    /// [`IDLE`]. On a fake clock: both now end after [`IDLE`], and media keeps
    /// a publish alive however long it runs.
    #[test]
    fn a_publish_without_media_ends_like_a_silent_one() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Data every 10 ms, never media: unusable once IDLE has passed.
        let mut w = Watch::new(t0);
        for ms in (0..=5_000).step_by(10) {
            w.data(at(ms));
            assert_eq!(w.check(at(ms)), None, "{ms} ms");
        }
        w.data(at(5_010));
        assert_eq!(w.check(at(5_010)), Some(Gone::Unusable));
        // Nothing at all: silent, as before.
        let w = Watch::new(t0);
        assert_eq!(w.check(at(5_001)), Some(Gone::Silent));
        // A real publish: media now and then (a keyframe interval's worth apart) lives on.
        let mut w = Watch::new(t0);
        for ms in (0..60_000).step_by(20) {
            w.data(at(ms));
            if ms % 2_000 == 0 {
                w.media(at(ms));
            }
            assert_eq!(w.check(at(ms)), None, "{ms} ms");
        }
    }
}
