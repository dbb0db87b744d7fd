//! DVR writes (issue 17): every rendition of 4 streams written through the
//! DVR as the packager hands them over (O_DIRECT through io_uring on the
//! storage thread, each segment's file synced on close and its index record
//! `fdatasync`ed), next to `dd oflag=direct,dsync` writing the same number of
//! segment-sized blocks on the same disk in the same run. Prints throughput
//! and the ratio, write latency p50/p99 at 10x real time and in a burst,
//! CPU per MB written, and the start-up recovery time over what was written
//! (one index given a torn tail, as a kill -9 mid-append leaves it).
//!
//! Run: `cargo bench --bench dvr_write [-- DIR]` (default: under the target
//! directory; DIR must allow O_DIRECT, so not tmpfs). With `ARCHIVE_URL`
//! (and `ARCHIVE_ENDPOINT`, `ARCHIVE_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`) set, the burst is archived too and the upload
//! rate printed (e.g. a local Garage: `s3://ladderd/bench`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ladderd::package::hls::SegmentEntry;
use ladderd::store::dvr::{Dvr, DvrConfig};

/// The default ladder's renditions and their bit rates (a 1080p source).
const RENDITIONS: [(&str, f64); 6] = [
    ("source", 6.0e6),
    ("1080p30", 5.0e6),
    ("720p30", 3.0e6),
    ("480p30", 1.5e6),
    ("360p30", 0.8e6),
    ("audio", 0.128e6),
];
const STREAMS: usize = 4;
const SEGMENT_SECS: f64 = 2.0;

fn cpu_secs() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn start(
    dir: &std::path::Path,
    archive: Option<std::sync::Arc<ladderd::store::archive::Archive>>,
) -> std::sync::Arc<Dvr> {
    Dvr::start(
        DvrConfig {
            dir: dir.to_path_buf(),
            window_secs: 1e9,
            max_bytes: 0,
            record_on_end: false,
            cpu: None,
            compact_after: ladderd::store::dvr::DEFAULT_COMPACT_AFTER,
        },
        archive,
    )
    .expect("DVR directory (O_DIRECT needed: not tmpfs)")
}

