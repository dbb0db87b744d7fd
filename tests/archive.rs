//! The cold tier (issue 17): every object the DVR writes is copied to the
//! archive as soon as it is on disk: a local directory, and Garage (a real
//! S3-compatible server, `scripts/test.sh` installs it) through the S3 API;
//! a store that is away delays the archive (counted, logged once) and never
//! the stream, and its backlog lands once it is back.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

fn config(dvr: &Path, archive: &str) -> String {
    format!(
        "[demo]\nwidth = 640\nheight = 360\n\n[dvr]\ndir = {:?}\n\n[archive]\n{archive}",
        dvr.display().to_string()
    )
}

/// Every `seg*.m4s` / `init*.mp4` under `dir`, relative, sorted.
fn objects(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|x| x == "m4s" || x == "mp4") {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn a_directory_archive_holds_every_dvr_object_byte_for_byte() {
    let dvr = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let url = format!("url = \"file://{}\"\n", out.path().display());
    let server = Server::start_with(&config(dvr.path(), &url), &["--demo"]);
    server.wait_for("12 archived objects", Duration::from_secs(60), || {
        (server.metric("ladderd_archive_uploads_total", &[]) >= 12.0).then_some(())
    });
    // What the DVR has written by now is in the archive, the same bytes
    // under the same names.
    server.wait_for("the archive caught up", Duration::from_secs(20), || {
        (server.metric("ladderd_archive_pending", &[]) == 0.0).then_some(())
    });
    let archived = objects(out.path());
    assert!(archived.len() >= 12, "{archived:?}");
    for rel in &archived {
        let a = std::fs::read(out.path().join(rel)).unwrap();
        match std::fs::read(dvr.path().join(rel)) {
            Ok(d) => assert_eq!(a, d, "{}", rel.display()),
            // Only what the window evicted may be gone from the DVR.
            Err(e) => panic!("{}: in the archive, not the DVR: {e}", rel.display()),
        }
    }
    assert!(archived.iter().any(|p| p.ends_with("360p30/init0.mp4")));
    assert_eq!(server.metric("ladderd_archive_dropped_total", &[]), 0.0);
    assert_eq!(server.metric("ladderd_archive_errors_total", &[]), 0.0);
}

/// A store nobody answers at: the stream goes on (new segments, ready),
/// the failure is logged once and counted, and the lag grows.
#[test]
fn an_unreachable_store_delays_the_archive_not_the_stream() {
    let dvr = tempfile::tempdir().unwrap();
    // A port with nothing behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let archive = format!(
        "url = \"s3://ladderd/live\"\nendpoint = \"http://127.0.0.1:{port}\"\nregion = \"garage\"\n"
    );
    let server = Server::start_with(&config(dvr.path(), &archive), &["--demo"]);
    let msn = |s: &Server| {
        s.get("/live/demo/360p30/playlist.m3u8")
            .ok()
            .and_then(|p| p.1.lines().filter_map(segment_number).max())
    };
    server.wait_for("a segment", Duration::from_secs(60), || msn(&server));
    let before = msn(&server).unwrap_or(0);
    server.wait_for("archive lag over 4 s", Duration::from_secs(30), || {
        (server.metric("ladderd_archive_lag_seconds", &[]) > 4.0).then_some(())
    });
    // New segments keep coming while the archive is down.
    server.wait_for("two more segments", Duration::from_secs(20), || {
        (msn(&server)? >= before + 2).then_some(())
    });
    assert_eq!(server.get("/readyz").unwrap().0, 200);
    assert!(server.metric("ladderd_archive_errors_total", &[]) >= 2.0);
    assert!(server.metric("ladderd_archive_pending", &[]) >= 3.0);
    assert_eq!(server.metric("ladderd_archive_uploads_total", &[]), 0.0);
    let log = server.log_text();
    assert_eq!(log.matches("archive upload failed").count(), 1, "{log}");
}

/// A one-node Garage on loopback with a bucket and a key for ladderd.
struct Garage {
    child: Option<Child>,
    config: PathBuf,
    s3: String,
    key: (String, String),
    _dir: tempfile::TempDir,
}

