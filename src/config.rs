//! The one TOML configuration file, CLI overrides, and validation.
//!
//! Every error names the key at fault (`server.rtmp_listen: invalid socket
//! address syntax`), and the binary exits with code 2 on any of them.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{file}: {key}: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

/// A secret (stream key, admin token): never printed, logged or serialized.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that must hand it on: libsrt,
    /// which takes a stream's key as its SRT passphrase.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Compares without an early exit on the first differing byte.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: Server,
    pub runtime: Runtime,
    pub limits: Limits,
    pub ingest: Ingest,
    pub ladder: Ladder,
    pub hls: Hls,
    pub dvr: Dvr,
    pub archive: Archive,
    pub admin: Admin,
    pub cdn: Cdn,
    pub playback: Playback,
    pub demo: DemoConfig,
    pub streams: Vec<StreamConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub rtmp_listen: SocketAddr,
    /// SRT publishers (UDP); the listener is bound exclusively (no second
    /// process can share the port).
    pub srt_listen: SocketAddr,
    pub http_listen: SocketAddr,
    /// HTTPS (HTTP/2 or HTTP/1.1 by ALPN) with `tls_cert` and `tls_key`; the
    /// same routes and limits as `http_listen`. Unset: no HTTPS.
    pub https_listen: Option<SocketAddr>,
    /// PEM certificate chain (leaf first) and its private key; read again on SIGHUP.
    pub tls_cert: std::path::PathBuf,
    pub tls_key: std::path::PathBuf,
    /// Seconds the process waits for streams to end on SIGTERM before exiting anyway.
    pub shutdown_grace_secs: f64,
    /// On SIGTERM, seconds `/readyz` answers 503 while everything keeps serving,
    /// so load balancers stop sending viewers before the listeners close.
    pub drain_secs: f64,
    /// An HTTP connection that sends nothing for this long is closed (slow or
    /// stalled clients, half-sent headers, idle keep-alive).
    pub http_idle_timeout_secs: f64,
    /// Seconds an HTTP connection has to send a request's headers, counted from
    /// accept (first request) or from its first byte (later ones), however busy it
    /// keeps the socket: a byte-a-second trickle cannot hold a connection.
    pub http_header_timeout_secs: f64,
    /// Open connections on `http_listen` at once; beyond it new ones get a 503
    /// (`Retry-After: 1`) and are closed, counted in `http_connections_refused_total`.
    pub http_max_connections: usize,
    /// Open connections from one client on `http_listen` (an IPv4 address, or
    /// an IPv6 /64); beyond it new ones get a 429 and are closed.
    pub http_max_connections_per_ip: usize,
    /// Bytes of request header lines (names and values) a request may send; 431 beyond.
    pub http_max_header_bytes: usize,
    /// Bytes of a request's path and query; 414 beyond.
    pub http_max_uri_bytes: usize,
    /// Bytes of request body accepted (no route reads one); 413 and close beyond.
    pub http_max_body_bytes: u64,
    /// Requests one client may have in flight that can wait on the live edge
    /// (blocking playlist reloads, parts and segments still being written); 429 beyond.
    pub http_max_held_requests_per_ip: usize,
    /// Clients the per-client caps above do not apply to (CIDR blocks, e.g. the
    /// Varnish shields or a CDN's pull addresses, which carry many viewers).
    pub limit_exempt: Vec<Cidr>,
    /// Seconds start-up waits for a listen port another process still holds
    /// (e.g. the previous instance draining) before giving up; `/readyz` is
    /// 503 meanwhile. Other bind errors stop start-up at once.
    pub bind_wait_secs: f64,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            rtmp_listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            srt_listen: SocketAddr::from(([0, 0, 0, 0], 9000)),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            https_listen: None,
            tls_cert: Default::default(),
            tls_key: Default::default(),
            shutdown_grace_secs: 3.0,
            drain_secs: 0.5,
            http_idle_timeout_secs: 60.0,
            http_header_timeout_secs: 5.0,
            http_max_connections: 4096,
            http_max_connections_per_ip: 256,
            http_max_header_bytes: 16 << 10,
            http_max_uri_bytes: 8 << 10,
            http_max_body_bytes: 1024,
            http_max_held_requests_per_ip: 64,
            limit_exempt: Vec::new(),
            bind_wait_secs: 10.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runtime {
    /// CPU ids to run executors on, one pinned executor per id. Empty: every CPU this process may use.
    pub cores: Vec<usize>,
    /// How many of `cores` (the first ones) serve sockets; the rest do media work.
    /// With a single core, it does both.
    pub io_cores: usize,
    /// io_uring registered-buffer memory per executor, KiB (glommio `io_memory`).
    /// Counts against RLIMIT_MEMLOCK (systemd `LimitMEMLOCK`) for non-root users.
    pub io_memory_kib: usize,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            cores: Vec::new(),
            io_cores: 1,
            io_memory_kib: 768,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Live publishes at once; further publishes are rejected.
    pub max_streams: usize,
    /// Open RTMP connections at once (publishing or not).
    pub max_rtmp_connections: usize,
    /// Seconds an RTMP connection may stay silent (handshake included) before it is closed.
    pub rtmp_idle_timeout_secs: f64,
    /// Packets queued between ingest and a stream's pipeline before ingest waits (backpressure).
    pub packet_queue: usize,
    /// Seconds a new RTMP connection has to finish handshake, `connect` and an accepted
    /// `publish`, however busy it keeps the socket (the idle timeout alone lets a
    /// byte-a-second trickle hold a slot for ever).
    pub rtmp_setup_timeout_secs: f64,
    /// Open RTMP connections from one IP address (publishing or not).
    pub max_rtmp_connections_per_ip: usize,
    /// RTMP connections that have not yet published; beyond it new ones are refused,
    /// so `max_rtmp_connections` minus this many slots are always left for publishers.
    pub max_rtmp_pending_connections: usize,
    /// Bytes all not-yet-publishing RTMP connections together may hold in partial
    /// messages; a connection that would go past it is closed.
    pub rtmp_pending_buffer_bytes: usize,
    /// Open SRT connections from one IP address; beyond it callers are refused (1402).
    pub max_srt_connections_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_streams: 64,
            max_rtmp_connections: 256,
            rtmp_idle_timeout_secs: 10.0,
            packet_queue: 1024,
            rtmp_setup_timeout_secs: 5.0,
            max_rtmp_connections_per_ip: 16,
            max_rtmp_pending_connections: 64,
            rtmp_pending_buffer_bytes: 8 << 20,
            max_srt_connections_per_ip: 16,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ingest {
    /// RTMP application name publishers connect to (`rtmp://HOST/live`).
    pub app: String,
    /// Lab setting: accept any stream NAME without a key. Off by default.
    pub allow_any_key: bool,
    /// A second publisher on a live NAME replaces the first (default: it is rejected).
    pub takeover: bool,
    /// SRT receiver latency (ms): how long libsrt may wait for retransmissions
    /// before it gives a packet up. Per stream: `[[streams]] srt_latency_ms`.
    pub srt_latency_ms: u32,
    /// A publisher that comes back under the same NAME within this many seconds
    /// continues the same renditions (media sequence, URIs); 0: each publish
    /// starts anew.
    pub reconnect_window_secs: f64,
    /// After this many ms without input (a silent or gone publisher, inside
    /// the reconnect window) the stream shows a "signal lost" slate with
    /// silence on the same clock, so players keep playing; 0: no slate.
    pub slate_after_ms: u64,
    /// After this many ms without video on air (at least 4 frame
    /// intervals) every rung gets the pictures the decoder holds for
    /// reordering, so the renditions do not stop short of what was sent
    /// while the input pauses; 0: they wait for the next packets.
    pub decoder_drain_after_ms: u64,
    /// A primary without input for this many ms hands the renditions to its
    /// backup (`role=backup`), from the backup's latest keyframe.
    pub failover_after_ms: u64,
    /// Back to the primary when it returns (`auto`), or only when the backup
    /// fails or an operator asks (`manual`: `POST /api/v1/streams/NAME/failback`).
    pub failback: Failback,
    /// Failed publish attempts (wrong or missing key, unknown stream) from one
    /// address within `auth_failure_window_secs` before it is made to wait.
    pub auth_failures_before_backoff: u32,
    pub auth_failure_window_secs: f64,
    /// The first wait; each further round of failures doubles it up to
    /// `auth_backoff_max_secs`. While it lasts every publish from the address is
    /// refused, right key or not.
    pub auth_backoff_secs: f64,
    pub auth_backoff_max_secs: f64,
}

/// `[ingest] failback`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failback {
    #[default]
    Auto,
    Manual,
}

