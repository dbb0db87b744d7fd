use std::time::Instant;

use bytes::Bytes;

use super::clock::WRAP;
use super::{Counters, Demuxed, Demuxer, TsError, MAX_PES_BYTES, SYNC, TS_PACKET};
use crate::media::h264::{avcc_nal_units, AvcConfig};
use crate::media::{CodecConfig, Track};

const AV: &[u8] = include_bytes!("../testdata/h264-aac-320x240.ts");
const AV_PACKETS: &str = include_str!("../testdata/h264-aac-320x240.packets.txt");
const HEVC: &[u8] = include_bytes!("../testdata/hevc-pat-pmt.ts");
const VIDEO_PID: u16 = 0x100;
const AUDIO_PID: u16 = 0x101;

/// Output without the arrival instant, comparable across runs.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Config(CodecConfig),
    Packet(Track, i64, i64, bool, bool, Bytes),
}

fn drain(d: &mut Demuxer, out: &mut Vec<Out>) {
    while let Some(x) = d.poll() {
        out.push(match x {
            Demuxed::Config(c) => Out::Config(c),
            Demuxed::Packet(p) => {
                assert_eq!(p.stream, 9);
                Out::Packet(p.track, p.dts, p.pts, p.keyframe, p.discontinuity, p.data)
            }
        });
    }
}

/// Demuxes `data` in chunks of the given sizes (cycled), then flushes.
fn demux_chunked(data: &[u8], sizes: &[usize]) -> (Vec<Out>, Counters) {
    let mut d = Demuxer::new(9);
    let now = Instant::now();
    let mut out = Vec::new();
    let mut rest = data;
    for &n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        d.push(chunk, now).unwrap();
        drain(&mut d, &mut out);
        rest = tail;
    }
    d.flush(now);
    drain(&mut d, &mut out);
    (out, *d.counters())
}

fn demux(data: &[u8]) -> (Vec<Out>, Counters) {
    demux_chunked(data, &[data.len().max(1)])
}

/// (dts, pts, keyframe, data) of one track's packets.
fn track(out: &[Out], want: Track) -> Vec<(i64, i64, bool, Bytes)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Packet(t, dts, pts, key, _, data) if *t == want => {
                Some((*dts, *pts, *key, data.clone()))
            }
            _ => None,
        })
        .collect()
}

/// ffprobe's packets of one stream index: (dts, pts, size, keyframe).
fn reference(index: u32) -> Vec<(i64, i64, usize, bool)> {
    AV_PACKETS
        .lines()
        .filter_map(|line| {
            let field = |name: &str| {
                line.split('|')
                    .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                    .unwrap()
            };
            (field("stream_index") == index.to_string()).then(|| {
                (
                    field("dts").parse().unwrap(),
                    field("pts").parse().unwrap(),
                    field("size").parse().unwrap(),
                    field("flags").starts_with('K'),
                )
            })
        })
        .collect()
}

