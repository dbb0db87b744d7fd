//! The origin's request-line scanner (`RequestLines`, src/origin/conn.rs):
//! every byte a client sends goes through it before hyper sees it (issue 30).
//! Arbitrary bytes in arbitrary reads: never panics, and what its docs promise:
//! - it trips on a request line longer than the limit "however it is cut into
//!   reads": the same byte trips it whatever the chunking;
//! - when it trips, the line being read is over the limit (CRs not counted);
//! - the connection's first request line is always scanned (a long one trips
//!   it at its limit), unless the connection opens with the h2 preface, which
//!   stops the scan for good.
//!
//! Input: [max_uri_bytes][read size a][read size b][connection bytes...].
//! Seeds: `fuzz/seeds/http_request_lines/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

use ladderd::origin::conn::{RequestLines, UriTooLong};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// Feeds `data` in reads of the given sizes (cycled); the index of the read
/// that tripped, if one did (no reads after it: the connection is closed).
fn feed(max_uri: usize, data: &[u8], sizes: &[usize]) -> Option<usize> {
    let mut scan = RequestLines::new(max_uri);
    let mut at = 0;
    for (i, size) in sizes.iter().cycle().enumerate() {
        if at >= data.len() {
            return None;
        }
        let end = (at + size).min(data.len());
        match scan.on_read(&data[at..end]) {
            Ok(()) => at = end,
            Err(UriTooLong) => return Some(i),
        }
    }
    unreachable!()
}

fuzz_target!(|input: &[u8]| {
    let [max_uri, a, b, data @ ..] = input else {
        return;
    };
    let max_uri = *max_uri as usize;
    let max_line = max_uri + 1024;

    // Byte at a time: the read that trips is the byte that trips.
    let tripped = feed(max_uri, data, &[1]);

    // Whatever the reads, the same byte trips it.
    let sizes = [1 + *a as usize * 3, 1 + *b as usize];
    let chunked = feed(max_uri, data, &sizes);
    let expected = tripped.map(|t| {
        // The read holding byte t.
        let (mut at, mut i) = (0, 0);
        loop {
            let end = at + sizes[i % 2];
            if t < end {
                break i;
            }
            at = end;
            i += 1;
        }
    });
    assert_eq!(chunked, expected, "chunking changed where the scan trips");
    assert_eq!(
        feed(max_uri, data, &[data.len().max(1)]).is_some(),
        tripped.is_some(),
        "one read and byte-at-a-time reads disagree"
    );

    // Tripping: the line read so far is over the limit, CRs aside (at least
    // one byte over: a body's last bytes may share the line it starts).
    if let Some(t) = tripped {
        let start = data[..t].iter().rposition(|&c| c == b'\n').map_or(0, |n| n + 1);
        let line = data[start..=t].iter().filter(|&&c| c != b'\r').count();
        assert!(line > max_line, "tripped on a line of {line} bytes (limit {max_line})");
        assert!(data[t] != b'\n' && data[t] != b'\r');
    }

    // An h2c connection is never scanned.
    if data.starts_with(H2_PREFACE) {
        assert_eq!(tripped, None, "an h2 connection tripped the request-line scan");
        return;
    }
    // The first request line (after blank lines) is always scanned.
    let mut len = 0;
    let mut first_over = None;
    for (i, &c) in data.iter().enumerate() {
        match c {
            b'\r' => {}
            b'\n' if len == 0 => {}
            b'\n' => break,
            _ => {
                len += 1;
                if len > max_line {
                    first_over = Some(i);
                    break;
                }
            }
        }
    }
    if let Some(i) = first_over {
        assert_eq!(tripped, Some(i), "a first request line over the limit did not trip at its limit");
    }
});