impl Default for Ingest {
    fn default() -> Self {
        Ingest {
            app: "live".into(),
            allow_any_key: false,
            takeover: false,
            srt_latency_ms: 120,
            reconnect_window_secs: 30.0,
            slate_after_ms: 1000,
            decoder_drain_after_ms: 250,
            failover_after_ms: 1000,
            failback: Failback::Auto,
            auth_failures_before_backoff: 5,
            auth_failure_window_secs: 60.0,
            auth_backoff_secs: 10.0,
            auth_backoff_max_secs: 300.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ladder {
    /// Transcode live streams into the ladder (off: ingest only).
    pub enabled: bool,
    /// Segment duration; every rung gets an IDR at each segment boundary.
    pub segment_secs: f64,
    /// A stream whose oldest queued packet is older than this drops frames
    /// up to its next keyframe (counted) instead of falling further behind.
    pub max_lag_secs: f64,
    /// The rungs, largest first. Rungs above a source's size or frame rate are dropped.
    pub rungs: Vec<RungConfig>,
    /// `auto` (the GPU when it probes usable, else the CPU, saying why),
    /// `cpu`, or `gpu` (start-up fails with the reason when there is none).
    pub backend: BackendChoice,
    /// CUDA device ordinal the GPU backend uses.
    pub gpu_device: usize,
    /// CPU backend: the rungs scale and encode in parallel on the rung
    /// worker pool (false: one after another on the stream's media core).
    pub rung_threads: bool,
    /// Threads in the rung worker pool, shared by every stream's rungs
    /// (0: one per core ladderd runs on).
    pub rung_workers: usize,
    /// Pictures a rung thread may have queued; a rung whose queue is full
    /// drops pictures up to its next IDR (counted) while the others go on.
    /// Bounds memory (one source-size picture each) and how far a rung may lag.
    pub rung_queue_frames: usize,
    /// Re-encode the publisher's AAC at `audio_kbps` (false: passed through).
    pub audio_reencode: bool,
    pub audio_kbps: u32,
    /// Software H.264 encoder: `openh264` or `x264` (builds with `--features x264`).
    pub encoder: EncoderChoice,
    /// x264's preset (`ultrafast` … `placebo`); tune is always `zerolatency`.
    pub x264_preset: String,
    /// x264's own threads per rung encoder (0: x264 decides). 1 suits rung
    /// threads, which already run the rungs in parallel.
    pub x264_threads: u32,
    /// Software H.264 decoder: `auto` (libavcodec when the box has it, else
    /// openh264), `libavcodec` (start-up fails without it), `openh264`.
    pub decoder: DecoderChoice,
    /// libavcodec frame threads per stream: each adds a picture of delay;
    /// 1 (the default) decodes in the stream's own thread.
    pub decoder_threads: u32,
    /// CPU scaler: `auto` (libswscale when the box has it, else
    /// fast_image_resize), `swscale` (start-up fails without it),
    /// `fast_image_resize`.
    pub scaler: ScalerChoice,
    /// CPU backend: the rungs below the largest rung of at most 720 lines
    /// scale from its picture, made once, not from the source (on by
    /// default; off: each rung from the source).
    pub cascade: bool,
}

impl Ladder {
    pub fn soft_codecs(&self) -> SoftCodecs {
        SoftCodecs {
            choice: self.encoder,
            x264_preset: self.x264_preset.clone(),
            x264_threads: self.x264_threads,
            decoder: self.decoder,
            decoder_threads: self.decoder_threads,
            scaler: self.scaler,
            cascade: self.cascade,
        }
    }
}

impl Default for Ladder {
    fn default() -> Self {
        Ladder {
            enabled: true,
            segment_secs: 2.0,
            max_lag_secs: 3.0,
            rungs: default_ladder(),
            backend: Default::default(),
            gpu_device: 0,
            rung_threads: true,
            rung_workers: 0,
            rung_queue_frames: 60,
            audio_reencode: false,
            audio_kbps: 128,
            encoder: Default::default(),
            x264_preset: "veryfast".into(),
            x264_threads: 1,
            decoder: Default::default(),
            decoder_threads: 1,
            scaler: Default::default(),
            cascade: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hls {
    /// LL-HLS part duration; rounded to whole frames of the source.
    pub part_secs: f64,
    /// How much of each rendition the hot store keeps (delta updates need
    /// more than 6 target durations; standard HLS three 6 s segments).
    pub window_secs: f64,
    /// Standard (non-LL) HLS segment duration: a whole number of LL segments. 2 s:
    /// hls.js (and Safari) stay 3 target durations behind the live edge, so 6 s
    /// segments played 17.5-18.8 s behind; 2 s ones about 8 s.
    pub standard_segment_secs: f64,
    /// Offer the ingested stream as a rendition without re-encoding.
    pub source_rendition: bool,
    /// Write each frame of a part as its own CMAF chunk and stream a part that
    /// is still being written to whoever asked for it (preload hints); off:
    /// one fragment per part, answered when the part is complete.
    pub chunked_parts: bool,
    /// hls.js for the player page (installed by `npm ci`).
    pub hls_js: std::path::PathBuf,
    /// dash.js for the player page's DASH choice (installed by `npm ci`).
    pub dash_js: std::path::PathBuf,
}

impl Default for Hls {
    fn default() -> Self {
        Hls {
            part_secs: 0.333,
            window_secs: 40.0,
            standard_segment_secs: 2.0,
            source_rendition: true,
            chunked_parts: true,
            hls_js: "node_modules/hls.js/dist/hls.min.js".into(),
            dash_js: "node_modules/dashjs/dist/modern/umd/dash.all.min.js".into(),
        }
    }
}

/// The warm tier: segments on local disk (O_DIRECT through io_uring).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dvr {
    /// Where segments go; empty: no DVR (the RAM window only).
    pub dir: std::path::PathBuf,
    /// Rewind kept per rendition.
    pub window_secs: f64,
    /// Disk all streams may fill together (GB); 0: only the window limits it.
    pub max_disk_gb: f64,
    /// A stream's run becomes a recording (live-to-VOD) when it ends.
    pub record_on_end: bool,
}

impl Default for Dvr {
    fn default() -> Self {
        Dvr {
            dir: std::path::PathBuf::new(),
            window_secs: 7200.0,
            max_disk_gb: 0.0,
            record_on_end: true,
        }
    }
}

/// The cold tier: what the DVR writes, copied to object storage.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Archive {
    /// `s3://BUCKET[/PREFIX]` or `file:///DIR`; empty: no archive.
    pub url: String,
    /// S3 endpoint for a store that is not AWS (`http://HOST:3900`).
    pub endpoint: String,
    /// S3 region (`us-east-1` when empty; Garage's is its `s3_region`).
    pub region: String,
    /// A TOML file with `access_key_id` and `secret_access_key`; empty: the
    /// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
    pub credentials_file: std::path::PathBuf,
}

/// `archive.credentials_file`'s contents.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveCredentials {
    access_key_id: String,
    secret_access_key: String,
}

impl Archive {
    /// The access key id and secret from `credentials_file` (None: from the
    /// environment); the error names the file.
    pub fn credentials(&self) -> Result<Option<(String, String)>, String> {
        if self.credentials_file.as_os_str().is_empty() {
            return Ok(None);
        }
        let path = self.credentials_file.display();
        let text =
            std::fs::read_to_string(&self.credentials_file).map_err(|e| format!("{path}: {e}"))?;
        let c: ArchiveCredentials = toml::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        Ok(Some((c.access_key_id, c.secret_access_key)))
    }
}

/// Who may read the API and `/metrics`, and kick publishers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// When set, `/api/…` and `/metrics` need `Authorization: Bearer TOKEN`.
    pub token: Option<Secret>,
    /// When set, `/api/…` and `/metrics` are served only here (health too),
    /// not on `server.http_listen`.
    pub listen: Option<SocketAddr>,
}

/// CDNs in front of the origin, for content steering (HLS
/// `EXT-X-CONTENT-STEERING`, DASH `<ContentSteering>`): players fail over
/// between them by the steering manifest this box serves, not by URLs baked
/// into them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cdn {
    /// The CDNs, in priority order. Empty: playlists list relative URIs (one path).
    pub pathways: Vec<Pathway>,
    /// How long a player keeps a steering manifest before asking again (its `TTL`).
    pub steering_ttl_secs: u32,
    /// Where players ask for the steering manifest, when not where they read
    /// the multivariant playlist (say, this box's own address while the
    /// playlists come through a CDN): `https://origin.example` serves
    /// `/live/NAME/steering.json` there. Empty: relative to the playlist.
    pub steering_base_url: String,
}

impl Default for Cdn {
    fn default() -> Self {
        Cdn {
            pathways: Vec::new(),
            steering_ttl_secs: 10,
            steering_base_url: String::new(),
        }
    }
}

/// Who may watch: signed playback URLs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Playback {
    /// A file holding the HMAC-SHA256 key (at least 32 bytes; reloaded on
    /// SIGHUP). Set: `/live/…` and `/vod/…` answer only signed URLs
    /// (`ladderd sign NAME --ttl 1h`). Empty: playback is open.
    pub signing_key: std::path::PathBuf,
    /// How long an edge may keep the origin's "this token is good" answer
    /// (`/live/NAME/t/TOKEN/auth`), never past the token's expiry.
    pub auth_cache_secs: u32,
}

