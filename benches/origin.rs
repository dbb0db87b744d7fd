//! Origin throughput: requests/s for one cached LL-HLS part at 1,000
//! concurrent keep-alive clients (wrk; `ORIGIN_BENCH_CLIENTS` to change),
//! ladderd vs nginx serving the same bytes from disk, measured in the same
//! run, and the edge tier (Varnish with `deploy/varnish/`, when installed)
//! serving it from its cache; then full TLS handshakes/s (TLS 1.3, ECDSA
//! P-256, no resumption, ALPN h2) on `server.https_listen` vs nginx's
//! `listen … ssl http2` with the same certificate, from a rustls client.
//! `cargo bench --bench origin` (needs wrk and nginx: `apt-get install wrk
//! nginx-light varnish`). Prints each and the ratio. `LADDERD_BENCH_BIN`
//! runs it against another build of ladderd.

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
    let https = free_port();
    let tls = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a certificate");
    let (cert_pem, key_pem) = (dir.join("tls.crt"), dir.join("tls.key"));
    let _ = std::fs::write(&cert_pem, tls.cert.pem());
    let _ = std::fs::write(&key_pem, tls.key_pair.serialize_pem());
    let cfg = dir.join("ladderd.toml");
    let _ = std::fs::write(
        &cfg,
        // wrk's clients share one address: exempt it from the per-client caps
        // (nginx has none), as an edge cache in front would be.
        format!(
            "[demo]\nwidth = 640\nheight = 360\n\n[server]\nlimit_exempt = [\"127.0.0.1\"]\n\
             https_listen = \"127.0.0.1:{https}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n\
             [ladder]\nenabled = false\n",
            cert_pem.display(),
            key_pem.display()
        ),
    );
    // LADDERD_BENCH_BIN: another build of ladderd (a before/after of a
    // change: run the bench once per build and compare each to nginx).
    let bin = std::env::var_os("LADDERD_BENCH_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ladderd").into());
    let _ladderd = Guard(
        Command::new(bin)
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
    let nginx_tls = free_port();
    let conf = format!(
        "worker_processes 1; daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         worker_rlimit_nofile 20000; events {{ worker_connections 8192; }}\n\
         http {{ access_log off; sendfile on; keepalive_requests 1000000;\n\
           server {{ listen 127.0.0.1:{nginx_port}; root {d}/www; }}\n\
           server {{ listen 127.0.0.1:{nginx_tls} ssl http2; root {d}/www;\n\
             ssl_certificate {d}/tls.crt; ssl_certificate_key {d}/tls.key;\n\
             ssl_session_cache off; ssl_session_tickets off; }} }}\n",
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
    let ca = tls.cert.der().clone();
    let ours = handshakes(https, &ca, secs);
    let theirs = handshakes(nginx_tls, &ca, secs);
    println!(
        "tls: full handshakes (TLS 1.3, ECDSA P-256, no resumption, ALPN h2), 2 client threads, {secs} s each"
    );
    println!("  ladderd  {ours:>10.0} handshakes/s  (1 I/O core)");
    println!("  nginx    {theirs:>10.0} handshakes/s  (1 worker)");
    if theirs > 0.0 {
        println!("  ratio    {:.2}x", ours / theirs);
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

/// Full TLS handshakes per second against 127.0.0.1:`port`, from two threads
/// of a rustls client that trusts `ca` and never resumes; 0 when none succeed.
fn handshakes(port: u16, ca: &rustls::pki_types::CertificateDer<'static>, secs: u32) -> f64 {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    if roots.add(ca.clone()).is_err() {
        return 0.0;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(builder) =
        rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()
    else {
        return 0.0;
    };
    let mut config = builder.with_root_certificates(roots).with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    let until = Instant::now() + Duration::from_secs(u64::from(secs));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let config = config.clone();
            std::thread::spawn(move || {
                let mut done = 0u64;
                while Instant::now() < until {
                    let Ok(name) = rustls::pki_types::ServerName::try_from("localhost") else {
                        break;
                    };
                    let Ok(mut conn) = rustls::ClientConnection::new(config.clone(), name) else {
                        break;
                    };
                    let Ok(mut sock) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                        continue;
                    };
                    let _ = sock.set_nodelay(true);
                    let mut ok = true;
                    while conn.is_handshaking() {
                        if conn.complete_io(&mut sock).is_err() {
                            ok = false;
                            break;
                        }
                    }
                    if ok {
                        done += 1;
                        conn.send_close_notify();
                        let _ = conn.complete_io(&mut sock);
                    }
                }
                done
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    total as f64 / f64::from(secs)
}
