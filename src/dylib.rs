//! Libraries opened at run time (libsrt, FFmpeg's libavcodec and libswscale,
//! NVIDIA's NVDEC and NVENC): one error for all of them, cached by each
//! loader's `OnceLock`, so `probe`, the log and every caller say what was
//! missing the same way: which library, the files tried, and why.

/// Why a library opened at run time cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{lib} unavailable (tried {}): {reason}", .tried.join(", "))]
pub struct Unavailable {
    /// The library as an operator knows it (`libsrt`, `NVENC`).
    pub lib: &'static str,
    /// The file names tried (after a file opened: that file).
    pub tried: Vec<String>,
    /// The loader's words: dlopen's error, a missing symbol, a wrong version.
    pub reason: String,
}

impl Unavailable {
    pub fn new(lib: &'static str, tried: &[&str], reason: impl Into<String>) -> Self {
        Unavailable {
            lib,
            tried: tried.iter().map(|t| t.to_string()).collect(),
            reason: reason.into(),
        }
    }
}

/// Opens the first of `names` that loads, returning it with its name; when
/// none does, the reason is the last dlopen error, then `hint` (what to
/// install) if it is not empty.
///
/// # Safety
/// Opening runs the library's initialisers: they must not depend on the
/// caller's state (true of the libraries above).
pub unsafe fn open<'a>(
    lib: &'static str,
    names: &[&'a str],
    hint: &str,
) -> Result<(libloading::Library, &'a str), Unavailable> {
    let mut last = String::from("no file names");
    for name in names {
        // SAFETY: the caller's contract.
        match unsafe { libloading::Library::new(*name) } {
            Ok(l) => return Ok((l, name)),
            // libloading's Display is "dlopen failed"; dlerror's words are its source.
            Err(e) => last = std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string()),
        }
    }
    if !hint.is_empty() {
        last = format!("{last}; {hint}");
    }
    Err(Unavailable::new(lib, names, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_library_the_files_tried_and_why() {
        let e = Unavailable::new(
            "libsrt",
            &["libsrt-gnutls.so.1.5", "libsrt.so.1.5"],
            "libsrt.so.1.5: cannot open shared object file",
        );
        assert_eq!(
            e.to_string(),
            "libsrt unavailable (tried libsrt-gnutls.so.1.5, libsrt.so.1.5): \
             libsrt.so.1.5: cannot open shared object file"
        );
    }

    #[test]
    fn a_missing_library_is_unavailable_with_the_names_tried() {
        let names = ["libladderd-missing-a.so.1", "libladderd-missing-b.so"];
        // SAFETY: neither file exists, so no initialiser runs.
        let e = match unsafe { open("libmissing", &names, "install nothing") } {
            Ok(_) => panic!("a library that does not exist opened"),
            Err(e) => e,
        };
        assert_eq!(e.lib, "libmissing");
        assert_eq!(e.tried, names);
        assert!(
            e.reason.contains("libladderd-missing-b.so") && e.reason.ends_with("; install nothing"),
            "{e}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with(
                "libmissing unavailable (tried libladderd-missing-a.so.1, libladderd-missing-b.so): "
            ),
            "{text}"
        );
    }

    #[test]
    fn a_found_library_comes_back_with_its_name() {
        // SAFETY: libc's initialisers have run already in this process.
        let (_lib, name) = unsafe { open("libc", &["libladderd-missing.so", "libc.so.6"], "") }
            .expect("libc.so.6 opens");
        assert_eq!(name, "libc.so.6");
    }
}