impl Default for Playback {
    fn default() -> Self {
        Playback {
            signing_key: std::path::PathBuf::new(),
            auth_cache_secs: 60,
        }
    }
}

/// One CDN: what players call it and where it serves this box's `/live/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pathway {
    /// `PATHWAY-ID` / `serviceLocation`: letters, digits, `.`, `-`, `_`.
    pub id: String,
    /// The CDN's address for this origin, e.g. `https://cdn-a.example.com`
    /// (it serves `/live/NAME/…` as this box does).
    pub base_url: String,
}

/// An absolute http(s) URL with a host and nothing after the path.
/// An address block (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?}: not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn valid_base_url(u: &str) -> bool {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && !r.starts_with('/')
            && !r.contains(['?', '#', '"', ' ', '<', '>', '&', '\\'])
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Public name, used in playback URLs.
    pub name: String,
    /// Secret the publisher sends as `?key=`.
    pub key: Secret,
    /// Overrides `ingest.takeover` for this stream.
    #[serde(default)]
    pub takeover: Option<bool>,
    /// Overrides `ingest.srt_latency_ms` for this stream.
    #[serde(default)]
    pub srt_latency_ms: Option<u32>,
}

/// Settings given on the command line; they win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub rtmp_listen: Option<SocketAddr>,
    pub srt_listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    /// `serve --demo`: run the built-in demo stream.
    pub demo: bool,
}

