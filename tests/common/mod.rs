//! Shared helpers for integration tests: start the real binary on free loopback
//! ports, make inputs with ffmpeg, push them, read the API. Every process a test
//! starts is killed when its guard drops.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Ports this test process has handed out: the kernel may give the same
/// ephemeral port to two `bind(0)`s in a row (one server's RTMP and HTTP
/// ports came out equal and it refused to start), so none is handed out twice.
static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

fn unused_port(bind: impl Fn() -> u16) -> u16 {
    let mut seen = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = bind();
        if !seen.contains(&port) {
            seen.push(port);
            return port;
        }
    }
}

pub fn free_port() -> u16 {
    unused_port(|| {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    })
}

/// A UDP port nothing listens on now (SRT).
pub fn free_udp_port() -> u16 {
    unused_port(|| {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    })
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.2, …):
/// a second client address on one machine.
pub fn connect_from(from: std::net::IpAddr, to: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::new(from, 0).into()).unwrap();
    sock.connect(&to.into()).unwrap();
    sock.into()
}

/// Fails loudly when a peer tool is missing: `scripts/test.sh` installs them.
pub fn require(tool: &str) {
    let ok = Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "{tool} is not installed; run scripts/test.sh (it installs ffmpeg)"
    );
}

/// A running `ladderd serve`.
pub struct Server {
    child: Option<Child>,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    /// SRT (UDP), on a free port of its own.
    pub srt: SocketAddr,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts with this TOML (listen addresses are added on the command line).
    pub fn start(config: &str) -> Server {
        Self::start_with(config, &[])
    }

    /// `extra_args` go after `serve` (e.g. `--demo`).
    pub fn start_with(config: &str, extra_args: &[&str]) -> Server {
        Self::start_env(config, extra_args, &[])
    }

    /// With extra environment variables for the process.
    pub fn start_env(config: &str, extra_args: &[&str], envs: &[(&str, &str)]) -> Server {
        let rtmp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut s = Self::launch(config, extra_args, envs, rtmp, http);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if s.get("/healthz").map(|(st, _)| st == 200).unwrap_or(false)
                && TcpStream::connect(rtmp).is_ok()
            {
                return s;
            }
            if let Some(status) = s.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "ladderd exited during start-up ({status}):\n{}",
                    s.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ladderd did not become healthy:\n{}", s.log_text());
    }

    /// Starts the process on these addresses without waiting for it.
    pub fn launch(
        config: &str,
        extra_args: &[&str],
        envs: &[(&str, &str)],
        rtmp: SocketAddr,
        http: SocketAddr,
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("ladderd.toml");
        std::fs::write(&cfg, config).unwrap();
        let log = dir.path().join("ladderd.log");
        let srt: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ladderd"))
            .arg("--config")
            .arg(&cfg)
            .arg("--rtmp-listen")
            .arg(rtmp.to_string())
            .arg("--http-listen")
            .arg(http.to_string())
            .arg("--srt-listen")
            .arg(srt.to_string())
            .arg("serve")
            .args(extra_args)
            .env("LADDERD_LOG", "info")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Server {
            child: Some(child),
            rtmp,
            http,
            srt,
            log,
            _dir: dir,
        }
    }

