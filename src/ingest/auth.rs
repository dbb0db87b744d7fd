//! Who may publish what: the publish name, its query string, and the stream keys.
//!
//! A publisher sends `NAME?key=SECRET` as the RTMP publish name (OBS: server
//! `rtmp://HOST/live`, stream key `NAME?key=SECRET`). NAME is public; the
//! secret is checked here and goes nowhere else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{valid_name, Config};

pub use crate::stream::Rejection;

/// The public half of a publish name. The key is checked and dropped in [`authorize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    pub name: String,
    pub takeover: bool,
    /// `role=backup` in the query: a second feed the renditions fail over to.
    pub backup: bool,
}

/// Splits `NAME?key=SECRET&x=y` and checks the key against the configuration.
pub fn authorize(config: &Config, raw: &str) -> Result<Authorized, (Option<String>, Rejection)> {
    let (name, query) = raw.split_once('?').unwrap_or((raw, ""));
    if !valid_name(name) {
        return Err((None, Rejection::BadName));
    }
    let name = name.to_string();
    let key = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "key" || *k == "token")
        .map(|(_, v)| v);
    let backup = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, v)| k == "role" && v == "backup");
    let global_takeover = config.ingest.takeover;
    match config.stream(&name) {
        Some(stream) => match key {
            None => Err((Some(name), Rejection::MissingKey)),
            Some(k) if stream.key.matches(k) => Ok(Authorized {
                takeover: stream.takeover.unwrap_or(global_takeover),
                name,
                backup,
            }),
            Some(_) => Err((Some(name), Rejection::BadKey)),
        },
        None if config.ingest.allow_any_key => Ok(Authorized {
            name,
            takeover: global_takeover,
            backup,
        }),
        None => Err((Some(name), Rejection::UnknownStream)),
    }
}

/// Whether a refusal counts as a failed guess at a key (or at a stream name).
pub fn is_auth_failure(why: Rejection) -> bool {
    matches!(
        why,
        Rejection::BadKey | Rejection::MissingKey | Rejection::UnknownStream
    )
}

/// Brute force on stream keys: an address that fails `failures` times within
/// `window` must wait `first` before it may publish again (right key or not);
/// each further round of failures doubles the wait, up to `max`. An address
/// quiet for a window after its wait is forgotten. Time comes in as `now`.
pub struct AuthBackoff {
    failures: u32,
    window: Duration,
    first: Duration,
    max: Duration,
    by_ip: Mutex<HashMap<IpAddr, Record>>,
    /// Waits imposed so far.
    pub backoffs: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    window_start: Instant,
    last_failure: Instant,
    /// Waits imposed on this address so far (the next is `first * 2^rounds`).
    rounds: u32,
    until: Option<Instant>,
}

/// Addresses remembered at most; beyond it the ones quiet longest go first.
const MAX_TRACKED: usize = 16_384;