impl Config {
    /// Loads and validates a file, or the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Config::parse(&text, &p.display().to_string())?
            }
            None => Config::default(),
        };
        if let Some(a) = overrides.rtmp_listen {
            config.server.rtmp_listen = a;
        }
        if let Some(a) = overrides.http_listen {
            config.server.http_listen = a;
        }
        if let Some(a) = overrides.srt_listen {
            config.server.srt_listen = a;
        }
        if overrides.demo {
            config.demo.enabled = true;
        }
        // Again after the overrides: `--http-listen` equal to `--rtmp-listen` must fail
        // exactly as the same two keys in the file do.
        config
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                file: path.map_or("(defaults)".into(), |p| p.display().to_string()),
                key,
                reason,
            })?;
        Ok(config)
    }

    /// Parses and validates TOML text; `file` only labels errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            // toml's message carries line/column and a caret diagram; keep its first line
            // plus the position so the operator can find it.
            let inner = e.into_inner();
            let reason = inner.message().to_string();
            let at = inner
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            ConfigError::Invalid {
                file: file.into(),
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                reason: format!("{reason}{at}"),
            }
        })?;
        config
            .validate()
            .map_err(|(key, reason)| ConfigError::Invalid {
                file: file.into(),
                key,
                reason,
            })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, r: String| Err((k.to_string(), r));
        let mut ids = HashSet::new();
        for (i, p) in self.cdn.pathways.iter().enumerate() {
            let valid_id = !p.id.is_empty()
                && p.id.len() <= 64
                && p.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !valid_id {
                return bad(
                    &format!("cdn.pathways[{i}].id"),
                    format!("{:?}: 1-64 letters, digits, '.', '-' or '_'", p.id),
                );
            }
            if !ids.insert(p.id.as_str()) {
                return bad(
                    &format!("cdn.pathways[{i}].id"),
                    format!("{:?} listed twice", p.id),
                );
            }
            if !valid_base_url(&p.base_url) {
                return bad(
                    &format!("cdn.pathways[{i}].base_url"),
                    format!(
                        "{:?}: an absolute http:// or https:// URL without query or fragment",
                        p.base_url
                    ),
                );
            }
        }
        if !self.cdn.steering_base_url.is_empty() && !valid_base_url(&self.cdn.steering_base_url) {
            return bad(
                "cdn.steering_base_url",
                format!(
                    "{:?}: an absolute http:// or https:// URL without query or fragment",
                    self.cdn.steering_base_url
                ),
            );
        }
        if self.cdn.steering_ttl_secs == 0 {
            return bad("cdn.steering_ttl_secs", "must be at least 1".into());
        }
        let cpus = available_cpus();
        let mut seen = HashSet::new();
        for (i, c) in self.runtime.cores.iter().enumerate() {
            if !cpus.contains(c) {
                return bad(
                    &format!("runtime.cores[{i}]"),
                    format!("CPU {c} is not available to this process (available: {cpus:?})"),
                );
            }
            if !seen.insert(c) {
                return bad(
                    &format!("runtime.cores[{i}]"),
                    format!("CPU {c} listed twice"),
                );
            }
        }
        if self.runtime.io_cores == 0 {
            return bad("runtime.io_cores", "must be at least 1".into());
        }
        let ncores = if self.runtime.cores.is_empty() {
            cpus.len()
        } else {
            self.runtime.cores.len()
        };
        if self.runtime.io_cores > ncores {
            return bad(
                "runtime.io_cores",
                format!(
                    "{} I/O cores requested but only {ncores} cores configured",
                    self.runtime.io_cores
                ),
            );
        }
        if !(64..=1 << 20).contains(&self.runtime.io_memory_kib) {
            return bad(
                "runtime.io_memory_kib",
                "must be between 64 and 1048576".into(),
            );
        }
        if listen_conflict(self.server.rtmp_listen, self.server.http_listen) {
            return bad(
                "server.http_listen",
                format!(
                    "{} overlaps server.rtmp_listen {}: both are TCP listeners",
                    self.server.http_listen, self.server.rtmp_listen
                ),
            );
        }
        let files =
            [&self.server.tls_cert, &self.server.tls_key].map(|p| !p.as_os_str().is_empty());
        match (self.server.https_listen, files) {
            (Some(_), [true, true]) | (None, [false, false]) => {}
            (Some(_), _) => {
                return bad(
                    "server.https_listen",
                    "needs both server.tls_cert and server.tls_key".into(),
                )
            }
            (None, _) => {
                return bad(
                    "server.tls_cert",
                    "set with server.tls_key and server.https_listen, or not at all".into(),
                )
            }
        }
        if let Some(https) = self.server.https_listen {
            for (key, other) in [
                ("server.http_listen", self.server.http_listen),
                ("server.rtmp_listen", self.server.rtmp_listen),
            ] {
                if listen_conflict(https, other) {
                    return bad(
                        "server.https_listen",
                        format!("{https} overlaps {key} {other}"),
                    );
                }
            }
        }
        if let Some(admin) = self.admin.listen {
            for (key, other) in [
                ("server.http_listen", self.server.http_listen),
                ("server.rtmp_listen", self.server.rtmp_listen),
            ]
            .into_iter()
            .chain(self.server.https_listen.map(|a| ("server.https_listen", a)))
            {
                if listen_conflict(admin, other) {
                    return bad("admin.listen", format!("{admin} overlaps {key} {other}"));
                }
            }
        }
        let latencies = std::iter::once((
            "ingest.srt_latency_ms".to_string(),
            self.ingest.srt_latency_ms,
        ))
        .chain(self.streams.iter().filter_map(|s| {
            Some((
                format!("streams.{}.srt_latency_ms", s.name),
                s.srt_latency_ms?,
            ))
        }));
        for (key, ms) in latencies {
            if !(20..=8000).contains(&ms) {
                return bad(&key, "must be between 20 and 8000 ms".into());
            }
        }
        if !(0.0..=3600.0).contains(&self.ingest.reconnect_window_secs) {
            return bad(
                "ingest.reconnect_window_secs",
                "must be between 0 and 3600".into(),
            );
        }
        if !(100..=60_000).contains(&self.ingest.failover_after_ms) {
            return bad(
                "ingest.failover_after_ms",
                "must be between 100 and 60000".into(),
            );
        }
        if self.ingest.slate_after_ms > 60_000 {
            return bad(
                "ingest.slate_after_ms",
                "must be between 0 (no slate) and 60000".into(),
            );
        }
        if self.ingest.decoder_drain_after_ms > 60_000 {
            return bad(
                "ingest.decoder_drain_after_ms",
                "must be between 0 (no drain) and 60000".into(),
            );
        }
        if !(0.0..=10.0).contains(&self.server.drain_secs) {
            return bad("server.drain_secs", "must be between 0 and 10".into());
        }
        if !(0.0..=60.0).contains(&self.server.shutdown_grace_secs) {
            return bad(
                "server.shutdown_grace_secs",
                "must be between 0 and 60".into(),
            );
        }
        if !(self.server.http_idle_timeout_secs > 0.0
            && self.server.http_idle_timeout_secs <= 3600.0)
        {
            return bad(
                "server.http_idle_timeout_secs",
                "must be in (0, 3600]".into(),
            );
        }
        // Not tied to http_idle_timeout_secs: lowering the idle timeout alone must
        // not fail on a key the operator never set (the shorter of the two applies).
        if !(self.server.http_header_timeout_secs > 0.0
            && self.server.http_header_timeout_secs <= 3600.0)
        {
            return bad(
                "server.http_header_timeout_secs",
                "must be in (0, 3600]".into(),
            );
        }
        if self.server.http_max_connections == 0 {
            return bad("server.http_max_connections", "must be at least 1".into());
        }
        for (key, n) in [
            (
                "server.http_max_connections_per_ip",
                self.server.http_max_connections_per_ip,
            ),
            (
                "server.http_max_held_requests_per_ip",
                self.server.http_max_held_requests_per_ip,
            ),
            (
                "limits.max_srt_connections_per_ip",
                self.limits.max_srt_connections_per_ip,
            ),
        ] {
            if n == 0 {
                return bad(key, "must be at least 1".into());
            }
        }
        if !(1024..=1 << 20).contains(&self.server.http_max_header_bytes) {
            return bad(
                "server.http_max_header_bytes",
                "must be between 1024 and 1048576".into(),
            );
        }
        if !(256..=1 << 20).contains(&self.server.http_max_uri_bytes) {
            return bad(
                "server.http_max_uri_bytes",
                "must be between 256 and 1048576".into(),
            );
        }
        if self.ingest.auth_failures_before_backoff == 0 {
            return bad(
                "ingest.auth_failures_before_backoff",
                "must be at least 1".into(),
            );
        }
        for (key, secs) in [
            (
                "ingest.auth_failure_window_secs",
                self.ingest.auth_failure_window_secs,
            ),
            ("ingest.auth_backoff_secs", self.ingest.auth_backoff_secs),
        ] {
            if !(secs > 0.0 && secs <= 86_400.0) {
                return bad(key, "must be more than 0 and at most 86400".into());
            }
        }
        if !(self.ingest.auth_backoff_max_secs >= self.ingest.auth_backoff_secs
            && self.ingest.auth_backoff_max_secs <= 86_400.0)
        {
            return bad(
                "ingest.auth_backoff_max_secs",
                "must be between ingest.auth_backoff_secs and 86400".into(),
            );
        }
        if !(0.0..=600.0).contains(&self.server.bind_wait_secs) {
            return bad("server.bind_wait_secs", "must be between 0 and 600".into());
        }
        if let Err(why) = self.ladder.soft_codecs().check() {
            return bad("ladder.encoder", why);
        }
        if self.ladder.rung_workers > 1024 {
            return bad(
                "ladder.rung_workers",
                "must be at most 1024 (0: one per core)".into(),
            );
        }
        if !(1..=16).contains(&self.ladder.decoder_threads) {
            return bad("ladder.decoder_threads", "must be between 1 and 16".into());
        }
        if self.limits.max_streams == 0 {
            return bad("limits.max_streams", "must be at least 1".into());
        }
        if self.limits.max_rtmp_connections == 0 {
            return bad("limits.max_rtmp_connections", "must be at least 1".into());
        }
        if !(self.limits.rtmp_idle_timeout_secs > 0.0
            && self.limits.rtmp_idle_timeout_secs <= 3600.0)
        {
            return bad(
                "limits.rtmp_idle_timeout_secs",
                "must be in (0, 3600]".into(),
            );
        }
        if !(self.limits.rtmp_setup_timeout_secs > 0.0
            && self.limits.rtmp_setup_timeout_secs <= 600.0)
        {
            return bad(
                "limits.rtmp_setup_timeout_secs",
                "must be in (0, 600]".into(),
            );
        }
        if self.limits.max_rtmp_connections_per_ip == 0 {
            return bad(
                "limits.max_rtmp_connections_per_ip",
                "must be at least 1".into(),
            );
        }
        if self.limits.max_rtmp_pending_connections == 0
            || self.limits.max_rtmp_pending_connections > self.limits.max_rtmp_connections
        {
            return bad(
                "limits.max_rtmp_pending_connections",
                "must be between 1 and limits.max_rtmp_connections".into(),
            );
        }
        if self.limits.rtmp_pending_buffer_bytes < 64 << 10 {
            return bad(
                "limits.rtmp_pending_buffer_bytes",
                "must be at least 65536 (one command message)".into(),
            );
        }
        if !(16..=1 << 20).contains(&self.limits.packet_queue) {
            return bad(
                "limits.packet_queue",
                "must be between 16 and 1048576".into(),
            );
        }
        if !(0.5..=12.0).contains(&self.ladder.segment_secs) {
            return bad("ladder.segment_secs", "must be between 0.5 and 12".into());
        }
        if !(0.1..=60.0).contains(&self.ladder.max_lag_secs) {
            return bad("ladder.max_lag_secs", "must be between 0.1 and 60".into());
        }
        if !(0.1..=2.0).contains(&self.hls.part_secs)
            || self.hls.part_secs > self.ladder.segment_secs
        {
            return bad(
                "hls.part_secs",
                "must be between 0.1 and 2 and at most ladder.segment_secs".into(),
            );
        }
        if self.hls.standard_segment_secs < self.ladder.segment_secs
            || self.hls.standard_segment_secs > 30.0
        {
            return bad(
                "hls.standard_segment_secs",
                "must be between ladder.segment_secs and 30".into(),
            );
        }
        let target_duration =
            crate::media::timeline::target_duration(self.ladder.segment_secs) as f64;
        let needed = (6.0 * target_duration + self.ladder.segment_secs)
            .max(3.0 * self.hls.standard_segment_secs + self.ladder.segment_secs);
        if !(needed..=600.0).contains(&self.hls.window_secs) {
            return bad(
                "hls.window_secs",
                format!(
                    "must be between {needed} (delta updates and three standard segments) and 600"
                ),
            );
        }
        if !(self.hls.window_secs..=86_400.0).contains(&self.dvr.window_secs) {
            return bad(
                "dvr.window_secs",
                format!(
                    "must be between hls.window_secs ({}) and 86400",
                    self.hls.window_secs
                ),
            );
        }
        if !(self.dvr.max_disk_gb >= 0.0 && self.dvr.max_disk_gb.is_finite()) {
            return bad("dvr.max_disk_gb", "must be 0 (no cap) or more".into());
        }
        if !self.archive.url.is_empty() {
            if self.dvr.dir.as_os_str().is_empty() {
                return bad(
                    "archive.url",
                    "the archive copies what the DVR writes: set dvr.dir too".into(),
                );
            }
            if !self.archive.url.starts_with("s3://") && !self.archive.url.starts_with("file:///") {
                return bad(
                    "archive.url",
                    "must be s3://BUCKET[/PREFIX] or file:///DIR".into(),
                );
            }
            if let Err(e) = self.archive.credentials() {
                return bad("archive.credentials_file", e);
            }
        }
        let mut rung_names = HashSet::new();
        for (i, r) in self.ladder.rungs.iter().enumerate() {
            let key = |f: &str| format!("ladder.rungs[{i}].{f}");
            if r.name == "source" || r.name == "audio" {
                return bad(
                    &key("name"),
                    format!("{:?} is reserved for a rendition", r.name),
                );
            }
            if !valid_name(&r.name) || !rung_names.insert(&r.name) {
                return bad(
                    &key("name"),
                    format!("{:?}: must be a unique name of A-Z a-z 0-9 _ - .", r.name),
                );
            }
            if !(64..=4320).contains(&r.height) {
                return bad(&key("height"), "must be between 64 and 4320".into());
            }
            if !(1.0..=120.0).contains(&r.fps) {
                return bad(&key("fps"), "must be between 1 and 120".into());
            }
            if !(50..=100_000).contains(&r.bitrate_kbps) {
                return bad(&key("bitrate_kbps"), "must be between 50 and 100000".into());
            }
        }
        let d = &self.demo;
        if !valid_name(&d.name) {
            return bad(
                "demo.name",
                "use 1-64 characters from A-Z a-z 0-9 _ - .".into(),
            );
        }
        if self.streams.iter().any(|s| s.name == d.name) && d.enabled {
            return bad(
                "demo.name",
                format!("{:?} is also a configured stream", d.name),
            );
        }
        if !(64..=3840).contains(&d.width) || d.width % 2 == 1 {
            return bad("demo.width", "must be even, between 64 and 3840".into());
        }
        if !(64..=2160).contains(&d.height) || d.height % 2 == 1 {
            return bad("demo.height", "must be even, between 64 and 2160".into());
        }
        if !(1..=120).contains(&d.fps) {
            return bad("demo.fps", "must be between 1 and 120".into());
        }
        if !(100..=50_000).contains(&d.bitrate_kbps) {
            return bad("demo.bitrate_kbps", "must be between 100 and 50000".into());
        }
        if !valid_name(&self.ingest.app) {
            return bad(
                "ingest.app",
                "use 1-64 characters from A-Z a-z 0-9 _ - .".into(),
            );
        }
        let mut names = HashSet::new();
        for (i, s) in self.streams.iter().enumerate() {
            if !valid_name(&s.name) {
                return bad(
                    &format!("streams[{i}].name"),
                    format!("{:?}: use 1-64 characters from A-Z a-z 0-9 _ - .", s.name),
                );
            }
            if !names.insert(&s.name) {
                return bad(
                    &format!("streams[{i}].name"),
                    format!("{:?} is configured twice", s.name),
                );
            }
            if s.key.0.len() < 8 {
                return bad(
                    &format!("streams[{i}].key"),
                    "must be at least 8 characters".into(),
                );
            }
        }
        Ok(())
    }

    /// Finds the configured stream with this public name.
    pub fn stream(&self, name: &str) -> Option<&StreamConfig> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// The executors' CPUs: `runtime.cores`, or every CPU this process may run on.
    pub fn cores(&self) -> Vec<usize> {
        if self.runtime.cores.is_empty() {
            available_cpus()
        } else {
            self.runtime.cores.clone()
        }
    }
}

