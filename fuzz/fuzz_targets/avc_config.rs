//! `avcC` records and AAC AudioSpecificConfigs from the network: errors, never panics.
//!
//! Also an in-band parameter-set change (issue 30): the input's first byte is
//! the length of an `avcC` record, the rest one AVCC access unit. When the
//! record parses, the unit goes through `AvcConfig::in_band_change`, and a
//! configuration it starts must be one the record parser reads back the same.
//! Seeds: `fuzz/seeds/avc_config/`.
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

    // [record length][avcC record][access unit]
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (record, unit) = rest.split_at((n as usize).min(rest.len()));
    let Ok(cfg) = AvcConfig::parse(Bytes::copy_from_slice(record)) else {
        return;
    };
    let Some(next) = cfg.in_band_change(unit) else {
        return;
    };
    let again = AvcConfig::parse(next.record.clone()).expect("an in-band change's record parses back");
    assert_eq!(again, next, "an in-band change's record reads back different");
    assert!(next.width >= 16 && next.height >= 16);
    // The packets keep their length prefixes.
    assert_eq!(next.nal_length_size, cfg.nal_length_size);
    // A change is a change of size, profile or level.
    assert_ne!(
        (next.width, next.height, next.profile_idc, next.level_idc),
        (cfg.width, cfg.height, cfg.profile_idc, cfg.level_idc),
        "in_band_change returned a configuration that changes nothing it checks"
    );
    let _ = next.codec_string();
    // The unit that started the new configuration is no change to it (its SPS
    // is the new record's, unless it was too long for the record's u16 length).
    if unit.len() <= u16::MAX as usize {
        assert!(
            next.in_band_change(unit).is_none(),
            "the same access unit changes the configuration it started"
        );
    }
});
