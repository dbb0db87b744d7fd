//! The part of libsrt's C API the listener uses, declared by hand from Debian's
//! `srt.h` (libsrt 1.5.1) and opened at run time with libloading: the binary
//! builds and runs without libsrt (no SRT listener then, and `ladderd probe`
//! says why), and the library is the very one Debian's ffmpeg loads.

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

use crate::dylib::{self, Unavailable};

pub type SrtSocket = c_int;
pub const SRT_INVALID_SOCK: SrtSocket = -1;
pub const SRT_ERROR: c_int = -1;

/// `SRT_SOCKOPT` values used here (srt.h).
pub const SRTO_RCVSYN: c_int = 2;
pub const SRTO_RCVTIMEO: c_int = 14;
pub const SRTO_REUSEADDR: c_int = 15;
pub const SRTO_PASSPHRASE: c_int = 26;
pub const SRTO_PBKEYLEN: c_int = 27;
pub const SRTO_RCVLATENCY: c_int = 43;
pub const SRTO_STREAMID: c_int = 46;

/// `srt_setrejectreason` codes (access_control.h).
pub const SRT_REJX_BAD_REQUEST: c_int = 1400;
pub const SRT_REJX_FORBIDDEN: c_int = 1403;
pub const SRT_REJX_NOTFOUND: c_int = 1404;
pub const SRT_REJX_BAD_MODE: c_int = 1405;
pub const SRT_REJX_CONFLICT: c_int = 1409;
pub const SRT_REJX_OVERLOAD: c_int = 1402;

/// `SRT_EASYNCRCV`: a receive timed out (SRTO_RCVTIMEO) with nothing to read.
pub const SRT_EASYNCRCV: c_int = 6002;
/// `SRT_ETIMEOUT`: a blocking receive ran out its SRTO_RCVTIMEO.
pub const SRT_ETIMEOUT: c_int = 6003;

/// `struct CBytePerfMon` (srt.h, 1.5.1), field for field. Only a few fields
/// are read; the rest keep the layout.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct ByteStats {
    pub ms_timestamp: i64,
    pub pkt_sent_total: i64,
    pub pkt_recv_total: i64,
    pub pkt_snd_loss_total: c_int,
    pub pkt_rcv_loss_total: c_int,
    pub pkt_retrans_total: c_int,
    pub pkt_sent_ack_total: c_int,
    pub pkt_recv_ack_total: c_int,
    pub pkt_sent_nak_total: c_int,
    pub pkt_recv_nak_total: c_int,
    pub us_snd_duration_total: i64,
    pub pkt_snd_drop_total: c_int,
    pub pkt_rcv_drop_total: c_int,
    pub pkt_rcv_undecrypt_total: c_int,
    pub byte_sent_total: u64,
    pub byte_recv_total: u64,
    pub byte_rcv_loss_total: u64,
    pub byte_retrans_total: u64,
    pub byte_snd_drop_total: u64,
    pub byte_rcv_drop_total: u64,
    pub byte_rcv_undecrypt_total: u64,
    pub pkt_sent: i64,
    pub pkt_recv: i64,
    pub pkt_snd_loss: c_int,
    pub pkt_rcv_loss: c_int,
    pub pkt_retrans: c_int,
    pub pkt_rcv_retrans: c_int,
    pub pkt_sent_ack: c_int,
    pub pkt_recv_ack: c_int,
    pub pkt_sent_nak: c_int,
    pub pkt_recv_nak: c_int,
    pub mbps_send_rate: f64,
    pub mbps_recv_rate: f64,
    pub us_snd_duration: i64,
    pub pkt_reorder_distance: c_int,
    pub pkt_rcv_avg_belated_time: f64,
    pub pkt_rcv_belated: i64,
    pub pkt_snd_drop: c_int,
    pub pkt_rcv_drop: c_int,
    pub pkt_rcv_undecrypt: c_int,
    pub byte_sent: u64,
    pub byte_recv: u64,
    pub byte_rcv_loss: u64,
    pub byte_retrans: u64,
    pub byte_snd_drop: u64,
    pub byte_rcv_drop: u64,
    pub byte_rcv_undecrypt: u64,
    pub us_pkt_snd_period: f64,
    pub pkt_flow_window: c_int,
    pub pkt_congestion_window: c_int,
    pub pkt_flight_size: c_int,
    pub ms_rtt: f64,
    pub mbps_bandwidth: f64,
    pub byte_avail_snd_buf: c_int,
    pub byte_avail_rcv_buf: c_int,
    pub mbps_max_bw: f64,
    pub byte_mss: c_int,
    pub pkt_snd_buf: c_int,
    pub byte_snd_buf: c_int,
    pub ms_snd_buf: c_int,
    pub ms_snd_tsbpd_delay: c_int,
    pub pkt_rcv_buf: c_int,
    pub byte_rcv_buf: c_int,
    pub ms_rcv_buf: c_int,
    pub ms_rcv_tsbpd_delay: c_int,
    pub pkt_snd_filter_extra_total: c_int,
    pub pkt_rcv_filter_extra_total: c_int,
    pub pkt_rcv_filter_supply_total: c_int,
    pub pkt_rcv_filter_loss_total: c_int,
    pub pkt_snd_filter_extra: c_int,
    pub pkt_rcv_filter_extra: c_int,
    pub pkt_rcv_filter_supply: c_int,
    pub pkt_rcv_filter_loss: c_int,
    pub pkt_reorder_tolerance: c_int,
    pub pkt_sent_unique_total: i64,
    pub pkt_recv_unique_total: i64,
    pub byte_sent_unique_total: u64,
    pub byte_recv_unique_total: u64,
    pub pkt_sent_unique: i64,
    pub pkt_recv_unique: i64,
    pub byte_sent_unique: u64,
    pub byte_recv_unique: u64,
}