/// Two TCP listen addresses that cannot both be bound: the same port on the same
/// IP, or on any IP when one is the wildcard. Port 0 (kernel's pick) never conflicts.
fn listen_conflict(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Stream and app names: safe in URLs, paths and logs.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// CPUs in this process's affinity mask (what systemd `CPUAffinity=` leaves us).
pub fn available_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into `set`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

// ---- Types the sections above name (config owns its schema; the boxes use them). ----

/// x264's presets, fastest first.
pub const X264_PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// One configured rung: the largest picture and frame rate it may have.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RungConfig {
    pub name: String,
    /// Output height; width follows the source's aspect ratio.
    pub height: u32,
    pub fps: f64,
    pub bitrate_kbps: u32,
}

/// The broadcast ladder: 1080p60 6 Mbps · 1080p30 4.5 · 720p30 3 · 480p30 1.5 · 360p30 0.8.
pub fn default_ladder() -> Vec<RungConfig> {
    [
        ("1080p60", 1080, 60.0, 6000),
        ("1080p30", 1080, 30.0, 4500),
        ("720p30", 720, 30.0, 3000),
        ("480p30", 480, 30.0, 1500),
        ("360p30", 360, 30.0, 800),
    ]
    .into_iter()
    .map(|(n, h, f, b)| RungConfig {
        name: n.into(),
        height: h,
        fps: f,
        bitrate_kbps: b,
    })
    .collect()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    pub enabled: bool,
    /// Public stream name of the demo.
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    /// A 1 kHz tone at −18 dBFS (EBU alignment level), AAC-LC 48 kHz stereo.
    pub tone: bool,
    pub audio_kbps: u32,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            enabled: false,
            name: "demo".into(),
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_kbps: 4000,
            tone: true,
            audio_kbps: 128,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    #[default]
    Auto,
    Cpu,
    Gpu,
}

