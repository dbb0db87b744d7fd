//! The rewind window and the size cap: what goes, oldest first.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use super::timeline::{pop, split_key};
use super::Dvr;

impl Dvr {
    /// Drops the segments that ended more than the window before `now_ms`
    /// (wall clock: what earlier runs left ages out too), then (all streams
    /// together, oldest first) those past `max_bytes`.
    pub(super) fn evict(&self, now_ms: u64) {
        let oldest_kept = now_ms.saturating_sub((self.config.window_secs * 1000.0) as u64);
        let mut gone = Vec::new();
        {
            let mut disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
            for (key, renditions) in disk.iter_mut() {
                for (name, d) in renditions.iter_mut() {
                    while d
                        .records
                        .front()
                        .is_some_and(|r| r.pdt_ms + (r.duration * 1000.0) as u64 <= oldest_kept)
                    {
                        if let Some(r) = pop(d) {
                            gone.push((key.clone(), name.clone(), r));
                        }
                    }
                }
            }
            let max = self.config.max_bytes;
            let mut total: u64 = gone
                .iter()
                .fold(self.stats.bytes_on_disk.load(Relaxed), |t, (_, _, r)| {
                    t.saturating_sub(r.bytes)
                });
            while max > 0 && total > max {
                // The oldest segment of any rendition.
                let oldest = disk
                    .iter()
                    .flat_map(|(k, rs)| rs.iter().map(move |(n, d)| (k, n, d)))
                    .filter(|(_, _, d)| d.records.len() > 1)
                    .min_by_key(|(_, _, d)| d.records.front().map_or(u64::MAX, |r| r.pdt_ms))
                    .map(|(k, n, _)| (k.clone(), n.clone()));
                let Some((k, n)) = oldest else { break };
                let Some(r) = disk.get_mut(&k).and_then(|rs| rs.get_mut(&n)).and_then(pop) else {
                    break;
                };
                total = total.saturating_sub(r.bytes);
                gone.push((k, n, r));
            }
        }
        if !gone.is_empty() {
            self.forget_emptied_runs();
        }
        self.evict_inits();
        for (key, rendition, r) in gone {
            self.stats.bytes_on_disk.fetch_sub(r.bytes, Relaxed);
            self.stats.segments_evicted.fetch_add(1, Relaxed);
            let path = self
                .rendition_dir(&key, &rendition)
                .join(format!("seg{}.m4s", r.msn));
            let _ = std::fs::remove_file(path);
        }
    }

    /// Removes the init objects no segment on disk names any more: older than
    /// the oldest kept segment's (versions only grow within a run). A run
    /// gets a new init at every input switch and new configuration, so a
    /// channel that fails over all day would otherwise keep thousands.
    /// The newest init stays even with no segment (the next one needs it).
    fn evict_inits(&self) {
        let mut freed = Vec::new();
        {
            let mut disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
            for (key, renditions) in disk.iter_mut() {
                for (rendition, d) in renditions.iter_mut() {
                    // The newest segment's version when none is older: what
                    // the window emptied leaves only the newest init.
                    let Some(oldest) = d
                        .records
                        .front()
                        .map(|r| r.init_version)
                        .or_else(|| d.inits.last().copied())
                    else {
                        continue;
                    };
                    if d.inits.first().is_none_or(|&v| v >= oldest) {
                        continue;
                    }
                    let stale: Vec<u32> = d.inits.range(..oldest).copied().collect();
                    for v in stale {
                        d.inits.remove(&v);
                        let path = self
                            .rendition_dir(key, rendition)
                            .join(format!("init{v}.mp4"));
                        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
                        d.overhead = d.overhead.saturating_sub(len);
                        freed.push((path, len));
                    }
                }
            }
        }
        for (path, len) in freed {
            if std::fs::remove_file(&path).is_ok() {
                self.stats.bytes_on_disk.fetch_sub(len, Relaxed);
                self.stats.inits_evicted.fetch_add(1, Relaxed);
            }
        }
    }

    /// Removes the runs with nothing left on disk that a later run of their
    /// NAME follows (their inits, indexes and chains; recordings hold their
    /// own links). The latest run of a NAME stays: the next one chains on.
    fn forget_emptied_runs(&self) {
        let gone: Vec<String> = {
            let mut disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
            let latest: HashMap<&str, u64> =
                disk.keys()
                    .filter_map(|k| split_key(k))
                    .fold(HashMap::new(), |mut m, (n, e)| {
                        let v = m.entry(n).or_insert(e);
                        *v = (*v).max(e);
                        m
                    });
            let gone: Vec<String> = disk
                .iter()
                .filter(|(k, rs)| {
                    rs.values().all(|d| d.records.is_empty())
                        && split_key(k).is_some_and(|(n, e)| latest.get(n).is_some_and(|&l| l > e))
                })
                .map(|(k, _)| k.clone())
                .collect();
            let mut freed = 0;
            for k in &gone {
                if let Some(rs) = disk.remove(k) {
                    freed += rs.values().map(|d| d.overhead).sum::<u64>();
                }
            }
            self.stats.bytes_on_disk.fetch_sub(freed, Relaxed);
            gone
        };
        for key in gone {
            let _ = std::fs::remove_dir_all(self.config.dir.join(&key));
        }
    }
}
