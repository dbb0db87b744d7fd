use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;

use super::timeline::CHAIN_FILE;
use super::*;

fn config(dir: &Path, window_secs: f64, compact_after: usize) -> DvrConfig {
    DvrConfig {
        dir: dir.to_path_buf(),
        window_secs,
        max_bytes: 0,
        record_on_end: false,
        cpu: None,
        compact_after,
    }
}

fn entry(msn: u64, pdt_ms: u64, discontinuity: bool) -> SegmentEntry {
    SegmentEntry {
        msn,
        duration: 2.0,
        pdt_ms,
        discontinuity,
        init_version: 0,
        parts: Vec::new(),
        complete: true,
        start: msn * 180_000,
        timescale: 90_000,
    }
}

fn wait_written(dvr: &Dvr, n: u64) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while dvr.stats.segments_written.load(Relaxed) < n {
        assert!(std::time::Instant::now() < until, "segments not written");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn summary(runs: &[RunSegments]) -> Vec<(u64, Vec<u64>, u64, u64, u64)> {
    runs.iter()
        .map(|r| {
            let msns = r.segments.iter().map(|s| s.msn).collect();
            (
                r.epoch_ms,
                msns,
                r.sequence,
                r.discontinuity_sequence,
                r.origin_ms,
            )
        })
        .collect()
}

/// A NAME's second run continues the first one's numbers (its segments,
/// a discontinuity flagged in it, the break between runs) and its
/// origin; a third run after a restart continues the second, with the
/// chain read back (or, its file gone, worked out again the same).
#[test]
fn runs_of_a_name_chain_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let now = unix_ms();
    let dvr = Dvr::start(config(dir.path(), 1e6, DEFAULT_COMPACT_AFTER), None).unwrap();
    for msn in 0..6 {
        dvr.segment(
            "cam/1000",
            "v",
            &entry(msn, now, msn == 3),
            Bytes::from_static(b"a"),
        );
    }
    wait_written(&dvr, 6);
    for msn in 0..2 {
        dvr.segment(
            "cam/2000",
            "v",
            &entry(msn, now, false),
            Bytes::from_static(b"b"),
        );
    }
    wait_written(&dvr, 8);
    let want = vec![
        (1000, (0..6).collect(), 0, 0, 1000),
        (2000, vec![0, 1], 6, 2, 1000),
    ];
    assert_eq!(summary(&dvr.runs("cam", 2000, "v")), want);
    // The first run alone, as it was; another NAME shares nothing.
    assert_eq!(summary(&dvr.runs("cam", 1000, "v")), want[..1]);
    assert_eq!(
        summary(&dvr.runs("other", 3000, "v")),
        [(3000, vec![], 0, 0, 3000)]
    );
    // A run not written yet is where it will start.
    assert_eq!(
        summary(&dvr.runs("cam", 3000, "v"))[2],
        (3000, vec![], 8, 3, 1000)
    );

    for drop_chain_files in [false, true] {
        if drop_chain_files {
            for e in ["1000", "2000"] {
                std::fs::remove_file(dir.path().join("cam").join(e).join("v").join(CHAIN_FILE))
                    .unwrap();
            }
        }
        let again = Dvr::start(config(dir.path(), 1e6, DEFAULT_COMPACT_AFTER), None).unwrap();
        assert_eq!(
            summary(&again.runs("cam", 2000, "v")),
            want,
            "chain files dropped: {drop_chain_files}"
        );
    }
}

