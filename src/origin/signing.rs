//! Signed playback URLs (sans-IO: key, name, path and `now` in, a verdict out).
//!
//! A token binds a scope (live streams or recordings), a stream NAME (or
//! recording ID), an expiry and optionally a path prefix: `EXPIRY~SIG` or
//! `EXPIRY~PREFIX~SIG`, where SIG is the HMAC-SHA256 (lower-case hex) of
//! `ladderd-v2\nSCOPE\nNAME\nEXPIRY\nPREFIX` (SCOPE `live` or `vod`) under
//! `[playback] signing_key`. It travels as a directory of the playback URL,
//! `/live/NAME/t/TOKEN/master.m3u8`, not as a query or a cookie: every URI a
//! playlist lists is relative, so the player resolves it under the same
//! token directory and the playlists stay byte-identical for every viewer
//! (an edge keeps one copy, and blocking reloads still coalesce), where a
//! query would have to be written into each listed URI (a playlist per
//! viewer) and a cookie does not cross to another CDN's host.

use std::fmt::Write as _;

use ring::hmac;

/// The smallest key accepted: HMAC-SHA256's own output size.
pub const MIN_KEY_BYTES: usize = 32;

/// A loaded `[playback] signing_key`.
pub struct SigningKey(hmac::Key);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the signing key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the signing key {path} has {len} bytes; at least {MIN_KEY_BYTES} are needed (e.g. `head -c 32 /dev/urandom | base64 > FILE`)")]
    Short { path: String, len: usize },
}

impl SigningKey {
    /// The key is the file's bytes, surrounding whitespace trimmed (so a
    /// base64 or hex line with its newline works as well as raw bytes).
    pub fn from_bytes(bytes: &[u8]) -> Option<SigningKey> {
        let trimmed = bytes.trim_ascii();
        (trimmed.len() >= MIN_KEY_BYTES)
            .then(|| SigningKey(hmac::Key::new(hmac::HMAC_SHA256, trimmed)))
    }

    pub fn load(path: &std::path::Path) -> Result<SigningKey, KeyError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        let len = bytes.trim_ascii().len();
        SigningKey::from_bytes(&bytes).ok_or(KeyError::Short { path: shown, len })
    }

    fn sign(&self, scope: Scope, name: &str, expires: u64, prefix: &str) -> String {
        let tag = hmac::sign(&self.0, message(scope, name, expires, prefix).as_bytes());
        let mut hex = String::with_capacity(64);
        for b in tag.as_ref() {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }

    /// The token for NAME in `scope` until `expires` (Unix seconds), for
    /// paths under `prefix` when one is given.
    pub fn token(
        &self,
        scope: Scope,
        name: &str,
        expires: u64,
        prefix: Option<&str>,
    ) -> Result<String, Denied> {
        match prefix {
            None => Ok(format!("{expires}~{}", self.sign(scope, name, expires, ""))),
            Some(p) if valid_prefix(p) => Ok(format!(
                "{expires}~{p}~{}",
                self.sign(scope, name, expires, p)
            )),
            Some(_) => Err(Denied::Malformed),
        }
    }

    /// Whether `token` lets `path` (what follows the token directory, e.g.
    /// `240p30/e17/part3.1.m4s`) of NAME in `scope` be read at `now` (Unix seconds).
    pub fn check(
        &self,
        scope: Scope,
        name: &str,
        token: &str,
        path: &str,
        now: u64,
    ) -> Result<Token, Denied> {
        let (t, prefix) = self.verify(scope, name, token, now)?;
        if !path.starts_with(prefix) {
            return Err(Denied::OutsidePrefix);
        }
        Ok(t)
    }

    /// Whether `token` was signed with this key for NAME in `scope` and is
    /// not expired at `now`, whatever path it is used for; with the prefix it covers.
    pub fn verify<'t>(
        &self,
        scope: Scope,
        name: &str,
        token: &'t str,
        now: u64,
    ) -> Result<(Token, &'t str), Denied> {
        let mut fields = token.split('~');
        let (Some(expires), Some(second), third, None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(Denied::Malformed);
        };
        let (prefix, sig) = match third {
            Some(sig) => (second, sig),
            None => ("", second),
        };
        let expires = canonical_expiry(expires).ok_or(Denied::Malformed)?;
        if sig.len() != 64 || (third.is_some() && !valid_prefix(prefix)) {
            return Err(Denied::Malformed);
        }
        let Some(tag) = unhex(sig) else {
            return Err(Denied::Malformed);
        };
        // Constant time: ring compares the tags without an early exit.
        hmac::verify(
            &self.0,
            message(scope, name, expires, prefix).as_bytes(),
            &tag,
        )
        .map_err(|_| Denied::Forged)?;
        if now >= expires {
            return Err(Denied::Expired);
        }
        let token = Token {
            expires,
            prefixed: !prefix.is_empty(),
        };
        Ok((token, prefix))
    }
}

