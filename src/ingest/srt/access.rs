//! Who may publish over SRT, decided from the caller's stream id before the
//! handshake completes (sans-IO: the listen callback asks, libsrt acts).
//!
//! Stream ids: the SRT access-control syntax `#!::r=live/NAME,m=publish`
//! (keys `r` resource, `m` mode; `u`, `s`, `t`, `h` accepted and ignored), or
//! plain `live/NAME`. The stream's key is the SRT passphrase: libsrt refuses a
//! caller whose passphrase differs (BADSECRET) or who has none (UNSECURE).

use crate::config::{valid_name, Config};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::stream::Rejection;

/// libsrt's passphrase bounds (`SRTO_PASSPHRASE`: 10..79 characters).
pub const PASSPHRASE_LEN: std::ops::RangeInclusive<usize> = 10..=79;

/// What a caller's stream id asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIdRequest {
    pub app: String,
    pub name: String,
    /// `role=backup` among the keys: a second feed to fail over to.
    pub backup: bool,
}

/// Why a stream id is refused, and the reject code libsrt sends back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a stream id we can read (1400).
    BadRequest,
    /// `m=` other than `publish` (1405): this listener takes publishers only.
    BadMode,
    /// The publish is not allowed (1403: unknown stream, wrong app, bad name,
    /// a key SRT cannot use as a passphrase).
    Forbidden(Rejection),
    /// Too many: the address is at `limits.max_srt_connections_per_ip`, or
    /// waiting out a publish-auth backoff (1402, overload).
    Overload(Rejection),
}

impl Refused {
    /// The `SRT_REJX_*` code (access_control.h).
    pub fn code(self) -> i32 {
        match self {
            Refused::BadRequest => 1400,
            Refused::BadMode => 1405,
            Refused::Forbidden(_) => 1403,
            Refused::Overload(_) => 1402,
        }
    }

    /// The label counted in `ladderd_publishers_rejected_total`.
    pub fn rejection(self) -> Rejection {
        match self {
            Refused::BadRequest | Refused::BadMode => Rejection::BadName,
            Refused::Forbidden(r) | Refused::Overload(r) => r,
        }
    }
}

/// Open SRT connections per address (`limits.max_srt_connections_per_ip`).
/// The listen hook refuses early ([`PerIp::full`]); the accept loop takes the
/// place for real ([`PerIp::enter`]), so a burst of handshakes that all passed
/// the hook still cannot go over.
pub struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    /// Callers refused at the cap.
    pub refused: AtomicU64,
    /// The rest of SRT ingest's counters: this is the SRT handle `runtime` reports.
    pub stats: super::stats::SrtStats,
}