/// `[ladder] encoder`: the software H.264 encoder (CPU backend, and the
/// hybrid GPU plan on cards without NVENC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EncoderChoice {
    #[default]
    Openh264,
    X264,
}

/// `[ladder] decoder`: the software H.264 decoder (the CPU backend, and a
/// GPU plan without NVDEC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DecoderChoice {
    /// libavcodec when the box has it (loaded at run time), else openh264.
    #[default]
    Auto,
    Libavcodec,
    Openh264,
}

/// `[ladder] scaler`: the CPU scaler (bilinear either way).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ScalerChoice {
    /// libswscale when the box has it (loaded at run time), else fast_image_resize.
    #[default]
    Auto,
    Swscale,
    FastImageResize,
}

/// The software codecs with their settings, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftCodecs {
    /// The encoder.
    pub choice: EncoderChoice,
    pub x264_preset: String,
    pub x264_threads: u32,
    pub decoder: DecoderChoice,
    /// libavcodec's frame threads per stream (1: no added delay).
    pub decoder_threads: u32,
    pub scaler: ScalerChoice,
    /// Rungs below 720p scale from the 720p picture ([`crate::transcode::cpu::cascade`]).
    pub cascade: bool,
}

impl Default for SoftCodecs {
    fn default() -> Self {
        SoftCodecs {
            choice: EncoderChoice::Openh264,
            x264_preset: "veryfast".into(),
            x264_threads: 1,
            decoder: DecoderChoice::Auto,
            decoder_threads: 1,
            scaler: ScalerChoice::Auto,
            cascade: true,
        }
    }
}