#[test]
fn demuxes_the_reference_capture_like_ffprobe() {
    let (out, counters) = demux(AV);
    let video = track(&out, Track::Video);
    let audio = track(&out, Track::Audio);
    let (ref_video, ref_audio) = (reference(0), reference(1));
    assert_eq!((video.len(), audio.len()), (30, 48));
    // Same times and keyframes as ffprobe, packet for packet.
    let times = |v: &[(i64, i64, bool, Bytes)]| -> Vec<_> {
        v.iter().map(|(d, p, k, _)| (*d, *p, *k)).collect()
    };
    let ref_times: Vec<_> = ref_video.iter().map(|(d, p, _, k)| (*d, *p, *k)).collect();
    assert_eq!(times(&video), ref_times);
    let keyframes: Vec<usize> = (0..30).filter(|&i| video[i].2).collect();
    assert_eq!(keyframes, vec![0, 15]);
    assert!(video.windows(2).all(|w| w[1].0 > w[0].0));
    assert!(video.iter().all(|(d, p, _, _)| p >= d));
    assert!(video.iter().any(|(d, p, _, _)| p > d), "B-frames reorder");
    // Audio: ffprobe's sizes include the 7-byte ADTS header we strip.
    let audio_ref: Vec<_> = ref_audio.iter().map(|(_, p, s, _)| (*p, s - 7)).collect();
    let audio_got: Vec<_> = audio.iter().map(|(_, p, _, d)| (*p, d.len())).collect();
    assert_eq!(audio_got, audio_ref);
    assert!(audio.windows(2).all(|w| w[1].1 - w[0].1 == 1920));
    assert!(audio.iter().all(|(d, p, k, _)| d == p && *k));
    // AVCC with 4-byte lengths, no AUD, in-band SPS/PPS kept on keyframes.
    for (i, (_, _, key, data)) in video.iter().enumerate() {
        let nals: Vec<&[u8]> = avcc_nal_units(data, 4).collect();
        let len: usize = nals.iter().map(|n| n.len() + 4).sum();
        assert_eq!(len, data.len(), "packet {i} tiles exactly");
        let types: Vec<u8> = nals.iter().map(|n| n[0] & 0x1f).collect();
        assert!(!types.contains(&9), "packet {i} has an AUD");
        assert_eq!(*key, types.contains(&5));
        if *key {
            assert!(types.contains(&7) && types.contains(&8), "{types:?}");
        }
        // ffprobe's size is Annex-B with the 6-byte AUD (00 00 00 01 09 f0).
        let annexb_size = ref_video[i].2;
        assert!(data.len() < annexb_size, "packet {i}");
    }
    // One config per track, each before the track's first packet.
    let configs: Vec<&CodecConfig> = out
        .iter()
        .filter_map(|o| match o {
            Out::Config(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(configs.len(), 2);
    let first = |f: &dyn Fn(&Out) -> bool| out.iter().position(f).unwrap();
    let avc_at = first(&|o| matches!(o, Out::Config(CodecConfig::Avc(_))));
    let aac_at = first(&|o| matches!(o, Out::Config(CodecConfig::Aac(_))));
    assert!(avc_at < first(&|o| matches!(o, Out::Packet(Track::Video, ..))));
    assert!(aac_at < first(&|o| matches!(o, Out::Packet(Track::Audio, ..))));
    let Out::Config(CodecConfig::Avc(avc)) = &out[avc_at] else {
        unreachable!()
    };
    assert_eq!((avc.width, avc.height, avc.fps), (320, 240, Some(30.0)));
    assert_eq!((avc.profile_name(), avc.nal_length_size), ("High", 4));
    assert_eq!(avc.codec_string(), "avc1.64000d");
    let Out::Config(CodecConfig::Aac(aac)) = &out[aac_at] else {
        unreachable!()
    };
    assert_eq!(
        (aac.object_type, aac.sample_rate, aac.channels),
        (2, 48000, 2)
    );
    assert_eq!(&aac.raw[..], &[0x11, 0x90]);
    assert_eq!(
        counters,
        Counters {
            ts_packets: (AV.len() / TS_PACKET) as u64,
            ..Counters::default()
        }
    );
}

#[test]
fn any_chunking_gives_the_same_output() {
    let (whole, _) = demux(AV);
    for sizes in [
        &[1][..],
        &[7 * TS_PACKET][..],
        &[187, 189, 1, 376, 5][..],
        &[1316, 13, 2048, 100, 1][..],
    ] {
        let (out, counters) = demux_chunked(AV, sizes);
        assert_eq!(out, whole, "chunks {sizes:?}");
        assert_eq!(counters.skipped_bytes, 0);
    }
}

#[test]
fn garbage_prefix_is_skipped_and_sync_found() {
    // Pseudo-random bytes with stray sync bytes that lead nowhere.
    let mut seed = 0x2545_f491_u32;
    let mut garbage: Vec<u8> = (0..1000)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            match (seed >> 16) as u8 {
                SYNC => 0,
                b => b,
            }
        })
        .collect();
    for i in (0..1000).step_by(97) {
        garbage[i] = SYNC;
    }
    let mut data = garbage.clone();
    data.extend_from_slice(AV);
    let (clean, _) = demux(AV);
    for sizes in [&[data.len()][..], &[1][..], &[1316][..]] {
        let (out, counters) = demux_chunked(&data, sizes);
        assert_eq!(out, clean);
        assert_eq!(counters.skipped_bytes, 1000);
        assert_eq!(counters.resyncs, 0);
    }
}

#[test]
fn torn_packet_costs_a_resync_and_damages_one_access_unit() {
    // Cut 100 bytes out of a video packet in the middle of the file.
    let at = find_packet(AV, VIDEO_PID, false, 60) + 50;
    let mut data = AV[..at].to_vec();
    data.extend_from_slice(&AV[at + 100..]);
    let (out, counters) = demux_chunked(&data, &[1316]);
    assert_eq!(counters.resyncs, 1);
    assert!(counters.skipped_bytes > 0);
    assert_eq!(counters.continuity_errors, 1);
    assert_eq!((counters.damaged_pes, counters.dropped_pes), (1, 0));
    assert_eq!(track(&out, Track::Video).len(), 30);
    assert_eq!(track(&out, Track::Audio).len(), 48);
}

#[test]
fn continuity_errors_are_counted_not_fatal() {
    // Drop one TS packet from the middle of a video PES: that access unit
    // comes out 184 bytes short, at its time; every other one intact.
    let at = find_packet(AV, VIDEO_PID, false, 40);
    let mut data = AV[..at].to_vec();
    data.extend_from_slice(&AV[at + TS_PACKET..]);
    let (out, counters) = demux(&data);
    assert_eq!(counters.continuity_errors, 1);
    assert_eq!((counters.damaged_pes, counters.dropped_pes), (1, 0));
    let video = track(&out, Track::Video);
    let clean = track(&demux(AV).0, Track::Video);
    assert_eq!(video.len(), 30);
    let differ: Vec<usize> = (0..30).filter(|&i| video[i] != clean[i]).collect();
    assert_eq!(differ.len(), 1, "{differ:?}");
    let i = differ[0];
    assert_eq!(video[i].0, clean[i].0);
    assert_eq!(video[i].3.len() + 184, clean[i].3.len());
}

/// Sets a wrong continuity counter on about `percent` % of the TS packets of
/// `pids` (a fixed pseudo-random pattern); the data stays intact.
fn corrupt_cc(ts: &[u8], pids: &[u16], percent: u64) -> (Vec<u8>, usize) {
    let mut out = ts.to_vec();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut hit = 0;
    for p in out.chunks_mut(TS_PACKET) {
        let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if pids.contains(&pid) && seed % 100 < percent {
            let cc = p[3] & 0x0f;
            p[3] = (p[3] & 0xf0) | ((cc + 1 + (seed >> 8) as u8 % 15) & 0x0f);
            hit += 1;
        }
    }
    (out, hit)
}

/// Issue 30: with 5 % of TS packets carrying bad continuity counters (a
/// lossy UDP contribution), 12 s of publish gave 0 video packets: every
/// PES with a gap was dropped, and a video PES spans dozens of packets.
/// A damaged PES is now kept: every access unit comes out, its bytes intact.
#[test]
fn five_percent_bad_continuity_counters_keep_every_video_frame() {
    let (clean, _) = demux(AV);
    let (data, hit) = corrupt_cc(AV, &[VIDEO_PID, AUDIO_PID], 5);
    assert!(hit >= 8, "{hit} packets corrupted");
    let (out, counters) = demux_chunked(&data, &[1316]);
    let (video, clean_video) = (track(&out, Track::Video), track(&clean, Track::Video));
    assert_eq!(video.len(), clean_video.len(), "{counters:?}");
    assert!(video == clean_video, "access units differ: {counters:?}");
    assert!(
        out.iter()
            .any(|o| matches!(o, Out::Config(CodecConfig::Avc(_)))),
        "no video config"
    );
    // A bad counter breaks the run twice (into it and out of it).
    assert!(counters.continuity_errors >= hit as u64, "{counters:?}");
    assert!(counters.damaged_pes > 0, "{counters:?}");
    // Audio with a gap is still dropped (a few frames), the rest comes out.
    let audio = track(&out, Track::Audio).len();
    assert!((40..=48).contains(&audio), "{audio} audio frames");
}

/// The same loss as missing packets: video keeps coming, one access unit
/// per PES that started, damaged where a piece is gone.
#[test]
fn five_percent_lost_packets_keep_the_video_going() {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut lost_starts = 0;
    let data: Vec<u8> = AV
        .chunks(TS_PACKET)
        .filter(|p| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
            let lose = pid == VIDEO_PID && seed % 100 < 5;
            lost_starts += usize::from(lose && p[1] & 0x40 != 0);
            !lose
        })
        .flatten()
        .copied()
        .collect();
    let (out, counters) = demux_chunked(&data, &[1316]);
    let video = track(&out, Track::Video);
    // A lost unit start merges that frame's tail into the one before.
    assert_eq!(video.len(), 30 - lost_starts, "{counters:?}");
    assert!(counters.damaged_pes > 0 && counters.continuity_errors > 0);
    assert!(video.windows(2).all(|w| w[1].0 > w[0].0));
    assert_eq!(track(&out, Track::Audio).len(), 48);
}