/// One connection's place; dropping it gives it back.
pub struct Place {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    pub fn new(max: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            max,
            open: Mutex::default(),
            refused: AtomicU64::new(0),
            stats: Default::default(),
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `ip` is at the cap (counted when it is).
    pub fn full(&self, ip: IpAddr) -> bool {
        let full = self.open().get(&ip).is_some_and(|n| *n >= self.max);
        if full {
            self.refused.fetch_add(1, Relaxed);
        }
        full
    }

    /// A place for an accepted connection, or `None` at the cap (counted).
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<Place> {
        let mut open = self.open();
        let n = open.entry(ip).or_default();
        if *n >= self.max {
            drop(open);
            self.refused.fetch_add(1, Relaxed);
            return None;
        }
        *n += 1;
        Some(Place {
            per_ip: self.clone(),
            ip,
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.per_ip.open();
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl crate::telemetry::metrics::Report for PerIp {
    fn report(&self, m: &mut crate::telemetry::metrics::MetricSet) {
        m.counter(
            "ladderd_srt_connections_refused",
            "SRT callers refused by a limit, by reason (per_ip_limit: limits.max_srt_connections_per_ip).",
            crate::telemetry::metrics::l(&[("reason", "per_ip_limit")]),
            self.refused.load(Relaxed),
        );
        self.stats.report(m);
    }
}

/// Parses a caller's stream id.
pub fn parse_stream_id(id: &str) -> Result<StreamIdRequest, Refused> {
    let mut backup = false;
    let resource = match id.strip_prefix("#!::") {
        Some(keys) => {
            let mut resource = None;
            for kv in keys.split(',') {
                let (k, v) = kv.split_once('=').ok_or(Refused::BadRequest)?;
                match k {
                    "r" => resource = Some(v),
                    "m" if v != "publish" => return Err(Refused::BadMode),
                    "role" => backup = v == "backup",
                    _ => {}
                }
            }
            resource.ok_or(Refused::BadRequest)?
        }
        None => id,
    };
    let (app, name) = resource.split_once('/').ok_or(Refused::BadRequest)?;
    if app.is_empty() || name.is_empty() {
        return Err(Refused::BadRequest);
    }
    Ok(StreamIdRequest {
        app: app.to_string(),
        name: name.to_string(),
        backup,
    })
}

/// A publish the listener lets through: its name and the passphrase the
/// caller must use (`None`: an unencrypted stream, `ingest.allow_any_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub name: String,
    pub passphrase: Option<String>,
    pub takeover: bool,
    pub latency_ms: u32,
    pub backup: bool,
}

/// Decides a caller's stream id against the configuration.
pub fn admit(config: &Config, stream_id: &str) -> Result<Admitted, Refused> {
    let req = parse_stream_id(stream_id)?;
    if req.app != config.ingest.app {
        return Err(Refused::Forbidden(Rejection::WrongApp));
    }
    if !valid_name(&req.name) {
        return Err(Refused::Forbidden(Rejection::BadName));
    }
    let latency = config.ingest.srt_latency_ms;
    match config.stream(&req.name) {
        Some(s) => {
            let key = s.key.expose();
            if !PASSPHRASE_LEN.contains(&key.chars().count()) {
                return Err(Refused::Forbidden(Rejection::BadKey));
            }
            Ok(Admitted {
                name: req.name,
                passphrase: Some(key.to_string()),
                takeover: s.takeover.unwrap_or(config.ingest.takeover),
                latency_ms: s.srt_latency_ms.unwrap_or(latency),
                backup: req.backup,
            })
        }
        None if config.ingest.allow_any_key => Ok(Admitted {
            name: req.name,
            passphrase: None,
            takeover: config.ingest.takeover,
            latency_ms: latency,
            backup: req.backup,
        }),
        None => Err(Refused::Forbidden(Rejection::UnknownStream)),
    }
}

/// Configured streams that cannot publish over SRT, with the reason (for
/// `ladderd config check` and the start-up log).
pub fn unusable_streams(config: &Config) -> Vec<(String, String)> {
    config
        .streams
        .iter()
        .filter(|s| !PASSPHRASE_LEN.contains(&s.key.expose().chars().count()))
        .map(|s| {
            (
                s.name.clone(),
                format!(
                    "its key has {} characters; SRT passphrases need 10 to 79",
                    s.key.expose().chars().count()
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::parse(
            &format!(
                "{extra}\n[[streams]]\nname = \"cam1\"\nkey = \"s3cret-key-1\"\n\
                 [[streams]]\nname = \"short\"\nkey = \"abcdefgh\"\n\
                 [[streams]]\nname = \"slow\"\nkey = \"s3cret-key-2\"\nsrt_latency_ms = 800\n"
            ),
            "t",
        )
        .unwrap()
    }

    #[test]
    fn stream_ids_in_both_forms() {
        let want = StreamIdRequest {
            app: "live".into(),
            name: "cam1".into(),
            backup: false,
        };
        assert!(parse_stream_id("#!::r=live/cam1,m=publish,role=backup").is_ok_and(|r| r.backup));
        assert_eq!(
            parse_stream_id("#!::r=live/cam1,m=publish"),
            Ok(want.clone())
        );
        assert_eq!(
            parse_stream_id("#!::m=publish,u=bob,r=live/cam1"),
            Ok(want.clone())
        );
        assert_eq!(parse_stream_id("#!::r=live/cam1"), Ok(want.clone()));
        assert_eq!(parse_stream_id("live/cam1"), Ok(want));
        assert_eq!(
            parse_stream_id("#!::r=live/cam1,m=request"),
            Err(Refused::BadMode)
        );
        assert_eq!(parse_stream_id("#!::m=publish"), Err(Refused::BadRequest));
        assert_eq!(parse_stream_id("#!::r"), Err(Refused::BadRequest));
        assert_eq!(parse_stream_id("cam1"), Err(Refused::BadRequest));
        assert_eq!(parse_stream_id(""), Err(Refused::BadRequest));
        assert_eq!(parse_stream_id("/cam1"), Err(Refused::BadRequest));
    }

    #[test]
    fn per_ip_places() {
        let p = PerIp::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = p.enter(ip).unwrap();
        let _b = p.enter(ip).unwrap();
        assert!(p.full(ip));
        assert!(p.enter(ip).is_none());
        assert!(!p.full("192.0.2.2".parse().unwrap()));
        drop(a);
        assert!(!p.full(ip));
        assert!(p.enter(ip).is_some());
        assert_eq!(p.refused.load(Relaxed), 2);
        assert_eq!(Refused::Overload(Rejection::BackedOff).code(), 1402);
    }

    #[test]
    fn admission_follows_the_stream_table() {
        let c = config("");
        let a = admit(&c, "#!::r=live/cam1,m=publish").unwrap();
        assert_eq!(a.passphrase.as_deref(), Some("s3cret-key-1"));
        assert_eq!(a.latency_ms, 120);
        assert_eq!(admit(&c, "live/slow").unwrap().latency_ms, 800);
        assert_eq!(
            admit(&c, "live/nobody"),
            Err(Refused::Forbidden(Rejection::UnknownStream))
        );
        assert_eq!(admit(&c, "live/nobody").unwrap_err().code(), 1403);
        assert_eq!(
            admit(&c, "other/cam1"),
            Err(Refused::Forbidden(Rejection::WrongApp))
        );
        // A 3-character key cannot be an SRT passphrase: refused, and said at config check.
        assert_eq!(
            admit(&c, "live/short"),
            Err(Refused::Forbidden(Rejection::BadKey))
        );
        let unusable = unusable_streams(&c);
        assert_eq!(unusable.len(), 1);
        assert_eq!(unusable[0].0, "short");
        let open = config("[ingest]\nallow_any_key = true\n");
        assert_eq!(admit(&open, "live/anyone").unwrap().passphrase, None);
    }
}
