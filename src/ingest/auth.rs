//! Who may publish what: the publish name, its query string, and the stream keys.
//!
//! A publisher sends `NAME?key=SECRET` as the RTMP publish name (OBS: server
//! `rtmp://HOST/live`, stream key `NAME?key=SECRET`). NAME is public; the
//! secret is checked here and goes nowhere else.

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

#[cfg(test)]
mod tests {
    use super::*;

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