fn garage_bin() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    [
        std::env::var_os("LADDERD_GARAGE").map(PathBuf::from),
        Some(PathBuf::from(format!("{home}/.cargo/bin/garage"))),
        Some(PathBuf::from("/usr/local/bin/garage")),
    ]
    .into_iter()
    .flatten()
    .chain(
        std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("garage"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    )
    .find(|p| p.is_file())
    .expect("garage is not installed; run scripts/test.sh (cargo install --locked garage)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Garage {
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(garage_bin())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "garage {args:?}: {text}");
        text
    }

    fn start_server(&mut self) {
        let log = std::fs::File::create(self._dir.path().join("garage.log")).unwrap();
        self.child = Some(
            Command::new(garage_bin())
                .arg("-c")
                .arg(&self.config)
                .arg("server")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let s3 = self.s3.trim_start_matches("http://").to_string();
        let t0 = std::time::Instant::now();
        while std::net::TcpStream::connect(&s3).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "garage did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn start() -> Garage {
        let dir = tempfile::tempdir().unwrap();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = {meta:?}\ndata_dir = {data:?}\ndb_engine = \"lmdb\"\nreplication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{secret}\"\n\n[s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\n[admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
                meta = dir.path().join("meta").display().to_string(),
                data = dir.path().join("data").display().to_string(),
                secret = "1d5e".repeat(16),
            ),
        )
        .unwrap();
        let mut g = Garage {
            child: None,
            config,
            s3: format!("http://127.0.0.1:{s3}"),
            key: (String::new(), String::new()),
            _dir: dir,
        };
        g.start_server();
        // One node, one zone; a bucket and a key that may write it.
        let id = g.cli(&["node", "id", "-q"]);
        let id = id.trim().split('@').next().unwrap().to_string();
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        g.cli(&["layout", "apply", "--version", "1"]);
        g.cli(&["bucket", "create", "ladderd"]);
        let key = g.cli(&["key", "create", "ladderd-key"]);
        let field = |name: &str| {
            key.lines()
                .find(|l| l.to_lowercase().contains(name))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in: {key}"))
        };
        g.key = (field("key id"), field("secret key"));
        g.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "ladderd",
            "--key",
            "ladderd-key",
        ]);
        g
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Garage takes the archive through the S3 API (read back byte for byte
/// with an S3 client); taken away mid-stream, the archive falls behind and
/// the stream does not; back, the backlog lands. The note's upload rate.
#[test]
fn garage_takes_the_archive_and_its_backlog() {
    let mut garage = Garage::start();
    let dvr = tempfile::tempdir().unwrap();
    let creds = dvr.path().join("archive-credentials.toml");
    std::fs::write(
        &creds,
        format!(
            "access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            garage.key.0, garage.key.1
        ),
    )
    .unwrap();
    let dvr_dir = dvr.path().join("dvr");
    let archive = format!(
        "url = \"s3://ladderd/live\"\nendpoint = \"{}\"\nregion = \"garage\"\ncredentials_file = {:?}\n",
        garage.s3,
        creds.display().to_string()
    );
    let server = Server::start_with(&config(&dvr_dir, &archive), &["--demo"]);
    let t0 = std::time::Instant::now();
    server.wait_for("12 objects in Garage", Duration::from_secs(60), || {
        (server.metric("ladderd_archive_uploads_total", &[]) >= 12.0).then_some(())
    });
    let (n, bytes) = (
        server.metric("ladderd_archive_uploads_total", &[]),
        server.metric("ladderd_archive_bytes_total", &[]),
    );
    println!(
        "archive to Garage: {n} objects, {:.2} MB in {:.1} s of stream (live rate, not a ceiling)",
        bytes / 1e6,
        t0.elapsed().as_secs_f64()
    );

    // Read back through S3: the DVR's bytes.
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("ladderd")
        .with_region("garage")
        .with_endpoint(&garage.s3)
        .with_allow_http(true)
        .with_access_key_id(&garage.key.0)
        .with_secret_access_key(&garage.key.1)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let on_disk = objects(&dvr_dir);
    let mut compared = 0;
    for rel in on_disk.iter().take(12) {
        let path = object_store::path::Path::from(format!("live/{}", rel.display()));
        let got = rt.block_on(async {
            use object_store::ObjectStoreExt;
            store.get(&path).await?.bytes().await
        });
        if let Ok(got) = got {
            assert_eq!(
                &got[..],
                &std::fs::read(dvr_dir.join(rel)).unwrap()[..],
                "{}",
                rel.display()
            );
            compared += 1;
        }
    }
    assert!(
        compared >= 6,
        "only {compared} of {} read back",
        on_disk.len()
    );

    // Garage goes away: uploads fail and the archive falls behind, and the
    // stream does not notice.
    garage.stop();
    let errors = server.metric("ladderd_archive_errors_total", &[]);
    server.wait_for("failed uploads and a lag", Duration::from_secs(30), || {
        (server.metric("ladderd_archive_errors_total", &[]) > errors
            && server.metric("ladderd_archive_lag_seconds", &[]) > 2.0)
            .then_some(())
    });
    assert_eq!(server.get("/readyz").unwrap().0, 200);
    let (pending, before) = (
        server.metric("ladderd_archive_pending", &[]),
        server.metric("ladderd_archive_bytes_total", &[]),
    );
    garage.start_server();
    let t0 = std::time::Instant::now();
    server.wait_for("the backlog uploaded", Duration::from_secs(60), || {
        (server.metric("ladderd_archive_pending", &[]) == 0.0
            && server.metric("ladderd_archive_lag_seconds", &[]) == 0.0)
            .then_some(())
    });
    println!(
        "backlog after the outage: {pending} objects, {:.2} MB uploaded in {:.2} s (includes the first retry's backoff)",
        (server.metric("ladderd_archive_bytes_total", &[]) - before) / 1e6,
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(server.metric("ladderd_archive_dropped_total", &[]), 0.0);
    let log = server.log_text();
    assert_eq!(log.matches("archive upload failed").count(), 1, "{log}");
    assert_eq!(log.matches("archive reachable again").count(), 1, "{log}");
}
