//! Secrets in the configuration (stream keys, the admin token).

use std::fmt;

use serde::Deserialize;

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
