//! `serve --demo`: the built-in source runs the ladder with no camera.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn demo_produces_ladder_frames_within_2s_of_start() {
    let server = Server::start_with("[demo]\nwidth = 640\nheight = 360\nfps = 30\n", &["--demo"]);
    let t = Instant::now();
    let demo = server.wait_for(
        "demo rungs producing frames",
        Duration::from_secs(2),
        || {
            server.live("demo").filter(|s| {
                s["pipeline"]["rungs"].as_array().is_some_and(|r| {
                    !r.is_empty() && r.iter().all(|r| r["frames"].as_u64().unwrap_or(0) > 0)
                })
            })
        },
    );
    println!(
        "demo ladder frames {:?} after the server was healthy",
        t.elapsed()
    );
    assert_eq!(demo["video"]["width"], 640);
    let names: Vec<_> = demo["pipeline"]["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(
        names,
        ["360p30"],
        "a 360p30 demo gets exactly the 360p30 rung"
    );
    // Paced in real time: ~30 packets a second, not as fast as the encoder can go.
    std::thread::sleep(Duration::from_secs(2));
    let a = server.live("demo").unwrap()["packets"]["video"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let b = server.live("demo").unwrap()["packets"]["video"]
        .as_u64()
        .unwrap();
    assert!((15..=45).contains(&(b - a)), "{} packets in 1 s", b - a);
    // The tone: AAC-LC 48 kHz stereo, 1024 samples per packet = 46.9 a second.
    let live = server.live("demo").unwrap();
    assert_eq!(live["audio"]["sample_rate"], 48000, "{live:#}");
    assert_eq!(live["audio"]["channels"], 2, "{live:#}");
    let audio = live["packets"]["audio"].as_u64().unwrap();
    let secs = live["uptime_secs"].as_f64().unwrap();
    let rate = audio as f64 / secs;
    assert!(
        (35.0..=55.0).contains(&rate),
        "{audio} audio packets in {secs:.1} s"
    );
    assert_eq!(server.live("demo").unwrap()["pipeline"]["decode_errors"], 0);
}
