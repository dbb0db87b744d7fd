//! NVDEC and NVENC declarations: struct layouts generated once by bindgen
//! (`scripts/gen-ffi.sh`) from the MIT-licensed ffnvcodec 11.1 headers and
//! committed, plus what bindgen cannot carry (GUID values, struct versions) and
//! an entry-point loader. Nothing here links anything: the libraries are opened
//! with libloading at run time and every entry point comes back as a `Result`.

#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all
)]
pub mod nvcuvid_sys;
#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all
)]
pub mod nvenc_sys;

use nvenc_sys::GUID;

use crate::dylib::Unavailable;

/// Looks up one entry point that must be there. `F` is the function type
/// inside bindgen's `Option<extern fn>`; a missing or NULL symbol makes the
/// library (`what`, opened from `file`) unavailable, not a panic.
pub fn entry<F: Copy>(
    lib: &libloading::Library,
    what: &'static str,
    file: &str,
    name: &str,
) -> Result<F, Unavailable> {
    let mut c = name.as_bytes().to_vec();
    c.push(0);
    // SAFETY: `F` is the bindgen-declared type of the C function `name` (the
    // caller's contract); the library outlives the copy (both live in one struct).
    let f = unsafe { lib.get::<Option<F>>(c.as_slice()).map(|s| *s) }
        .map_err(|e| Unavailable::new(what, &[file], format!("{name}: {e}")))?;
    f.ok_or_else(|| Unavailable::new(what, &[file], format!("{name} is NULL")))
}

/// `NVENCAPI_STRUCT_VERSION(ver)` from nvEncodeAPI.h.
pub const fn nvenc_struct_version(ver: u32) -> u32 {
    nvenc_sys::NVENCAPI_VERSION | (ver << 16) | (0x7 << 28)
}

pub const NV_ENCODE_API_FUNCTION_LIST_VER: u32 = nvenc_struct_version(2);
pub const NV_ENC_OPEN_ENCODE_SESSION_EX_PARAMS_VER: u32 = nvenc_struct_version(1);
pub const NV_ENC_INITIALIZE_PARAMS_VER: u32 = nvenc_struct_version(5) | (1 << 31);
pub const NV_ENC_PRESET_CONFIG_VER: u32 = nvenc_struct_version(4) | (1 << 31);
pub const NV_ENC_CONFIG_VER: u32 = nvenc_struct_version(7) | (1 << 31);
pub const NV_ENC_RC_PARAMS_VER: u32 = nvenc_struct_version(1);
pub const NV_ENC_CREATE_BITSTREAM_BUFFER_VER: u32 = nvenc_struct_version(1);
pub const NV_ENC_REGISTER_RESOURCE_VER: u32 = nvenc_struct_version(3);
pub const NV_ENC_MAP_INPUT_RESOURCE_VER: u32 = nvenc_struct_version(4);
pub const NV_ENC_PIC_PARAMS_VER: u32 = nvenc_struct_version(4) | (1 << 31);
pub const NV_ENC_LOCK_BITSTREAM_VER: u32 = nvenc_struct_version(1);

const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> GUID {
    GUID {
        Data1: d1,
        Data2: d2,
        Data3: d3,
        Data4: d4,
    }
}

pub const NV_ENC_CODEC_H264_GUID: GUID = guid(
    0x6bc82762,
    0x4e63,
    0x4ca4,
    [0xaa, 0x85, 0x1e, 0x50, 0xf3, 0x21, 0xf6, 0xbf],
);
pub const NV_ENC_CODEC_HEVC_GUID: GUID = guid(
    0x790cdc88,
    0x4522,
    0x4d7b,
    [0x94, 0x25, 0xbd, 0xa9, 0x97, 0x5f, 0x76, 0x03],
);
pub const NV_ENC_H264_PROFILE_HIGH_GUID: GUID = guid(
    0xe7cbc309,
    0x4f7a,
    0x4b89,
    [0xaf, 0x2a, 0xd5, 0x37, 0xc9, 0x2b, 0xe3, 0x10],
);
/// P1, the fastest preset: a live ladder wants throughput and latency.
pub const NV_ENC_PRESET_P1_GUID: GUID = guid(
    0xfc0a8d3e,
    0x45f8,
    0x4cf8,
    [0x80, 0xc7, 0x29, 0x88, 0x71, 0x59, 0x0e, 0xbf],
);

pub fn guid_eq(a: &GUID, b: &GUID) -> bool {
    a.Data1 == b.Data1 && a.Data2 == b.Data2 && a.Data3 == b.Data3 && a.Data4 == b.Data4
}

