//! Origin throughput: requests/s for one cached LL-HLS part at 200 concurrent
//! keep-alive clients (wrk), ladderd vs nginx serving the same bytes from disk,
//! measured in the same run. `cargo bench --bench origin` (needs wrk and nginx:
//! `apt-get install wrk nginx-light`). Prints both and the ratio.

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

/// wrk's Requests/sec for `url`.
fn wrk(url: &str, secs: u32) -> Option<f64> {
    let out = Command::new("wrk")
        .args(["-t2", "-c200", &format!("-d{secs}s"), url])
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
    let part_url = format!("http://127.0.0.1:{http}/live/demo/source/part1.0.m4s");
    let deadline = Instant::now() + Duration::from_secs(30);
    let part = loop {
        if let Some(p) = fetch(&part_url) {
            break p;
        }
        assert!(Instant::now() < deadline, "no part from ladderd");
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = std::fs::write(dir.join("www/part1.0.m4s"), &part);
    let nginx_port = free_port();
    let conf = format!(
        "worker_processes 1; daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{ worker_connections 1024; }}\n\
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
    let ours = wrk(&part_url, secs).unwrap_or(0.0);
    let theirs = wrk(&nginx_url, secs).unwrap_or(0.0);
    println!(
        "origin: one cached part ({} bytes), 200 keep-alive clients, {secs} s each (wrk -t2)",
        part.len()
    );
    println!("  ladderd  {ours:>10.0} req/s  (1 I/O core of 2; the demo ladder runs on the other)");
    println!("  nginx    {theirs:>10.0} req/s  (1 worker)");
    if theirs > 0.0 {
        println!("  ratio    {:.2}x", ours / theirs);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
