//! CPU time of the executor threads, from `/proc/self/task/*/{comm,stat}`.

use std::time::Duration;

/// (thread name, CPU seconds) for every `ladderd-*` thread name, summed over
/// threads sharing a name (glommio's helper threads take their executor's).
pub fn per_thread_cpu_seconds() -> Vec<(String, f64)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out: Vec<(String, f64)> = Vec::new();
    for t in tasks.flatten() {
        let dir = t.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        let comm = comm.trim();
        if !comm.starts_with("ladderd-") {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name: utime and stime are the 12th and 13th.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (Some(u), Some(s)) = (f.get(11), f.get(12)) else {
            continue;
        };
        let (Ok(u), Ok(s)) = (u.parse::<f64>(), s.parse::<f64>()) else {
            continue;
        };
        let secs = (u + s) / ticks;
        match out.iter_mut().find(|(name, _)| name == comm) {
            Some((_, total)) => *total += secs,
            None => out.push((comm.to_string(), secs)),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// CPU time the calling thread has used (a measurement: the ladder's
/// per-stage CPU figures).
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}
