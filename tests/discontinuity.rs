//! Breaks in a stream's timeline, end to end (issue 12, items 4 and 5).
//!
//! Item 4: a publisher switches from 720p to 1080p (a new AVC
//! sequence header) within one RTMP publish. Every rendition must continue:
//! what was published stays as it was (bytes and ETag), playlists go on after
//! EXT-X-DISCONTINUITY with a new EXT-X-MAP, the media sequence keeps
//! increasing, every rung of the 720p ladder continues, and the segments after
//! the change decode through the new init.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use ladderd::media::flv::FileTags;

/// The publishers here pause (while the test looks at what was published)
/// and stay connected, silent, until the checks are done: longer than the
/// default RTMP idle timeout on a loaded machine, which would end the stream.
const CONFIG: &str = "[limits]\nrtmp_idle_timeout_secs = 600\n\n[[streams]]\nname = \"cam1\"\nkey = \"key-one-secret\"\n";

/// A 720p30 source's renditions: its ladder, the passthrough and the audio.
const EXPECTED: [&str; 5] = ["720p30", "480p30", "360p30", "source", "audio"];

fn sorted<S: AsRef<str>>(v: &[S]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.as_ref().to_string()).collect();
    v.sort();
    v
}

/// Six seconds of `size` H.264 (IDR every 2 s) + AAC as FLV.
fn make_flv(dir: &Path, size: &str) -> PathBuf {
    require("ffmpeg");
    let out = dir.join(format!("{size}.flv"));
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=30"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "6", "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-g", "60", "-keyint_min", "60", "-sc_threshold", "0"])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-ac", "2",
        ])
        .args(["-f", "flv"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg failed to make {size}");
    out
}

struct Fetched {
    status: u16,
    etag: Option<String>,
    body: Vec<u8>,
}

fn fetch(server: &Server, path: &str) -> Fetched {
    let url = format!("http://{}/live/cam1/{path}", server.http);
    let reply = match ureq::get(&url).timeout(Duration::from_secs(10)).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {path}: {e}"),
    };
    let status = reply.status();
    let etag = reply.header("etag").map(str::to_string);
    let mut body = Vec::new();
    reply.into_reader().read_to_end(&mut body).unwrap();
    Fetched { status, etag, body }
}

fn text(server: &Server, path: &str) -> String {
    let f = fetch(server, path);
    let body = String::from_utf8_lossy(&f.body);
    assert_eq!(f.status, 200, "GET {path}: {body}\n{}", server.log_text());
    String::from_utf8(f.body).unwrap()
}

/// Frames each rung has encoded so far, from the API.
fn rung_frames(server: &Server) -> BTreeMap<String, u64> {
    let live = server.live("cam1").expect("cam1 is live");
    live["pipeline"]["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let name = r["name"].as_str().unwrap().to_string();
            (name, r["frames"].as_u64().unwrap())
        })
        .collect()
}

/// The media playlists the multivariant lists: video variants, then audio.
fn renditions(master: &str) -> Vec<String> {
    let mut v: Vec<String> = master
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.trim_end_matches("/playlist.m3u8").to_string())
        .collect();
    if let Some(a) = master
        .lines()
        .find(|l| l.starts_with("#EXT-X-MEDIA:TYPE=AUDIO"))
        .and_then(|l| l.split("URI=\"").nth(1)?.split('/').next())
    {
        // The audio-only variant lists the same rendition: once is enough.
        if !v.iter().any(|r| r == a) {
            v.push(a.to_string());
        }
    }
    v
}

/// Every object URI a playlist refers to (maps, parts, segments), in order.
fn uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.starts_with("#EXT-X-PRELOAD-HINT") && !l.starts_with("#EXT-X-RENDITION"))
        .flat_map(|l| {
            if l.starts_with('#') {
                l.split("URI=\"").nth(1).and_then(|r| r.split('"').next())
            } else if l.is_empty() {
                None
            } else {
                Some(l)
            }
        })
        .map(str::to_string)
        .collect()
}

fn tag(playlist: &str, name: &str) -> Option<u64> {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix(name)?.parse().ok())
}

