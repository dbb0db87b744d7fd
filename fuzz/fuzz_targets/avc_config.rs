//! `avcC` records and AAC AudioSpecificConfigs from the network: errors, never panics.
#![no_main]

use bytes::Bytes;
use ladderd::media::aac::AudioSpecificConfig;
use ladderd::media::h264::AvcConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cfg) = AvcConfig::parse(Bytes::copy_from_slice(data)) {
        assert!(cfg.width >= 16 && cfg.height >= 16);
        let _ = cfg.codec_string();
    }
    let _ = AudioSpecificConfig::parse(Bytes::copy_from_slice(data));
});
