//! A request's path, parsed once ([`parse_route`], after moq-hls): the
//! metrics label, the signed-URL check, dispatch and the handlers all read
//! the same [`Route`] instead of each matching the segments again.
//!
//! Nothing is decoded or normalised: `..`, `%2e` and empty segments stay the
//! bytes the client sent, so a NAME or rendition is looked up exactly as
//! written and found only when something was published under it. A leaf: it
//! imports nothing else from `origin`.

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/live/NAME/…`
    Live(Named<'a, LiveFile<'a>>),
    /// `/vod/ID/…`
    Vod(Named<'a, VodFile<'a>>),
    /// `/live` or `/vod` with no NAME.
    Unnamed { vod: bool },
    /// `/`: the player's list of streams.
    Index,
    /// `/watch/NAME`: the player page.
    Watch(&'a str),
    /// `/assets/FILE`: a player library.
    Asset(&'a str),
    /// `/healthz`, `/readyz`.
    Health,
    /// `/time`: the origin's clock.
    Time,
    /// `/metrics`.
    Metrics,
    /// `/api/…`.
    Api,
}

/// A stream's (or recording's) path: its NAME, a signed URL's token
/// directory (`t/TOKEN/`) if it has one, and what follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named<'a, F> {
    pub name: &'a str,
    /// The token of `…/NAME/t/TOKEN/…`.
    pub token: Option<&'a str>,
    /// The segments after NAME and the token directory (what a token's
    /// prefix is checked against).
    pub rest: Vec<&'a str>,
    /// What `rest` names.
    pub file: F,
}

/// What follows `/live/NAME/` (and its token directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveFile<'a> {
    /// `auth`: an edge's token check (answered only behind a token).
    Auth,
    /// `master.m3u8`: the LL-HLS multivariant playlist.
    Master,
    /// `index.m3u8`: the standard-HLS multivariant playlist.
    Index,
    /// `dvr.m3u8`: the DVR multivariant playlist.
    DvrPlaylist,
    /// `dvr.mpd`: the DVR MPD.
    DvrMpd,
    /// `manifest.mpd`: the live MPD.
    Manifest,
    /// `steering.json`: the content steering manifest.
    Steering,
    /// Any other single file.
    Unknown(&'a str),
    /// `RENDITION/FILE`: a media playlist or object of the current run.
    Rendition { rendition: &'a str, file: &'a str },
    /// `RENDITION/RUN/FILE`: an object by its run (`e{EPOCH}`).
    Run {
        rendition: &'a str,
        run: &'a str,
        file: &'a str,
    },
    /// Nothing after the NAME, or more segments than any file has.
    Other,
}

/// What follows `/vod/ID/` (and its token directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VodFile<'a> {
    /// `auth`: an edge's token check (answered only behind a token).
    Auth,
    /// `master.m3u8`.
    Master,
    /// `manifest.mpd`.
    Manifest,
    /// `RENDITION/index.m3u8`.
    Playlist { rendition: &'a str },
    /// `RENDITION/FILE`: a recorded object.
    Object { rendition: &'a str, file: &'a str },
    /// Anything else.
    Other,
}

/// The route `path` names; `None` for a path that names none (404).
/// `path` is the URI's path as sent (leading slashes are ignored).
pub fn parse_route(path: &str) -> Option<Route<'_>> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Some(match segments.as_slice() {
        ["live"] => Route::Unnamed { vod: false },
        ["vod"] => Route::Unnamed { vod: true },
        ["live", name, rest @ ..] => {
            let (token, rest) = token_dir(rest);
            Route::Live(Named {
                name,
                token,
                file: live_file(&rest),
                rest,
            })
        }
        ["vod", name, rest @ ..] => {
            let (token, rest) = token_dir(rest);
            Route::Vod(Named {
                name,
                token,
                file: vod_file(&rest),
                rest,
            })
        }
        [""] => Route::Index,
        ["watch", name] => Route::Watch(name),
        ["assets", file] => Route::Asset(file),
        ["healthz"] | ["readyz"] => Route::Health,
        ["time"] => Route::Time,
        ["metrics"] => Route::Metrics,
        ["api", ..] => Route::Api,
        _ => return None,
    })
}

/// `t/TOKEN/…` split into the token and what follows it.
fn token_dir<'a>(rest: &[&'a str]) -> (Option<&'a str>, Vec<&'a str>) {
    match rest {
        ["t", token, tail @ ..] => (Some(*token), tail.to_vec()),
        _ => (None, rest.to_vec()),
    }
}

fn live_file<'a>(rest: &[&'a str]) -> LiveFile<'a> {
    match rest {
        ["auth"] => LiveFile::Auth,
        ["master.m3u8"] => LiveFile::Master,
        ["index.m3u8"] => LiveFile::Index,
        ["dvr.m3u8"] => LiveFile::DvrPlaylist,
        ["dvr.mpd"] => LiveFile::DvrMpd,
        ["manifest.mpd"] => LiveFile::Manifest,
        ["steering.json"] => LiveFile::Steering,
        [file] => LiveFile::Unknown(file),
        [rendition, file] => LiveFile::Rendition { rendition, file },
        [rendition, run, file] => LiveFile::Run {
            rendition,
            run,
            file,
        },
        _ => LiveFile::Other,
    }
}

fn vod_file<'a>(rest: &[&'a str]) -> VodFile<'a> {
    match rest {
        ["auth"] => VodFile::Auth,
        ["master.m3u8"] => VodFile::Master,
        ["manifest.mpd"] => VodFile::Manifest,
        [rendition, "index.m3u8"] => VodFile::Playlist { rendition },
        [rendition, file] => VodFile::Object { rendition, file },
        _ => VodFile::Other,
    }
}

impl Route<'_> {
    /// The request counter's `route` label: one of a fixed few, never a
    /// path a client made up.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Live(Named { file, .. }) => match file {
                LiveFile::Auth => "auth",
                LiveFile::Master | LiveFile::Index | LiveFile::DvrPlaylist => "multivariant",
                LiveFile::Unknown(f) if f.ends_with(".m3u8") => "multivariant",
                LiveFile::DvrMpd | LiveFile::Manifest => "mpd",
                LiveFile::Unknown(f) if f.ends_with(".mpd") => "mpd",
                LiveFile::Steering => "steering",
                LiveFile::Rendition { file, .. } if file.ends_with(".m3u8") => "media_playlist",
                LiveFile::Rendition { file, .. } if file.starts_with("part") => "part",
                LiveFile::Rendition { file, .. } if file.starts_with("init") => "init",
                // Objects by their run are counted as segments, whatever they are.
                _ => "segment",
            },
            Route::Vod(Named {
                file: VodFile::Auth,
                ..
            }) => "auth",
            Route::Vod(_) | Route::Unnamed { vod: true } => "vod",
            Route::Unnamed { vod: false } => "segment",
            Route::Index | Route::Watch(_) | Route::Asset(_) => "player",
            Route::Health => "health",
            Route::Time => "time",
            Route::Metrics => "metrics",
            Route::Api => "api",
        }
    }

    /// An operators' route (`/api/…`, `/metrics`): answered on the admin
    /// listener when it has one.
    pub fn is_admin(&self) -> bool {
        matches!(self, Route::Api | Route::Metrics)
    }
}

/// The label of a path that names no route.
pub const OTHER: &str = "other";

#[cfg(test)]
mod tests {
    use super::*;

    fn live<'a>(name: &'a str, token: Option<&'a str>, rest: &[&'a str]) -> Route<'a> {
        Route::Live(Named {
            name,
            token,
            rest: rest.to_vec(),
            file: live_file(rest),
        })
    }

    fn label(path: &str) -> &'static str {
        parse_route(path).map_or(OTHER, |r| r.label())
    }

    #[test]
    fn playback_paths() {
        assert_eq!(
            parse_route("/live/cam1/master.m3u8"),
            Some(live("cam1", None, &["master.m3u8"]))
        );
        let Some(Route::Live(signed)) = parse_route("/live/cam1/t/1~ab/240p30/e17/part3.1.m4s")
        else {
            panic!("not live");
        };
        assert_eq!(signed.token, Some("1~ab"));
        assert_eq!(signed.rest, ["240p30", "e17", "part3.1.m4s"]);
        assert_eq!(
            signed.file,
            LiveFile::Run {
                rendition: "240p30",
                run: "e17",
                file: "part3.1.m4s"
            }
        );
        assert_eq!(
            parse_route("/live/cam1/240p30/playlist.m3u8").map(|r| r.label()),
            Some("media_playlist")
        );
        let Some(Route::Vod(v)) = parse_route("/vod/r1/t/x/360p30/index.m3u8") else {
            panic!("not vod");
        };
        assert_eq!(
            (v.name, v.token, v.file),
            (
                "r1",
                Some("x"),
                VodFile::Playlist {
                    rendition: "360p30"
                }
            )
        );
        // `t` alone is a directory name, not a token.
        assert_eq!(
            parse_route("/live/cam1/t"),
            Some(live("cam1", None, &["t"]))
        );
        assert_eq!(
            parse_route("/live/cam1/t/x"),
            Some(live("cam1", Some("x"), &[]))
        );
    }

    /// The labels `/metrics` counts requests by, one per kind of path
    /// (the table `route_label` held before the routes were parsed once).
    #[test]
    fn labels() {
        for (path, want) in [
            ("/live/a/master.m3u8", "multivariant"),
            ("/live/a/index.m3u8", "multivariant"),
            ("/live/a/dvr.m3u8", "multivariant"),
            ("/live/a/other.m3u8", "multivariant"),
            ("/live/a/manifest.mpd", "mpd"),
            ("/live/a/dvr.mpd", "mpd"),
            ("/live/a/x.mpd", "mpd"),
            ("/live/a/steering.json", "steering"),
            ("/live/a/auth", "auth"),
            ("/live/a/t/tok/auth", "auth"),
            ("/vod/a/t/tok/auth", "auth"),
            ("/vod/a/auth", "auth"),
            ("/live/a/r/playlist.m3u8", "media_playlist"),
            ("/live/a/t/tok/r/playlist.m3u8", "media_playlist"),
            ("/live/a/r/part1.2.m4s", "part"),
            ("/live/a/r/init0.mp4", "init"),
            ("/live/a/r/seg1.m4s", "segment"),
            ("/live/a/r/e17/part1.2.m4s", "segment"),
            ("/live/a/r/e17/seg1.m4s", "segment"),
            ("/live/a", "segment"),
            ("/live", "segment"),
            ("/live/a/b/c/d/e", "segment"),
            ("/live/a/other", "segment"),
            ("/vod/a/master.m3u8", "vod"),
            ("/vod", "vod"),
            ("/", "player"),
            ("", "player"),
            ("/watch/a", "player"),
            ("/assets/hls.min.js", "player"),
            ("/healthz", "health"),
            ("/readyz", "health"),
            ("/time", "time"),
            ("/metrics", "metrics"),
            ("/api", "api"),
            ("/api/v1/streams/a", "api"),
            ("/metrics/x", "other"),
            ("/watch/a/b", "other"),
            ("/favicon.ico", "other"),
            ("//", "player"),
            ("/x//y", "other"),
        ] {
            assert_eq!(label(path), want, "{path}");
        }
        assert!(parse_route("/api/v1/streams").is_some_and(|r| r.is_admin()));
        assert!(parse_route("/metrics").is_some_and(|r| r.is_admin()));
        assert!(!parse_route("/healthz").is_some_and(|r| r.is_admin()));
    }

    /// Hostile paths name exactly what they spell: nothing is decoded, no
    /// `..` climbs a directory, so they reach no file but the one named
    /// (and a NAME or rendition spelled that way exists only if published).
    #[test]
    fn hostile_paths_are_taken_literally() {
        // `..` is a NAME, or a rendition, never a step up.
        assert_eq!(
            parse_route("/live/demo/../../../etc/passwd"),
            Some(live("demo", None, &["..", "..", "..", "etc", "passwd"]))
        );
        assert_eq!(
            parse_route("/live/../master.m3u8"),
            Some(live("..", None, &["master.m3u8"]))
        );
        assert_eq!(
            parse_route("/live/demo/../playlist.m3u8"),
            Some(live("demo", None, &["..", "playlist.m3u8"]))
        );
        // Percent-escapes are not decoded (a dot, a slash, a byte that is
        // not UTF-8 once decoded: all stay three characters).
        for hostile in ["%2e%2e", "%2E%2E", "%2f", "%ff%fe", "%00"] {
            let path = format!("/live/{hostile}/{hostile}/playlist.m3u8");
            let Some(Route::Live(n)) = parse_route(&path) else {
                panic!("{path}");
            };
            assert_eq!(n.name, hostile);
            assert_eq!(
                n.file,
                LiveFile::Rendition {
                    rendition: hostile,
                    file: "playlist.m3u8"
                }
            );
        }
        // Empty segments stay empty (an empty NAME, rendition or file).
        assert_eq!(
            parse_route("/live//master.m3u8"),
            Some(live("", None, &["master.m3u8"]))
        );
        assert_eq!(
            parse_route("/live/a//playlist.m3u8").map(|r| r.label()),
            Some("media_playlist")
        );
        assert_eq!(parse_route("/live/a/r/"), Some(live("a", None, &["r", ""])));
        assert_eq!(
            parse_route("/live/a/t//x"),
            Some(live("a", Some(""), &["x"]))
        );
        // Leading slashes are one.
        assert_eq!(
            parse_route("///live/a/master.m3u8"),
            parse_route("/live/a/master.m3u8")
        );
        // An overlong NAME or file is kept whole (no lookup finds it).
        let long = "n".repeat(100_000);
        let path = format!("/live/{long}/{long}/seg1.m4s");
        let Some(Route::Live(n)) = parse_route(&path) else {
            panic!("overlong");
        };
        assert_eq!((n.name.len(), n.rest.len()), (100_000, 2));
        // Many segments: nothing but `Other` (404), label `segment`.
        let deep = "/live/a/".to_string() + &"x/".repeat(10_000);
        assert_eq!(
            parse_route(&deep).map(|r| match r {
                Route::Live(n) => n.file,
                _ => LiveFile::Unknown("not live"),
            }),
            Some(LiveFile::Other)
        );
        // Not a route at all.
        for path in ["/..", "/%2e%2e/live/a", "/LIVE/a/master.m3u8", "/live%2fa"] {
            assert_eq!(parse_route(path), None, "{path}");
        }
    }
}
