//! A rendition's DVR index: one fixed-size record per segment on disk,
//! appended after the segment's file is closed (so a record never names a
//! file that is not whole). Sans-IO: records to bytes and back.
//!
//! A record is `magic, crc32, payload`; a crash mid-append leaves a short
//! or corrupt tail, which [`decode`] stops at and reports, so recovery
//! truncates the file there and loses at most the segment being written.
//!
//! Compaction rewrites an index without the records of evicted segments
//! (otherwise a 24/7 stream's index grows 57 bytes a segment for ever): the
//! new file starts with a [`Head`] record (same size, its own magic) that
//! carries what the dropped records told the playlists (how many, and the
//! discontinuities among them), and replaces the old one by rename.

use crate::package::hls::SegmentEntry;

const MAGIC: u32 = 0x4c44_5652; // "LDVR"
const HEAD_MAGIC: u32 = 0x4c44_5648; // "LDVH"
const PAYLOAD: usize = 8 + 8 + 4 + 8 + 8 + 1 + 4 + 8;
/// Bytes per record.
pub const RECORD: usize = 4 + 4 + PAYLOAD;

/// One segment on disk: where it sits in the rendition's timeline and its size.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub msn: u64,
    /// Decode time of its first sample, in `timescale` ticks.
    pub start: u64,
    pub timescale: u32,
    /// Seconds.
    pub duration: f64,
    pub pdt_ms: u64,
    pub discontinuity: bool,
    pub init_version: u32,
    pub bytes: u64,
}

impl Record {
    pub fn of(e: &SegmentEntry, bytes: u64) -> Record {
        Record {
            msn: e.msn,
            start: e.start,
            timescale: e.timescale,
            duration: e.duration,
            pdt_ms: e.pdt_ms,
            discontinuity: e.discontinuity,
            init_version: e.init_version,
            bytes,
        }
    }

    /// The playlist's view of it (a whole segment: no parts).
    pub fn entry(&self) -> SegmentEntry {
        SegmentEntry {
            msn: self.msn,
            duration: self.duration,
            pdt_ms: self.pdt_ms,
            discontinuity: self.discontinuity,
            init_version: self.init_version,
            parts: Vec::new(),
            complete: true,
            start: self.start,
            timescale: self.timescale,
        }
    }

    pub fn encode(&self) -> [u8; RECORD] {
        let mut p = Vec::with_capacity(PAYLOAD);
        p.extend_from_slice(&self.msn.to_be_bytes());
        p.extend_from_slice(&self.start.to_be_bytes());
        p.extend_from_slice(&self.timescale.to_be_bytes());
        p.extend_from_slice(&self.duration.to_bits().to_be_bytes());
        p.extend_from_slice(&self.pdt_ms.to_be_bytes());
        p.push(u8::from(self.discontinuity));
        p.extend_from_slice(&self.init_version.to_be_bytes());
        p.extend_from_slice(&self.bytes.to_be_bytes());
        let mut out = [0u8; RECORD];
        out[..4].copy_from_slice(&MAGIC.to_be_bytes());
        out[4..8].copy_from_slice(&crc32fast::hash(&p).to_be_bytes());
        out[8..].copy_from_slice(&p);
        out
    }

    fn decode(b: &[u8; RECORD]) -> Option<Record> {
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(a)
        };
        if u32_at(0) != MAGIC || u32_at(4) != crc32fast::hash(&b[8..]) {
            return None;
        }
        let duration = f64::from_bits(u64_at(28));
        if !duration.is_finite() || duration < 0.0 || b[44] > 1 {
            return None;
        }
        Some(Record {
            msn: u64_at(8),
            start: u64_at(16),
            timescale: u32_at(24),
            duration,
            pdt_ms: u64_at(36),
            discontinuity: b[44] == 1,
            init_version: u32_at(45),
            bytes: u64_at(49),
        })
    }
}

/// What a compacted index's first record keeps of the records it dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    /// Segments evicted before the first record (the DVR playlist's media
    /// sequence counts them).
    pub evicted: u64,
    /// Discontinuity tags before the first record (its
    /// `EXT-X-DISCONTINUITY-SEQUENCE`).
    pub discontinuities: u64,
}

impl Head {
    pub fn encode(&self) -> [u8; RECORD] {
        let mut p = [0u8; PAYLOAD];
        p[..8].copy_from_slice(&self.evicted.to_be_bytes());
        p[8..16].copy_from_slice(&self.discontinuities.to_be_bytes());
        let mut out = [0u8; RECORD];
        out[..4].copy_from_slice(&HEAD_MAGIC.to_be_bytes());
        out[4..8].copy_from_slice(&crc32fast::hash(&p).to_be_bytes());
        out[8..].copy_from_slice(&p);
        out
    }

