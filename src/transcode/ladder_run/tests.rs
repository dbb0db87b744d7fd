//! The ladder's unit tests: due rungs, rung errors and panics, threads,
//! the shared pool, the end-of-feed flush, drains, a rung behind.

use super::fan::Due;
use super::*;

/// The one "which rungs are due" decision: a half-rate rung takes the
/// boundary picture and every other one after it, even when a segment has an
/// odd number of pictures; a full-rate rung takes all.
#[test]
fn due_rungs_follow_the_segment_start() {
    let rung = |name: &str, frame_step| Rung {
        name: name.into(),
        width: 640,
        height: 360,
        frame_step,
        fps: 60.0 / frame_step as f64,
        bitrate_bps: 800_000,
    };
    let (full, half) = (rung("360p60", 1), rung("360p30", 2));
    let mut b = Boundaries::new(0.5);
    let mut keys: HashSet<i64> = [0, 15 * 1500, 30 * 1500].into_iter().collect();
    let mut taken = Vec::new();
    for i in 0..45i64 {
        let due = Due::of(i * 1500, &mut b, &mut keys, 1500);
        assert!(due.takes(&full));
        if due.decision.boundary {
            assert!(due.takes(&half), "picture {i} starts a segment");
        }
        if due.takes(&half) {
            taken.push(i);
        }
    }
    // 60 fps, 0.5 s segments of 30 pictures, keyframes every 15: the half-rate
    // rung takes the even pictures of each segment.
    assert_eq!(taken.len(), 23, "{taken:?}");
    assert!(taken.iter().all(|i| i % 2 == 0), "{taken:?}");
}
use crate::transcode::cpu::{BilinearScaler, OpenH264Decoder, OpenH264Encoder};
use crate::transcode::ladder::default_ladder;
use crate::transcode::{Encoder, Scaler};

/// 2 s of the demo pattern at 720p30, a keyframe every 0.5 s.
fn capture() -> (AvcConfig, Vec<Packet>) {
    let mut src = crate::transcode::pattern::PatternSource::new(1280, 720, 30, 2000, 15).unwrap();
    let (mut cfg, mut v) = (None, Vec::new());
    while v.len() < 60 {
        if let Some((c, p)) = src.next(1).unwrap() {
            cfg = cfg.or(c);
            v.push(p);
        }
    }
    (cfg.unwrap(), v)
}

/// An encoder that takes `delay` per picture: a rung that cannot keep up.
struct Slow(OpenH264Encoder, Duration);
impl Encoder for Slow {
    fn encode(&mut self, f: &Frame, idr: bool) -> Result<Option<EncodedFrame>, StageError> {
        std::thread::sleep(self.1);
        self.0.encode(f, idr)
    }
}

/// An encoder that panics on its `n`th picture (a codec library bug).
struct PanicsAt(OpenH264Encoder, usize);
impl Encoder for PanicsAt {
    fn encode(&mut self, f: &Frame, idr: bool) -> Result<Option<EncodedFrame>, StageError> {
        self.1 -= 1;
        assert!(self.1 > 0, "codec bug (test)");
        self.0.encode(f, idr)
    }
}

/// An encoder that fails (an out-of-memory, a refused picture) on its
/// `n`th picture only.
struct FailsAt(OpenH264Encoder, usize);
impl Encoder for FailsAt {
    fn encode(&mut self, f: &Frame, idr: bool) -> Result<Option<EncodedFrame>, StageError> {
        self.1 = self.1.saturating_sub(1);
        if self.1 == 1 {
            return Err(StageError::Encode {
                rung: "480p30".into(),
                pts: f.pts,
                reason: "out of memory (test)".into(),
            });
        }
        self.0.encode(f, idr)
    }
}

