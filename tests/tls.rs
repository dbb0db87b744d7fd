//! HTTPS on `server.https_listen`: curl over HTTP/2 and HTTP/1.1 (ALPN) with a
//! certificate the test makes, ffmpeg reading the ladder over https, and a
//! renewed certificate taking over on SIGHUP (a mismatched one does not).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{free_port, require, unsafe_kill, Server};

const DEMO: &str = "[demo]\nwidth = 640\nheight = 360\n\n[ladder]\nsegment_secs = 1.0\n";

/// A self-signed certificate for `localhost` and 127.0.0.1: (cert PEM, key PEM).
fn certificate() -> (String, String) {
    let c =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (c.cert.pem(), c.key_pair.serialize_pem())
}

/// curl over TLS trusting only `ca`: (HTTP status, HTTP version) or curl's error.
fn curl(
    addr: SocketAddr,
    path: &str,
    ca: &Path,
    version: &str,
) -> Result<(String, String), String> {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "10", version])
        .args(["-w", "%{http_code} %{http_version}"])
        .arg("--cacert")
        .arg(ca)
        .args([
            "--resolve",
            &format!("localhost:{}:{}", addr.port(), addr.ip()),
        ])
        .arg(format!("https://localhost:{}{path}", addr.port()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!("{stdout} {}", String::from_utf8_lossy(&out.stderr)));
    }
    let (code, v) = stdout.split_once(' ').unwrap_or((&stdout, ""));
    Ok((code.to_string(), v.to_string()))
}

#[test]
fn https_serves_h2_and_http1_and_renews_its_certificate_on_sighup() {
    require("curl");
    require("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let (cert, key) = certificate();
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let first_ca = dir.path().join("first.pem");
    std::fs::write(&first_ca, &cert).unwrap();
    let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "{DEMO}\n[server]\nhttps_listen = \"{https}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    );
    let server = Server::start_with(&config, &["--demo"]);
    let master = "/live/demo/master.m3u8";
    server.wait_for(
        "the master playlist over https",
        Duration::from_secs(30),
        || {
            curl(https, master, &first_ca, "--http2")
                .ok()
                .filter(|(code, _)| code == "200")
        },
    );
    // ALPN: HTTP/2 when asked, HTTP/1.1 when asked.
    assert_eq!(curl(https, master, &first_ca, "--http2").unwrap().1, "2");
    assert_eq!(
        curl(https, master, &first_ca, "--http1.1").unwrap().1,
        "1.1"
    );
    // The same routes and limits as plain HTTP.
    let long = format!("{master}?{}", "u".repeat(9000));
    assert_eq!(curl(https, &long, &first_ca, "--http1.1").unwrap().0, "414");

    // ffmpeg reads the ladder over https (init, parts, segments).
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(format!("https://127.0.0.1:{}{master}", https.port()))
        .args(["-t", "3", "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg over https: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A handshake that is not TLS is counted, and hurts nothing else.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(https).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.read(&mut [0u8; 256]);
    }
    server.wait_for(
        "the failed handshake counted",
        Duration::from_secs(5),
        || (server.metric("ladderd_tls_handshake_failures_total", &[]) >= 1.0).then_some(()),
    );

    // Renewal: new certificate and key in place, SIGHUP; new connections get it.
    let (cert2, key2) = certificate();
    let second_ca = dir.path().join("second.pem");
    std::fs::write(&second_ca, &cert2).unwrap();
    std::fs::write(&cert_path, &cert2).unwrap();
    std::fs::write(&key_path, &key2).unwrap();
    unsafe_kill(server.pid(), 1);
    server.wait_for("the reload", Duration::from_secs(10), || {
        (server.metric("ladderd_reloads_total", &["result=\"ok\""]) >= 1.0).then_some(())
    });
    assert_eq!(curl(https, master, &second_ca, "--http2").unwrap().0, "200");
    let old = curl(https, master, &first_ca, "--http2");
    assert!(old.is_err(), "the old certificate is still served: {old:?}");

    // A half-done renewal (a certificate without its key) keeps the pair in use.
    let (cert3, _) = certificate();
    std::fs::write(&cert_path, &cert3).unwrap();
    unsafe_kill(server.pid(), 1);
    server.wait_for("the failed reload", Duration::from_secs(10), || {
        (server.metric("ladderd_reloads_total", &["result=\"error\""]) >= 1.0).then_some(())
    });
    assert_eq!(curl(https, master, &second_ca, "--http2").unwrap().0, "200");
    assert!(
        server.log_text().contains("do not go together"),
        "the failed reload says why"
    );
}
