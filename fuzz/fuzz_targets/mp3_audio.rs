//! Publisher MP3 bytes through the re-encoder (symphonia decode, fdk-aac
//! encode): errors are fine, a panic or abort is not.
#![no_main]

use std::time::Instant;

use bytes::Bytes;
use ladderd::media::mp3::Mp3Config;
use ladderd::media::{Packet, Track};
use ladderd::transcode::audio::AudioTranscoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(cfg) = Mp3Config::from_frame(data) else {
        return;
    };
    let Ok(mut t) = AudioTranscoder::from_mp3(&cfg, 64_000) else {
        return;
    };
    let now = Instant::now();
    // The input as a run of frames split at every sync word.
    for (i, frame) in data.split(|b| *b == 0xff).enumerate() {
        let mut unit = vec![0xff];
        unit.extend_from_slice(frame);
        let p = Packet {
            stream: 0,
            track: Track::Audio,
            dts: i as i64 * 2160,
            pts: i as i64 * 2160,
            keyframe: true,
            discontinuity: false,
            data: Bytes::from(unit),
            arrival: now,
        };
        let _ = t.push(&p, &mut |_| {});
    }
});