/// What a token opens: live streams (`/live/NAME/…`) or recordings
/// (`/vod/ID/…`). Signed into the token: a NAME and a recording ID share one
/// spelling, and a token made for one opened the other (issue 30).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Live,
    Vod,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Live => "live",
            Scope::Vod => "vod",
        }
    }
}

/// A token that checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub expires: u64,
    /// Limited to a path prefix (an edge must not share its verdict across paths).
    pub prefixed: bool,
}

/// Why a playback request was refused (403); the metric's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("a signed URL is required (/live/NAME/t/TOKEN/…)")]
    Missing,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is not valid for this stream (forged, or signed with another key)")]
    Forged,
    #[error("the token has expired")]
    Expired,
    #[error("the token does not cover this path")]
    OutsidePrefix,
}

impl Denied {
    pub fn label(self) -> &'static str {
        match self {
            Denied::Missing => "missing",
            Denied::Malformed => "malformed",
            Denied::Forged => "forged",
            Denied::Expired => "expired",
            Denied::OutsidePrefix => "prefix",
        }
    }
}

/// A prefix is the start of the path under the token directory (a
/// rendition's name, say): letters, digits, `.`, `-`, `_`, so it sits in
/// the token's own path segment as it is.
fn valid_prefix(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 128
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// What a token signs (one place for signing and checking). v2 added the
/// scope: a v1 token (no scope) verifies nowhere.
fn message(scope: Scope, name: &str, expires: u64, prefix: &str) -> String {
    format!(
        "ladderd-v2\n{}\n{name}\n{expires}\n{prefix}",
        scope.as_str()
    )
}

/// The expiry as [`SigningKey::token`] writes it: decimal digits, no sign,
/// no leading zero. `+1000` or `01000` would verify too (the message holds the
/// number, not its spelling), and each spelling is another edge cache entry.
fn canonical_expiry(s: &str) -> Option<u64> {
    let n: u64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

/// Lower-case hex only, as [`SigningKey::token`] writes it: one token has one
/// spelling (an upper-cased signature was accepted, and each case mix was a
/// separate entry in the edge's auth cache).
fn unhex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(*p.first()?)? << 4 | digit(*p.get(1)?)?))
        .collect()
}

