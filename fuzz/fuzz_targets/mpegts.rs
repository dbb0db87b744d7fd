//! Bytes through the MPEG-TS demuxer, in chunks the first input byte chooses.
//! Must never panic; packets keep their invariants; the split never changes
//! the output.
#![no_main]

use std::time::Instant;

use bytes::Bytes;
use ladderd::media::mpegts::{Demuxed, Demuxer};
use ladderd::media::{CodecConfig, Track};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Out {
    Config(CodecConfig),
    Packet(Track, i64, i64, bool, bool, Bytes),
}

/// Demuxes in chunks of `chunk` bytes; `None` once the publish is refused.
fn run(data: &[u8], chunk: usize, now: Instant) -> Option<Vec<Out>> {
    let mut d = Demuxer::new(1);
    let mut out = Vec::new();
    let mut refused = false;
    for piece in data.chunks(chunk) {
        refused |= d.push(piece, now).is_err();
        while let Some(x) = d.poll() {
            out.push(x);
        }
    }
    d.flush(now);
    while let Some(x) = d.poll() {
        out.push(x);
    }
    let mut last_dts = [None::<i64>; 2];
    let mut configured = [false; 2];
    let mut result = Vec::new();
    for x in out {
        match x {
            Demuxed::Config(c) => {
                configured[matches!(c, CodecConfig::Aac(_)) as usize] = true;
                result.push(Out::Config(c));
            }
            Demuxed::Packet(p) => {
                let i = (p.track == Track::Audio) as usize;
                assert!(configured[i], "{:?} packet before its config", p.track);
                assert!(p.pts >= p.dts, "pts below dts");
                if let Some(l) = last_dts[i] {
                    assert!(p.dts >= l, "{:?} dts went backwards", p.track);
                }
                last_dts[i] = Some(p.dts);
                if p.track == Track::Video {
                    // AVCC with 4-byte lengths that tile the access unit.
                    let mut rest = &p.data[..];
                    while !rest.is_empty() {
                        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                        rest = &rest[4 + len..];
                    }
                }
                result.push(Out::Packet(p.track, p.dts, p.pts, p.keyframe, p.discontinuity, p.data));
            }
        }
    }
    (!refused).then_some(result)
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, ts)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let chunk = match k % 4 {
        0 => 1 + k as usize,
        1 => 188,
        2 => 1316,
        _ => 1 + (k as usize) * 7,
    };
    let split = run(ts, chunk, now);
    let whole = run(ts, ts.len().max(1), now);
    if let (Some(a), Some(b)) = (split, whole) {
        assert_eq!(a, b, "chunking changed the output");
    }
});
