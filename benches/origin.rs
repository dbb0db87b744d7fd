//! Origin throughput: requests/s for one cached LL-HLS part at 1,000
//! concurrent keep-alive clients (wrk; `ORIGIN_BENCH_CLIENTS` to change),
//! ladderd vs nginx serving the same bytes from disk, measured in the same
//! run, and the edge tier (Varnish with `deploy/varnish/`, when installed)
//! serving it from its cache. `cargo bench --bench origin` (needs wrk and
//! nginx: `apt-get install wrk nginx-light varnish`). Prints each and the ratio.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

fn fetch(url: &str) -> Option<Vec<u8>> {
    let out = Command::new("curl").args(["-sf", url]).output().ok()?;
    out.status.success().then_some(out.stdout)
}

/// wrk's Requests/sec for `url` at `clients` keep-alive connections.
fn wrk(url: &str, secs: u32, clients: u32) -> Option<f64> {
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{clients}"), &format!("-d{secs}s"), url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    if text.contains("Non-2xx") {
        eprintln!("wrk saw errors for {url}:\n{text}");
    }
    Some(rps)
}

fn main() {
    if Command::new("wrk").arg("--version").output().is_err()
        || Command::new("nginx").arg("-v").output().is_err()
    {
        eprintln!("origin bench skipped: install wrk and nginx-light");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ladderd-origin-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(dir.join("www"));
    let http = free_port();
    let rtmp = free_port();
    let cfg = dir.join("ladderd.toml");
    let _ = std::fs::write(
        &cfg,
        "[demo]\nwidth = 640\nheight = 360\n\n[ladder]\nenabled = false\n",
    );
    let _ladderd = Guard(
        Command::new(env!("CARGO_BIN_EXE_ladderd"))
            .args(["--config"])
            .arg(&cfg)
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .args(["--rtmp-listen", &format!("127.0.0.1:{rtmp}")])
            .args(["serve", "--demo"])
            .stderr(Stdio::null())
            .spawn()
            .expect("start ladderd"),
    );
    // The part by the URI the playlists list (in its run's directory).
    let playlist_url = format!("http://127.0.0.1:{http}/live/demo/source/playlist.m3u8");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (part_path, part) = loop {
        let run = fetch(&playlist_url).and_then(|p| {
            let text = String::from_utf8(p).ok()?;
            let at = text.find("URI=\"e")? + 5;
            Some(text[at..].split('/').next()?.to_string())
        });
        if let Some(run) = run {
            let path = format!("/live/demo/source/{run}/part1.0.m4s");
            if let Some(p) = fetch(&format!("http://127.0.0.1:{http}{path}")) {
                break (path, p);
            }
        }
        assert!(Instant::now() < deadline, "no part from ladderd");
        std::thread::sleep(Duration::from_millis(200));
    };
    let part_url = format!("http://127.0.0.1:{http}{part_path}");
    let _ = std::fs::write(dir.join("www/part1.0.m4s"), &part);
    let nginx_port = free_port();
    let conf = format!(
        "worker_processes 1; daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         worker_rlimit_nofile 20000; events {{ worker_connections 8192; }}\n\
         http {{ access_log off; sendfile on; keepalive_requests 1000000;\n\
           server {{ listen 127.0.0.1:{nginx_port}; root {d}/www; }} }}\n",
        d = dir.display()
    );
    let _ = std::fs::write(dir.join("nginx.conf"), conf);
    let _nginx = Guard(
        Command::new("nginx")
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx"),
    );
    std::thread::sleep(Duration::from_millis(500));
    let nginx_url = format!("http://127.0.0.1:{nginx_port}/part1.0.m4s");
    assert_eq!(
        fetch(&nginx_url).as_deref(),
        Some(&part[..]),
        "nginx serves the same bytes"
    );
    let secs = 10;
    let clients: u32 = std::env::var("ORIGIN_BENCH_CLIENTS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1000);
    let ours = wrk(&part_url, secs, clients).unwrap_or(0.0);
    let theirs = wrk(&nginx_url, secs, clients).unwrap_or(0.0);
    let edge = varnish(http, &dir).and_then(|(_guard, port)| {
        let url = format!("http://127.0.0.1:{port}{part_path}");
        (fetch(&url).as_deref() == Some(&part[..])).then_some(())?;
        wrk(&url, secs, clients)
    });
    println!(
        "origin: one cached part ({} bytes), {clients} keep-alive clients, {secs} s each (wrk -t2)",
        part.len()
    );
    println!("  ladderd  {ours:>10.0} req/s  (1 I/O core of 2; the demo ladder runs on the other)");
    println!("  nginx    {theirs:>10.0} req/s  (1 worker)");
    if theirs > 0.0 {
        println!("  ratio    {:.2}x", ours / theirs);
    }
    match edge {
        Some(rps) => println!(
            "  varnish  {rps:>10.0} req/s  (deploy/varnish in front of ladderd, a cache hit)"
        ),
        None => println!("  varnish  skipped (install varnish)"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// varnishd with `deploy/varnish/` in front of ladderd on `origin_port`:
/// its guard and port.
fn varnish(origin_port: u16, dir: &std::path::Path) -> Option<(Guard, u16)> {
    Command::new("varnishd").arg("-V").output().ok()?;
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/varnish");
    let backend = std::fs::read_to_string(deploy.join("ladderd-backend.vcl"))
        .ok()?
        .replace("\"8080\"", &format!("\"{origin_port}\""));
    std::fs::write(dir.join("ladderd-backend.vcl"), backend).ok()?;
    let port = free_port();
    let mut cmd = Command::new("varnishd");
    cmd.args(["-F", "-j", "none", "-n"])
        .arg(dir.join("varnish"))
        .args(["-a", &format!("127.0.0.1:{port}"), "-s", "malloc,64m", "-f"])
        .arg(deploy.join("ladderd.vcl"))
        .arg("-p")
        .arg(format!("vcl_path={}:{}", dir.display(), deploy.display()));
    for p in std::fs::read_to_string(deploy.join("varnishd.params"))
        .ok()?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        cmd.args(["-p", p]);
    }
    let guard = Guard(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((guard, port))
}
