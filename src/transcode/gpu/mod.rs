//! GPU backend: NVDEC decode, CUDA scaling kernels, NVENC encode, all in
//! device memory, with every driver library found at run time.
//!
//! The binary builds and runs with no CUDA anywhere: [`probe`] reports what is
//! present and why anything is missing, and `transcode::backend` picks the
//! stages from that report. On Hopper (NVDEC, no NVENC) the rungs are scaled on
//! the GPU and encoded on the CPU.

pub mod context;
pub mod cuda;
pub mod ffi;
pub mod kernel_ref;
pub mod kernels;
pub mod nvdec;
pub mod nvenc;
pub mod scaler;

use std::sync::Arc;

use serde::Serialize;

pub use context::{Gpu, GpuError};

/// Everything `probe` says about the GPU side.
#[derive(Debug, Serialize)]
pub struct GpuReport {
    /// Whether the GPU backend can run here (a device opened and kernels loaded).
    pub available: bool,
    /// The stages `backend = "auto"` would use, and why.
    pub backend: String,
    /// One line: the driver, its version and devices, or why there is none.
    pub driver: String,
    pub driver_version: Option<String>,
    pub devices: Vec<DeviceReport>,
    /// NVRTC version, or why it is missing (needed only when the built-in PTX
    /// does not fit the device).
    #[serde(serialize_with = "facility")]
    pub nvrtc: Result<String, kernels::NvrtcError>,
    /// PTX for the scaler kernels was compiled at build time.
    pub kernels_built_in: bool,
}

#[derive(Debug, Serialize)]
pub struct DeviceReport {
    #[serde(flatten)]
    pub info: cuda::DeviceInfo,
    /// Opening the context and loading the kernels.
    #[serde(serialize_with = "facility")]
    pub context: Result<(), GpuError>,
    /// The kernel image the driver took (PTX, or an NVRTC cubin).
    pub kernels: Option<String>,
    #[serde(serialize_with = "facility")]
    pub nvdec: Result<Vec<nvdec::DecodeCaps>, GpuError>,
    #[serde(serialize_with = "facility")]
    pub nvenc: Result<Vec<String>, GpuError>,
}

/// `probe --json`'s one shape for anything that may be missing:
/// `{"available": true, "detail": null, "value": …}` or
/// `{"available": false, "detail": "why", "value": null}` (serde's own `Result`
/// shape, `{"Ok": …}` / `{"Err": …}`, is no interface for operators' scripts).
fn facility<T: Serialize, E: std::fmt::Display, S: serde::Serializer>(
    r: &Result<T, E>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Facility", 3)?;
    st.serialize_field("available", &r.is_ok())?;
    st.serialize_field("detail", &r.as_ref().err().map(|e| e.to_string()))?;
    st.serialize_field("value", &r.as_ref().ok())?;
    st.end()
}

impl DeviceReport {
    pub fn nvdec_h264(&self) -> bool {
        self.nvdec
            .as_ref()
            .is_ok_and(|c| c.iter().any(|c| c.codec == "h264" && c.supported))
    }

    pub fn nvenc_h264(&self) -> bool {
        self.nvenc
            .as_ref()
            .is_ok_and(|c| c.iter().any(|c| c == "h264"))
    }
}

/// What this machine's GPU side offers. Never panics; exits nothing.
pub fn probe() -> GpuReport {
    let driver = cuda::probe();
    let nvrtc = kernels::nvrtc_version();
    let kernels_built_in = kernels::built_ptx().is_some();
    let mut devices = Vec::new();
    let (version, infos) = match &driver {
        cuda::Driver::Ready { version, devices } => (version.clone(), devices.clone()),
        cuda::Driver::NoDevice { version, .. } => (version.clone(), Vec::new()),
        cuda::Driver::Missing => (None, Vec::new()),
    };
    for info in infos {
        let opened = Gpu::open(info.ordinal);
        let kernels = opened.as_ref().ok().map(|g| g.kernels_from.clone());
        let (context, nvdec, nvenc) = match opened {
            Ok(gpu) => (Ok(()), nvdec::caps(&gpu), nvenc::codecs(&gpu)),
            Err(e) => (Err(e), Err(GpuError::NoContext), Err(GpuError::NoContext)),
        };
        devices.push(DeviceReport {
            info,
            kernels,
            context,
            nvdec,
            nvenc,
        });
    }
    let backend = match devices.first() {
        None => format!("cpu: {}", driver.summary()),
        Some(d) => match &d.context {
            Err(e) => format!("cpu: device 0 unusable: {e}"),
            Ok(()) => plan_of(d).describe(),
        },
    };
    GpuReport {
        available: devices.first().is_some_and(|d| d.context.is_ok()),
        backend,
        driver: driver.summary(),
        driver_version: version,
        devices,
        nvrtc,
        kernels_built_in,
    }
}

