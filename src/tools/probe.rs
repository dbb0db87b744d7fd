//! `ladderd probe`: what this machine offers the appliance, and why anything is missing.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Report {
    pub commit: &'static str,
    /// Whether openh264 was built with its assembly (nasm present at build time).
    pub codec_asm: bool,
    pub cpus: Vec<usize>,
    pub io_uring: Facility,
    pub memlock_kib: Option<u64>,
    /// libsrt, for SRT ingest (opened at run time).
    pub srt: Facility,
    /// libavcodec, the fast software H.264 decoder (opened at run time).
    pub libavcodec: Facility,
    /// libswscale, the fast CPU scaler (opened at run time).
    pub libswscale: Facility,
    pub gpu: crate::transcode::gpu::GpuReport,
}

#[derive(Debug, Serialize)]
pub struct Facility {
    pub available: bool,
    pub detail: String,
}

/// `srt`: whether libsrt loads (ingest finds it; the entry point asks).
pub fn run(srt: Result<(), crate::dylib::Unavailable>) -> Report {
    Report {
        commit: env!("LADDERD_COMMIT"),
        codec_asm: env!("LADDERD_CODEC_ASM") == "yes",
        cpus: crate::config::available_cpus(),
        io_uring: probe_io_uring(),
        memlock_kib: memlock_kib(),
        srt: match srt {
            Ok(()) => Facility {
                available: true,
                detail: "libsrt loaded".into(),
            },
            Err(e) => Facility {
                available: false,
                detail: e.to_string(),
            },
        },
        libavcodec: match crate::transcode::cpu::libav::probe() {
            Ok(v) => Facility {
                available: true,
                detail: format!("{v}: decoder = \"auto\" decodes with it"),
            },
            Err(e) => Facility {
                available: false,
                detail: format!("{e}; decoder = \"auto\" decodes with openh264"),
            },
        },
        libswscale: match crate::transcode::cpu::swscale::probe() {
            Ok(v) => Facility {
                available: true,
                detail: format!("{v}: scaler = \"auto\" scales with it"),
            },
            Err(e) => Facility {
                available: false,
                detail: format!("{e}; scaler = \"auto\" scales with fast_image_resize"),
            },
        },
        gpu: crate::transcode::gpu::probe(),
    }
}

impl Report {
    pub fn to_text(&self) -> String {
        let yn = |f: &Facility| if f.available { "yes" } else { "no" };
        format!(
            "build:     {} (codec assembly: {})\ncpus:      {:?}\nio_uring:  {} ({})\nmemlock:   {}\nsrt:       {} ({})\nlibavcodec: {} ({})\nlibswscale: {} ({})\n{}",
            self.commit,
            if self.codec_asm { "yes" } else { "no: nasm was missing at build time, codecs run at about half speed" },
            self.cpus,
            yn(&self.io_uring),
            self.io_uring.detail,
            self.memlock_kib
                .map_or("unlimited".to_string(), |k| format!("{k} KiB")),
            yn(&self.srt),
            self.srt.detail,
            yn(&self.libavcodec),
            self.libavcodec.detail,
            yn(&self.libswscale),
            self.libswscale.detail,
            self.gpu.to_text()
        )
    }
}

fn probe_io_uring() -> Facility {
    match glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(256 * 1024)
        .make()
    {
        Ok(_) => Facility {
            available: true,
            detail: "glommio executor started".into(),
        },
        Err(e) => Facility {
            available: false,
            detail: e.to_string(),
        },
    }
}

fn memlock_kib() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct into `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0
        || lim.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    Some(lim.rlim_cur / 1024)
}