/// msn of each complete segment (`segN.m4s`), in playlist order.
fn segment_msns(playlist: &str) -> Vec<u64> {
    playlist.lines().filter_map(segment_number).collect()
}

/// ffmpeg decodes `files` concatenated (an init and its segments): the
/// picture size, and whatever it printed at `-v error`.
fn decode(dir: &Path, name: &str, files: &[Vec<u8>]) -> (String, String) {
    let path = dir.join(format!("{name}.mp4"));
    std::fs::write(&path, files.concat()).unwrap();
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width,height", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg decode of {name}");
    (
        String::from_utf8_lossy(&probe.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn resolution_change_mid_publish_continues_renditions() {
    require("ffprobe");
    let dir = std::env::temp_dir().join(format!("ladderd-resolution-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = make_flv(&dir, "1280x720");
    let second = make_flv(&dir, "1920x1080");
    let server = Server::start(CONFIG);
    let rtmp = server.rtmp;

    // The publisher: the 720p file's tags, then (once the test has looked at
    // what 720p published) the 1080p file's, its sequence header included,
    // on one continuous clock. It stays connected until told to go.
    let (go_on, wait_go_on) = mpsc::channel::<()>();
    let (done, wait_done) = mpsc::channel::<()>();
    let (leave, wait_leave) = mpsc::channel::<()>();
    let publisher = std::thread::spawn(move || {
        let mut client = RawClient::publish(rtmp, "cam1?key=key-one-secret");
        let mut offset = 0;
        for (i, file) in [first, second].iter().enumerate() {
            if i == 1 {
                let _ = wait_go_on.recv_timeout(Duration::from_secs(120));
            }
            let data = Bytes::from(std::fs::read(file).unwrap());
            let start = Instant::now();
            let mut last = 0;
            for t in FileTags::new(data).unwrap() {
                let t = t.unwrap();
                let due = Duration::from_millis(t.timestamp_ms as u64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
                let ts = offset + t.timestamp_ms;
                match t.kind {
                    9 => client.video(&t.body, ts).unwrap(),
                    8 => client.audio(&t.body, ts).unwrap(),
                    _ => continue,
                }
                last = last.max(ts);
            }
            // The next file starts one frame after this one's last tag.
            offset = last + 33;
        }
        let _ = done.send(());
        let _ = wait_leave.recv_timeout(Duration::from_secs(120));
    });

    // Before the change: every rendition has two whole 720p segments; take
    // every object its playlist lists, with its ETag.
    let master = server.wait_for("720p renditions", Duration::from_secs(60), || {
        let (status, m) = server.get("/live/cam1/master.m3u8").ok()?;
        let names = renditions(&m);
        let ready = status == 200
            && EXPECTED.iter().all(|e| names.iter().any(|n| n == e))
            && names.iter().all(|r| {
                server
                    .get(&format!("/live/cam1/{r}/playlist.m3u8"))
                    .is_ok_and(|(s, p)| s == 200 && segment_msns(&p).len() >= 2)
            });
        ready.then_some(m)
    });
    let names = renditions(&master);
    println!("renditions: {names:?}");
    assert_eq!(sorted(&names), sorted(&EXPECTED), "{master}");
    let mut before: BTreeMap<String, (Option<String>, Vec<u8>)> = BTreeMap::new();
    let mut msn_before = BTreeMap::new();
    for r in &names {
        let p = text(&server, &format!("{r}/playlist.m3u8"));
        assert!(!p.contains("#EXT-X-DISCONTINUITY\n"), "{r}: {p}");
        msn_before.insert(r.clone(), *segment_msns(&p).last().unwrap());
        for uri in uris(&p) {
            let f = fetch(&server, &format!("{r}/{uri}"));
            assert_eq!(f.status, 200, "{r}/{uri}");
            before.insert(format!("{r}/{}", object_name(&uri)), (f.etag, f.body));
        }
    }
    // The 720p pictures decode through init0.
    let (size, errors) = decode(
        &dir,
        "source-720p",
        &[
            before["source/init0.mp4"].1.clone(),
            before["source/seg0.m4s"].1.clone(),
        ],
    );
    assert_eq!((size.as_str(), errors.as_str()), ("1280,720", ""));
    let frames_before = rung_frames(&server);
    go_on.send(()).unwrap();

    // After the change: every rendition shows the discontinuity and at least
    // two whole segments after it.
    wait_done
        .recv_timeout(Duration::from_secs(120))
        .expect("publish finished");
    let after: BTreeMap<String, String> =
        server.wait_for("segments after the change", Duration::from_secs(60), || {
            let mut all = BTreeMap::new();
            for r in &names {
                let (s, p) = server.get(&format!("/live/cam1/{r}/playlist.m3u8")).ok()?;
                let at = p.find("#EXT-X-DISCONTINUITY\n")?;
                (s == 200 && segment_msns(&p[at..]).len() >= 2).then_some(())?;
                all.insert(r.clone(), p);
            }
            Some(all)
        });
    // The rungs' counts go on too (the API's per-rung frames).
    let frames_after = rung_frames(&server);
    for (rung, before) in &frames_before {
        assert!(
            frames_after.get(rung).is_some_and(|after| after > before),
            "{rung}: frames {before} before the change, {frames_after:?} after"
        );
    }
    let master_after = text(&server, "master.m3u8");
    // The source variant is described as it is now.
    let lines: Vec<&str> = master_after.lines().collect();
    let source = lines
        .iter()
        .position(|l| *l == "source/playlist.m3u8")
        .expect(&master_after);
    assert!(
        lines[source - 1].contains("RESOLUTION=1920x1080"),
        "{master_after}"
    );
    assert_eq!(
        sorted(&renditions(&master_after)),
        sorted(&names),
        "the multivariant lists the same renditions (no new rung mid-stream):\n{master_after}"
    );

    // Published means immutable: every object fetched before is unchanged.
    for (path, (etag, body)) in &before {
        let f = fetch(&server, path);
        assert_eq!(f.status, 200, "{path} after the change");
        assert!(
            f.body == *body,
            "{path} changed after the resolution change"
        );
        assert_eq!(f.etag, *etag, "{path}: ETag");
    }

    let mut sequences = Vec::new();
    for (r, p) in &after {
        println!("--- {r}\n{p}");
        assert!(!p.contains("#EXT-X-ENDLIST"), "{r} ended");
        assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{r}");
        sequences.push(tag(p, "#EXT-X-DISCONTINUITY-SEQUENCE:"));
        // Media sequence goes on: consecutive, past what was there before.
        let msns = segment_msns(p);
        assert!(msns.windows(2).all(|w| w[1] == w[0] + 1), "{r}: {msns:?}");
        assert!(*msns.last().unwrap() >= msn_before[r] + 2, "{r}: {msns:?}");
        let at = p.find("#EXT-X-DISCONTINUITY\n").unwrap();
        if r == "audio" {
            assert!(!p.contains("init1.mp4"), "{r}: audio keeps its init");
            continue;
        }
        let run = run_dir(p).unwrap();
        assert!(
            p[at..].starts_with(&format!(
                "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"{run}/init1.mp4\"\n"
            )),
            "{r}: a new EXT-X-MAP after the discontinuity"
        );
        // The segments after the change decode through the new init.
        let mut files = vec![fetch(&server, &format!("{r}/init1.mp4")).body];
        for msn in segment_msns(&p[at..]) {
            let f = fetch(&server, &format!("{r}/seg{msn}.m4s"));
            assert_eq!(f.status, 200, "{r}/seg{msn}.m4s");
            files.push(f.body);
        }
        let (size, errors) = decode(&dir, r, &files);
        println!("{r} after the change: {size}");
        assert_eq!(errors, "", "{r}: decode errors after the change");
        let want = match r.as_str() {
            "source" => "1920,1080",
            "720p30" => "1280,720",
            "480p30" => "854,480",
            "360p30" => "640,360",
            other => panic!("unexpected rendition {other}"),
        };
        assert_eq!(size, want, "{r}");
    }
    assert!(
        sequences.iter().all(|s| *s == sequences[0] && s.is_some()),
        "DISCONTINUITY-SEQUENCE agrees: {sequences:?}"
    );
    assert!(
        !server.log_text().contains("ladder not started"),
        "{}",
        server.log_text()
    );

    let _ = leave.send(());
    publisher.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The segment after `#EXT-X-DISCONTINUITY`: (msn of its first part or
/// segment, its PROGRAM-DATE-TIME).
fn discontinuity_at(playlist: &str) -> Option<(u64, String)> {
    let at = playlist.find("#EXT-X-DISCONTINUITY\n")?;
    let rest = &playlist[at..];
    let pdt = rest
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))?
        .to_string();
    let msn = rest.lines().find_map(|l| {
        let uri = l
            .split("URI=\"")
            .nth(1)
            .map(object_name)
            .and_then(|u| u.strip_prefix("part"))
            .or_else(|| object_name(l).strip_prefix("seg"))?;
        uri.split(['.', '"']).next()?.parse().ok()
    })?;
    Some((msn, pdt))
}

/// Milliseconds of an ISO 8601 `…THH:MM:SS.mmmZ` within its day.
fn day_ms(pdt: &str) -> i64 {
    let t = pdt.split('T').nth(1).unwrap().trim_end_matches('Z');
    let mut it = t.split(':');
    let h: i64 = it.next().unwrap().parse().unwrap();
    let m: i64 = it.next().unwrap().parse().unwrap();
    let s: f64 = it.next().unwrap().parse().unwrap();
    (h * 3600 + m * 60) * 1000 + (s * 1000.0).round() as i64
}

/// Item 5: the publisher's clock jumps 10 s forward mid-GOP (both tracks).
/// Every rendition (source, rung, audio) marks EXT-X-DISCONTINUITY at the
/// same boundary, with the same DISCONTINUITY-SEQUENCE.
#[test]
fn timestamp_jump_marks_discontinuity_on_every_rendition() {
    let flv = input_360p30_flv();
    let server = Server::start(CONFIG);
    let rtmp = server.rtmp;
    let (leave, wait_leave) = mpsc::channel::<()>();
    let publisher = std::thread::spawn(move || {
        let mut client = RawClient::publish(rtmp, "cam1?key=key-one-secret");
        let data = Bytes::from(std::fs::read(&flv).unwrap());
        let start = Instant::now();
        for t in FileTags::new(data).unwrap() {
            let t = t.unwrap();
            let due = Duration::from_millis(t.timestamp_ms as u64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            // 5 s in (mid-GOP: IDRs every 2 s) the clock jumps by 10 s.
            let ts = t.timestamp_ms + if t.timestamp_ms >= 5000 { 10_000 } else { 0 };
            match t.kind {
                9 => client.video(&t.body, ts).unwrap(),
                8 => client.audio(&t.body, ts).unwrap(),
                _ => {}
            }
        }
        let _ = wait_leave.recv_timeout(Duration::from_secs(120));
    });
    let names = ["source", "360p30", "audio"];
    let playlists = server.wait_for("segments after the jump", Duration::from_secs(60), || {
        let mut all = Vec::new();
        for r in names {
            let (s, p) = server.get(&format!("/live/cam1/{r}/playlist.m3u8")).ok()?;
            let at = p.find("#EXT-X-DISCONTINUITY\n")?;
            (s == 200 && !segment_msns(&p[at..]).is_empty()).then_some(())?;
            all.push(p);
        }
        Some(all)
    });
    let master = text(&server, "master.m3u8");
    assert_eq!(sorted(&renditions(&master)), sorted(&names), "{master}");
    let mut marks = Vec::new();
    for (r, p) in names.iter().zip(&playlists) {
        println!("--- {r}\n{p}");
        assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{r}");
        let (msn, pdt) = discontinuity_at(p).unwrap();
        marks.push((
            *r,
            msn,
            day_ms(&pdt),
            tag(p, "#EXT-X-DISCONTINUITY-SEQUENCE:"),
        ));
    }
    println!("discontinuities (rendition, msn, pdt ms of day, sequence): {marks:?}");
    let (_, msn, pdt, seq) = marks[0];
    for &(r, m, t, s) in &marks {
        assert_eq!(m, msn, "{r}: the same segment boundary: {marks:?}");
        assert_eq!(s, seq, "{r}: DISCONTINUITY-SEQUENCE: {marks:?}");
        // Audio starts with its first AAC frame at or after the video cut.
        assert!((t - pdt).abs() <= 50, "{r}: same time: {marks:?}");
    }
    let _ = leave.send(());
    publisher.join().unwrap();
}

/// Issue 30: an encoder that repeats its parameter sets in-band
/// (`repeat-headers`) and changes size there, under the one FLV sequence
/// header at the start (two encodes concatenated with `-c copy`, pushed as
/// one publish). The 720p SPS starts a new configuration: the source
/// rendition continues after EXT-X-DISCONTINUITY with a new EXT-X-MAP whose
/// pictures are 720p, and the master describes the source as 1280x720.
#[test]
fn an_in_band_resolution_change_starts_a_new_configuration() {
    require("ffmpeg");
    require("ffprobe");
    let dir = tempfile::tempdir().unwrap();
    let mut joined = Vec::new();
    // The second part outlasts the checks (per-stream metrics are read live).
    for (size, secs) in [("640x360", "4"), ("1280x720", "16")] {
        let out = dir.path().join(format!("{size}.h264"));
        let st = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-y"])
            .args([
                "-f",
                "lavfi",
                "-i",
                &format!("testsrc2=size={size}:rate=30"),
            ])
            .args(["-t", secs, "-c:v", "libx264", "-preset", "ultrafast"])
            .args(["-g", "30", "-keyint_min", "30", "-sc_threshold", "0"])
            .args(["-x264-params", "repeat-headers=1", "-pix_fmt", "yuv420p"])
            .args(["-f", "h264"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success(), "ffmpeg failed to make {size}");
        joined.extend(std::fs::read(&out).unwrap());
    }
    let input = dir.path().join("joined.h264");
    std::fs::write(&input, joined).unwrap();
    let server = Server::start(CONFIG);
    let _ff = Proc(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-re"])
            .args(["-f", "h264", "-framerate", "30", "-i"])
            .arg(&input)
            .args(["-c", "copy", "-f", "flv"])
            .arg(server.rtmp_url("cam1?key=key-one-secret"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let source = server.wait_for(
        "the source after the change",
        Duration::from_secs(60),
        || {
            let (s, p) = server.get("/live/cam1/source/playlist.m3u8").ok()?;
            let at = p.find("#EXT-X-DISCONTINUITY\n")?;
            (s == 200 && segment_msns(&p[at..]).len() >= 2).then_some(p)
        },
    );
    let log = server.log_text();
    assert!(
        log.contains("in-band SPS changes the video configuration"),
        "{log}"
    );
    assert_eq!(
        server.metric(
            "ladderd_in_band_reconfigurations_total",
            &["stream=\"cam1\""]
        ),
        1.0,
        "{log}"
    );
    let at = source.find("#EXT-X-DISCONTINUITY\n").unwrap();
    let map = source[at..].lines().nth(1).unwrap_or_default();
    assert!(
        map.starts_with("#EXT-X-MAP:URI=") && map.contains("init1.mp4"),
        "{source}"
    );
    let init = uris(map).remove(0);
    let master = text(&server, "master.m3u8");
    let lines: Vec<&str> = master.lines().collect();
    let i = lines
        .iter()
        .position(|l| *l == "source/playlist.m3u8")
        .expect(&master);
    assert!(lines[i - 1].contains("RESOLUTION=1280x720"), "{master}");
    // The segment after the break decodes as 720p through init1.
    let seg = uris(&source[at..])
        .into_iter()
        .find(|u| segment_number(u).is_some())
        .unwrap();
    let (size, errors) = decode(
        dir.path(),
        "source-in-band",
        &[
            fetch(&server, &format!("source/{init}")).body,
            fetch(&server, &format!("source/{seg}")).body,
        ],
    );
    assert_eq!((size.as_str(), errors.as_str()), ("1280,720", ""));
}