/// Issue 30: one rung's encode error costs that rung alone, up to its
/// next IDR (every later frame would refer to the one lost); the other
/// rung encodes every picture, and the error is returned once, for the
/// caller to count and log.
#[test]
fn a_rung_error_skips_that_rung_alone_to_its_next_idr() {
    let (cfg, packets) = capture();
    for mode in [RungMode::Inline, RungMode::Threads { queue: 4 }] {
        let mut l = ladder(&cfg, mode, |e| Box::new(FailsAt(e, 6)));
        let mut out: Vec<Vec<EncodedFrame>> = vec![Vec::new(), Vec::new()];
        let mut errors = 0;
        for p in &packets {
            errors += l.push(p, &mut |i, f| out[i].push(f)).is_err() as usize;
        }
        errors += l.finish(&mut |i, f| out[i].push(f)).is_err() as usize;
        assert_eq!(errors, 1, "{mode:?}: the error is reported once");
        assert_eq!(
            out[1].len(),
            packets.len(),
            "{mode:?}: the other rung is untouched"
        );
        // Picture 4 failed: 0-3 out, then nothing until the IDR at 15 (0.5 s).
        let pts: Vec<i64> = out[0].iter().map(|f| f.pts).collect();
        let all: Vec<i64> = out[1].iter().map(|f| f.pts).collect();
        assert_eq!(pts[..4], all[..4], "{mode:?}");
        assert_eq!(pts[4], all[15], "{mode:?}: resumes at the next boundary");
        assert!(out[0][4].keyframe, "{mode:?}");
        assert_eq!(pts.len(), packets.len() - 11, "{mode:?}");
        let stats = l.rungs().next().unwrap().1;
        assert_eq!((stats.errors, stats.dropped_error), (1, 10), "{mode:?}");
    }
}

/// A rung whose thread dies stops; the other rung and the ladder go on.
#[test]
fn a_rung_thread_that_panics_stops_only_that_rung() {
    let (cfg, packets) = capture();
    // Blocking queues: nothing is dropped for lag, so only the panic matters.
    let mut l = ladder(&cfg, RungMode::Threads { queue: 4 }, |e| {
        Box::new(PanicsAt(e, 5))
    });
    let mut out: Vec<Vec<EncodedFrame>> = vec![Vec::new(), Vec::new()];
    for p in &packets {
        l.push(p, &mut |i, f| out[i].push(f)).unwrap();
    }
    l.finish(&mut |i, f| out[i].push(f)).unwrap();
    assert_eq!(
        out[0].len(),
        4,
        "the panicking rung encoded until its panic"
    );
    assert_eq!(out[1].len(), packets.len(), "the other rung is untouched");
}

/// The 480p30 and 360p30 rungs of a 720p30 source, the first one's encoder
/// wrapped by `first` (slow, panicking, gated), 0.5 s segments (several
/// boundaries in the capture).
fn ladder(
    cfg: &AvcConfig,
    mode: RungMode,
    first: impl FnOnce(OpenH264Encoder) -> Box<dyn Encoder>,
) -> LadderRun {
    let rungs: Vec<Rung> = plan(&default_ladder(), cfg.width, cfg.height, 30.0)
        .into_iter()
        .filter(|r| r.height <= 480)
        .collect();
    assert_eq!(rungs.len(), 2, "480p30 and 360p30 from a 720p30 source");
    let mut first = Some(first);
    let stages = rungs
        .iter()
        .map(|r| {
            let enc = OpenH264Encoder::new(r).unwrap();
            let enc: Box<dyn Encoder> = match first.take() {
                Some(wrap) => wrap(enc),
                None => Box::new(enc),
            };
            (Box::new(BilinearScaler::new()) as Box<dyn Scaler>, enc)
        })
        .collect();
    let dec = Box::new(OpenH264Decoder::new(cfg.clone()).unwrap());
    LadderRun::assemble(dec, rungs, stages, 30.0, 0.5, mode).unwrap()
}

fn run(mut l: LadderRun, packets: &[Packet]) -> (LadderRun, Vec<Vec<EncodedFrame>>) {
    let mut out: Vec<Vec<EncodedFrame>> = vec![Vec::new(), Vec::new()];
    for p in packets {
        l.push(p, &mut |i, f| out[i].push(f)).unwrap();
    }
    l.finish(&mut |i, f| out[i].push(f)).unwrap();
    (l, out)
}

