//! `[cdn]`: the CDNs players are steered between.

use std::collections::HashSet;

use serde::Deserialize;

use super::invalid::{ensure, range, Invalid};

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

impl Cdn {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut ids = HashSet::new();
        for (i, p) in self.pathways.iter().enumerate() {
            let valid_id = !p.id.is_empty()
                && p.id.len() <= 64
                && p.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            ensure(
                valid_id,
                format!("cdn.pathways[{i}].id"),
                format!("{:?}: 1-64 letters, digits, '.', '-' or '_'", p.id),
            )?;
            ensure(
                ids.insert(p.id.as_str()),
                format!("cdn.pathways[{i}].id"),
                format!("{:?} listed twice", p.id),
            )?;
            ensure(
                valid_base_url(&p.base_url),
                format!("cdn.pathways[{i}].base_url"),
                format!(
                    "{:?}: an absolute http:// or https:// URL without query or fragment",
                    p.base_url
                ),
            )?;
        }
        ensure(
            self.steering_base_url.is_empty() || valid_base_url(&self.steering_base_url),
            "cdn.steering_base_url",
            format!(
                "{:?}: an absolute http:// or https:// URL without query or fragment",
                self.steering_base_url
            ),
        )?;
        range(
            "cdn.steering_ttl_secs",
            self.steering_ttl_secs,
            1..,
            "must be at least 1",
        )
    }
}
