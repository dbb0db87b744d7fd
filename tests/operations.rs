//! Operations: `/metrics` (checked by promtool), `/readyz` through a drain,
//! the admin token, kicking a publisher, the systemd notify protocol, and the
//! unit file (checked by systemd-analyze).

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use ladderd::media::flv::FileTags;

/// The process's exit status, once it exits (within 10 s, else `why`).
fn exit_within(server: &mut Server, why: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(code) = server.child().try_wait().unwrap() {
            return code;
        }
        assert!(Instant::now() < deadline, "{why}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is not installed; run scripts/test.sh (package prometheus)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metrics_count_every_pushed_frame_and_pass_promtool() {
    let flv = input_360p30_flv();
    // No slate: the burst below leaves the publish silent, and slate pictures
    // would count as encoded too.
    let server = Server::start(
        "[ingest]\nallow_any_key = true\nslate_after_ms = 0\n\n[ladder]\nmax_lag_secs = 60.0\n",
    );
    // Push every tag at once, then keep the publish open: the counters settle.
    let mut client = RawClient::publish(server.rtmp, "cam");
    let mut video = 0u64;
    for tag in FileTags::new(Bytes::from(std::fs::read(&flv).unwrap())).unwrap() {
        let tag = tag.unwrap();
        match tag.kind {
            9 => {
                if tag.body.get(1) == Some(&1) {
                    video += 1;
                }
                client.video(&tag.body, tag.timestamp_ms).unwrap();
            }
            8 => client.audio(&tag.body, tag.timestamp_ms).unwrap(),
            _ => {}
        }
    }
    assert_eq!(video, 300, "10 s at 30 fps");
    // The rungs' pipeline keeps its last pictures until more input comes (or
    // the slate's, or the stream's end): with the publish silent after the burst,
    // 2-10 of 300 stayed in it in 16 runs here. The slate is off so its pictures
    // do not count as encoded; wait for both counters to settle.
    let text = server.wait_for(
        "every frame decoded and encoded",
        Duration::from_secs(60),
        || {
            let (_, t) = server.get("/metrics").ok()?;
            let decoded = metric_in(&t, "ladderd_frames_decoded_total", &["stream=\"cam\""]);
            let encoded = metric_in(&t, "ladderd_frames_encoded_total", &["rung=\"360p30\""]);
            (decoded == video as f64 && encoded >= video as f64 - 16.0).then_some(t)
        },
    );
    promtool_check(&text);
    assert_eq!(
        metric_in(&text, "ladderd_packets_in_total", &["track=\"video\""]),
        video as f64
    );
    // The decode stage's histogram counts exactly the frames decoded.
    assert_eq!(
        metric_in(
            &text,
            "ladderd_stage_latency_seconds_count",
            &["stage=\"decode\"", "stream=\"cam\""]
        ),
        video as f64
    );
    assert_eq!(
        metric_in(
            &text,
            "ladderd_stage_latency_seconds_bucket",
            &["stage=\"decode\"", "le=\"+Inf\""]
        ),
        video as f64
    );
    // The rung encoded all but the pictures its pipeline still holds, never more.
    let encoded = metric_in(&text, "ladderd_frames_encoded_total", &["rung=\"360p30\""]);
    assert!(
        (video as f64 - 16.0..=video as f64).contains(&encoded),
        "{encoded}"
    );
    assert!(
        metric_in(
            &text,
            "ladderd_parts_published_total",
            &["rendition=\"360p30\""]
        ) > 0.0
    );
    assert!(metric_in(&text, "ladderd_core_cpu_seconds_total", &[]) > 0.0);
    assert_eq!(metric_in(&text, "ladderd_streams_live", &[]), 1.0);
    // Every metric the Grafana dashboard queries exists (two appear only once
    // something happened: a rejected publisher, a parked playlist request).
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana-dashboard.json"
    ))
    .unwrap();
    let optional = [
        "ladderd_publishers_rejected_total",
        "ladderd_publish_to_served_seconds_bucket",
    ];
    for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("ladderd_") && !optional.contains(&word) {
            assert!(
                text.contains(word),
                "dashboard queries {word}, which /metrics does not have"
            );
        }
    }
    // OpenMetrics for scrapers that ask for it.
    let om = ureq::get(&format!("http://{}/metrics", server.http))
        .set("Accept", "application/openmetrics-text;version=1.0.0")
        .call()
        .unwrap();
    assert!(om.content_type().contains("openmetrics"));
    assert!(om.into_string().unwrap().ends_with("# EOF\n"));
    // The publish ends: its counters stay (they never go backwards).
    drop(client);
    server.wait_for("the publish ended", Duration::from_secs(30), || {
        (server.metric("ladderd_streams_live", &[]) == 0.0
            && server.json("/api/v1/sessions")["sessions"]
                .as_array()
                .is_some_and(|s| !s.is_empty()))
        .then_some(())
    });
    let ended = server.get("/metrics").unwrap().1;
    assert_eq!(
        metric_in(
            &ended,
            "ladderd_packets_in_total",
            &["stream=\"cam\"", "track=\"video\""]
        ),
        video as f64,
        "{ended}"
    );
    assert!(metric_in(&ended, "ladderd_in_bytes_total", &["stream=\"cam\""]) > 0.0);
    promtool_check(&ended);
}