/// Threads, nothing dropped: every rung encodes every picture, in order,
/// with IDRs at the same pts on both rungs.
#[test]
fn rung_threads_encode_every_picture_in_order() {
    let (cfg, packets) = capture();
    let (l, out) = run(
        ladder(&cfg, RungMode::Threads { queue: 2 }, |e| {
            Box::new(Slow(e, Duration::from_millis(5)))
        }),
        &packets,
    );
    for frames in &out {
        assert_eq!(frames.len(), packets.len());
        assert!(
            frames.windows(2).all(|w| w[0].pts < w[1].pts),
            "per-rung order"
        );
    }
    let idr = |v: &Vec<EncodedFrame>| {
        v.iter()
            .filter(|f| f.keyframe)
            .map(|f| f.pts)
            .collect::<Vec<_>>()
    };
    assert_eq!(idr(&out[0]), idr(&out[1]));
    assert!(idr(&out[0]).len() >= 2);
    assert_eq!(l.latency.ladder_us.len() as usize, packets.len());
}

/// The values-out drive (`handle_*`, then `poll_output` until `None`, as
/// the stream driver does it) gives out what the callback drive does: the
/// same frames per rung, in order, with what the rung threads finish between
/// packets taken through `handle_rung_output`, and the last ones after
/// `handle_end`.
#[test]
fn poll_output_gives_out_every_frame_the_callback_would() {
    let (cfg, packets) = capture();
    let (_, expected) = run(ladder(&cfg, RungMode::Inline, |e| Box::new(e)), &packets);
    for mode in [RungMode::Inline, RungMode::Threads { queue: 2 }] {
        let mut l = ladder(&cfg, mode, |e| Box::new(e));
        let mut out: Vec<Vec<EncodedFrame>> = vec![Vec::new(), Vec::new()];
        let take = |l: &mut LadderRun, out: &mut Vec<Vec<EncodedFrame>>| {
            while let Some((i, f)) = l.poll_output() {
                out[i].push(f);
            }
        };
        for p in &packets {
            l.handle_packet(p).unwrap();
            take(&mut l, &mut out);
            if let Some(rx) = l.output_receiver() {
                while let Ok(o) = rx.try_recv() {
                    l.handle_rung_output(o).unwrap();
                    take(&mut l, &mut out);
                }
            }
        }
        l.handle_end().unwrap();
        take(&mut l, &mut out);
        l.end_result().unwrap();
        assert!(l.poll_output().is_none(), "{mode:?}: nothing after the end");
        for (rung, (got, want)) in out.iter().zip(&expected).enumerate() {
            let pts = |v: &Vec<EncodedFrame>| v.iter().map(|f| f.pts).collect::<Vec<_>>();
            assert_eq!(pts(got), pts(want), "{mode:?}, rung {rung}");
        }
    }
}

/// Six ladders at once (twelve rungs) share the worker pool: every rung
/// of every ladder encodes every picture, in order, and no thread is
/// started per rung (the process has only the pool's rung workers).
#[test]
fn ladders_share_the_worker_pool() {
    let (cfg, packets) = capture();
    let outs: Vec<Vec<Vec<EncodedFrame>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let cfg = cfg.clone();
                let packets = &packets;
                s.spawn(move || {
                    let l = ladder(&cfg, RungMode::Threads { queue: 2 }, |e| Box::new(e));
                    run(l, packets).1
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outs {
        for frames in out {
            assert_eq!(frames.len(), packets.len());
            assert!(frames.windows(2).all(|w| w[0].pts < w[1].pts));
        }
    }
    let rung_threads = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.starts_with("ladderd-rung"))
        })
        .count();
    assert_eq!(
        rung_threads,
        pool::workers(),
        "rung threads beside the pool"
    );
}

/// A decoder that holds every picture until its flush (a reorder delay
/// as long as the capture): the end of a feed in one burst.
struct HoldAll(OpenH264Decoder, Vec<Frame>);
impl Decoder for HoldAll {
    fn decode(&mut self, p: &Packet, _: &mut dyn FnMut(&mut Frame)) -> Result<(), StageError> {
        let held = &mut self.1;
        self.0.decode(p, &mut |f| held.push(f.clone()))
    }
    fn flush(&mut self, out: &mut dyn FnMut(&mut Frame)) -> Result<(), StageError> {
        let held = &mut self.1;
        self.0.flush(&mut |f| held.push(f.clone()))?;
        self.1.drain(..).for_each(|mut f| out(&mut f));
        Ok(())
    }
}