#[test]
fn pts_wrap_is_unwrapped_into_continuous_time() {
    let (clean, _) = demux(AV);
    // Video wraps after its 9th frame; then the wrap falls between the
    // first video (2^33 − 2000) and the first audio (2080) packet.
    for offset in [WRAP - 150_000, WRAP - 128_000] {
        let wrapped = rewrite_timestamps(AV, |_, t| Some((t as i64 + offset) as u64));
        let (out, counters) = demux(&wrapped);
        assert_eq!(counters.bad_composition_offsets, 0);
        for want in [Track::Video, Track::Audio] {
            let (a, b) = (track(&clean, want), track(&out, want));
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!((y.0 - x.0, y.1 - x.1), (offset, offset), "{want:?}");
            }
        }
        assert!(out
            .iter()
            .all(|o| !matches!(o, Out::Packet(_, _, _, _, true, _))));
    }
}

#[test]
fn backward_jump_is_a_discontinuity_and_time_keeps_going() {
    // From 0.5 s on, every PES is stamped 20 s earlier (an encoder restart).
    let cut = 126_000 + 45_000;
    let jumped = rewrite_timestamps(AV, |_, t| {
        Some(if t >= cut {
            t + WRAP as u64 - 1_800_000
        } else {
            t
        })
    });
    let (out, _) = demux(&jumped);
    for want in [Track::Video, Track::Audio] {
        let flags: Vec<bool> = out
            .iter()
            .filter_map(|o| match o {
                Out::Packet(t, _, _, _, disc, _) if *t == want => Some(*disc),
                _ => None,
            })
            .collect();
        assert_eq!(flags.iter().filter(|d| **d).count(), 1, "{want:?}");
        let packets = track(&out, want);
        assert!(packets.windows(2).all(|w| w[1].0 >= w[0].0), "{want:?}");
        assert!(packets.iter().all(|(d, p, _, _)| p >= d));
    }
}