#[test]
fn readyz_is_503_until_every_listener_is_bound() {
    // Another process holds the RTMP port (a restart overlapping the old
    // instance): the HTTP listener is up and says why the box is not ready.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let rtmp = held.local_addr().unwrap();
    let http: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut server = Server::launch("[server]\nbind_wait_secs = 30.0\n", &[], &[], rtmp, http);
    let body = server.wait_for(
        "readyz 503 naming the RTMP listener",
        Duration::from_secs(15),
        || {
            let (status, body) = server.get("/readyz").ok()?;
            assert_ne!(status, 200, "ready while the RTMP port is held: {body}");
            (status == 503 && body.contains("RTMP")).then_some(body)
        },
    );
    assert!(body.contains(&rtmp.to_string()), "{body}");
    assert!(body.contains("in use"), "{body}");
    assert_eq!(server.get("/healthz").unwrap().0, 200);
    assert!(server.child().try_wait().unwrap().is_none());
    drop(held);
    server.wait_for(
        "readyz 200 once the port is free",
        Duration::from_secs(10),
        || {
            let (status, _) = server.get("/readyz").ok()?;
            (status == 200).then_some(())
        },
    );
    assert!(std::net::TcpStream::connect(rtmp).is_ok());
    assert!(server.stop().success());
}

#[test]
fn a_port_still_held_after_bind_wait_secs_stops_start_up_with_the_reason() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let rtmp = held.local_addr().unwrap();
    let http: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut server = Server::launch("[server]\nbind_wait_secs = 1.0\n", &[], &[], rtmp, http);
    let code = exit_within(&mut server, "still running with its port held");
    assert_eq!(code.code(), Some(1), "{}", server.log_text());
    let log = server.log_text();
    assert!(
        log.contains("cannot listen on") && log.contains("RTMP"),
        "{log}"
    );
    drop(held);
}