    fn decode(b: &[u8; RECORD]) -> Option<Head> {
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_be_bytes(a)
        };
        let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let crc = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        if magic != HEAD_MAGIC || crc != crc32fast::hash(&b[8..]) || b[24..].iter().any(|&x| x != 0)
        {
            return None;
        }
        Some(Head {
            evicted: u64_at(8),
            discontinuities: u64_at(16),
        })
    }
}

/// An index file read back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    pub head: Head,
    pub records: Vec<Record>,
    /// The length the head and whole records fill: anything after it (a
    /// torn or corrupt tail) is to be truncated.
    pub valid: usize,
}

/// Every whole record of an index file (after its head, if compacted).
pub fn decode(data: &[u8]) -> Decoded {
    let mut out = Decoded::default();
    let mut chunks = data.chunks_exact(RECORD).enumerate().peekable();
    if let Some((_, first)) = chunks.peek() {
        let mut b = [0u8; RECORD];
        b.copy_from_slice(first);
        if let Some(head) = Head::decode(&b) {
            out.head = head;
            out.valid = RECORD;
            chunks.next();
        }
    }
    for (i, chunk) in chunks {
        let mut b = [0u8; RECORD];
        b.copy_from_slice(chunk);
        match Record::decode(&b) {
            // Segment numbers only grow: a record out of order is damage too.
            Some(r) if out.records.last().is_none_or(|l: &Record| l.msn < r.msn) => {
                out.records.push(r);
                out.valid = (i + 1) * RECORD;
            }
            _ => break,
        }
    }
    out
}

/// A compacted index: the head, then the records still on disk.
pub fn compacted(head: &Head, records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity((records.len() + 1) * RECORD);
    out.extend_from_slice(&head.encode());
    for r in records {
        out.extend_from_slice(&r.encode());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(msn: u64) -> Record {
        Record {
            msn,
            start: msn * 180_000,
            timescale: 90_000,
            duration: 2.0,
            pdt_ms: 1_764_028_800_000 + msn * 2000,
            discontinuity: msn == 3,
            init_version: (msn / 3) as u32,
            bytes: 100_000 + msn,
        }
    }

    #[test]
    fn records_round_trip() {
        let mut file = Vec::new();
        for msn in 0..5 {
            file.extend_from_slice(&record(msn).encode());
        }
        let Decoded {
            head,
            records,
            valid,
        } = decode(&file);
        assert_eq!(head, Head::default());
        assert_eq!(valid, file.len());
        assert_eq!(records, (0..5).map(record).collect::<Vec<_>>());
        assert_eq!(records[3].entry().msn, 3);
        assert!(records[3].entry().discontinuity);
    }

    /// A crash mid-append: every cut of the last record, and a flipped bit
    /// anywhere in it, ends the index at the record before.
    #[test]
    fn a_torn_or_corrupt_tail_is_found() {
        let mut file = Vec::new();
        for msn in 0..3 {
            file.extend_from_slice(&record(msn).encode());
        }
        let whole = 2 * RECORD;
        for cut in whole..file.len() {
            let d = decode(&file[..cut]);
            assert_eq!((d.records.len(), d.valid), (2, whole), "cut at {cut}");
        }
        for byte in whole..file.len() {
            let mut bad = file.clone();
            bad[byte] ^= 0x10;
            let d = decode(&bad);
            assert_eq!((d.records.len(), d.valid), (2, whole), "bit in byte {byte}");
        }
        // A record that goes back in time is damage, not data.
        let mut back = file.clone();
        back.extend_from_slice(&record(1).encode());
        assert_eq!(decode(&back).valid, 3 * RECORD);
    }

    /// A compacted index reads back its head and the records kept, and
    /// appends after it work as before; a damaged head is no head (the
    /// file then reads as empty: its records are not trusted either).
    #[test]
    fn a_compacted_index_keeps_what_the_dropped_records_told() {
        let head = Head {
            evicted: 1234,
            discontinuities: 7,
        };
        let mut file = compacted(&head, &[record(1234), record(1235)]);
        file.extend_from_slice(&record(1236).encode());
        let d = decode(&file);
        assert_eq!(d.head, head);
        assert_eq!(d.valid, file.len());
        assert_eq!(
            d.records.iter().map(|r| r.msn).collect::<Vec<_>>(),
            [1234, 1235, 1236]
        );
        let mut bad = file.clone();
        bad[9] ^= 1;
        let d = decode(&bad);
        assert_eq!((d.head, d.records.len(), d.valid), (Head::default(), 0, 0));
        assert_eq!(decode(&compacted(&Head::default(), &[])).valid, RECORD);
    }
}