/// Evicted segments leave the media and discontinuity sequences where
/// the playlists had them, through index compaction and a restart; the
/// compacted index holds the head and the records still on disk; a run
/// with nothing left that a later run follows is removed.
#[test]
fn eviction_and_compaction_keep_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let now = unix_ms();
    let window = 600.0;
    let old = now - 700_000;
    let dvr = Dvr::start(config(dir.path(), window, 4), None).unwrap();
    // Run 1000: gone entirely (all older than the window).
    for msn in 0..3 {
        dvr.segment(
            "cam/1000",
            "v",
            &entry(msn, old, false),
            Bytes::from_static(b"x"),
        );
    }
    wait_written(&dvr, 3);
    // Run 2000: 7 old ones (a discontinuity at 2, a lost segment after
    // 5) evicted as written, then 3 kept.
    let msns = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10];
    for (i, msn) in msns.iter().enumerate() {
        let pdt = if i < 7 { old } else { now };
        dvr.segment(
            "cam/2000",
            "v",
            &entry(*msn, pdt, *msn == 2),
            Bytes::from_static(b"y"),
        );
    }
    wait_written(&dvr, 13);
    let runs = dvr.runs("cam", 2000, "v");
    // Run 1000 was already empty when 2000 began: 2000 starts a chain.
    assert_eq!(summary(&runs), [(2000, vec![8, 9, 10], 7, 2, 2000)]);
    assert!(
        !dir.path().join("cam/1000").exists(),
        "emptied earlier run kept"
    );
    assert!(dvr.stats.index_compactions.load(Relaxed) >= 1);
    let data = std::fs::read(dir.path().join("cam/2000/v/index")).unwrap();
    let d = index::decode(&data);
    assert_eq!(d.valid, data.len());
    assert!(d.head.evicted >= 4, "{:?}", d.head);
    assert!(d.records.len() < msns.len(), "{} records", d.records.len());
    // Every byte the DVR keeps counts against the cap: segments, inits,
    // indexes and chains (was segments only).
    dvr.init("cam/2000", "v", 0, Bytes::from_static(b"init"));
    dvr.flush(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(dvr.stats.bytes_on_disk.load(Relaxed), du(dir.path()));
    let again = Dvr::start(config(dir.path(), window, 4), None).unwrap();
    assert_eq!(summary(&again.runs("cam", 2000, "v")), summary(&runs));
    assert_eq!(again.stats.bytes_on_disk.load(Relaxed), du(dir.path()));
}

/// Issue 30's soak: a run gets a new init at every input switch, and the
/// inits stayed after the window had taken every segment that named
/// them (93 of them after 46 min of a switch a minute). The ones older
/// than the oldest kept segment's go with it; the newest stays.
#[test]
fn inits_no_segment_names_are_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let now = unix_ms();
    let old = now - 700_000;
    let dvr = Dvr::start(config(dir.path(), 600.0, 4), None).unwrap();
    let v = dir.path().join("cam/2000/v");
    // Versions 0..3, two segments each: 0 and 1 old, 2 and 3 kept.
    for version in 0..4u32 {
        dvr.init("cam/2000", "v", version, Bytes::from_static(b"init-bytes"));
        for i in 0..2u64 {
            let msn = u64::from(version) * 2 + i;
            let mut e = entry(msn, if version < 2 { old } else { now }, i == 0);
            e.init_version = version;
            dvr.segment("cam/2000", "v", &e, Bytes::from_static(b"seg"));
        }
    }
    // A fifth init no segment names yet (a switch just happened).
    dvr.init("cam/2000", "v", 4, Bytes::from_static(b"init-bytes"));
    dvr.flush(std::time::Duration::from_secs(10)).unwrap();
    let inits = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.starts_with("init"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(inits(&v), ["init2.mp4", "init3.mp4", "init4.mp4"]);
    assert_eq!(dvr.stats.inits_evicted.load(Relaxed), 2);
    assert_eq!(dvr.stats.bytes_on_disk.load(Relaxed), du(dir.path()));
    // A restart reads back the same.
    let again = Dvr::start(config(dir.path(), 600.0, 4), None).unwrap();
    assert_eq!(again.stats.bytes_on_disk.load(Relaxed), du(dir.path()));
    assert_eq!(inits(&v), ["init2.mp4", "init3.mp4", "init4.mp4"]);
}

/// Bytes of every file under `dir` but recordings.
fn du(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.ends_with(recordings::DIR) {
            n += du(&p);
        } else if p.is_file() {
            n += e.metadata().map_or(0, |m| m.len());
        }
    }
    n
}

#[test]
fn a_write_error_names_the_stream_and_rendition() {
    let e = DvrError::write(
        "cam/1/1700000000000",
        "720p",
        "segment",
        PathBuf::from("/dvr/cam/1/1700000000000/720p/seg12.m4s"),
        std::io::Error::other("No space left on device"),
    );
    assert_eq!(
        e.to_string(),
        r#"stream "cam/1", rendition 720p: segment /dvr/cam/1/1700000000000/720p/seg12.m4s: No space left on device"#
    );
    assert_eq!(e.ctx().and_then(|c| c.rendition.as_deref()), Some("720p"));
}
