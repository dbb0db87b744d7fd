use std::net::{IpAddr, SocketAddr};

use super::*;

fn err(text: &str) -> String {
    Config::parse(text, "t.toml").unwrap_err().to_string()
}

#[test]
fn limit_exempt_blocks() {
    let c = Config::parse(
        "[server]\nlimit_exempt = [\"10.1.0.0/16\", \"127.0.0.3\", \"2001:db8::/32\"]\n",
        "t.toml",
    )
    .unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let e = &c.server.limit_exempt;
    assert!(e[0].contains(ip("10.1.200.7")));
    assert!(!e[0].contains(ip("10.2.0.1")));
    assert!(e[0].contains(ip("::ffff:10.1.0.1")), "IPv4-mapped IPv6");
    assert!(e[1].contains(ip("127.0.0.3")) && !e[1].contains(ip("127.0.0.2")));
    assert!(e[2].contains(ip("2001:db8:1::5")) && !e[2].contains(ip("2001:db9::1")));
    assert!(!e[2].contains(ip("10.1.0.1")));
    assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
    let e = err("[server]\nlimit_exempt = [\"10.0.0.0/40\"]\n");
    assert!(
        e.contains("limit_exempt") && e.contains("prefix length"),
        "{e}"
    );
    let e = err("[server]\nlimit_exempt = [\"example.com\"]\n");
    assert!(e.contains("not an IP address"), "{e}");
    let e = err("[server]\nhttps_listen = \"127.0.0.1:8443\"\ntls_cert = \"c.pem\"\n");
    assert!(
        e.contains("server.https_listen") && e.contains("tls_key"),
        "{e}"
    );
    let e = err("[server]\ntls_key = \"k.pem\"\n");
    assert!(e.contains("server.tls_cert"), "{e}");
    let e = err("[server]\nhttp_listen = \"127.0.0.1:8443\"\nhttps_listen = \"0.0.0.0:8443\"\ntls_cert = \"c\"\ntls_key = \"k\"\n");
    assert!(e.contains("overlaps server.http_listen"), "{e}");
    let e = err("[ingest]\nauth_backoff_secs = 30\nauth_backoff_max_secs = 10\n");
    assert!(e.contains("ingest.auth_backoff_max_secs"), "{e}");
}

/// Issue 12 item 9: `--http-listen` / `--rtmp-listen` overrides skipped validation
/// (it ran only with `--demo`), so the same address on both passed and `serve` split
/// connections between the two protocols.
#[test]
fn cli_listen_overrides_on_one_address_are_refused() {
    let same: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let o = Overrides {
        rtmp_listen: Some(same),
        http_listen: Some(same),
        ..Overrides::default()
    };
    let e = Config::load(None, &o).unwrap_err().to_string();
    assert!(
        e.contains("server.http_listen") && e.contains("overlaps"),
        "{e}"
    );
    // Wildcard and loopback on one port overlap too; different ports do not.
    let o = Overrides {
        rtmp_listen: Some("0.0.0.0:4000".parse().unwrap()),
        http_listen: Some(same),
        ..Overrides::default()
    };
    assert!(Config::load(None, &o).is_err());
    let o = Overrides {
        rtmp_listen: Some("127.0.0.1:4001".parse().unwrap()),
        http_listen: Some(same),
        ..Overrides::default()
    };
    assert!(Config::load(None, &o).is_ok());
    let e = err("[server]\nhttp_listen = \"127.0.0.1:4002\"\n[admin]\nlisten = \"0.0.0.0:4002\"\n");
    assert!(e.contains("admin.listen"), "{e}");
}

#[test]
fn defaults_are_the_documented_ports() {
    let c = Config::parse("", "t.toml").unwrap();
    assert_eq!(c.server.rtmp_listen.to_string(), "0.0.0.0:1935");
    assert_eq!(c.server.http_listen.to_string(), "0.0.0.0:8080");
    assert!(!c.ingest.allow_any_key);
}

#[test]
fn example_file_is_valid() {
    let text = include_str!("../../ladderd.example.toml");
    let c = Config::parse(text, "ladderd.example.toml").unwrap();
    assert!(!c.streams.is_empty());
}

#[test]
fn errors_name_the_key() {
    let e = err("[server]\nrtmp_listen = \"nowhere:x\"\n");
    assert!(e.starts_with("t.toml: server.rtmp_listen: "), "{e}");
    let e = err("[server]\nbogus = 1\n");
    assert!(e.contains("server") && e.contains("bogus"), "{e}");
    let e = err("[limits]\nmax_streams = -3\n");
    assert!(e.contains("limits.max_streams"), "{e}");
    let e = err("[limits]\nmax_streams = 0\n");
    assert!(e.contains("limits.max_streams: must be at least 1"), "{e}");
    let e = err("[[streams]]\nname = \"a b\"\nkey = \"0123456789\"\n");
    assert!(e.contains("streams[0].name"), "{e}");
    let e = err("[[streams]]\nname = \"cam\"\nkey = \"short\"\n");
    assert!(e.contains("streams[0].key"), "{e}");
    let e = err("[runtime]\ncores = [100000]\n");
    assert!(e.contains("runtime.cores[0]"), "{e}");
}

#[test]
fn encoder_choice_is_checked_against_this_build() {
    let e = err("[ladder]\nencoder = \"x265\"\n");
    assert!(e.contains("ladder.encoder"), "{e}");
    let x264 = Config::parse("[ladder]\nencoder = \"x264\"\n", "t.toml");
    if cfg!(feature = "x264") {
        assert!(x264.is_ok());
        let e = err("[ladder]\nencoder = \"x264\"\nx264_preset = \"warp9\"\n");
        assert!(
            e.contains("ladder.encoder") && e.contains("ultrafast"),
            "{e}"
        );
    } else {
        let e = x264.unwrap_err().to_string();
        assert!(e.contains("--features x264"), "{e}");
    }
    let e = err("[server]\nbind_wait_secs = -1\n");
    assert!(e.contains("server.bind_wait_secs"), "{e}");
}

#[test]
fn secrets_do_not_print() {
    let c = Config::parse(
        "[[streams]]\nname = \"cam1\"\nkey = \"hunter2hunter2\"\n",
        "t",
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(c.streams[0].key.matches("hunter2hunter2"));
    assert!(!c.streams[0].key.matches("hunter2hunter3"));
    assert!(!c.streams[0].key.matches("hunter2"));
}
