//! A publisher that drops and comes back under the same NAME within
//! `ingest.reconnect_window_secs` continues the same renditions: media sequence
//! numbers go on, `EXT-X-DISCONTINUITY` marks the join, and no URI a playlist
//! listed answers 404 while it is inside the store's window.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{input_360p30_high, push, Server};

/// (msn of the first segment, every URI listed, discontinuity count).
fn playlist(server: &Server, path: &str) -> (u64, Vec<String>, usize) {
    let text = server.get(path).unwrap().1;
    let msn = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{path}:\n{text}"));
    let mut uris = Vec::new();
    for l in text.lines() {
        if let Some((_, rest)) = l.split_once("URI=\"") {
            uris.push(rest.split('"').next().unwrap().to_string());
        } else if !l.starts_with('#') && !l.is_empty() {
            uris.push(l.to_string());
        }
    }
    (msn, uris, text.matches("#EXT-X-DISCONTINUITY\n").count())
}

fn last_segment(uris: &[String]) -> u64 {
    uris.iter()
        .filter_map(|u| u.strip_prefix("seg")?.strip_suffix(".m4s")?.parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_publisher_back_within_the_window_continues_the_same_playlists() {
    let input = input_360p30_high();
    let server = Server::start("[ingest]\nallow_any_key = true\nreconnect_window_secs = 20\n");
    let url = server.rtmp_url("cam");
    let rendition = "/live/cam/360p30/playlist.m3u8";
    let mut listed: Vec<(String, String)> = Vec::new();
    let mut last = 0;
    for round in 0..3 {
        let mut ff = push(&input.path, &url, true);
        // Two more whole segments than before the drop.
        let (_, uris, _) = server.wait_for(
            &format!("round {round}: segments past {last}"),
            Duration::from_secs(40),
            || {
                let (st, _) = server.get(rendition).ok()?;
                if st != 200 {
                    return None;
                }
                let p = playlist(&server, rendition);
                (last_segment(&p.1) >= last + 2).then_some(p)
            },
        );
        last = last_segment(&uris);
        for base in ["/live/cam/360p30/", "/live/cam/audio/", "/live/cam/source/"] {
            let (_, uris, _) = playlist(&server, &format!("{base}playlist.m3u8"));
            listed.extend(uris.into_iter().map(|u| (base.to_string(), u)));
        }
        // SIGKILL: no unpublish, the connection just dies.
        ff.0.kill().unwrap();
        let _ = ff.0.wait();
        server.wait_for("the publish to end", Duration::from_secs(15), || {
            server.live("cam").is_none().then_some(())
        });
    }
    let mut ff = push(&input.path, &url, true);
    server.wait_for("the fourth publish", Duration::from_secs(40), || {
        let p = playlist(&server, rendition);
        (last_segment(&p.1) >= last + 2).then_some(())
    });
    let (first, uris, discontinuities) = playlist(&server, rendition);
    assert!(discontinuities >= 1, "no discontinuity at the joins");
    assert!(last_segment(&uris) > last, "media sequence went on");
    // Every URI any playlist listed is still there (or left the window at its far end).
    for (base, uri) in &listed {
        let (status, _) = server.get(&format!("{base}{uri}")).unwrap();
        let gone_by_window = uri
            .strip_prefix("seg")
            .and_then(|u| u.strip_suffix(".m4s"))
            .and_then(|m| m.parse::<u64>().ok())
            .is_some_and(|m| m < first);
        assert!(
            status == 200 || (status == 404 && gone_by_window) || uri.contains(".m3u8"),
            "{base}{uri}: {status}"
        );
    }
    // Four sessions, one set of playlists.
    let sessions = server.json("/api/v1/sessions")["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == "cam")
        .count();
    assert_eq!(sessions, 3);
    // ffmpeg reads the rendition across the joins without an error.
    let url = format!("http://{}/live/cam/360p30/index.m3u8", server.http);
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-live_start_index",
            "0",
            "-i",
            &url,
            // From the oldest segment, across the first join (at about 6 s).
            "-t",
            "12",
            "-f",
            "null",
            "-",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    ff.0.kill().unwrap();
}

#[test]
fn without_a_window_a_new_publish_starts_new_playlists() {
    let input = input_360p30_high();
    let server = Server::start("[ingest]\nallow_any_key = true\nreconnect_window_secs = 0\n");
    let url = server.rtmp_url("cam");
    let rendition = "/live/cam/360p30/playlist.m3u8";
    let mut ff = push(&input.path, &url, true);
    server.wait_for("segments", Duration::from_secs(40), || {
        let (st, _) = server.get(rendition).ok()?;
        (st == 200 && last_segment(&playlist(&server, rendition).1) >= 2).then_some(())
    });
    ff.0.kill().unwrap();
    let _ = ff.0.wait();
    server.wait_for("the end", Duration::from_secs(15), || {
        let text = server.get(rendition).ok()?.1;
        text.contains("#EXT-X-ENDLIST").then_some(())
    });
}