impl SoftCodecs {
    /// Whether this build can run the choice (x264 needs the `x264` feature).
    pub fn check(&self) -> Result<(), String> {
        match self.choice {
            EncoderChoice::Openh264 => Ok(()),
            #[cfg(feature = "x264")]
            EncoderChoice::X264 => {
                if X264_PRESETS.contains(&self.x264_preset.as_str()) {
                    Ok(())
                } else {
                    Err(format!(
                        "x264_preset {:?} is not one of {}",
                        self.x264_preset,
                        X264_PRESETS.join(", ")
                    ))
                }
            }
            #[cfg(not(feature = "x264"))]
            EncoderChoice::X264 => Err("this build has no x264: build with `--features x264` \
                 (needs Debian's libx264-dev and libclang-dev)"
                .into()),
        }
    }

    /// The fastest this build has, with the encoder's own threads (no rung
    /// threads on the GPU path): x264 ultrafast, else openh264.
    pub fn fastest() -> SoftCodecs {
        SoftCodecs {
            choice: if cfg!(feature = "x264") {
                EncoderChoice::X264
            } else {
                EncoderChoice::Openh264
            },
            x264_preset: "ultrafast".into(),
            x264_threads: 0,
            decoder: DecoderChoice::Auto,
            decoder_threads: 1,
            scaler: ScalerChoice::Auto,
            cascade: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text, "t.toml").unwrap_err().to_string()
    }

