//! FLV tag bodies through the demuxer: first byte picks audio or video, the rest
//! is split into tags. Must never panic; packets must keep their invariants.
#![no_main]

use bytes::Bytes;
use ladderd::media::flv::{Demuxed, Demuxer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = Demuxer::new(1);
    let now = std::time::Instant::now();
    let mut last = [None::<i64>; 2];
    // Tags: [kind, ts(4), len(2), body...] repeated.
    let mut rest = data;
    while rest.len() >= 7 {
        let kind = rest[0];
        let ts = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let len = u16::from_be_bytes([rest[5], rest[6]]) as usize;
        let body = &rest[7..];
        let body = &body[..len.min(body.len())];
        rest = &rest[7 + body.len()..];
        let body = Bytes::copy_from_slice(body);
        let out = if kind & 1 == 0 { d.push_video(ts, &body, now) } else { d.push_audio(ts, &body, now) };
        if let Ok(Demuxed::Packet(p)) = out {
            assert!(p.pts >= p.dts);
            let i = (kind & 1) as usize;
            if let Some(l) = last[i] {
                assert!(p.dts >= l, "dts went backwards");
            }
            last[i] = Some(p.dts);
        }
    }
});
