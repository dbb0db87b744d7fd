//! A DVR index file as a crash (or a failing disk) may leave it: read back,
//! never panics; what it keeps is whole records, in order, byte for byte.
#![no_main]

use ladderd::store::dvr::index::{compacted, decode, RECORD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let d = decode(data);
    let (records, valid) = (&d.records, d.valid);
    // A head, if any, is the first record's place.
    let skip = valid - records.len() * RECORD;
    assert!(valid <= data.len() && (skip == 0 || skip == RECORD));
    if skip == RECORD {
        assert_eq!(&d.head.encode()[..], &data[..RECORD]);
    }
    for (i, r) in records.iter().enumerate() {
        let at = skip + i * RECORD;
        assert_eq!(&r.encode()[..], &data[at..at + RECORD]);
        if i > 0 {
            assert!(records[i - 1].msn < r.msn);
        }
        let _ = r.entry();
    }
    // Truncating at `valid` (what recovery does) reads back the same.
    assert_eq!(decode(&data[..valid]), d);
    // Compacting what was read reads back the same records.
    let again = decode(&compacted(&d.head, records));
    assert_eq!((again.head, &again.records), (d.head, records));
});
