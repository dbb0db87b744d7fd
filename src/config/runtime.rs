//! `[runtime]`: the cores executors run on.

use std::collections::HashSet;

use serde::Deserialize;

use super::invalid::{ensure, range, Invalid};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runtime {
    /// CPU ids to run executors on, one pinned executor per id. Empty: every CPU this process may use.
    pub cores: Vec<usize>,
    /// How many of `cores` (the first ones) serve sockets; the rest do media work.
    /// With a single core, it does both.
    pub io_cores: usize,
    /// io_uring registered-buffer memory per executor, KiB (glommio `io_memory`).
    /// Counts against RLIMIT_MEMLOCK (systemd `LimitMEMLOCK`) for non-root users.
    pub io_memory_kib: usize,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            cores: Vec::new(),
            io_cores: 1,
            io_memory_kib: 768,
        }
    }
}

impl Runtime {
    pub fn validate(&self) -> Result<(), Invalid> {
        let cpus = available_cpus();
        let mut seen = HashSet::new();
        for (i, c) in self.cores.iter().enumerate() {
            ensure(
                cpus.contains(c),
                format!("runtime.cores[{i}]"),
                format!("CPU {c} is not available to this process (available: {cpus:?})"),
            )?;
            ensure(
                seen.insert(c),
                format!("runtime.cores[{i}]"),
                format!("CPU {c} listed twice"),
            )?;
        }
        range("runtime.io_cores", self.io_cores, 1.., "must be at least 1")?;
        let ncores = if self.cores.is_empty() {
            cpus.len()
        } else {
            self.cores.len()
        };
        range(
            "runtime.io_cores",
            self.io_cores,
            ..=ncores,
            format!(
                "{} I/O cores requested but only {ncores} cores configured",
                self.io_cores
            ),
        )?;
        range(
            "runtime.io_memory_kib",
            self.io_memory_kib,
            64..=1 << 20,
            "must be between 64 and 1048576",
        )
    }
}

/// CPUs in this process's affinity mask (what systemd `CPUAffinity=` leaves us).
pub fn available_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into `set`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}