#[test]
fn hevc_is_refused_by_name() {
    let mut d = Demuxer::new(1);
    let now = Instant::now();
    let err = d.push(HEVC, now).unwrap_err();
    assert_eq!(
        err,
        TsError::UnsupportedStream {
            pid: 0x100,
            stream_type: 0x24,
            name: "HEVC"
        }
    );
    assert!(err.is_fatal());
    let text = err.to_string();
    assert!(text.contains("HEVC") && text.contains("0x24"), "{text}");
    // The publish stays refused.
    assert_eq!(d.push(AV, now), Err(err));
}

#[test]
fn unsupported_audio_is_refused_unless_aac_is_there_too() {
    let now = Instant::now();
    let mut d = Demuxer::new(1);
    let err = d.push(&psi(&[(0x1b, 0x100), (0x04, 0x101)]), now);
    assert!(
        matches!(&err, Err(e) if e.to_string().contains("MPEG-2 audio")),
        "{err:?}"
    );
    let mut d = Demuxer::new(1);
    d.push(
        &psi(&[(0x1b, 0x100), (0x0f, 0x101), (0x81, 0x102), (0x86, 0x103)]),
        now,
    )
    .unwrap();
    assert_eq!(d.counters().ignored_streams, 2);
}

#[test]
fn adts_with_crc_split_across_pes_at_44100() {
    let mut ts = psi(&[(0x0f, AUDIO_PID)]);
    let frame = |payload: &[u8]| {
        // ADTS, protection present (9-byte header), LC, 44.1 kHz, stereo, one block.
        let len = payload.len() + 9;
        let mut f = vec![
            0xff,
            0xf0,
            (1 << 6) | (4 << 2),
            (2 << 6) | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len & 7) << 5) as u8 | 0x1f,
            0xfc,
            0xab,
            0xcd,
        ];
        f.extend_from_slice(payload);
        f
    };
    let (a, b, c) = (frame(&[1; 10]), frame(&[2; 20]), frame(&[3; 30]));
    let mut first = a.clone();
    first.extend_from_slice(&b[..12]);
    let mut second = b[12..].to_vec();
    second.extend_from_slice(&c);
    let mut cc = 0;
    let p1 = 900_000;
    let p2 = p1 + 2 * 2090;
    ts.extend(ts_packets(
        AUDIO_PID,
        &mut cc,
        &pes(0xc0, Some(p1), None, &first, true),
    ));
    ts.extend(ts_packets(
        AUDIO_PID,
        &mut cc,
        &pes(0xc0, Some(p2), None, &second, true),
    ));
    let (out, counters) = demux(&ts);
    assert_eq!(counters.adts_skipped_bytes, 0);
    let audio = track(&out, Track::Audio);
    let got: Vec<_> = audio.iter().map(|(_, p, _, d)| (*p, d.clone())).collect();
    let p1 = p1 as i64;
    assert_eq!(
        got,
        vec![
            (p1, Bytes::from(vec![1; 10])),
            (p1 + 2089, Bytes::from(vec![2; 20])), // 1024 × 90000 / 44100 = 2089.8
            (p2 as i64, Bytes::from(vec![3; 30])),
        ]
    );
    let Some(Out::Config(CodecConfig::Aac(cfg))) = out.first() else {
        panic!("config first: {out:?}")
    };
    assert_eq!((cfg.sample_rate, cfg.channels), (44100, 2));
}