/// Realtime: the pictures a decoder gives out at the end of a feed reach
/// every rung, however slow, however small its queue (a drop there has
/// no next picture to cover it: a hole before the next input).
#[test]
fn the_end_of_feed_flush_drops_nothing_in_realtime_mode() {
    let (cfg, packets) = capture();
    let mut l = ladder(&cfg, RungMode::Realtime { queue: 1 }, |e| {
        Box::new(Slow(e, Duration::from_millis(5)))
    });
    l.decoder = Box::new(HoldAll(
        OpenH264Decoder::new(cfg.clone()).unwrap(),
        Vec::new(),
    ));
    let (l, out) = run(l, &packets);
    for (frames, (_, stats)) in out.iter().zip(l.rungs()) {
        assert_eq!(stats.dropped_behind, 0);
        assert_eq!(frames.len(), packets.len());
    }
}

/// The B-frame capture's ladder, with drains (a spare openh264 decoder).
fn drainable(mode: RungMode) -> (LadderRun, Vec<Packet>) {
    let (cfg, packets) = crate::transcode::cpu::decoder::tests::capture();
    let mut l = ladder(&cfg, mode, |e| Box::new(e));
    let spare_cfg = cfg.clone();
    l.set_spare_decoder(Box::new(move || {
        Ok(Box::new(OpenH264Decoder::new(spare_cfg.clone())?) as Box<dyn Decoder>)
    }));
    (l, packets)
}

/// A drain `step` packets at a time ([`LadderRun::drain_step`]); `usize::MAX`:
/// [`LadderRun::drain`] itself.
fn drain_by(l: &mut LadderRun, step: usize, out: &mut Outputs) -> usize {
    if step == usize::MAX {
        return l.drain(&mut |i, f| out[i].push(f)).unwrap();
    }
    if !l.start_drain().unwrap() {
        return 0;
    }
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(l.draining());
        if let Some(gave) = l.drain_step(step, &mut |i, f| out[i].push(f)).unwrap() {
            assert!(!l.draining());
            assert!(
                step > 1 || steps > 1,
                "a one-packet step replayed a whole GOP"
            );
            return gave;
        }
    }
}

/// The B-frame capture through `ladder` with drains, pushed up to `cut`,
/// drained (`step` packets at a time), then the rest pushed.
fn drained_run(mode: RungMode, step: usize, cut: impl Fn(&[Packet]) -> usize) -> DrainedRun {
    let (mut l, packets) = drainable(mode);
    let cut = cut(&packets);
    let mut out: Outputs = vec![Vec::new(), Vec::new()];
    for p in &packets[..cut] {
        l.push(p, &mut |i, f| out[i].push(f)).unwrap();
    }
    if mode == RungMode::Inline {
        assert!(
            out[0].len() < cut,
            "the decoder held nothing back: no test of the drain"
        );
    }
    let gave = drain_by(&mut l, step, &mut out);
    assert!(gave > 0, "{mode:?}: the drain gave nothing out");
    let sent_max = packets[..cut].iter().map(|p| p.pts).max().unwrap();
    let caught_up = |_: &LadderRun, o: &Outputs| {
        o.iter()
            .all(|r| r.last().is_some_and(|f| f.pts == sent_max))
    };
    if mode != RungMode::Inline {
        wait(&mut l, &mut out, caught_up);
    }
    assert!(
        caught_up(&l, &out),
        "{mode:?}: rungs stop short of the last picture sent"
    );
    assert_eq!(drain_by(&mut l, step, &mut out), 0, "nothing new");
    for p in &packets[cut..] {
        l.push(p, &mut |i, f| out[i].push(f)).unwrap();
    }
    l.finish(&mut |i, f| out[i].push(f)).unwrap();
    for r in &out {
        assert!(
            r.windows(2).all(|w| w[0].pts < w[1].pts),
            "{mode:?}: pts out of order or twice"
        );
    }
    DrainedRun {
        l,
        out,
        packets,
        cut,
    }
}

struct DrainedRun {
    l: LadderRun,
    out: Outputs,
    packets: Vec<Packet>,
    cut: usize,
}

/// Latest pts before `k`, earliest from `k` on.
fn split_pts(packets: &[Packet], k: usize) -> (i64, i64) {
    let before = packets[..k].iter().map(|p| p.pts).max().unwrap();
    let after = packets[k..].iter().map(|p| p.pts).min().unwrap();
    (before, after)
}

