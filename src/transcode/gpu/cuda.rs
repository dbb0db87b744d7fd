//! The CUDA driver, found at run time through cudarc's dynamic loading.
//!
//! Measured: cudarc panics on its first call when libcuda is missing, and on
//! the first call of a symbol the library lacks. So every path here first asks
//! [`driver_present`], and only calls an entry point the loaded library exports.

use std::ffi::c_int;

use cudarc::driver::sys::{self, CUdevice_attribute, CUresult};
use serde::Serialize;

/// One CUDA device as the driver reports it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    /// (major, minor), e.g. (9, 0) for Hopper.
    pub compute_capability: (i32, i32),
    pub memory_bytes: usize,
}

impl DeviceInfo {
    /// "NVIDIA H100 80GB HBM3 sm_90 81559 MiB", for probe and hwtest.
    pub fn summary(&self) -> String {
        format!(
            "{} sm_{}{} {} MiB",
            self.name,
            self.compute_capability.0,
            self.compute_capability.1,
            self.memory_bytes >> 20
        )
    }
}

/// What the driver offers, or why it offers nothing.
#[derive(Debug, Clone)]
pub enum Driver {
    /// No libcuda on this machine (no NVIDIA driver installed).
    Missing,
    /// The driver loads but gives no usable device: `reason` is its own error.
    NoDevice {
        version: Option<String>,
        reason: String,
    },
    Ready {
        version: Option<String>,
        devices: Vec<DeviceInfo>,
    },
}

impl Driver {
    /// One line for logs and `probe`.
    pub fn summary(&self) -> String {
        match self {
            Driver::Missing => {
                "libcuda not found: no NVIDIA driver on this machine (libcuda.so.1)".into()
            }
            Driver::NoDevice { version, reason } => format!(
                "driver present{}, no CUDA device: {reason}",
                version
                    .as_ref()
                    .map(|v| format!(" (CUDA {v})"))
                    .unwrap_or_default()
            ),
            Driver::Ready { version, devices } => format!(
                "driver CUDA {}, {} device(s): {}",
                version.as_deref().unwrap_or("?"),
                devices.len(),
                devices
                    .iter()
                    .map(|d| format!(
                        "{} (sm_{}{}, {} MiB)",
                        d.name,
                        d.compute_capability.0,
                        d.compute_capability.1,
                        d.memory_bytes >> 20
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the candidate names; calls nothing in them.
    unsafe { sys::is_culib_present() }
}

/// Whether the loaded libcuda exports `name` (so calling it cannot panic).
pub(crate) fn exports(name: &str) -> bool {
    // SAFETY: called only after `driver_present`; looking a symbol up runs no code.
    unsafe {
        sys::culib()
            .get::<unsafe extern "C" fn()>(name.as_bytes())
            .is_ok()
    }
}

/// The loaded libcuda's own line when it is ladderd's CPU stand-in
/// (tests/stubs/fake_cuda.c, for CI), so nothing it measures is mistaken for a
/// hardware figure; None for a real driver.
pub fn stand_in() -> Option<String> {
    if !driver_present() || !exports("ladderd_standin_driver") {
        return None;
    }
    // SAFETY: the stand-in exports `const char *ladderd_standin_driver(void)`
    // returning a static NUL-terminated string.
    unsafe {
        let f = sys::culib()
            .get::<unsafe extern "C" fn() -> *const std::ffi::c_char>(b"ladderd_standin_driver")
            .ok()?;
        let p = f();
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
    }
}

/// `CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)`, from the driver
/// itself where it can say, else the number.
pub(crate) fn describe(code: CUresult) -> String {
    let err = cudarc::driver::result::DriverError(code);
    let name = exports("cuGetErrorName")
        .then(|| {
            err.error_name()
                .ok()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .flatten();
    let text = exports("cuGetErrorString")
        .then(|| {
            err.error_string()
                .ok()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .flatten();
    match (name, text) {
        (Some(n), Some(t)) => format!("{n} ({t})"),
        (Some(n), None) => n,
        _ => format!("CUresult {}", code as i32),
    }
}

/// A driver call that failed, or that this libcuda does not export.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{call}: {reason}")]
pub struct CallError {
    pub call: &'static str,
    pub reason: String,
}

fn call(name: &'static str, f: impl FnOnce() -> CUresult) -> Result<(), CallError> {
    let failed = |reason| Err(CallError { call: name, reason });
    if !exports(name) {
        return failed(format!("libcuda lacks {name}"));
    }
    match f() {
        CUresult::CUDA_SUCCESS => Ok(()),
        code => failed(describe(code)),
    }
}

/// Loads the driver, initialises it and lists the devices. Never panics.
pub fn probe() -> Driver {
    if !driver_present() {
        return Driver::Missing;
    }
    // SAFETY (all calls below): each entry point is checked to exist first and
    // gets valid out-pointers to locals.
    let init = call("cuInit", || unsafe { sys::cuInit(0) });
    let mut v: c_int = 0;
    let version = call("cuDriverGetVersion", || unsafe {
        sys::cuDriverGetVersion(&mut v)
    })
    .ok()
    .map(|_| format!("{}.{}", v / 1000, (v % 1000) / 10));
    if let Err(e) = init {
        return Driver::NoDevice {
            version,
            reason: e.to_string(),
        };
    }
    let mut count: c_int = 0;
    if let Err(e) = call("cuDeviceGetCount", || unsafe {
        sys::cuDeviceGetCount(&mut count)
    }) {
        return Driver::NoDevice {
            version,
            reason: e.to_string(),
        };
    }
    if count == 0 {
        return Driver::NoDevice {
            version,
            reason: "the driver lists 0 devices".into(),
        };
    }
    let mut devices = Vec::new();
    for ordinal in 0..count {
        match device_info(ordinal) {
            Ok(d) => devices.push(d),
            Err(reason) => {
                return Driver::NoDevice {
                    version,
                    reason: format!("device {ordinal}: {reason}"),
                }
            }
        }
    }
    Driver::Ready { version, devices }
}

fn device_info(ordinal: c_int) -> Result<DeviceInfo, CallError> {
    let mut dev: sys::CUdevice = 0;
    // SAFETY: out-pointers to locals; entry points checked by `call`.
    call("cuDeviceGet", || unsafe {
        sys::cuDeviceGet(&mut dev, ordinal)
    })?;
    let mut name = [0 as std::ffi::c_char; 256];
    call("cuDeviceGetName", || unsafe {
        sys::cuDeviceGetName(name.as_mut_ptr(), name.len() as c_int, dev)
    })?;
    // SAFETY: the driver wrote a NUL-terminated string into `name` (zeroed first).
    let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let attr = |a: CUdevice_attribute| -> Result<i32, CallError> {
        let mut v: c_int = 0;
        call("cuDeviceGetAttribute", || unsafe {
            sys::cuDeviceGetAttribute(&mut v, a, dev)
        })?;
        Ok(v)
    };
    let major = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
    let minor = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
    let mut mem: usize = 0;
    call("cuDeviceTotalMem_v2", || unsafe {
        sys::cuDeviceTotalMem_v2(&mut mem, dev)
    })?;
    Ok(DeviceInfo {
        ordinal: ordinal as usize,
        name,
        compute_capability: (major, minor),
        memory_bytes: mem,
    })
}