#[test]
fn video_waits_for_parameter_sets_and_follows_their_changes() {
    let (clean, _) = demux(AV);
    let Some(Out::Config(CodecConfig::Avc(small))) = clean
        .iter()
        .find(|o| matches!(o, Out::Config(CodecConfig::Avc(_))))
    else {
        panic!("no AVC config")
    };
    let big = AvcConfig::parse(Bytes::from_static(
        crate::media::h264::tests::AVCC_720P30_HIGH,
    ))
    .unwrap();
    let annexb = |nals: &[&[u8]]| {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(n);
        }
        v
    };
    let aud: &[u8] = &[0x09, 0xf0];
    let idr: &[u8] = &[0x65, 0x88, 0x84];
    let mut ts = psi(&[(0x1b, VIDEO_PID)]);
    let mut cc = 0;
    let units = [
        annexb(&[aud, idr]),
        annexb(&[
            aud,
            &small.sps[0],
            &small.pps[0],
            &[0x06, 5, 1, 0xff, 0x80],
            idr,
        ]),
        annexb(&[aud, &[0x41, 0x9a]]),
        annexb(&[aud, &big.sps[0], &big.pps[0], idr]),
    ];
    for (i, au) in units.iter().enumerate() {
        let t = 90_000 + 3000 * i as u64;
        ts.extend(ts_packets(
            VIDEO_PID,
            &mut cc,
            &pes(0xe0, Some(t), Some(t), au, false),
        ));
    }
    let (out, counters) = demux(&ts);
    assert_eq!(counters.video_before_config, 1);
    let kinds: Vec<String> = out
        .iter()
        .map(|o| match o {
            Out::Config(CodecConfig::Avc(c)) => format!("config {}x{}", c.width, c.height),
            Out::Packet(_, dts, _, key, _, data) => {
                let types: Vec<u8> = avcc_nal_units(data, 4).map(|n| n[0] & 0x1f).collect();
                format!("{dts} {key} {types:?}")
            }
            o => format!("{o:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "config 320x240",
            "93000 true [7, 8, 6, 5]",
            "96000 false [1]",
            "config 1280x720",
            "99000 true [7, 8, 5]",
        ]
    );
}