/// `1h`, `30m`, `90s`, `2d` or plain seconds.
pub fn parse_ttl(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).filter(|&t| t > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Scope::Live;

    fn key() -> SigningKey {
        SigningKey::from_bytes(b"0123456789abcdef0123456789abcdef\n").unwrap()
    }

    #[test]
    fn a_token_opens_its_stream_until_it_expires() {
        let k = key();
        let t = k.token(Live, "cam1", 1_000, None).unwrap();
        assert!(t.starts_with("1000~") && t.len() == 5 + 64, "{t}");
        assert_eq!(
            k.check(Live, "cam1", &t, "master.m3u8", 999),
            Ok(Token {
                expires: 1_000,
                prefixed: false
            })
        );
        assert_eq!(
            k.check(Live, "cam1", &t, "master.m3u8", 1_000),
            Err(Denied::Expired)
        );
        assert_eq!(
            k.check(Live, "cam2", &t, "master.m3u8", 999),
            Err(Denied::Forged)
        );
    }

    #[test]
    fn tampering_is_caught() {
        let k = key();
        let t = k.token(Live, "cam1", 1_000, None).unwrap();
        // A later expiry with the same signature.
        let later = t.replacen("1000~", "9000~", 1);
        assert_eq!(k.check(Live, "cam1", &later, "x", 999), Err(Denied::Forged));
        // Another key.
        let other = SigningKey::from_bytes(&[7u8; 32]).unwrap();
        assert_eq!(other.check(Live, "cam1", &t, "x", 999), Err(Denied::Forged));
        // A prefix added to an unprefixed token.
        let sig = t.split('~').nth(1).unwrap();
        assert_eq!(
            k.check(Live, "cam1", &format!("1000~240p30~{sig}"), "240p30/x", 999),
            Err(Denied::Forged)
        );
        for bad in [
            "",
            "1000",
            "x~y",
            "1000~zz",
            "1000~a~b~c",
            &format!("-1~{sig}"),
        ] {
            assert_eq!(
                k.check(Live, "cam1", bad, "x", 0),
                Err(Denied::Malformed),
                "{bad}"
            );
        }
        assert!(SigningKey::from_bytes(b"short key").is_none());
    }

    /// Issue 30: upper-casing a valid token's signature (or writing its
    /// expiry as `+1000` / `01000`) still played: one token, many spellings.
    #[test]
    fn a_token_has_one_spelling() {
        let k = key();
        let t = k.token(Live, "cam1", 1_000, Some("240p30")).unwrap();
        assert!(k.check(Live, "cam1", &t, "240p30/x", 999).is_ok());
        let (head, sig) = t.rsplit_once('~').unwrap();
        assert!(sig.bytes().any(|b| b.is_ascii_lowercase()), "{sig}");
        let upper = format!("{head}~{}", sig.to_ascii_uppercase());
        let mut mixed = sig.to_string();
        let at = mixed.find(|c: char| c.is_ascii_lowercase()).unwrap();
        let c = mixed[at..=at].to_ascii_uppercase();
        mixed.replace_range(at..=at, &c);
        let mixed = format!("{head}~{mixed}");
        for other in [
            upper,
            mixed,
            t.replacen("1000~", "+1000~", 1),
            t.replacen("1000~", "01000~", 1),
        ] {
            assert_eq!(
                k.check(Live, "cam1", &other, "240p30/x", 999),
                Err(Denied::Malformed),
                "{other}"
            );
        }
    }

    #[test]
    fn a_prefixed_token_opens_only_its_paths() {
        let k = key();
        let t = k.token(Live, "cam1", 1_000, Some("240p30")).unwrap();
        assert_eq!(
            k.check(Live, "cam1", &t, "240p30/e5/part1.0.m4s", 0),
            Ok(Token {
                expires: 1_000,
                prefixed: true
            })
        );
        assert_eq!(
            k.check(Live, "cam1", &t, "720p30/playlist.m3u8", 0),
            Err(Denied::OutsidePrefix)
        );
        assert_eq!(
            k.check(Live, "cam1", &t, "master.m3u8", 0),
            Err(Denied::OutsidePrefix)
        );
        assert_eq!(
            k.token(Live, "cam1", 1, Some("a/b")),
            Err(Denied::Malformed)
        );
    }

    /// Issue 30: `ladderd sign ID` (live) played `/vod/ID`, and `sign NAME
    /// --vod` played `/live/NAME`.
    #[test]
    fn a_token_opens_only_its_scope() {
        let k = key();
        for prefix in [None, Some("240p30")] {
            let live = k.token(Live, "cam1", 1_000, prefix).unwrap();
            let vod = k.token(Scope::Vod, "cam1", 1_000, prefix).unwrap();
            assert_ne!(live, vod);
            let path = "240p30/index.m3u8";
            assert!(k.check(Live, "cam1", &live, path, 999).is_ok());
            assert!(k.check(Scope::Vod, "cam1", &vod, path, 999).is_ok());
            assert_eq!(
                k.check(Scope::Vod, "cam1", &live, path, 999),
                Err(Denied::Forged)
            );
            assert_eq!(k.check(Live, "cam1", &vod, path, 999), Err(Denied::Forged));
        }
        // A v1 token (no scope in what it signs) opens neither.
        let v1 = hmac::sign(&k.0, b"ladderd-v1\ncam1\n1000\n");
        let hex: String = v1.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let old = format!("1000~{hex}");
        assert_eq!(k.check(Live, "cam1", &old, "x", 999), Err(Denied::Forged));
        assert_eq!(
            k.check(Scope::Vod, "cam1", &old, "x", 999),
            Err(Denied::Forged)
        );
    }

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("1h"), Some(3600));
        assert_eq!(parse_ttl("30m"), Some(1800));
        assert_eq!(parse_ttl("90"), Some(90));
        assert_eq!(parse_ttl("2d"), Some(172_800));
        assert_eq!(parse_ttl("0"), None);
        assert_eq!(parse_ttl("1y"), None);
        assert_eq!(parse_ttl("h"), None);
    }
}
