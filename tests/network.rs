//! hls.js and dash.js under real network conditions, shaped through the DevTools protocol
//! (`Network.emulateNetworkConditions`): fiber, 4G (9 Mbit/s, 60 ms), 3G
//! (1.6 Mbit/s, 300 ms) and an outage (nothing for 5 s, then 4G). Each ends
//! with no fatal error and no page reload; under 3G the player settles on a
//! rendition that fits (no rebuffer once it has had 12 s to choose); after the
//! outage it plays on. The per-profile table
//! (first down-switch, rebuffers, renditions) is printed for the issue note.

mod common;

use common::{node, Server};

/// The demo at 854x480 with a 2.5 Mbit/s source: the ladder is the source,
/// 480p30 (1.5 Mbit/s) and 360p30 (0.8 Mbit/s), so 3G has one rung that fits.
const DEMO: &str = "[demo]\nwidth = 854\nheight = 480\nfps = 30\nbitrate_kbps = 2500\n";

#[test]
fn hls_js_keeps_playing_under_fiber_4g_3g_and_an_outage() {
    profiles("hls");
}

#[test]
fn dash_js_keeps_playing_under_fiber_4g_3g_and_an_outage() {
    profiles("dash");
}

/// Both players (each its own demo) run one after the other: two ladders and
/// two browsers on 2 cores would measure contention, not the network.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn profiles(player: &str) {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start_with(DEMO, &["--demo"]);
    server.wait_for(
        "the demo ladder",
        std::time::Duration::from_secs(30),
        || {
            let (st, text) = server.get("/live/demo/master.m3u8").ok()?;
            (st == 200 && text.contains("360p30") && text.contains("480p30")).then_some(())
        },
    );
    // Standard playback starts three segments behind the live edge: let the
    // demo make a few first, as a stream a viewer joins would have.
    server.wait_for("six segments", std::time::Duration::from_secs(40), || {
        let text = server.get("/live/demo/360p30/playlist.m3u8").ok()?.1;
        (text.matches("#EXTINF").count() >= 6).then_some(())
    });
    let base = format!("http://{}", server.http);
    let mut table = Vec::new();
    for (profile, secs) in [
        ("fiber", "20"),
        ("4g", "20"),
        ("3g", "40"),
        ("outage", "30"),
    ] {
        let r = node(
            "network.mjs",
            &[&base, "demo", "standard", profile, secs, player],
        );
        println!("{player} {profile}: {r}");
        assert!(r["pageErrors"].as_array().unwrap().is_empty(), "{r:#}");
        assert!(
            r["fatal"].as_array().unwrap().is_empty(),
            "fatal hls.js error: {r:#}"
        );
        assert_eq!(r["reloads"], 1, "the page reloaded: {r:#}");
        // It plays (a player stuck on its first picture reports no error).
        let played = r["played"].as_f64().unwrap_or(0.0);
        assert!(played > 5.0, "{player} {profile}: played {played} s: {r:#}");
        if profile == "3g" {
            // Settled on a rendition that fits: no rebuffer once it had 12 s
            // to choose. (BANDWIDTH cannot be the test: it never goes below
            // the encoder's target, and the demo's easy picture comes in far
            // under it, so a 1.64 Mbit/s variant does fit 1.6 Mbit/s.)
            assert_eq!(
                r["lateRebuffers"], 0,
                "the settled rendition does not fit: {r:#}"
            );
        }
        if profile == "outage" {
            assert_eq!(r["resumedAfterOutage"], true, "no recovery: {r:#}");
        }
        table.push(format!(
            "| {player} | {profile} | {} | {} | {:.1} | {} | {:.1} |",
            r["firstDownSwitchSecs"],
            r["rebuffers"],
            r["rebufferSecs"].as_f64().unwrap_or(0.0),
            r["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| format!("{}s:L{}", t["secs"], t["level"]))
                .collect::<Vec<_>>()
                .join(" "),
            r["played"].as_f64().unwrap_or(0.0),
        ));
    }
    println!("| player | profile | first down-switch (s) | rebuffers | rebuffer s | renditions (time:level) | played s |");
    println!("|---|---|---|---|---|---|---|");
    for row in table {
        println!("{row}");
    }
}