#[test]
fn oversized_pes_is_dropped_and_counted() {
    let mut ts = psi(&[(0x1b, VIDEO_PID)]);
    let mut cc = 0;
    let mut body = vec![0, 0, 0, 1, 0x65];
    body.resize(MAX_PES_BYTES + 1000, 0x11);
    ts.extend(ts_packets(
        VIDEO_PID,
        &mut cc,
        &pes(0xe0, Some(0), None, &body, false),
    ));
    ts.extend(ts_packets(
        VIDEO_PID,
        &mut cc,
        &pes(0xe0, Some(3000), None, &[0, 0, 1, 0x09], false),
    ));
    let (out, counters) = demux(&ts);
    assert_eq!((counters.oversized_pes, counters.dropped_pes), (1, 1));
    assert!(out.is_empty());
}

/// Issue 30: PES whose headers cannot be read (no 00 00 01 prefix) behind a
/// valid PAT/PMT give nothing, and each is counted (it was silent).
#[test]
fn unreadable_pes_headers_give_nothing_and_are_counted() {
    let mut ts = psi(&[(0x1b, VIDEO_PID), (0x0f, AUDIO_PID)]);
    let (mut vcc, mut acc) = (0, 0);
    for i in 0..20u8 {
        let junk: Vec<u8> = (0..400).map(|j| (j as u8).wrapping_mul(31) ^ i).collect();
        ts.extend(ts_packets(VIDEO_PID, &mut vcc, &junk));
        ts.extend(ts_packets(AUDIO_PID, &mut acc, &junk[..100]));
    }
    let (out, counters) = demux(&ts);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(counters.dropped_pes, 40);
    assert_eq!(counters.continuity_errors, 0);
}

#[test]
fn bogus_pes_lengths_never_overrun() {
    // An audio PES that claims 20 bytes but carries a whole ADTS frame of 40.
    let mut ts = psi(&[(0x0f, AUDIO_PID)]);
    let mut cc = 0;
    let mut frame = vec![0xff, 0xf1, 0x4c, 0x80, 0x05, 0x1f, 0xfc];
    frame.resize(40, 7);
    let mut p = pes(0xc0, Some(0), None, &frame, true);
    p[4..6].copy_from_slice(&20u16.to_be_bytes());
    ts.extend(ts_packets(AUDIO_PID, &mut cc, &p));
    let (out, counters) = demux(&ts);
    assert!(counters.pes_length_mismatches >= 1);
    assert!(track(&out, Track::Audio).is_empty());
}

// --- builders for hand-made streams ---

/// Byte offset of the `nth` TS packet on `pid` with (or without) unit start.
fn find_packet(ts: &[u8], pid: u16, start: bool, nth: usize) -> usize {
    ts.chunks(TS_PACKET)
        .enumerate()
        .filter(|(_, p)| {
            (u16::from(p[1] & 0x1f) << 8 | u16::from(p[2])) == pid && (p[1] & 0x40 != 0) == start
        })
        .nth(nth)
        .map(|(i, _)| i * TS_PACKET)
        .unwrap()
}

/// Rewrites every PTS and DTS on the video and audio PIDs; `f` gets the
/// PES's decode time (its DTS, else PTS) and a timestamp.
fn rewrite_timestamps(ts: &[u8], f: impl Fn(u64, u64) -> Option<u64>) -> Vec<u8> {
    let mut out = ts.to_vec();
    for p in out.chunks_mut(TS_PACKET) {
        let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
        if p[1] & 0x40 == 0 || (pid != VIDEO_PID && pid != AUDIO_PID) {
            continue;
        }
        let start = if p[3] & 0x20 != 0 {
            5 + p[4] as usize
        } else {
            4
        };
        let pes = &mut p[start..];
        assert_eq!(&pes[..3], &[0, 0, 1]);
        let flags = pes[7] >> 6;
        let read = |b: &[u8]| {
            (u64::from(b[0] & 0x0e) << 29)
                | u64::from(b[1]) << 22
                | u64::from(b[2] >> 1) << 15
                | u64::from(b[3]) << 7
                | u64::from(b[4] >> 1)
        };
        let pts = read(&pes[9..14]);
        let dts = if flags == 3 { read(&pes[14..19]) } else { pts };
        let shift = |t: u64| f(dts, t).unwrap() % WRAP as u64;
        let (new_pts, new_dts) = (shift(pts), shift(dts));
        write_ts(&mut pes[9..14], new_pts);
        if flags == 3 {
            write_ts(&mut pes[14..19], new_dts);
        }
    }
    out
}