pub type ListenCallback = unsafe extern "C" fn(
    opaque: *mut c_void,
    ns: SrtSocket,
    hsversion: c_int,
    peer: *const libc::sockaddr,
    streamid: *const c_char,
) -> c_int;

pub type LogHandler = unsafe extern "C" fn(
    opaque: *mut c_void,
    level: c_int,
    file: *const c_char,
    line: c_int,
    area: *const c_char,
    message: *const c_char,
);

/// libsrt's entry points.
pub struct Srt {
    _lib: libloading::Library,
    pub startup: unsafe extern "C" fn() -> c_int,
    pub create_socket: unsafe extern "C" fn() -> SrtSocket,
    pub setsockflag: unsafe extern "C" fn(SrtSocket, c_int, *const c_void, c_int) -> c_int,
    pub getsockflag: unsafe extern "C" fn(SrtSocket, c_int, *mut c_void, *mut c_int) -> c_int,
    pub bind: unsafe extern "C" fn(SrtSocket, *const libc::sockaddr, c_int) -> c_int,
    pub listen: unsafe extern "C" fn(SrtSocket, c_int) -> c_int,
    pub listen_callback: unsafe extern "C" fn(SrtSocket, ListenCallback, *mut c_void) -> c_int,
    pub accept: unsafe extern "C" fn(SrtSocket, *mut libc::sockaddr, *mut c_int) -> SrtSocket,
    pub recvmsg: unsafe extern "C" fn(SrtSocket, *mut c_char, c_int) -> c_int,
    pub bstats: unsafe extern "C" fn(SrtSocket, *mut ByteStats, c_int) -> c_int,
    pub close: unsafe extern "C" fn(SrtSocket) -> c_int,
    pub getlasterror: unsafe extern "C" fn(*mut c_int) -> c_int,
    pub getlasterror_str: unsafe extern "C" fn() -> *const c_char,
    pub setrejectreason: unsafe extern "C" fn(SrtSocket, c_int) -> c_int,
    pub getrejectreason: unsafe extern "C" fn(SrtSocket) -> c_int,
    pub setloghandler: unsafe extern "C" fn(*mut c_void, LogHandler),
    pub setloglevel: unsafe extern "C" fn(c_int),
}

/// Names Debian ships libsrt under (the GnuTLS flavour ffmpeg loads first).
const NAMES: &[&str] = &[
    "libsrt-gnutls.so.1.5",
    "libsrt.so.1.5",
    "libsrt-openssl.so.1.5",
    "libsrt-gnutls.so",
    "libsrt.so",
];

/// libsrt, opened once per process (`srt_startup` called), or why not.
/// A socket option libsrt refused, with its words.
#[derive(Debug, Clone, thiserror::Error)]
#[error("SRT option {opt}: {reason}")]
pub struct OptionError {
    pub opt: c_int,
    pub reason: String,
}

