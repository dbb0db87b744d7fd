//! The one error a section's check gives: the key at fault and why.

use std::fmt::Display;
use std::ops::RangeBounds;

/// A value the configuration may not have: `key` names it as the file does
/// (`server.http_listen`, `ladder.rungs[2].fps`), `reason` says what it must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct Invalid {
    pub key: String,
    pub reason: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, reason: impl Display) -> Self {
        Invalid {
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}

/// The one range check every section uses: `value` must lie in `ok`, else
/// `key` is invalid for `reason` (each key keeps its own wording, e.g. "must
/// be in (0, 3600]"). A NaN lies in no range.
pub fn range<T: PartialOrd>(
    key: impl Into<String>,
    value: T,
    ok: impl RangeBounds<T>,
    reason: impl Display,
) -> Result<(), Invalid> {
    if ok.contains(&value) {
        Ok(())
    } else {
        Err(Invalid::new(key, reason))
    }
}

/// `Err(Invalid)` unless `holds`, for the checks that are no range.
pub fn ensure(holds: bool, key: impl Into<String>, reason: impl Display) -> Result<(), Invalid> {
    if holds {
        Ok(())
    } else {
        Err(Invalid::new(key, reason))
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Bound::{Excluded, Included};

    use super::*;

    #[test]
    fn range_names_the_key_and_keeps_the_reason() {
        assert_eq!(range("a.b", 5, 1..=10, "never"), Ok(()));
        let e = range("limits.max_streams", 0usize, 1.., "must be at least 1").unwrap_err();
        assert_eq!(e.to_string(), "limits.max_streams: must be at least 1");
        let open = (Excluded(0.0), Included(3600.0));
        assert!(range("k", 0.0, open, "must be in (0, 3600]").is_err());
        assert!(range("k", 3600.0, open, "r").is_ok());
        assert!(
            range("k", f64::NAN, 0.0..=1.0, "r").is_err(),
            "NaN is in no range"
        );
    }
}