/// Writes `segments` segments of every rendition of every stream, one
/// segment time apart divided by `speed` (0: all at once); returns the
/// seconds it took until every one was indexed, and the bytes.
fn run(dvr: &Dvr, run: &str, segments: u64, speed: f64) -> (f64, u64) {
    let written = dvr.stats.segments_written.load(Relaxed);
    let mut bytes = 0u64;
    let t0 = Instant::now();
    for msn in 0..segments {
        if speed > 0.0 {
            let due = t0 + Duration::from_secs_f64(msn as f64 * SEGMENT_SECS / speed);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        for s in 0..STREAMS {
            let key = format!("s{s}/{run}");
            for (name, bps) in RENDITIONS {
                let len = (bps * SEGMENT_SECS / 8.0) as usize + msn as usize % 977;
                let data = Bytes::from(vec![(msn % 251) as u8; len]);
                bytes += len as u64;
                let entry = SegmentEntry {
                    msn,
                    duration: SEGMENT_SECS,
                    pdt_ms: 1_800_000_000_000 + msn * 2000,
                    discontinuity: false,
                    init_version: 0,
                    parts: Vec::new(),
                    complete: true,
                    start: msn * 180_000,
                    timescale: 90_000,
                };
                dvr.segment(&key, name, &entry, data);
            }
        }
    }
    let want = written + segments * (STREAMS * RENDITIONS.len()) as u64;
    while dvr.stats.segments_written.load(Relaxed) + dvr.stats.write_errors.load(Relaxed) < want {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(dvr.stats.write_errors.load(Relaxed), 0, "DVR write errors");
    (t0.elapsed().as_secs_f64(), bytes)
}

fn main() {
    let dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dvr-bench"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let segments = 20u64;
    let files = segments * (STREAMS * RENDITIONS.len()) as u64;
    println!(
        "DVR write bench: {STREAMS} streams x {} renditions x {segments} segments of {SEGMENT_SECS} s ({:.1} Mbit/s per stream) in {}",
        RENDITIONS.len(),
        RENDITIONS.iter().map(|r| r.1).sum::<f64>() / 1e6,
        dir.display()
    );
    let archive = std::env::var("ARCHIVE_URL").ok().map(|url| {
        let env = |k: &str| std::env::var(k).unwrap_or_default();
        ladderd::store::archive::Archive::start(&ladderd::store::archive::ArchiveConfig {
            url,
            endpoint: env("ARCHIVE_ENDPOINT"),
            region: Some(env("ARCHIVE_REGION"))
                .filter(|r| !r.is_empty())
                .unwrap_or("us-east-1".into()),
            credentials: None,
        })
        .expect("archive")
    });
    let dvr = start(&dir, archive.clone());

    // Paced: 10x real time (a segment of every rendition every 0.2 s).
    let (_, _) = run(&dvr, "paced", segments, 10.0);
    let (p50, p99) = dvr.stats.write_latency().unwrap_or_default();
    println!(
        "  paced (10x real time): write latency p50 {:.2} ms p99 {:.2} ms",
        p50 * 1e3,
        p99 * 1e3
    );

    // Burst: everything at once, for throughput.
    let cpu0 = cpu_secs();
    let burst_t0 = Instant::now();
    let (secs, bytes) = run(&dvr, "burst", segments, 0.0);
    let cpu = cpu_secs() - cpu0;
    let mb = bytes as f64 / 1e6;
    let ours = mb / secs;
    let (b50, b99) = dvr.stats.write_latency().unwrap_or_default();
    println!(
        "  ladderd DVR: {mb:.0} MB in {files} segment files in {secs:.2} s = {ours:.0} MB/s; {:.1} ms CPU per MB; burst latency (queueing included) p50 {:.0} ms p99 {:.0} ms",
        cpu * 1e3 / mb,
        b50 * 1e3,
        b99 * 1e3
    );

    if let Some(a) = &archive {
        let t0 = Instant::now();
        while a.stats.pending.load(Relaxed) > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let drained = burst_t0.elapsed().as_secs_f64();
        println!(
            "  archive: the burst ({mb:.0} MB, {files} objects) uploaded {drained:.2} s after it began ({:.2} s after it was on disk): {:.0} MB/s; {} objects in all, {} failed attempts, {} dropped",
            t0.elapsed().as_secs_f64(),
            mb / drained,
            a.stats.uploaded.load(Relaxed),
            a.stats.errors.load(Relaxed),
            a.stats.dropped.load(Relaxed)
        );
    }

    // dd: the same count of segment-sized blocks, each synced (O_DIRECT + O_DSYNC).
    let block = (bytes / files).div_ceil(4096) * 4096;
    let out = dir.join("dd.bin");
    let t0 = Instant::now();
    let st = Command::new("dd")
        .args(["if=/dev/zero", "oflag=direct,dsync", "status=none"])
        .arg(format!("of={}", out.display()))
        .arg(format!("bs={block}"))
        .arg(format!("count={files}"))
        .status()
        .expect("dd");
    let dd_secs = t0.elapsed().as_secs_f64();
    assert!(st.success(), "dd failed");
    let dd_mb = (block * files) as f64 / 1e6;
    let dd = dd_mb / dd_secs;
    let _ = std::fs::remove_file(&out);
    println!("  dd oflag=direct,dsync bs={block} count={files}: {dd_mb:.0} MB in {dd_secs:.2} s = {dd:.0} MB/s");
    println!("  ratio ladderd/dd: {:.2}x", ours / dd);

    // Recovery: a torn tail on one index, then a start-up over all of it.
    let index = dir.join("s0/burst/720p30/index");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&index)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0xAB; 20]).unwrap();
    drop(f);
    let t0 = Instant::now();
    let again = start(&dir, None);
    let took = t0.elapsed().as_secs_f64();
    println!(
        "  recovery: start-up over {} segments ({} indexes, one torn) in {:.1} ms, {} MB found",
        2 * files,
        2 * STREAMS * RENDITIONS.len(),
        took * 1e3,
        again.stats.bytes_on_disk.load(Relaxed) / 1_000_000
    );
}