/// Which stages run on the GPU.
#[derive(Debug, Clone)]
pub struct Plan {
    pub device: String,
    pub nvdec: bool,
    pub nvenc: bool,
    /// Why a stage is not on the GPU.
    pub notes: Vec<String>,
}

impl Plan {
    pub fn describe(&self) -> String {
        let dec = if self.nvdec { "NVDEC" } else { "CPU decode" };
        let enc = if self.nvenc { "NVENC" } else { "CPU encode" };
        let kind = if self.nvdec && self.nvenc {
            "gpu"
        } else {
            "hybrid"
        };
        let mut s = format!("{kind}: {dec} + CUDA scale + {enc} on {}", self.device);
        if !self.notes.is_empty() {
            s.push_str(&format!(" ({})", self.notes.join("; ")));
        }
        s
    }
}

fn plan_of(d: &DeviceReport) -> Plan {
    let mut notes = Vec::new();
    if !d.nvdec_h264() {
        notes.push(match &d.nvdec {
            Err(e) => format!("no NVDEC: {e}"),
            Ok(_) => "NVDEC lacks H.264 on this device".into(),
        });
    }
    if !d.nvenc_h264() {
        notes.push(match &d.nvenc {
            Err(e) => format!("no NVENC: {e}"),
            Ok(_) => "NVENC lacks H.264 on this device".into(),
        });
    }
    Plan {
        device: format!(
            "{} (sm_{}{})",
            d.info.name, d.info.compute_capability.0, d.info.compute_capability.1
        ),
        nvdec: d.nvdec_h264(),
        nvenc: d.nvenc_h264(),
        notes,
    }
}

/// Opens device `ordinal` for the GPU backend and decides its stages, or says
/// why the GPU backend cannot run.
pub fn open(ordinal: usize) -> Result<(Arc<Gpu>, Plan), GpuError> {
    let driver = cuda::probe();
    let cuda::Driver::Ready { devices, .. } = &driver else {
        return Err(GpuError::NoDevice(driver.summary()));
    };
    let Some(info) = devices.iter().find(|d| d.ordinal == ordinal).cloned() else {
        return Err(GpuError::NoDevice(format!(
            "no CUDA device {ordinal} ({} present)",
            devices.len()
        )));
    };
    let gpu = Gpu::open(ordinal)?;
    let report = DeviceReport {
        info,
        kernels: Some(gpu.kernels_from.clone()),
        context: Ok(()),
        nvdec: nvdec::caps(&gpu),
        nvenc: nvenc::codecs(&gpu),
    };
    Ok((gpu, plan_of(&report)))
}

impl GpuReport {
    pub fn to_text(&self) -> String {
        let mut s = format!("gpu:       {}\n", if self.available { "yes" } else { "no" });
        s.push_str(&format!("  driver:  {}\n", self.driver));
        for d in &self.devices {
            s.push_str(&format!(
                "  device {}: {}{}\n",
                d.info.ordinal,
                d.info.summary(),
                match &d.context {
                    Ok(()) => String::new(),
                    Err(e) => format!(" (unusable: {e})"),
                }
            ));
            if let Some(k) = &d.kernels {
                s.push_str(&format!("    kernels loaded: {k}\n"));
            }
            match &d.nvdec {
                Ok(caps) => {
                    for c in caps {
                        s.push_str(&format!(
                            "    nvdec {}: {}\n",
                            c.codec,
                            if c.supported {
                                format!(
                                    "up to {}x{}, {} engine(s)",
                                    c.max_width, c.max_height, c.engines
                                )
                            } else {
                                "not supported".into()
                            }
                        ));
                    }
                }
                Err(e) => s.push_str(&format!("    nvdec: unavailable: {e}\n")),
            }
            match &d.nvenc {
                Ok(codecs) => s.push_str(&format!("    nvenc: {}\n", codecs.join(", "))),
                Err(e) => s.push_str(&format!("    nvenc: unavailable: {e}\n")),
            }
        }
        s.push_str(&format!(
            "  nvrtc:   {}\n",
            match &self.nvrtc {
                Ok(v) => v.clone(),
                Err(e) => format!("not found: {e}"),
            }
        ));
        s.push_str(&format!(
            "  kernels: {}\n",
            if self.kernels_built_in {
                "PTX built in (compute_75)"
            } else {
                "not built in: compiled by NVRTC at start-up"
            }
        ));
        s.push_str(&format!("  backend: {}\n", self.backend));
        s
    }
}
