//! The real binary under test: `ladderd serve` on free loopback ports (its API,
//! metrics, logs and signals), the peer tools it needs, and child processes
//! killed when their guard drops.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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
        // LADDERD_TEST_BIN: the same tests against another build (an A/B of a
        // default, a release binary).
        let bin = std::env::var_os("LADDERD_TEST_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_ladderd").into());
        let child = Command::new(bin)
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