/// Writes a 33-bit timestamp, keeping the 4-bit prefix already there.
fn write_ts(b: &mut [u8], t: u64) {
    b[0] = (b[0] & 0xf0) | ((t >> 29) as u8 & 0x0e) | 1;
    b[1] = (t >> 22) as u8;
    b[2] = ((t >> 14) as u8 & 0xfe) | 1;
    b[3] = (t >> 7) as u8;
    b[4] = ((t << 1) as u8) | 1;
}

/// A PES packet; `bounded` writes its length (else 0, as for video).
fn pes(
    stream_id: u8,
    pts: Option<u64>,
    dts: Option<u64>,
    payload: &[u8],
    bounded: bool,
) -> Vec<u8> {
    let mut header = Vec::new();
    let flags = match (pts, dts) {
        (Some(p), Some(d)) => {
            header.extend_from_slice(&[0x31, 0, 0, 0, 0, 0x11, 0, 0, 0, 0]);
            write_ts(&mut header[..5], p);
            write_ts(&mut header[5..], d);
            0xc0
        }
        (Some(p), None) => {
            header.extend_from_slice(&[0x21, 0, 0, 0, 0]);
            write_ts(&mut header[..5], p);
            0x80
        }
        _ => 0,
    };
    let len = if bounded {
        3 + header.len() + payload.len()
    } else {
        0
    };
    let mut v = vec![0, 0, 1, stream_id, (len >> 8) as u8, len as u8, 0x80, flags];
    v.push(header.len() as u8);
    v.extend_from_slice(&header);
    v.extend_from_slice(payload);
    v
}

/// Splits a PES into TS packets, the last one padded with adaptation stuffing.
fn ts_packets(pid: u16, cc: &mut u8, pes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, chunk) in pes.chunks(184).enumerate() {
        let start = if i == 0 { 0x40 } else { 0 };
        out.extend_from_slice(&[SYNC, start | (pid >> 8) as u8, pid as u8]);
        if chunk.len() == 184 {
            out.push(0x10 | *cc);
        } else {
            out.push(0x30 | *cc);
            let af = 183 - chunk.len();
            out.push(af as u8);
            if af > 0 {
                out.push(0);
                out.resize(out.len() + af - 1, 0xff);
            }
        }
        out.extend_from_slice(chunk);
        *cc = (*cc + 1) & 0xf;
    }
    out
}

/// A PAT (program 1 on PID 0x1000) and its PMT listing `streams` (type, PID).
fn psi(streams: &[(u8, u16)]) -> Vec<u8> {
    let pat = [0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00];
    let mut pmt = vec![0x00, 0x01, 0xc1, 0x00, 0x00, 0xe1, 0x00, 0xf0, 0x00];
    for &(kind, pid) in streams {
        pmt.extend_from_slice(&[kind, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0x00]);
    }
    let mut out = section_packet(0, 0x00, &pat);
    out.extend(section_packet(0x1000, 0x02, &pmt));
    out
}

fn section_packet(pid: u16, table_id: u8, body: &[u8]) -> Vec<u8> {
    let len = body.len() + 4;
    let mut section = vec![table_id, 0xb0 | (len >> 8) as u8, len as u8];
    section.extend_from_slice(body);
    let crc = mpeg2ts_reader::mpegts_crc::sum32(&section);
    section.extend_from_slice(&crc.to_be_bytes());
    let mut p = vec![SYNC, 0x40 | (pid >> 8) as u8, pid as u8, 0x10, 0];
    p.extend_from_slice(&section);
    p.resize(TS_PACKET, 0xff);
    p
}