pub fn srt() -> Result<&'static Srt, Unavailable> {
    static SRT: OnceLock<Result<Srt, Unavailable>> = OnceLock::new();
    SRT.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Srt, Unavailable> {
    // SAFETY: libsrt's initialisers only set up its own globals.
    let (lib, file) = unsafe { dylib::open("libsrt", NAMES, "install Debian's libsrt1.5-gnutls") }?;
    let fail = |reason: String| Unavailable::new("libsrt", &[file], reason);
    macro_rules! sym {
        ($name:literal) => {{
            // SAFETY: each symbol's type is its C declaration in srt.h 1.5.1,
            // written out above; the library lives as long as the table.
            let s = unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                .map_err(|e| fail(format!("{}: {e}", $name)))?;
            *s
        }};
    }
    let srt = Srt {
        startup: sym!("srt_startup"),
        create_socket: sym!("srt_create_socket"),
        setsockflag: sym!("srt_setsockflag"),
        getsockflag: sym!("srt_getsockflag"),
        bind: sym!("srt_bind"),
        listen: sym!("srt_listen"),
        listen_callback: sym!("srt_listen_callback"),
        accept: sym!("srt_accept"),
        recvmsg: sym!("srt_recvmsg"),
        bstats: sym!("srt_bstats"),
        close: sym!("srt_close"),
        getlasterror: sym!("srt_getlasterror"),
        getlasterror_str: sym!("srt_getlasterror_str"),
        setrejectreason: sym!("srt_setrejectreason"),
        getrejectreason: sym!("srt_getrejectreason"),
        setloghandler: sym!("srt_setloghandler"),
        setloglevel: sym!("srt_setloglevel"),
        _lib: lib,
    };
    // SAFETY: srt_startup has no preconditions; it is called once (OnceLock).
    if unsafe { (srt.startup)() } < 0 {
        return Err(fail(format!("srt_startup: {}", srt.last_error())));
    }
    Ok(srt)
}

impl Srt {
    /// The calling thread's last libsrt error, as text.
    pub fn last_error(&self) -> String {
        // SAFETY: srt_getlasterror_str returns a thread-local C string (or null).
        let p = unsafe { (self.getlasterror_str)() };
        if p.is_null() {
            return "unknown SRT error".into();
        }
        // SAFETY: non-null, NUL-terminated, valid until the next libsrt call on this thread.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned()
    }

    /// The calling thread's last libsrt error code.
    pub fn last_error_code(&self) -> c_int {
        // SAFETY: a null errno pointer is allowed.
        unsafe { (self.getlasterror)(std::ptr::null_mut()) }
    }

    /// Sets an integer socket option.
    pub fn set_int(&self, s: SrtSocket, opt: c_int, v: c_int) -> Result<(), OptionError> {
        // SAFETY: `v` outlives the call; its size is passed.
        let rc = unsafe {
            (self.setsockflag)(
                s,
                opt,
                &v as *const c_int as *const c_void,
                std::mem::size_of::<c_int>() as c_int,
            )
        };
        self.check(rc, opt)
    }

    /// Sets a string socket option (passphrase, stream id).
    pub fn set_str(&self, s: SrtSocket, opt: c_int, v: &str) -> Result<(), OptionError> {
        // SAFETY: the bytes outlive the call; libsrt copies them.
        let rc =
            unsafe { (self.setsockflag)(s, opt, v.as_ptr() as *const c_void, v.len() as c_int) };
        self.check(rc, opt)
    }

    fn check(&self, rc: c_int, opt: c_int) -> Result<(), OptionError> {
        if rc == SRT_ERROR {
            Err(OptionError {
                opt,
                reason: self.last_error(),
            })
        } else {
            Ok(())
        }
    }

    /// Receiver statistics (`srt_bstats`), counters since the start.
    pub fn stats(&self, s: SrtSocket) -> Option<ByteStats> {
        let mut st = ByteStats::default();
        // SAFETY: `st` is a `CBytePerfMon` laid out as in srt.h 1.5.1.
        let rc = unsafe { (self.bstats)(s, &mut st, 0) };
        (rc != SRT_ERROR).then_some(st)
    }

    pub fn close_socket(&self, s: SrtSocket) {
        // SAFETY: closing an id libsrt gave us; a stale id is an error, not UB.
        unsafe { (self.close)(s) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout of `CBytePerfMon` as gcc lays it out for srt.h 1.5.1 (x86-64).
    #[test]
    fn byte_stats_has_the_c_layout() {
        // Measured with gcc and Debian's srt.h: sizeof 496, msRTT at 328,
        // msRcvBuf at 388, mbpsRecvRate at 192.
        assert_eq!(std::mem::size_of::<ByteStats>(), 496);
        assert_eq!(std::mem::offset_of!(ByteStats, ms_rtt), 328);
        assert_eq!(std::mem::offset_of!(ByteStats, ms_rcv_buf), 388);
        assert_eq!(std::mem::offset_of!(ByteStats, mbps_recv_rate), 192);
    }
}
