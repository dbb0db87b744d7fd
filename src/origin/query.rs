//! The query strings playback reads: LL-HLS's blocking-reload and delta
//! keys (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) and the MPD's choices
//! (`ll`, `audio`). Other keys (cache busters) are ignored.

/// The parsed LL-HLS query.
#[derive(Debug, Default, PartialEq)]
pub struct Query {
    pub msn: Option<u64>,
    pub part: Option<u32>,
    pub skip: bool,
}

/// Parses `_HLS_msn`, `_HLS_part`, `_HLS_skip`; other keys are ignored
/// (cache busters), malformed values are an error.
pub fn parse_query(q: Option<&str>) -> Result<Query, &'static str> {
    let mut out = Query::default();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "_HLS_msn" => out.msn = Some(v.parse().map_err(|_| "_HLS_msn must be a number")?),
            "_HLS_part" => out.part = Some(v.parse().map_err(|_| "_HLS_part must be a number")?),
            "_HLS_skip" => match v {
                "YES" | "v2" => out.skip = true,
                _ => return Err("_HLS_skip must be YES or v2"),
            },
            _ => {}
        }
    }
    if out.part.is_some() && out.msn.is_none() {
        return Err("_HLS_part without _HLS_msn");
    }
    Ok(out)
}

/// The MPD's query: `ll=1` asks for LL-DASH (`ll=0` or none: standard DASH);
/// other keys are ignored (cache busters), another `ll` value is an error.
pub fn parse_mpd_query(q: Option<&str>) -> Result<MpdQuery, &'static str> {
    let mut out = MpdQuery::default();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("ll", "1") => out.low_latency = true,
            ("ll", "0") => out.low_latency = false,
            ("ll", _) => return Err("ll must be 1 or 0\n"),
            ("audio", "1") => out.audio_only = true,
            ("audio", "0") => out.audio_only = false,
            ("audio", _) => return Err("audio must be 1 or 0\n"),
            _ => {}
        }
    }
    Ok(out)
}

/// An MPD request's choices: `?ll=1` low-latency, `?audio=1` the audio
/// AdaptationSet alone (the audio-only choice, as HLS's audio-only variant).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MpdQuery {
    pub low_latency: bool,
    pub audio_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        assert_eq!(parse_query(None), Ok(Query::default()));
        assert_eq!(
            parse_query(Some("_HLS_msn=12&_HLS_part=3&_HLS_skip=v2&x=1")),
            Ok(Query {
                msn: Some(12),
                part: Some(3),
                skip: true
            })
        );
        assert!(parse_query(Some("_HLS_part=1")).is_err());
        assert!(parse_query(Some("_HLS_msn=-1")).is_err());
        assert!(parse_query(Some("_HLS_skip=NO")).is_err());
    }

    #[test]
    fn mpd_query() {
        let q = |low_latency, audio_only| {
            Ok(MpdQuery {
                low_latency,
                audio_only,
            })
        };
        assert_eq!(parse_mpd_query(None), q(false, false));
        assert_eq!(parse_mpd_query(Some("ll=1&t=5")), q(true, false));
        assert_eq!(parse_mpd_query(Some("ll=0")), q(false, false));
        assert_eq!(parse_mpd_query(Some("audio=1&ll=1")), q(true, true));
        assert!(parse_mpd_query(Some("ll=yes")).is_err());
        assert!(parse_mpd_query(Some("audio=yes")).is_err());
    }
}