impl AuthBackoff {
    pub fn new(c: &crate::config::Ingest) -> AuthBackoff {
        AuthBackoff {
            failures: c.auth_failures_before_backoff,
            window: Duration::from_secs_f64(c.auth_failure_window_secs),
            first: Duration::from_secs_f64(c.auth_backoff_secs),
            max: Duration::from_secs_f64(c.auth_backoff_max_secs),
            by_ip: Mutex::default(),
            backoffs: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.by_ip.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(left)`: `ip` is waiting out a backoff for `left` more.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.lock().get(&ip).and_then(|r| r.until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt; `Some(wait)` when it starts a backoff.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            self.forget_stale(&mut map, now);
        }
        let r = map.entry(ip).or_insert(Record {
            failures: 0,
            window_start: now,
            last_failure: now,
            rounds: 0,
            until: None,
        });
        let waiting_done = r.until.is_none_or(|u| u <= now);
        if waiting_done && now.saturating_duration_since(r.last_failure) > self.window {
            // Quiet for a window since its last failure: a fresh start.
            r.rounds = 0;
            r.until = None;
        }
        if now.saturating_duration_since(r.window_start) > self.window {
            r.failures = 0;
            r.window_start = now;
        }
        r.last_failure = now;
        r.failures += 1;
        if r.failures < self.failures {
            return None;
        }
        let wait = self
            .first
            .saturating_mul(1u32.checked_shl(r.rounds).unwrap_or(u32::MAX))
            .min(self.max);
        r.rounds = r.rounds.saturating_add(1);
        r.failures = 0;
        r.window_start = now;
        r.until = Some(now + wait);
        self.backoffs.fetch_add(1, Relaxed);
        Some(wait)
    }

    /// A publish with the right key: the address starts clean.
    pub fn succeeded(&self, ip: IpAddr) {
        self.lock().remove(&ip);
    }

    fn forget_stale(&self, map: &mut HashMap<IpAddr, Record>, now: Instant) {
        map.retain(|_, r| {
            r.until.is_some_and(|u| u > now)
                || now.saturating_duration_since(r.last_failure) <= self.window
        });
        if map.len() >= MAX_TRACKED {
            // Still full of active guessers: drop the quietest half.
            let mut last: Vec<Instant> = map.values().map(|r| r.last_failure).collect();
            last.sort_unstable();
            let cut = last[last.len() / 2];
            map.retain(|_, r| r.last_failure > cut);
        }
    }

    /// Addresses waiting out a backoff at `now`.
    pub fn backed_off(&self, now: Instant) -> usize {
        self.lock()
            .values()
            .filter(|r| r.until.is_some_and(|u| u > now))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> AuthBackoff {
        let c = Config::parse(
            "[ingest]\nauth_failures_before_backoff = 3\nauth_failure_window_secs = 60\nauth_backoff_secs = 10\nauth_backoff_max_secs = 25\n",
            "t",
        )
        .unwrap();
        AuthBackoff::new(&c.ingest)
    }

    #[test]
    fn failures_back_off_and_double() {
        let b = backoff();
        let t0 = Instant::now();
        let s = |secs: f64| t0 + Duration::from_secs_f64(secs);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let other: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(b.failed(ip, s(0.0)), None);
        assert_eq!(b.failed(ip, s(1.0)), None);
        assert_eq!(b.check(ip, s(1.5)), Ok(()));
        assert_eq!(b.failed(ip, s(2.0)), Some(Duration::from_secs(10)));
        assert_eq!(b.check(ip, s(3.0)), Err(Duration::from_secs(9)));
        assert_eq!(
            b.check(other, s(3.0)),
            Ok(()),
            "only the guessing address waits"
        );
        assert_eq!(b.backed_off(s(3.0)), 1);
        assert_eq!(b.check(ip, s(12.0)), Ok(()));
        // The next round waits twice as long, then the cap.
        b.failed(ip, s(13.0));
        b.failed(ip, s(14.0));
        assert_eq!(b.failed(ip, s(15.0)), Some(Duration::from_secs(20)));
        assert_eq!(b.check(ip, s(34.0)), Err(Duration::from_secs(1)));
        for t in [36.0, 37.0] {
            b.failed(ip, s(t));
        }
        assert_eq!(b.failed(ip, s(38.0)), Some(Duration::from_secs(25)));
        assert_eq!(b.backoffs.load(Relaxed), 3);
        // Quiet for a window after the wait: back to the first wait.
        for t in [200.0, 201.0] {
            b.failed(ip, s(t));
        }
        assert_eq!(b.failed(ip, s(202.0)), Some(Duration::from_secs(10)));
    }

    #[test]
    fn slow_failures_and_success_do_not_accumulate() {
        let b = backoff();
        let t0 = Instant::now();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        // One failure a minute and a bit never fills a window.
        for i in 0..10u64 {
            assert_eq!(b.failed(ip, t0 + Duration::from_secs(61 * i)), None);
        }
        b.failed(ip, t0 + Duration::from_secs(700));
        b.succeeded(ip);
        assert_eq!(b.failed(ip, t0 + Duration::from_secs(701)), None);
        assert_eq!(b.failed(ip, t0 + Duration::from_secs(702)), None);
    }

    #[test]
    fn memory_is_bounded() {
        let b = backoff();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            b.failed(
                IpAddr::from(i.to_be_bytes()),
                t0 + Duration::from_millis(u64::from(i)),
            );
        }
        assert!(b.lock().len() <= MAX_TRACKED);
    }

    fn config(extra: &str) -> Config {
        Config::parse(
            &format!("{extra}\n[[streams]]\nname = \"cam1\"\nkey = \"s3cret-key\"\n"),
            "t",
        )
        .unwrap()
    }

    #[test]
    fn key_in_query_string() {
        let c = config("");
        assert_eq!(
            authorize(&c, "cam1?key=s3cret-key"),
            Ok(Authorized {
                name: "cam1".into(),
                takeover: false,
                backup: false,
            })
        );
        assert!(authorize(&c, "cam1?key=s3cret-key&role=backup").is_ok_and(|a| a.backup));
        assert_eq!(
            authorize(&c, "cam1?foo=1&token=s3cret-key").map(|a| a.name),
            Ok("cam1".into())
        );
        assert_eq!(
            authorize(&c, "cam1?key=wrong"),
            Err((Some("cam1".into()), Rejection::BadKey))
        );
        assert_eq!(
            authorize(&c, "cam1"),
            Err((Some("cam1".into()), Rejection::MissingKey))
        );
        assert_eq!(
            authorize(&c, "cam9?key=s3cret-key"),
            Err((Some("cam9".into()), Rejection::UnknownStream))
        );
        assert_eq!(
            authorize(&c, "../etc?key=x"),
            Err((None, Rejection::BadName))
        );
    }

    #[test]
    fn allow_any_key_and_takeover() {
        let c = config("[ingest]\nallow_any_key = true\ntakeover = true");
        assert_eq!(
            authorize(&c, "anything"),
            Ok(Authorized {
                name: "anything".into(),
                takeover: true,
                backup: false,
            })
        );
        // A configured stream still needs its key.
        assert_eq!(
            authorize(&c, "cam1?key=nope").unwrap_err().1,
            Rejection::BadKey
        );
    }
}