    #[test]
    fn limit_exempt_blocks() {
        let c = Config::parse(
            "[server]\nlimit_exempt = [\"10.1.0.0/16\", \"127.0.0.3\", \"2001:db8::/32\"]\n",
            "t.toml",
        )
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let e = &c.server.limit_exempt;
        assert!(e[0].contains(ip("10.1.200.7")));
        assert!(!e[0].contains(ip("10.2.0.1")));
        assert!(e[0].contains(ip("::ffff:10.1.0.1")), "IPv4-mapped IPv6");
        assert!(e[1].contains(ip("127.0.0.3")) && !e[1].contains(ip("127.0.0.2")));
        assert!(e[2].contains(ip("2001:db8:1::5")) && !e[2].contains(ip("2001:db9::1")));
        assert!(!e[2].contains(ip("10.1.0.1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        let e = err("[server]\nlimit_exempt = [\"10.0.0.0/40\"]\n");
        assert!(
            e.contains("limit_exempt") && e.contains("prefix length"),
            "{e}"
        );
        let e = err("[server]\nlimit_exempt = [\"example.com\"]\n");
        assert!(e.contains("not an IP address"), "{e}");
        let e = err("[server]\nhttps_listen = \"127.0.0.1:8443\"\ntls_cert = \"c.pem\"\n");
        assert!(
            e.contains("server.https_listen") && e.contains("tls_key"),
            "{e}"
        );
        let e = err("[server]\ntls_key = \"k.pem\"\n");
        assert!(e.contains("server.tls_cert"), "{e}");
        let e = err("[server]\nhttp_listen = \"127.0.0.1:8443\"\nhttps_listen = \"0.0.0.0:8443\"\ntls_cert = \"c\"\ntls_key = \"k\"\n");
        assert!(e.contains("overlaps server.http_listen"), "{e}");
        let e = err("[ingest]\nauth_backoff_secs = 30\nauth_backoff_max_secs = 10\n");
        assert!(e.contains("ingest.auth_backoff_max_secs"), "{e}");
    }

    /// Issue 12 item 9: `--http-listen` / `--rtmp-listen` overrides skipped validation
    /// (it ran only with `--demo`), so the same address on both passed and `serve` split
    /// connections between the two protocols.
    #[test]
    fn cli_listen_overrides_on_one_address_are_refused() {
        let same: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let o = Overrides {
            rtmp_listen: Some(same),
            http_listen: Some(same),
            ..Overrides::default()
        };
        let e = Config::load(None, &o).unwrap_err().to_string();
        assert!(
            e.contains("server.http_listen") && e.contains("overlaps"),
            "{e}"
        );
        // Wildcard and loopback on one port overlap too; different ports do not.
        let o = Overrides {
            rtmp_listen: Some("0.0.0.0:4000".parse().unwrap()),
            http_listen: Some(same),
            ..Overrides::default()
        };
        assert!(Config::load(None, &o).is_err());
        let o = Overrides {
            rtmp_listen: Some("127.0.0.1:4001".parse().unwrap()),
            http_listen: Some(same),
            ..Overrides::default()
        };
        assert!(Config::load(None, &o).is_ok());
        let e =
            err("[server]\nhttp_listen = \"127.0.0.1:4002\"\n[admin]\nlisten = \"0.0.0.0:4002\"\n");
        assert!(e.contains("admin.listen"), "{e}");
    }

    #[test]
    fn defaults_are_the_documented_ports() {
        let c = Config::parse("", "t.toml").unwrap();
        assert_eq!(c.server.rtmp_listen.to_string(), "0.0.0.0:1935");
        assert_eq!(c.server.http_listen.to_string(), "0.0.0.0:8080");
        assert!(!c.ingest.allow_any_key);
    }

    #[test]
    fn example_file_is_valid() {
        let text = include_str!("../ladderd.example.toml");
        let c = Config::parse(text, "ladderd.example.toml").unwrap();
        assert!(!c.streams.is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        let e = err("[server]\nrtmp_listen = \"nowhere:x\"\n");
        assert!(e.starts_with("t.toml: server.rtmp_listen: "), "{e}");
        let e = err("[server]\nbogus = 1\n");
        assert!(e.contains("server") && e.contains("bogus"), "{e}");
        let e = err("[limits]\nmax_streams = -3\n");
        assert!(e.contains("limits.max_streams"), "{e}");
        let e = err("[limits]\nmax_streams = 0\n");
        assert!(e.contains("limits.max_streams: must be at least 1"), "{e}");
        let e = err("[[streams]]\nname = \"a b\"\nkey = \"0123456789\"\n");
        assert!(e.contains("streams[0].name"), "{e}");
        let e = err("[[streams]]\nname = \"cam\"\nkey = \"short\"\n");
        assert!(e.contains("streams[0].key"), "{e}");
        let e = err("[runtime]\ncores = [100000]\n");
        assert!(e.contains("runtime.cores[0]"), "{e}");
    }

    #[test]
    fn encoder_choice_is_checked_against_this_build() {
        let e = err("[ladder]\nencoder = \"x265\"\n");
        assert!(e.contains("ladder.encoder"), "{e}");
        let x264 = Config::parse("[ladder]\nencoder = \"x264\"\n", "t.toml");
        if cfg!(feature = "x264") {
            assert!(x264.is_ok());
            let e = err("[ladder]\nencoder = \"x264\"\nx264_preset = \"warp9\"\n");
            assert!(
                e.contains("ladder.encoder") && e.contains("ultrafast"),
                "{e}"
            );
        } else {
            let e = x264.unwrap_err().to_string();
            assert!(e.contains("--features x264"), "{e}");
        }
        let e = err("[server]\nbind_wait_secs = -1\n");
        assert!(e.contains("server.bind_wait_secs"), "{e}");
    }

    #[test]
    fn secrets_do_not_print() {
        let c = Config::parse(
            "[[streams]]\nname = \"cam1\"\nkey = \"hunter2hunter2\"\n",
            "t",
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(c.streams[0].key.matches("hunter2hunter2"));
        assert!(!c.streams[0].key.matches("hunter2hunter3"));
        assert!(!c.streams[0].key.matches("hunter2"));
    }
}