    pub fn rtmp_url(&self, name_and_query: &str) -> String {
        format!("rtmp://{}/live/{}", self.rtmp, name_and_query)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn child(&mut self) -> &mut Child {
        self.child.as_mut().unwrap()
    }

    /// GET returning (status, body).
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        let url = format!("http://{}{}", self.http, path);
        match ureq::get(&url).timeout(Duration::from_secs(5)).call() {
            Ok(r) => Ok((r.status(), r.into_string().map_err(|e| e.to_string())?)),
            Err(ureq::Error::Status(code, r)) => Ok((code, r.into_string().unwrap_or_default())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// GET of a body that must be there (200), as bytes.
    pub fn get_bytes(&self, path: &str) -> Vec<u8> {
        let url = format!("http://{}{}", self.http, path);
        let mut body = Vec::new();
        let reply = ureq::get(&url)
            .timeout(Duration::from_secs(10))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        reply.into_reader().read_to_end(&mut body).unwrap();
        body
    }

    pub fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).unwrap();
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The live stream NAME, if the API lists it.
    pub fn live(&self, name: &str) -> Option<Value> {
        self.json("/api/v1/streams")["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
    }

    /// Polls until `f` returns Some or the timeout passes.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n--- log ---\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the drained session record of the `n`-th publish of NAME (1-based).
    pub fn session(&self, name: &str, n: usize, timeout: Duration) -> Value {
        self.wait_for(&format!("session {n} of {name}"), timeout, || {
            let s = self.json("/api/v1/sessions");
            s["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["name"] == name)
                .nth(n - 1)
                .cloned()
        })
    }

    /// Its exit status, once it exits (a signal sent); fails the test if it
    /// still runs after `t`.
    pub fn exited_within(&mut self, t: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + t;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(code) = child.try_wait().unwrap() {
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "still running {t:?} after the signal"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().unwrap();
        unsafe_kill(child.id(), libc_sig::TERM);
        child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub mod libc_sig {
    pub const TERM: i32 = 15;
    pub const KILL: i32 = 9;
}

/// `n` pseudo-random bytes (xorshift64 from `seed`, which moves on):
/// repeatable junk for hostile-input tests.
pub fn noise(seed: &mut u64, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed as u8
        })
        .collect()
}

/// Sends a signal with the `kill` utility (no libc in dev-dependencies needed).
pub fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Proc {
    pub fn wait_timeout(&mut self, t: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + t;
        while Instant::now() < deadline {
            if let Some(s) = self.0.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Test inputs made by ffmpeg once per test binary, cached under target/.
pub struct Input {
    pub path: PathBuf,
    pub video_frames: u64,
    pub audio_frames: u64,
}

fn media_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("media");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// 10 s of 1280x720@30 H.264 High with B-frames + AAC stereo 48 kHz.
pub fn input_720p30_high() -> &'static Input {
    static I: OnceLock<Input> = OnceLock::new();
    I.get_or_init(|| high_with_bframes("720p30-high-bf-aac-10s.mp4", "1280x720"))
}

/// 10 s of 1920x1080@30 H.264 High with B-frames + AAC stereo 48 kHz.
pub fn input_1080p30_high() -> &'static Input {
    static I: OnceLock<Input> = OnceLock::new();
    I.get_or_init(|| high_with_bframes("1080p30-high-bf-aac-10s.mp4", "1920x1080"))
}

/// The same at 640x360: a light ladder (one rung), for tests that run several
/// live ladders at once on 2 cores.
pub fn input_360p30_high() -> &'static Input {
    static I: OnceLock<Input> = OnceLock::new();
    I.get_or_init(|| high_with_bframes("360p30-high-bf-aac-10s.mp4", "640x360"))
}

fn high_with_bframes(name: &str, size: &str) -> Input {
    let src = format!("testsrc2=size={size}:rate=30");
    make_input(
        name,
        &[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "10",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-bf",
            "3",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-ac",
            "2",
        ],
    )
}

/// 8 s of 640x360@30 H.264 Main + MP3 audio (FLV allows it; ladderd re-encodes it as AAC).
pub fn input_mp3_audio() -> &'static Input {
    static I: OnceLock<Input> = OnceLock::new();
    I.get_or_init(|| input_with_audio("360p30-mp3-8s.mkv", "8", &["libmp3lame", "-b:a", "96k"]))
}

/// 4 s of 640x360@30 H.264 + 16-bit PCM audio (FLV sound format 3: refused).
pub fn input_pcm_audio() -> &'static Input {
    static I: OnceLock<Input> = OnceLock::new();
    I.get_or_init(|| input_with_audio("360p30-pcm-4s.mkv", "4", &["pcm_s16le"]))
}

/// 640x360@30 H.264 and a 440 Hz tone in the audio codec `audio` names.
fn input_with_audio(name: &str, secs: &str, audio: &[&str]) -> Input {
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        secs,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "30",
        "-c:a",
    ];
    args.extend_from_slice(audio);
    make_input(name, &args)
}

/// Makes (once per target dir) `name` with ffmpeg `args`, counting its packets.
pub fn make_input(name: &str, args: &[&str]) -> Input {
    require("ffmpeg");
    let path = media_dir().join(name);
    if !path.exists() {
        // Unique temp name, then rename: test binaries run in parallel.
        let tmp = path.with_extension(format!(
            "tmp{}.{}",
            std::process::id(),
            path.extension().unwrap().to_str().unwrap()
        ));
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(args)
            .arg(&tmp)
            .status()
            .unwrap();
        assert!(st.success(), "ffmpeg failed to make {name}");
        std::fs::rename(&tmp, &path).unwrap();
    }
    Input {
        video_frames: count_packets(&path, "v:0"),
        audio_frames: count_packets(&path, "a:0"),
        path,
    }
}

/// Packets ffprobe counts in one stream of a file.
pub fn count_packets(path: &Path, stream: &str) -> u64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            stream,
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe count of {stream} in {}: {:?}", path.display(), out))
}

/// `input_360p30_high` remuxed to FLV (for pushing tags with `RawClient`).
pub fn input_360p30_flv() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let input = input_360p30_high();
        let flv = media_dir().join("360p30-high-bf-aac-10s.flv");
        if !flv.exists() {
            let tmp = media_dir().join(format!("360p30-{}.flv.tmp", std::process::id()));
            let ok = Command::new("ffmpeg")
                .args(["-hide_banner", "-nostdin", "-v", "error", "-y", "-i"])
                .arg(&input.path)
                .args(["-c", "copy", "-f", "flv"])
                .arg(&tmp)
                .status()
                .unwrap();
            assert!(ok.success());
            std::fs::rename(&tmp, &flv).unwrap();
        }
        flv
    })
    .clone()
}

