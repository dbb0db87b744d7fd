vcl 4.1;
# The edge / shield tier in front of one ladderd origin (Varnish 7.1, Debian).
#
# What it relies on from the origin:
# - every part, segment and init segment URL names its run (`R/e{EPOCH}/…`) and
#   is served `public, max-age=86400, immutable`: cached as sent, never
#   revalidated;
# - a blocking playlist request (`?_HLS_msn=N[&_HLS_part=M]`) is answered once
#   that part exists, `public, max-age=12`: every viewer waiting on the same
#   part shares one origin request (Varnish's waiting list coalesces the
#   misses; the query is sorted so parameter order does not split them);
# - a part still being written is streamed as its frames land
#   (chunked transfer): `do_stream` hands those bytes to every client waiting
#   on that object while the origin is still sending them;
# - plain playlist reloads and the multivariant playlist are `max-age=0/1`:
#   passed through or held for a second, as the origin says;
# - errors (404/410/503, `no-store`) are never cached;
# - with `[playback] signing_key`, playback URLs carry a token directory
#   (`/live/NAME/t/TOKEN/…`). The edge asks the origin once per token
#   (`/live/NAME/t/TOKEN/auth`: 204, cached up to `playback.auth_cache_secs`
#   and never past the token's expiry; 403 otherwise, not cached), then
#   serves the object from one cache entry shared by every token: a forged or
#   expired token never reaches a cached part. Tokens limited to a path prefix
#   (`EXPIRY~PREFIX~SIG`) are checked by the origin on each miss instead and
#   cached per token.
#
# varnishd must allow a held request per waiting viewer and a backend fetch
# longer than the longest block: see deploy/varnish/README.md for the
# parameters (thread pools, first_byte_timeout) and how to start it.

import std;

# The origin: its address and timeouts, in their own file so an install
# (or a test) points the same rules at its own ladderd.
include "ladderd-backend.vcl";

sub vcl_recv {
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    # Only playback is cached; the API, metrics, health and admin go through.
    if (req.url !~ "^/(live|vod|assets)/") {
        return (pass);
    }
    # `_HLS_msn=5&_HLS_part=1` and `_HLS_part=1&_HLS_msn=5` are one object.
    set req.url = std.querysort(req.url);
    # Viewers' cookies and credentials say nothing about the media.
    unset req.http.Cookie;
    unset req.http.Authorization;
    if (req.restarts == 0) {
        unset req.http.X-Ladderd-Url;
        # A signed URL with a whole-stream token: check the token first (its
        # verdict is cached per token); vcl_deliver comes back for the object.
        if (req.url ~ "^/(live|vod)/[^/]+/t/[0-9]+~[0-9a-f]+/." && req.url !~ "/auth$") {
            set req.http.X-Ladderd-Url = req.url;
            set req.url = regsub(req.url, "^(/(live|vod)/[^/]+/t/[^/]+/).*$", "\1auth");
        }
    }
    return (hash);
}

sub vcl_hash {
    # A checked token's objects below the stream's own listings (rendition
    # playlists, parts, segments, init) hold no token: one entry for every
    # viewer. The multivariant playlist, MPDs and steering manifest may name
    # the token (content steering's absolute URIs): kept per token.
    if (req.restarts > 0 && req.http.X-Ladderd-Url &&
        req.url ~ "^/(live|vod)/[^/]+/t/[^/]+/[^/?]+/") {
        # Apart from the same path without a token: that one is the
        # origin's to refuse (or, with signing off, to serve).
        hash_data("signed");
        hash_data(regsub(req.url, "^(/(live|vod)/[^/]+/)t/[^/]+/", "\1"));
        return (lookup);
    }
    hash_data(req.url);
    return (lookup);
}

sub vcl_backend_fetch {
    unset bereq.http.X-Ladderd-Url;
}

sub vcl_backend_response {
    # Stream every body as it arrives: a part being written reaches every
    # waiting client frame by frame, not when it completes.
    set beresp.do_stream = true;
    if (beresp.status == 204 && bereq.url ~ "/t/[^/]+/auth$") {
        # A token's verdict: kept as long as the origin's max-age says.
        set beresp.grace = 0s;
        set beresp.keep = 0s;
        return (deliver);
    }
    if (beresp.status != 200 && beresp.status != 206) {
        # 404 / 410 / 503 from the origin (no-store): not cached, and the
        # next request goes to the origin rather than queueing behind this one.
        set beresp.uncacheable = true;
        set beresp.ttl = 1s;
        return (deliver);
    }
    if (beresp.http.Cache-Control ~ "(no-cache|no-store|private)") {
        # The live MPD (`no-cache`): Varnish's TTL rules would otherwise give
        # it default_ttl (120 s). TTL 0 still serves the one fetch to every
        # request that waited for it.
        set beresp.ttl = 0s;
    }
    if (bereq.url ~ "\.(m3u8|mpd)(\?|$)") {
        # Live listings change: keep no stale copy beyond their own max-age.
        set beresp.grace = 0s;
        set beresp.keep = 0s;
    } else {
        # Immutable media: a stale copy is still the right bytes.
        set beresp.grace = 1h;
    }
    return (deliver);
}

sub vcl_deliver {
    if (req.restarts == 0 && req.http.X-Ladderd-Url) {
        if (resp.status == 204) {
            # The token is good: now the object it was for.
            set req.url = req.http.X-Ladderd-Url;
            return (restart);
        }
        # Otherwise the origin's refusal (403) goes to the viewer as it is.
    }
    # Which tier answered, for operators and the tests.
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    return (deliver);
}