#[test]
fn readyz_turns_503_while_draining_then_the_process_exits_0() {
    let mut server = Server::start("[server]\ndrain_secs = 2.0\n");
    // Healthy (what `start` waits for) comes before ready: the media executors
    // may still be starting.
    server.wait_for("readyz 200", Duration::from_secs(10), || {
        let (status, _) = server.get("/readyz").ok()?;
        (status == 200).then_some(())
    });
    unsafe_kill(server.pid(), libc_sig::TERM);
    let t = Instant::now();
    // Within the 2 s drain: not ready, still answering.
    let body = server.wait_for("readyz 503", Duration::from_secs(1), || {
        let (status, body) = server.get("/readyz").ok()?;
        (status == 503).then_some(body)
    });
    assert!(body.contains("shutting down"), "{body}");
    assert_eq!(server.get("/healthz").unwrap().0, 200);
    let code = server.exited_within(Duration::from_secs(8));
    assert!(code.success(), "{code}");
    assert!(
        t.elapsed() < Duration::from_secs(2 + 5),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn admin_token_guards_the_api_and_metrics_and_delete_kicks() {
    let input = input_360p30_high();
    let server = Server::start("[admin]\ntoken = \"s3cret-admin\"\n\n[ingest]\nallow_any_key = true\n\n[ladder]\nenabled = false\n");
    let url = |p: &str| format!("http://{}{p}", server.http);
    for path in ["/api/v1/streams", "/metrics", "/api/v1/sessions"] {
        match ureq::get(&url(path)).call() {
            Err(ureq::Error::Status(401, _)) => {}
            other => panic!("{path} without a token: {other:?}"),
        }
        match ureq::get(&url(path))
            .set("Authorization", "Bearer wrong")
            .call()
        {
            Err(ureq::Error::Status(401, _)) => {}
            other => panic!("{path} with a wrong token: {other:?}"),
        }
        let ok = ureq::get(&url(path))
            .set("Authorization", "Bearer s3cret-admin")
            .call()
            .unwrap();
        assert_eq!(ok.status(), 200);
    }
    // Health and playback stay open.
    assert_eq!(server.get("/healthz").unwrap().0, 200);
    assert_eq!(server.get("/live/nope/master.m3u8").unwrap().0, 404);

    let _ff = push(&input.path, &server.rtmp_url("cam"), true);
    let auth = |r: ureq::Request| r.set("Authorization", "Bearer s3cret-admin");
    server.wait_for("stream live", Duration::from_secs(15), || {
        auth(ureq::get(&url("/api/v1/streams/cam"))).call().ok()
    });
    match ureq::delete(&url("/api/v1/streams/cam")).call() {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("DELETE without a token: {other:?}"),
    }
    let kicked = auth(ureq::delete(&url("/api/v1/streams/cam")))
        .call()
        .unwrap();
    assert_eq!(kicked.status(), 200);
    let sessions: serde_json::Value =
        server.wait_for("kicked session", Duration::from_secs(10), || {
            let v: serde_json::Value = auth(ureq::get(&url("/api/v1/sessions")))
                .call()
                .ok()?
                .into_json()
                .ok()?;
            v["sessions"]
                .as_array()?
                .iter()
                .any(|s| s["ended"]["kind"] == "kicked")
                .then_some(v)
        });
    assert!(!sessions.to_string().contains("s3cret-admin"));
}

#[test]
fn systemd_notify_ready_and_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _server = Server::start_env(
        "",
        &[],
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !(seen.iter().any(|m| m == "READY=1") && seen.iter().any(|m| m == "WATCHDOG=1")) {
        let n = sock
            .recv(&mut buf)
            .expect("READY=1 and WATCHDOG=1 within 10 s");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(
        seen.first().map(String::as_str),
        Some("READY=1"),
        "{seen:?}"
    );
}

#[test]
fn systemd_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("systemd-analyze is not installed; run scripts/test.sh (package systemd)");
    }
    // The unit names /usr/local/bin/ladderd; verify it against the binary we built.
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/ladderd.service"
    ))
    .unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("ladderd.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/ladderd", env!("CARGO_BIN_EXE_ladderd")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze verify:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn admin_listen_moves_the_api_and_metrics_off_the_public_port() {
    let admin = format!("127.0.0.1:{}", free_port());
    let server = Server::start(&format!("[admin]\nlisten = \"{admin}\"\n"));
    assert_eq!(server.get("/api/v1/streams").unwrap().0, 404);
    assert_eq!(server.get("/metrics").unwrap().0, 404);
    assert_eq!(server.get("/healthz").unwrap().0, 200);
    let get = |p: &str| match ureq::get(&format!("http://{admin}{p}")).call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(c, _)) => c,
        Err(e) => panic!("{p}: {e}"),
    };
    assert_eq!(get("/api/v1/streams"), 200);
    assert_eq!(get("/metrics"), 200);
    assert_eq!(get("/readyz"), 200);
    assert_eq!(get("/live/demo/master.m3u8"), 404);
    assert_eq!(get("/"), 404);
}

/// Issue 12 item 9: glommio bound with SO_REUSEPORT, so a second `ladderd serve` on
/// the same ports started, reported ready, and took half the requests. It must wait
/// `bind_wait_secs` and then stop with the reason, while the first keeps serving.
#[test]
fn second_instance_on_the_same_ports_is_refused() {
    let mut first = Server::start("");
    let mut second = Server::launch(
        "[server]\nbind_wait_secs = 1.0\n",
        &[],
        &[],
        first.rtmp,
        first.http,
    );
    let code = exit_within(
        &mut second,
        "second instance still running on the first's ports",
    );
    assert_eq!(code.code(), Some(1), "{}", second.log_text());
    let log = second.log_text();
    assert!(log.contains("cannot listen on"), "{log}");
    assert!(!log.contains("ladderd ready"), "{log}");
    // Every request still reaches the first instance.
    for _ in 0..20 {
        assert_eq!(first.get("/readyz").unwrap().0, 200);
    }
    assert!(first.stop().success());
}

/// Issue 12 item 9: the same address for `--http-listen` and `--rtmp-listen` passed
/// `config check` and `serve` (validation ran only with `--demo`).
#[test]
fn cli_listen_overrides_on_one_address_are_a_config_error() {
    let addr = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("l.toml");
    std::fs::write(&cfg, "").unwrap();
    for args in [
        vec!["config", "check", cfg.to_str().unwrap()],
        vec!["serve"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ladderd"))
            .args(["--rtmp-listen", &addr, "--http-listen", &addr])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("server.http_listen"), "{args:?}: {err}");
    }
}