/// Issue 30: a publisher gone silent left the pictures the decoder holds
/// for reordering out of every rendition until input came back. A drain
/// gives them to every rung, and the ladder goes on with the next
/// packets: every picture once, in order, nothing dropped (the pause
/// falls between mini-GOPs). The same whether the replay runs at once or
/// a packet or three per step (the driver's wakes).
#[test]
fn a_drain_gives_out_what_the_decoder_holds_and_the_ladder_goes_on() {
    let runs = [
        (RungMode::Inline, usize::MAX),
        (RungMode::Threads { queue: 2 }, usize::MAX),
        (RungMode::Inline, 1),
        (RungMode::Threads { queue: 2 }, 3),
    ];
    for (mode, step) in runs {
        let r = drained_run(mode, step, |packets| {
            (packets.len() / 2..packets.len())
                .find(|&k| {
                    let (before, after) = split_pts(packets, k);
                    before < after && !packets[k].keyframe
                })
                .expect("a cut between mini-GOPs")
        });
        let mut want: Vec<i64> = r.packets.iter().map(|p| p.pts).collect();
        want.sort();
        for frames in &r.out {
            let pts: Vec<i64> = frames.iter().map(|f| f.pts).collect();
            assert_eq!(pts, want, "{mode:?}: cut at {}", r.cut);
        }
        assert_eq!(r.l.decoded, r.packets.len() as u64, "{mode:?}");
        assert_eq!(
            (r.l.drains(), r.l.dropped_after_drain()),
            (1, 0),
            "{mode:?}"
        );
    }
}

/// A pause inside a mini-GOP (after a P-frame, before the B-frames that
/// show before it): the drain gives the P-frame out, so those B-frames,
/// sent after the pause, are dropped and counted; the timeline only
/// goes forward.
#[test]
fn b_frames_sent_after_a_drain_that_show_before_it_are_dropped() {
    let r = drained_run(RungMode::Inline, usize::MAX, |packets| {
        (packets.len() / 2..packets.len())
            .find(|&k| split_pts(packets, k).0 > split_pts(packets, k).1)
            .expect("a cut inside a mini-GOP")
    });
    let (before, _) = split_pts(&r.packets, r.cut);
    let late = r.packets[r.cut..].iter().filter(|p| p.pts < before).count();
    assert!(late > 0);
    assert_eq!(r.l.dropped_after_drain(), late as u64);
    for frames in &r.out {
        assert_eq!(frames.len(), r.packets.len() - late, "cut at {}", r.cut);
    }
}

/// The input comes back while a drain is under way (replayed a packet
/// per step): the next video packet cancels it, the live decoder gives
/// out what it held, and every picture reaches every rung once, in
/// order, nothing dropped.
#[test]
fn input_back_during_a_drain_cancels_it_and_loses_nothing() {
    let (mut l, packets) = drainable(RungMode::Inline);
    // Between mini-GOPs, at least two packets after the latest keyframe
    // (a one-packet step then leaves the replay unfinished).
    let cut = (packets.len() / 2..packets.len())
        .find(|&k| {
            let (before, after) = split_pts(&packets, k);
            let key = packets[..k].iter().rposition(|p| p.keyframe);
            before < after && !packets[k].keyframe && key.is_some_and(|key| k - key >= 2)
        })
        .expect("a cut between mini-GOPs");
    let mut out: Outputs = vec![Vec::new(), Vec::new()];
    for p in &packets[..cut] {
        l.push(p, &mut |i, f| out[i].push(f)).unwrap();
    }
    assert!(l.start_drain().unwrap());
    assert_eq!(l.drain_step(1, &mut |i, f| out[i].push(f)).unwrap(), None);
    assert!(l.draining(), "one packet of a longer GOP: still replaying");
    for p in &packets[cut..] {
        l.push(p, &mut |i, f| out[i].push(f)).unwrap();
        assert!(!l.draining(), "a video packet cancels the drain");
    }
    assert_eq!(l.drain_step(1, &mut |i, f| out[i].push(f)).unwrap(), None);
    l.finish(&mut |i, f| out[i].push(f)).unwrap();
    let mut want: Vec<i64> = packets.iter().map(|p| p.pts).collect();
    want.sort();
    for frames in &out {
        let pts: Vec<i64> = frames.iter().map(|f| f.pts).collect();
        assert_eq!(pts, want, "cut at {cut}");
    }
    assert_eq!(
        (l.drains(), l.drains_cancelled(), l.dropped_after_drain()),
        (0, 1, 0)
    );
}

