//! A DVR index file as a crash (or a failing disk) may leave it: read back,
//! never panics; what it keeps is whole records, in order, byte for byte.
#![no_main]

use ladderd::store::dvr::index::{decode, RECORD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (records, valid) = decode(data);
    assert!(valid <= data.len() && valid == records.len() * RECORD);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(&r.encode()[..], &data[i * RECORD..(i + 1) * RECORD]);
        if i > 0 {
            assert!(records[i - 1].msn < r.msn);
        }
        let _ = r.entry();
    }
    // Truncating at `valid` (what recovery does) reads back the same.
    let (again, valid_again) = decode(&data[..valid]);
    assert_eq!((again, valid_again), (records, valid));
});
