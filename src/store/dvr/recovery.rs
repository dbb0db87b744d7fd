//! Start-up: what earlier runs left on disk, read back and repaired.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

use tracing::{info, warn};

use super::files::subdirs;
use super::index::{self, Record};
use super::stats::DvrStats;
use super::timeline::{chain_for, pop, Chain, OnDisk, CHAIN_FILE};

/// What earlier runs left: every `NAME/EPOCH/RENDITION/index`, read back;
/// a torn or corrupt tail (a crash mid-append) is truncated, a record whose
/// file is missing or short is dropped, and a segment file no record names
/// (the one being written at the crash) is deleted.
pub(super) fn recover(
    dir: &Path,
    stats: &DvrStats,
) -> std::io::Result<HashMap<String, HashMap<String, OnDisk>>> {
    let mut out: HashMap<String, HashMap<String, OnDisk>> = HashMap::new();
    let (mut segments, mut torn, mut orphans) = (0u64, 0u64, 0u64);
    // `.recordings` (and any dot directory) is no stream's.
    let streams = subdirs(dir)?.into_iter().filter(|p| {
        p.file_name()
            .and_then(|f| f.to_str())
            .is_some_and(|f| !f.starts_with('.'))
    });
    for name in streams {
        // Oldest run first: a run without its chain file continues the one
        // before it.
        let mut epochs: Vec<(u64, PathBuf)> = subdirs(&name)?
            .into_iter()
            .filter_map(|p| Some((p.file_name()?.to_str()?.parse().ok()?, p)))
            .collect();
        epochs.sort();
        for (e, epoch) in epochs {
            for rendition in subdirs(&epoch)? {
                let (Some(n), Some(r)) = (
                    name.file_name().and_then(|f| f.to_str()),
                    rendition.file_name().and_then(|f| f.to_str()),
                ) else {
                    continue;
                };
                let key = format!("{n}/{e}");
                let index_path = rendition.join("index");
                let data = std::fs::read(&index_path).unwrap_or_default();
                let decoded = index::decode(&data);
                if decoded.valid < data.len() {
                    torn += 1;
                    warn!(path = %index_path.display(), kept = decoded.records.len(), cut_bytes = data.len() - decoded.valid, "DVR index had a torn or corrupt tail: truncated");
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&index_path)?
                        .set_len(decoded.valid as u64)?;
                }
                let mut d = OnDisk {
                    discontinuity_sequence: decoded.head.discontinuities,
                    evicted: decoded.head.evicted,
                    records: decoded.records.into(),
                    index_bytes: decoded.valid as u64,
                    overhead: decoded.valid as u64,
                    ..OnDisk::default()
                };
                // Evicted before the crash: counted as the eviction did.
                let whole = |rec: &Record| {
                    std::fs::metadata(rendition.join(format!("seg{}.m4s", rec.msn)))
                        .is_ok_and(|m| m.len() == rec.bytes)
                };
                while d.records.front().is_some_and(|rec| !whole(rec)) {
                    pop(&mut d);
                }
                // A record whose file is missing or short further on is
                // damage: dropped (the playlist shows a gap).
                d.records.retain(|rec| whole(rec));
                let named: BTreeSet<u64> = d.records.iter().map(|rec| rec.msn).collect();
                for rec in &d.records {
                    stats.bytes_on_disk.fetch_add(rec.bytes, Relaxed);
                }
                for f in std::fs::read_dir(&rendition)?.flatten() {
                    let fname = f.file_name();
                    let Some(fname) = fname.to_str() else {
                        continue;
                    };
                    match crate::package::hls::parse_object_name(fname) {
                        Some(crate::package::hls::ObjectName::Segment(msn))
                            if !named.contains(&msn) =>
                        {
                            orphans += 1;
                            let _ = std::fs::remove_file(f.path());
                        }
                        Some(crate::package::hls::ObjectName::Init(v)) => {
                            d.inits.insert(v);
                            d.overhead += f.metadata().map_or(0, |m| m.len());
                        }
                        _ => {}
                    }
                }
                let chain_text = std::fs::read_to_string(rendition.join(CHAIN_FILE)).ok();
                d.overhead += chain_text.as_ref().map_or(0, |t| t.len() as u64);
                d.chain = Some(
                    chain_text
                        .and_then(|t| Chain::decode(&t))
                        .unwrap_or_else(|| chain_for(&out, &key, r)),
                );
                stats.bytes_on_disk.fetch_add(d.overhead, Relaxed);
                segments += d.records.len() as u64;
                out.entry(key).or_default().insert(r.to_string(), d);
            }
        }
    }
    if segments + torn + orphans > 0 {
        info!(dir = %dir.display(), segments, torn_indexes = torn, unindexed_files_removed = orphans, "DVR recovered what earlier runs left");
    }
    Ok(out)
}