/// The codec a GUID names, for `probe`.
pub fn codec_name(g: &GUID) -> String {
    if guid_eq(g, &NV_ENC_CODEC_H264_GUID) {
        "h264".into()
    } else if guid_eq(g, &NV_ENC_CODEC_HEVC_GUID) {
        "hevc".into()
    } else {
        format!(
            "{:08x}-{:04x}-{:04x}-{}",
            g.Data1,
            g.Data2,
            g.Data3,
            g.Data4
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    }
}

/// NVENCSTATUS names, for errors that say what the driver said.
pub fn nvenc_status_name(s: u32) -> &'static str {
    const NAMES: [&str; 26] = [
        "NV_ENC_SUCCESS",
        "NV_ENC_ERR_NO_ENCODE_DEVICE",
        "NV_ENC_ERR_UNSUPPORTED_DEVICE",
        "NV_ENC_ERR_INVALID_ENCODERDEVICE",
        "NV_ENC_ERR_INVALID_DEVICE",
        "NV_ENC_ERR_DEVICE_NOT_EXIST",
        "NV_ENC_ERR_INVALID_PTR",
        "NV_ENC_ERR_INVALID_EVENT",
        "NV_ENC_ERR_INVALID_PARAM",
        "NV_ENC_ERR_INVALID_CALL",
        "NV_ENC_ERR_OUT_OF_MEMORY",
        "NV_ENC_ERR_ENCODER_NOT_INITIALIZED",
        "NV_ENC_ERR_UNSUPPORTED_PARAM",
        "NV_ENC_ERR_LOCK_BUSY",
        "NV_ENC_ERR_NOT_ENOUGH_BUFFER",
        "NV_ENC_ERR_INVALID_VERSION",
        "NV_ENC_ERR_MAP_FAILED",
        "NV_ENC_ERR_NEED_MORE_INPUT",
        "NV_ENC_ERR_ENCODER_BUSY",
        "NV_ENC_ERR_EVENT_NOT_REGISTERD",
        "NV_ENC_ERR_GENERIC",
        "NV_ENC_ERR_INCOMPATIBLE_CLIENT_KEY",
        "NV_ENC_ERR_UNIMPLEMENTED",
        "NV_ENC_ERR_RESOURCE_REGISTER_FAILED",
        "NV_ENC_ERR_RESOURCE_NOT_REGISTERED",
        "NV_ENC_ERR_RESOURCE_NOT_MAPPED",
    ];
    NAMES
        .get(s as usize)
        .copied()
        .unwrap_or("NV_ENC_ERR_(unknown)")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The versions bindgen could not evaluate, checked against values the
    /// 11.1 header's macros produce (NVENCAPI_VERSION = 11 | 1 << 24).
    #[test]
    fn struct_versions_follow_the_header_macro() {
        assert_eq!(nvenc_sys::NVENCAPI_VERSION, 11 | (1 << 24));
        assert_eq!(NV_ENCODE_API_FUNCTION_LIST_VER, 0x7002_000b | (1 << 24));
        assert_eq!(NV_ENC_PIC_PARAMS_VER, 0xf004_000b | (1 << 24));
    }

    #[test]
    fn status_names_match_the_enum() {
        assert_eq!(
            nvenc_status_name(nvenc_sys::NV_ENC_ERR_NEED_MORE_INPUT),
            "NV_ENC_ERR_NEED_MORE_INPUT"
        );
        assert_eq!(
            nvenc_status_name(nvenc_sys::NV_ENC_ERR_RESOURCE_NOT_MAPPED),
            "NV_ENC_ERR_RESOURCE_NOT_MAPPED"
        );
        assert_eq!(codec_name(&NV_ENC_CODEC_H264_GUID), "h264");
    }

    #[test]
    fn a_missing_entry_point_makes_the_library_unavailable() {
        // SAFETY: libc's initialisers have run already in this process.
        let lib = unsafe { libloading::Library::new("libc.so.6") }.expect("libc opens");
        let e = match entry::<unsafe extern "C" fn()>(&lib, "NVENC", "libc.so.6", "NvLadderdNoSuch")
        {
            Ok(_) => panic!("a symbol libc lacks was found"),
            Err(e) => e,
        };
        assert_eq!(
            (e.lib, e.tried.as_slice()),
            ("NVENC", &["libc.so.6".to_string()][..])
        );
        assert!(e.reason.starts_with("NvLadderdNoSuch: "), "{e}");
        let found: Result<unsafe extern "C" fn() -> i32, _> =
            entry(&lib, "libc", "libc.so.6", "getpid");
        assert!(found.is_ok());
    }
}