/// ffmpeg pushing a file to `url` in real time (`-re`), copying its codecs.
/// `looped`: repeat forever (until dropped).
pub fn push(input: &Path, url: &str, looped: bool) -> Proc {
    push_args(input, url, looped, &["-c", "copy"])
}

pub fn push_args(input: &Path, url: &str, looped: bool, codec_args: &[&str]) -> Proc {
    require("ffmpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-re"]);
    if looped {
        cmd.args(["-stream_loop", "-1"]);
    }
    cmd.arg("-i")
        .arg(input)
        .args(codec_args)
        .args(["-f", "flv", url]);
    Proc(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// A minimal RTMP client driven by rml_rtmp: handshake, connect, publish, raw writes.
pub struct RawClient {
    pub sock: TcpStream,
    session: Option<rml_rtmp::sessions::ClientSession>,
}

impl RawClient {
    /// TCP connect and complete the RTMP handshake.
    pub fn handshake(addr: SocketAddr) -> RawClient {
        Self::handshake_on(TcpStream::connect(addr).unwrap())
    }

    /// The RTMP handshake on a connected socket.
    pub fn handshake_on(mut sock: TcpStream) -> RawClient {
        use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut hs = Handshake::new(PeerType::Client);
        sock.write_all(&hs.generate_outbound_p0_and_p1().unwrap())
            .unwrap();
        let mut buf = [0u8; 8192];
        loop {
            let n = sock.read(&mut buf).unwrap();
            assert!(n > 0, "server closed during handshake");
            match hs.process_bytes(&buf[..n]).unwrap() {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    sock.write_all(&response_bytes).unwrap()
                }
                HandshakeProcessResult::Completed { response_bytes, .. } => {
                    sock.write_all(&response_bytes).unwrap();
                    break;
                }
            }
        }
        RawClient {
            sock,
            session: None,
        }
    }

    /// Wraps a bare socket (no handshake done) to use [`RawClient::closed_within`].
    pub fn from_socket(sock: TcpStream) -> RawClient {
        RawClient {
            sock,
            session: None,
        }
    }

    /// connect("live") then publish(name); returns once the server accepted both.
    pub fn publish(addr: SocketAddr, name: &str) -> RawClient {
        Self::try_publish_on(TcpStream::connect(addr).unwrap(), name)
            .unwrap_or_else(|e| panic!("publish {name}: {e}"))
    }

    /// connect("live") then publish(name) on a connected socket; `Err` when the
    /// server refused (`refused: onStatus CODE`) or closed before accepting the publish.
    pub fn try_publish_on(sock: TcpStream, name: &str) -> Result<RawClient, String> {
        use rml_rtmp::sessions::{
            ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
            PublishRequestType,
        };
        let mut c = Self::handshake_on(sock);
        let (mut session, initial) = ClientSession::new(ClientSessionConfig::new()).unwrap();
        let mut pending: Vec<ClientSessionResult> = initial;
        pending.push(session.request_connection("live".into()).unwrap());
        let mut published = false;
        let mut buf = [0u8; 8192];
        let deadline = Instant::now() + Duration::from_secs(5);
        while !published {
            if Instant::now() > deadline {
                return Err("publish not answered in 5 s".into());
            }
            for r in pending.drain(..) {
                match r {
                    ClientSessionResult::OutboundResponse(p) => c
                        .sock
                        .write_all(&p.bytes)
                        .map_err(|e| format!("write: {e}"))?,
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::ConnectionRequestAccepted,
                    ) => {
                        let r = session
                            .request_publishing(name.into(), PublishRequestType::Live)
                            .unwrap();
                        if let ClientSessionResult::OutboundResponse(p) = r {
                            c.sock
                                .write_all(&p.bytes)
                                .map_err(|e| format!("write: {e}"))?;
                        }
                    }
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::PublishRequestAccepted,
                    ) => published = true,
                    // A refusal's status (`NetStream.Publish.Denied`, …) is not
                    // one rml_rtmp knows: it comes through as this.
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::UnhandleableOnStatusCode { code },
                    ) => return Err(format!("refused: onStatus {code}")),
                    _ => {}
                }
            }
            if published {
                break;
            }
            let n = match c.sock.read(&mut buf) {
                Ok(0) => return Err("server closed before accepting publish".into()),
                Ok(n) => n,
                Err(e) => return Err(format!("server reset before accepting publish: {e}")),
            };
            pending = session
                .handle_input(&buf[..n])
                .map_err(|e| format!("{e:?}"))?;
        }
        c.session = Some(session);
        Ok(c)
    }

    /// Sends one FLV video tag body at `ts_ms`.
    pub fn video(&mut self, body: &[u8], ts_ms: u32) -> std::io::Result<()> {
        self.media(true, body, ts_ms)
    }

    /// Sends one FLV audio tag body at `ts_ms`.
    pub fn audio(&mut self, body: &[u8], ts_ms: u32) -> std::io::Result<()> {
        self.media(false, body, ts_ms)
    }

    fn media(&mut self, video: bool, body: &[u8], ts_ms: u32) -> std::io::Result<()> {
        let session = self.session.as_mut().unwrap();
        let (data, ts) = (
            bytes::Bytes::copy_from_slice(body),
            rml_rtmp::time::RtmpTimestamp::new(ts_ms),
        );
        let r = if video {
            session.publish_video_data(data, ts, false)
        } else {
            session.publish_audio_data(data, ts, false)
        };
        if let rml_rtmp::sessions::ClientSessionResult::OutboundResponse(p) = r.unwrap() {
            self.sock.write_all(&p.bytes)?;
        }
        Ok(())
    }

    /// True once the server has closed the connection (EOF or reset) within `t`.
    pub fn closed_within(&mut self, t: Duration) -> bool {
        let deadline = Instant::now() + t;
        let _ = self.sock.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            match self.sock.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// Runs one of the node scripts in tests/browser and parses its JSON output.
pub fn node(script: &str, args: &[&str]) -> Value {
    let out = Command::new("node")
        .arg(format!(
            "{}/tests/browser/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("node is not installed; run scripts/test.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{script}: {e}: {text:?} (exit {:?})", out.status))
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One browser at a time: two Chromiums and two ladders on 2 cores starve
/// each other (a test of contention, not of ladderd).
pub static BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The player page's audio-only choice in hls.js: the master's audio-only
/// variant plays `seconds` with no stall and no error, as audio alone.
pub fn play_audio_only_in_chromium(
    server: &Server,
    name: &str,
    mode: &str,
    seconds: &str,
) -> Value {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let base = format!("http://{}", server.http);
    let r = node("play.mjs", &[&base, name, mode, seconds, "0", "1"]);
    println!("hls.js {mode} audio only on {name}: {r}");
    assert_eq!(r["pageErrors"].as_array().unwrap().len(), 0, "{r:#}");
    let played = r["played"].as_f64().unwrap();
    assert!(
        played >= seconds.parse::<f64>().unwrap() - 1.0,
        "played only {played} s: {r:#}"
    );
    assert_eq!(r["stalls"], 0, "{r:#}");
    let errors: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|e| !hls_js_start_up_seek(e))
        .collect();
    assert!(errors.is_empty(), "hls.js errors: {r:#}");
    assert_eq!(r["holes"].as_array().map_or(1, Vec::len), 0, "{r:#}");
    // One level, the audio rendition's playlist; no picture, audio buffers only.
    let media = &r["media"];
    assert_eq!(r["levels"], 1, "{r:#}");
    assert_eq!(media["videoWidth"], 0, "{r:#}");
    assert!(media["levels"][0]["videoCodec"].is_null(), "{r:#}");
    let buffers = media["buffers"].as_array().unwrap();
    assert!(
        !buffers.is_empty()
            && buffers
                .iter()
                .all(|b| b.as_str().is_some_and(|b| b.starts_with("audio/"))),
        "{r:#}"
    );
    r
}

/// hls.js's own start-up seek, reported as an error: before the first frame
/// its gap controller can see `currentTime` 0 ahead of the first buffered
/// range (media time starts at 2 s; audio alone at 2.005 s, on the AAC frame
/// grid) and seeks there itself, "fragment loaded with buffer holes, seeking
/// from 0 to 2.10534" (once in six audio-only runs). Not a hole in the media:
/// callers check the timeline from the segments' bytes.
pub fn hls_js_start_up_seek(e: &str) -> bool {
    e.starts_with(
        "mediaError/bufferSeekOverHole (fragment loaded with buffer holes, seeking from 0 to ",
    )
}

/// hls.js in Chromium: ≥ 15 s with no stall and no error (beyond two recovered
/// network-level fetch failures), every rendition on request.
pub fn play_in_chromium(
    server: &Server,
    name: &str,
    mode: &str,
    seconds: &str,
    switch: bool,
) -> Value {
    play_in_chromium_allowing(server, name, mode, seconds, switch, &[])
}

/// [`play_in_chromium`], with hls.js errors named in `allowed` (exact
/// `type/details`) reported rather than failed: for a known, open product
/// limitation the caller names and checks otherwise.
pub fn play_in_chromium_allowing(
    server: &Server,
    name: &str,
    mode: &str,
    seconds: &str,
    switch: bool,
    allowed: &[&str],
) -> Value {
    let base = format!("http://{}", server.http);
    play_in_chromium_at(&base, name, mode, seconds, switch, allowed)
}

/// [`play_in_chromium_allowing`] from `base` (`http://HOST:PORT`): the origin,
/// or a cache in front of it.
pub fn play_in_chromium_at(
    base: &str,
    name: &str,
    mode: &str,
    seconds: &str,
    switch: bool,
    allowed: &[&str],
) -> Value {
    play_in_chromium_query(base, name, "", mode, seconds, switch, allowed)
}

/// [`play_in_chromium_at`] with `query` (`token=…`) added to the player page's URL.
pub fn play_in_chromium_query(
    base: &str,
    name: &str,
    query: &str,
    mode: &str,
    seconds: &str,
    switch: bool,
    allowed: &[&str],
) -> Value {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let r = node(
        "play.mjs",
        &[
            base,
            name,
            mode,
            seconds,
            if switch { "1" } else { "0" },
            "0",
            query,
        ],
    );
    println!("hls.js {mode} on {name}: {r}");
    assert_eq!(r["pageErrors"].as_array().unwrap().len(), 0, "{r:#}");
    let played = r["played"].as_f64().unwrap();
    assert!(
        played >= seconds.parse::<f64>().unwrap() - 1.0,
        "played only {played} s: {r:#}"
    );
    assert_eq!(r["stalls"], 0, "{r:#}");
    // Issue 16: the master's audio-only variant is not among hls.js's levels;
    // it plays video.
    let media = &r["media"];
    assert!(media["videoWidth"].as_u64().unwrap_or(0) > 0, "{r:#}");
    assert!(
        media["levels"]
            .as_array()
            .is_some_and(|l| l.iter().all(|l| l["videoCodec"].is_string())),
        "{r:#}"
    );
    // Issue 13 (a): no hole in any SourceBuffer's buffered ranges (video or audio),
    // ever, while playing or switching.
    assert_eq!(
        r["holes"].as_array().map_or(0, Vec::len),
        0,
        "holes in the buffer: {r:#}"
    );
    // hls.js retries a failed fragment load by design; one that the origin
    // answered with an HTTP error, any fatal error, any media or mux error,
    // or more than two network-level failures fail the test. (A run in CI
    // once logged two recovered `fragLoadError`s with no stall; the page now
    // records each error's HTTP status and URL.)
    let errors: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // The HTTP status hls.js saw (0: no response at all).
    let status = |e: &str| -> Option<u32> {
        e.split(" HTTP ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let transient = |e: &&str| e.starts_with("networkError/") && status(e).unwrap_or(0) == 0;
    let (network, other): (Vec<&str>, Vec<&str>) = errors
        .into_iter()
        .filter(|e| !hls_js_start_up_seek(e))
        .filter(|e| {
            let known = allowed.contains(e);
            if known {
                println!("allowed hls.js error ({mode} {name}): {e}");
            }
            !known
        })
        .partition(transient);
    assert!(other.is_empty(), "hls.js errors: {r:#}");
    assert!(network.len() <= 2, "hls.js network errors: {r:#}");
    if !network.is_empty() {
        println!("recovered network errors ({mode} {name}): {network:?}");
    }
    // Issue 13 (f): the picker names each rendition (the source as such, never
    // just "720p" beside the 720p rung), and no two alike.
    let labels: Vec<&str> = r["labels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|l| !l.starts_with("auto"))
        .collect();
    assert_eq!(labels.len() as u64, r["levels"].as_u64().unwrap(), "{r:#}");
    let names: std::collections::HashSet<&str> =
        labels.iter().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(names.len(), labels.len(), "picker names repeat: {labels:?}");
    assert!(
        labels.iter().all(|l| l.starts_with("source (")
            || l.split(' ')
                .next()
                .is_some_and(|n| n.contains('p') && n.ends_with(char::is_numeric))),
        "picker labels: {labels:?}"
    );
    if switch {
        let levels = r["levels"].as_u64().unwrap() as usize;
        let switched = r["switched"].as_array().unwrap();
        assert_eq!(switched.len(), levels);
        assert!(switched.iter().all(|s| s["ok"] == true), "{r:#}");
        let fatal: Vec<_> = r["switchErrors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e.as_str().unwrap().starts_with("fatal"))
            .collect();
        assert!(fatal.is_empty(), "{r:#}");
    }
    let latency: Vec<f64> = r["latency"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let g2g: Vec<f64> = r["glassToGlass"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    println!(
        "{mode} {name}: hls.latency median {:.2} s, glass-to-glass (PDT) median {:.2} s",
        median(&latency),
        median(&g2g)
    );
    r
}

/// Sum of a metric's samples whose line contains every `filters` substring.
pub fn metric_in(text: &str, name: &str, filters: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| filters.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl Server {
    /// Sum of a metric's samples in `/metrics` whose line contains every `filters` substring.
    pub fn metric(&self, name: &str, filters: &[&str]) -> f64 {
        metric_in(&self.get("/metrics").unwrap().1, name, filters)
    }
}

/// One media segment as its bytes say: where its decode time starts and how
/// long its samples last (track timescale), beside what the playlist says.
#[derive(Debug, Clone)]
pub struct SegmentTime {
    pub uri: String,
    pub extinf: f64,
    pub discontinuity: bool,
    pub tfdt: u64,
    pub ticks: u64,
    /// `(tfdt, ticks)` of each fragment (part or chunk) in the segment.
    pub fragments: Vec<(u64, u64)>,
}

/// Every box `(type, body)` directly inside `data`.
fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = data[at + 4..at + 8].try_into().unwrap();
        if size < 8 || at + size > data.len() {
            break;
        }
        out.push((kind, &data[at + 8..at + size]));
        at += size;
    }
    out
}

/// Moves a CMAF segment (every `moof`'s `tfdt`: its parts too) from media
/// time `from` to `to`, in place.
pub fn shift_tfdt(seg: &mut [u8], from: u64, to: u64) {
    fn offsets(data: &[u8], base: usize, path: &[&[u8; 4]], out: &mut Vec<usize>) {
        let mut at = 0;
        while at + 8 <= data.len() {
            let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            if size < 8 || at + size > data.len() {
                break;
            }
            if &data[at + 4..at + 8] == path[0] {
                if path.len() == 1 {
                    out.push(base + at + 8);
                } else {
                    offsets(&data[at + 8..at + size], base + at + 8, &path[1..], out);
                }
            }
            at += size;
        }
    }
    let mut found = Vec::new();
    offsets(seg, 0, &[b"moof", b"traf", b"tfdt"], &mut found);
    assert!(!found.is_empty(), "no tfdt");
    for at in found {
        if seg[at] == 1 {
            let t = u64::from_be_bytes(seg[at + 4..at + 12].try_into().unwrap());
            seg[at + 4..at + 12].copy_from_slice(&(t - from + to).to_be_bytes());
        } else {
            let t = u64::from(u32::from_be_bytes(seg[at + 4..at + 8].try_into().unwrap()));
            let t = u32::try_from(t - from + to).expect("tfdt v0 overflows");
            seg[at + 4..at + 8].copy_from_slice(&t.to_be_bytes());
        }
    }
}

/// `(tfdt, sum of sample durations)` of each `moof` of a CMAF segment (its
/// parts, or each part's chunks), in order.
pub fn fragment_times(seg: &[u8]) -> Vec<(u64, u64)> {
    let be32 = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
    let mut out = Vec::new();
    for (_, moof) in boxes(seg).into_iter().filter(|(k, _)| k == b"moof") {
        let (mut first, mut ticks) = (None, 0u64);
        for (_, traf) in boxes(moof).into_iter().filter(|(k, _)| k == b"traf") {
            let mut default = 0u32;
            for (kind, b) in boxes(traf) {
                let flags = be32(b, 0) & 0xff_ffff;
                match &kind {
                    b"tfhd" => {
                        let mut at = 8;
                        at += if flags & 0x01 != 0 { 8 } else { 0 };
                        at += if flags & 0x02 != 0 { 4 } else { 0 };
                        if flags & 0x08 != 0 {
                            default = be32(b, at);
                        }
                    }
                    b"tfdt" => {
                        let t = if b[0] == 1 {
                            u64::from_be_bytes(b[4..12].try_into().unwrap())
                        } else {
                            be32(b, 4) as u64
                        };
                        first.get_or_insert(t);
                    }
                    b"trun" => {
                        let count = be32(b, 4) as usize;
                        let mut at = 8;
                        at += if flags & 0x01 != 0 { 4 } else { 0 };
                        at += if flags & 0x04 != 0 { 4 } else { 0 };
                        let fields = [0x100, 0x200, 0x400, 0x800]
                            .iter()
                            .filter(|f| flags & **f != 0)
                            .count();
                        for _ in 0..count {
                            ticks += if flags & 0x100 != 0 {
                                be32(b, at)
                            } else {
                                default
                            } as u64;
                            at += 4 * fields;
                        }
                    }
                    _ => {}
                }
            }
        }
        out.push((first.unwrap_or(0), ticks));
    }
    out
}

/// The media timescale of an init segment (`mdhd`).
pub fn init_timescale(init: &[u8]) -> u32 {
    let find = |data: &[u8], kind: &[u8; 4]| -> Vec<u8> {
        boxes(data)
            .into_iter()
            .find(|(k, _)| k == kind)
            .map(|(_, b)| b.to_vec())
            .unwrap_or_default()
    };
    let mdhd = find(
        &find(&find(&find(init, b"moov"), b"trak"), b"mdia"),
        b"mdhd",
    );
    let at = if mdhd.first() == Some(&1) { 20 } else { 12 };
    mdhd.get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes(b.try_into().unwrap()))
}

/// Every segment a media playlist (`/live/NAME/RENDITION/playlist.m3u8`) lists, timed from its bytes.
pub fn segment_times(server: &Server, playlist: &str) -> Vec<SegmentTime> {
    let text = server.get(playlist).unwrap().1;
    let dir = &playlist[..playlist.rfind('/').unwrap() + 1];
    let (mut out, mut extinf, mut disc) = (Vec::new(), None, false);
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("#EXTINF:") {
            extinf = v.split(',').next().and_then(|v| v.parse::<f64>().ok());
        } else if l == "#EXT-X-DISCONTINUITY" {
            disc = true;
        } else if !l.starts_with('#') && !l.is_empty() {
            let uri = l.to_string();
            let fragments = fragment_times(&server.get_bytes(&format!("{dir}{uri}")));
            out.push(SegmentTime {
                tfdt: fragments.first().map_or(0, |f| f.0),
                ticks: fragments.iter().map(|f| f.1).sum(),
                fragments,
                uri,
                extinf: extinf.take().unwrap_or(0.0),
                discontinuity: std::mem::take(&mut disc),
            });
        }
    }
    out
}

/// Where a rendition's media leaves a hole or overlaps (between the parts of
/// a segment, and from one segment's end to the next one's start,
/// discontinuities included: a re-join goes on from the last frame), or a
/// segment's samples disagree with its EXTINF. Empty when the timeline is whole; with the segments.
pub fn timeline_faults(server: &Server, playlist: &str) -> (Vec<SegmentTime>, Vec<String>) {
    let text = server.get(playlist).unwrap().1;
    let dir = &playlist[..playlist.rfind('/').unwrap() + 1];
    let init = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("{playlist} has no EXT-X-MAP:\n{text}"));
    let timescale = init_timescale(&server.get_bytes(&format!("{dir}{init}"))) as f64;
    let segments = segment_times(server, playlist);
    let mut faults = Vec::new();
    for s in &segments {
        for w in s.fragments.windows(2) {
            if w[0].0 + w[0].1 != w[1].0 {
                faults.push(format!(
                    "{}: a fragment ends at {:.4} s, the next starts at {:.4} s",
                    s.uri,
                    (w[0].0 + w[0].1) as f64 / timescale,
                    w[1].0 as f64 / timescale
                ));
            }
        }
        let secs = s.ticks as f64 / timescale;
        if (secs - s.extinf).abs() > 0.002 {
            faults.push(format!(
                "{}: EXTINF {} but samples last {secs:.4} s",
                s.uri, s.extinf
            ));
        }
    }
    for w in segments.windows(2) {
        let end = w[0].tfdt + w[0].ticks;
        if end != w[1].tfdt {
            faults.push(format!(
                "{} ends at {:.4} s, {}{} starts at {:.4} s",
                w[0].uri,
                end as f64 / timescale,
                if w[1].discontinuity {
                    "after a discontinuity "
                } else {
                    ""
                },
                w[1].uri,
                w[1].tfdt as f64 / timescale
            ));
        }
    }
    (segments, faults)
}

/// [`timeline_faults`] of every media playlist a stream's master lists
/// (variants and audio renditions): `(playlist, segments, faults)`.
pub fn every_rendition_timeline(
    server: &Server,
    name: &str,
) -> Vec<(String, Vec<SegmentTime>, Vec<String>)> {
    let master = server.get(&format!("/live/{name}/master.m3u8")).unwrap().1;
    let mut renditions: Vec<String> = master
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.to_string())
        .collect();
    renditions.extend(master.lines().filter_map(|l| {
        let (_, rest) = l.split_once("URI=\"")?;
        Some(rest.split('"').next()?.to_string())
    }));
    renditions.sort();
    renditions.dedup();
    renditions
        .into_iter()
        .map(|r| {
            let (segments, faults) = timeline_faults(server, &format!("/live/{name}/{r}"));
            (r, segments, faults)
        })
        .collect()
}

/// N of a ladder segment URI `seg{N}.m4s`, in its run's directory
/// (`e{EPOCH}/seg{N}.m4s`, as playlists list them) or not.
pub fn segment_number(uri: &str) -> Option<u64> {
    object_name(uri)
        .strip_prefix("seg")?
        .strip_suffix(".m4s")?
        .parse()
        .ok()
}

/// A listed object URI without its run's directory: `e{EPOCH}/seg5.m4s` →
/// `seg5.m4s` (other URIs as they are).
pub fn object_name(uri: &str) -> &str {
    match uri.split_once('/') {
        Some((run, name))
            if run.len() > 1
                && run.starts_with('e')
                && run[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        _ => uri,
    }
}

/// The run directory (`e{EPOCH}`) a playlist's objects are listed under.
pub fn run_dir(playlist: &str) -> Option<&str> {
    playlist
        .lines()
        .filter(|l| !l.starts_with('#'))
        .chain(
            playlist
                .lines()
                .filter_map(|l| l.split_once("URI=\"")?.1.split('"').next()),
        )
        .filter(|u| !u.starts_with(".."))
        .find_map(|u| Some(u.split_once('/')?.0))
        .filter(|d| d.starts_with('e'))
}

/// Where the MPD schema is: `LADDERD_DASH_SCHEMA`, `tests/data/dash-schema/`,
/// or the shared checkout beside the repository (`../shared/dash-schema/`).
/// The schema is not vendored: MPEG publishes it under the ISO/IEC Directives,
/// not an open licence.
pub fn dash_schema() -> Option<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("LADDERD_DASH_SCHEMA").map(std::path::PathBuf::from),
        Some(root.join("tests/data/dash-schema")),
        Some(root.join("../shared/dash-schema")),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|d| d.join("DASH-MPD.xsd"))
        .find(|p| p.is_file())
}

/// `xmllint --schema DASH-MPD.xsd` on `mpd`; reports a skip (with the
/// reason) where the schema is not on this machine.
pub fn xmllint_mpd(mpd: &str, what: &str) {
    let Some(xsd) = dash_schema() else {
        eprintln!("{what}: no DASH-MPD.xsd here (set LADDERD_DASH_SCHEMA): schema check skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifest.mpd");
    std::fs::write(&file, mpd).unwrap();
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(&file)
        .output()
        .expect("xmllint is not installed; run scripts/test.sh (libxml2-utils)");
    let err = String::from_utf8_lossy(&out.stderr);
    println!("xmllint {what}: {}", err.trim());
    assert!(out.status.success(), "xmllint {what}: {err}\n{mpd}");
}

/// hls-parser (`check-playlists.mjs`) reads every playlist URL and reports
/// nothing.
pub fn assert_hls_parser_clean(urls: &[String]) {
    let args: Vec<&str> = urls.iter().map(String::as_str).collect();
    let report = node("check-playlists.mjs", &args);
    for (url, problems) in report.as_object().unwrap() {
        assert_eq!(
            problems.as_array().unwrap().len(),
            0,
            "hls-parser on {url}: {problems}"
        );
    }
}

/// The next part from a playlist: the preload hint's (msn, part).
pub fn preload_hint(playlist: &str) -> (u64, u32) {
    let line = playlist
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
        .unwrap_or_else(|| panic!("no preload hint:\n{playlist}"));
    let uri = object_name(line.split("URI=\"").nth(1).unwrap())
        .strip_prefix("part")
        .unwrap()
        .split(".m4s")
        .next()
        .unwrap();
    let (msn, part) = uri.split_once('.').unwrap();
    (msn.parse().unwrap(), part.parse().unwrap())
}

/// srt-live-transmit (srt-tools) relaying into `url` the MPEG-TS that ffmpeg
/// sends it over UDP from `input`, looped in real time, codecs copied: (relay, ffmpeg).
pub fn srt_live_transmit_push(input: &Path, url: &str) -> (Proc, Proc) {
    require("srt-live-transmit");
    require("ffmpeg");
    let udp = free_udp_port();
    let relay = Proc(
        Command::new("srt-live-transmit")
            .arg("-q")
            .arg(format!("udp://127.0.0.1:{udp}"))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The relay listens on UDP before ffmpeg sends.
    std::thread::sleep(Duration::from_millis(500));
    let ffmpeg = Proc(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-re"])
            .args(["-stream_loop", "-1", "-i"])
            .arg(input)
            .args(["-c", "copy", "-f", "mpegts"])
            .arg(format!("udp://127.0.0.1:{udp}?pkt_size=1316"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (relay, ffmpeg)
}