/// An encoder that waits for a token per picture: a rung held back on cue.
struct Gated(OpenH264Encoder, flume::Receiver<()>);
impl Encoder for Gated {
    fn encode(&mut self, f: &Frame, idr: bool) -> Result<Option<EncodedFrame>, StageError> {
        // Bounded, so a failing test cannot leave the thread (and the
        // join in LadderRun's drop) waiting forever.
        let _ = self.1.recv_timeout(Duration::from_secs(20));
        self.0.encode(f, idr)
    }
}

type Outputs = Vec<Vec<EncodedFrame>>;

/// Takes rung results until `done` holds (10 s at most).
fn wait(l: &mut LadderRun, out: &mut Outputs, done: impl Fn(&LadderRun, &Outputs) -> bool) {
    let rx = l.output_receiver().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(l, out) {
        let left = deadline.saturating_duration_since(Instant::now());
        let o = rx.recv_timeout(left).expect("rung results in time");
        l.accept(o, &mut |i, f| out[i].push(f)).unwrap();
    }
}

/// Realtime: a rung held back fills its queue, then drops the pictures
/// it has no room for, except the segment boundary's (picture 15, its
/// spare slot), and takes every picture again once it can; the other
/// rung encodes every picture. Deterministic: the held rung waits on a
/// gate, the test waits for the free rung.
#[test]
fn a_rung_behind_drops_pictures_but_never_its_segment_boundary() {
    let (cfg, packets) = capture();
    let (gate_tx, gate_rx) = flume::unbounded();
    // A boundary every 15 pictures (the source's GOP).
    let mut l = ladder(&cfg, RungMode::Realtime { queue: 2 }, |e| {
        Box::new(Gated(e, gate_rx))
    });
    let mut out: Outputs = vec![Vec::new(), Vec::new()];
    // Every picture pushed is answered by the free rung; once released,
    // by the held one too (or dropped by it): nothing races the queues.
    let held_done = |l: &LadderRun, o: &Outputs, n: usize| {
        o[0].len() as u64 + l.rungs().next().unwrap().1.dropped_behind == n as u64 + 1
    };
    for (n, p) in packets.iter().enumerate() {
        l.push(p, &mut |i, f| out[i].push(f)).unwrap();
        let released = n > 20;
        wait(&mut l, &mut out, |l, o| {
            o[1].len() == n + 1 && (!released || held_done(l, o, n))
        });
        if n == 20 {
            for _ in 0..packets.len() {
                gate_tx.send(()).unwrap();
            }
            wait(&mut l, &mut out, |l, o| held_done(l, o, n));
        }
    }
    l.finish(&mut |i, f| out[i].push(f)).unwrap();
    let stats: Vec<RungStats> = l.rungs().map(|(_, s)| s.clone()).collect();
    assert_eq!(out[1].len(), packets.len(), "the free rung loses nothing");
    assert_eq!(stats[1].dropped_behind, 0);
    // Held with 1 picture in its encoder and 2 queued: 3..=14 and 16..=20
    // dropped (one more if the thread had not taken picture 0 yet).
    assert!(
        (17..=18).contains(&stats[0].dropped_behind),
        "{} dropped",
        stats[0].dropped_behind
    );
    assert_eq!(
        out[0].len() as u64 + stats[0].dropped_behind,
        packets.len() as u64
    );
    let all: Vec<i64> = out[1].iter().map(|f| f.pts).collect();
    let at = |k: usize| out[0].iter().position(|f| f.pts == all[k]);
    let boundary = at(15).expect("the boundary picture was dropped");
    assert!(out[0][boundary].keyframe, "boundary without an IDR");
    assert!((16..=20).all(|k| at(k).is_none()), "a picture without room");
    // Released: every picture from 21 on, IDRs at the boundaries only.
    let resumed = at(21).expect("picture 21 encoded");
    assert_eq!(out[0].len() - resumed, packets.len() - 21);
    assert!(out[0][resumed..]
        .iter()
        .all(|f| f.keyframe == (all.iter().position(|&p| p == f.pts).unwrap() % 15 == 0)));
}
