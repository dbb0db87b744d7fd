//! Which input a stream's renditions follow, as a sans-IO state machine
//! (after quinn-proto's `handle_event` / `poll_endpoint_events`): the
//! driver tells it what happened ([`Switcher::handle`] with `now`), then
//! applies what it decided ([`Switcher::poll`] until `None`). It owns the
//! timing rules and nothing else: failover to the backup after
//! `ingest.failover_after_ms` of silence, failback to the primary
//! (`ingest.failback`: at once, or on an operator's request), the slate
//! after `ingest.slate_after_ms` without input and off again when the feed
//! on air sends, and the end of the stream once nobody publishes for
//! `ingest.reconnect_window_secs`. The feeds themselves (their channels,
//! configurations, GOPs), the slate's pictures and the ladder stay with the
//! driver.
//!
//! Drive contract: after every [`Switcher::handle`], call [`Switcher::poll`]
//! until it returns `None` and apply each [`Decision`] in order before the
//! next `handle`. Call `handle(now, Event::Tick)` and
//! `handle(now, Event::SlateCheck)` (in that order, the ladder's pause
//! drain between them) when the time [`Switcher::poll_timeout`] says has
//! come, or earlier.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::Failback;
use crate::stream::inputs::Switch;
use crate::stream::Role;

/// The timing rules, from `[ingest]`.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// `failover_after_ms`: a feed silent this long has failed; a standby
    /// must have sent within it to take over.
    pub failover_after: Duration,
    /// `slate_after_ms` (None: 0, no slate).
    pub slate_after: Option<Duration>,
    pub failback: Failback,
    /// `reconnect_window_secs`: how long the renditions wait on the slate for
    /// the next publisher.
    pub reconnect_window: Duration,
}

/// What happened, as the driver tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A publisher of the NAME joined (a reconnect, a backup, a primary
    /// back beside its backup): [`Decision::OnAir`] or [`Decision::Standby`]
    /// says where it goes.
    Joined(Role),
    /// A packet from the feed on air.
    OnAirPacket,
    /// Input from the standby: a packet (`packet`), and whether it now has
    /// a video configuration and a keyframe to start on (`keyed`).
    StandbyInput { packet: bool, keyed: bool },
    /// The feed on air's channel closed; `parkable`: its publisher went
    /// away (closed, timed out, failed) rather than being kicked or shut
    /// down, so the renditions may wait for the next one.
    OnAirClosed { parkable: bool },
    /// The standby's channel closed.
    StandbyClosed,
    /// What the renditions have: a packager (`packager`) and a last video
    /// configuration to size the slate by (`video`).
    Renditions { packager: bool, video: bool },
    /// The slate could not be made, or stopped: no slate for this stream.
    SlateFailed,
    /// An operator asked to go back to the primary (`failback = "manual"`;
    /// ask with [`Switcher::wants_failback_request`] first).
    FailbackRequested,
    /// The process is shutting down: no slate, no waiting for a publisher.
    Shutdown,
    /// Time to check the feeds (failover, failback) and the reconnect window.
    Tick,
    /// Time to check whether the slate is due.
    SlateCheck,
}

/// What the driver is to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The publisher that joined goes on air; `replaces`: it takes over the
    /// one on air (filed as taken over). With the slate on air, the slate
    /// stays until the feed's first packet ([`Decision::SlateOff`]).
    OnAir { replaces: bool },
    /// The publisher that joined waits beside the one on air; `replaces`: it
    /// takes over the one waiting there.
    Standby { replaces: bool },
    /// The standby goes on air (re-timed from its latest keyframe), the feed
    /// on air (if any) becomes the standby; the slate, if on, goes off.
    Swap(Switch),
    /// No input for `slate_after_ms`: the slate goes on air.
    SlateOn,
    /// The feed on air sent again: the slate goes off (`input_returned`).
    SlateOff,
    /// No feed is left and the renditions do not wait (the publisher was
    /// kicked; `window_over`: the reconnect window passed): the NAME is
    /// handed back, unless a publish already reached the driver, which
    /// then goes on with the renditions (`Streams::retire`).
    Retire { window_over: bool },
    /// The stream ends now (nobody publishes and the renditions cannot wait:
    /// no window, shutting down, or nothing published yet).
    End,
}

/// What the switcher knows of one feed.
#[derive(Debug, Clone, Copy)]
struct Side {
    role: Role,
    /// Its latest packet (or when it joined).
    last_input: Instant,
    /// It has a video configuration and a keyframe to start on.
    keyed: bool,
}

impl Side {
    fn joined(role: Role, now: Instant) -> Side {
        Side {
            role,
            last_input: now,
            keyed: false,
        }
    }

    fn silent(&self, now: Instant, after: Duration) -> bool {
        now.saturating_duration_since(self.last_input) >= after
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slate {
    Off,
    On,
    /// It could not be made or stopped: not again for this stream.
    Failed,
}

#[derive(Debug)]
pub struct Switcher {
    rules: Rules,
    on_air: Option<Side>,
    standby: Option<Side>,
    /// The renditions' last input from a publisher.
    last_input: Instant,
    slate: Slate,
    packager: bool,
    video: bool,
    shutting_down: bool,
    failback_requested: bool,
    /// Set while no publisher is attached: when the renditions stop waiting.
    deadline: Option<Instant>,
    decisions: VecDeque<Decision>,
}

impl Switcher {
    /// A stream whose first publisher (`role`) is on air from `now`.
    pub fn new(rules: Rules, role: Role, now: Instant) -> Switcher {
        Switcher {
            rules,
            on_air: Some(Side::joined(role, now)),
            standby: None,
            last_input: now,
            slate: Slate::Off,
            packager: false,
            video: false,
            shutting_down: false,
            failback_requested: false,
            deadline: None,
            decisions: VecDeque::new(),
        }
    }

    /// The renditions' last input from a publisher (where the slate's clock
    /// starts).
    pub fn last_input(&self) -> Instant {
        self.last_input
    }

    /// Whether the slate is on air.
    pub fn slate_on(&self) -> bool {
        self.slate == Slate::On
    }

    /// Whether the renditions wait for a publisher (the reconnect window runs).
    pub fn waiting(&self) -> bool {
        self.deadline.is_some()
    }

    /// Whether an operator's failback request would be acted on now: a
    /// primary waits, ready, and `failback = "manual"`. Only then does the
    /// driver take the request (so one made earlier waits for it).
    pub fn wants_failback_request(&self, now: Instant) -> bool {
        self.rules.failback != Failback::Auto
            && self
                .standby
                .is_some_and(|s| s.role == Role::Primary && self.ready(&s, now))
    }

    /// When the switcher must next be ticked: the slate due, a standby to
    /// watch (every 100 ms), the reconnect window's end.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let standby = self.standby.map(|_| now + Duration::from_millis(100));
        [self.slate_due(), standby, self.deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next decision to apply, in order.
    pub fn poll(&mut self) -> Option<Decision> {
        self.decisions.pop_front()
    }

    pub fn handle(&mut self, now: Instant, event: Event) {
        match event {
            Event::Joined(role) => self.joined(role, now),
            Event::OnAirPacket => {
                if let Some(f) = &mut self.on_air {
                    f.last_input = now;
                    self.last_input = now;
                    if self.slate == Slate::On {
                        // The publisher is back: its own pictures again.
                        self.slate = Slate::Off;
                        self.decisions.push_back(Decision::SlateOff);
                    }
                }
            }
            Event::StandbyInput { packet, keyed } => {
                if let Some(f) = &mut self.standby {
                    if packet {
                        f.last_input = now;
                    }
                    f.keyed = keyed;
                }
            }
            Event::OnAirClosed { parkable } => {
                if self.on_air.take().is_none() {
                    return;
                }
                // Kicked or shut down, with no backup: the renditions end,
                // unless the publisher that took over is already queued.
                if !parkable && self.standby.is_none() {
                    self.decisions.push_back(if self.shutting_down {
                        Decision::End
                    } else {
                        Decision::Retire { window_over: false }
                    });
                    return;
                }
                // The backup (if any) takes over at the next tick.
                self.nobody_publishes(now);
            }
            Event::StandbyClosed => {
                if self.standby.take().is_some() {
                    self.nobody_publishes(now);
                }
            }
            Event::Renditions { packager, video } => {
                self.packager = packager;
                self.video = video;
            }
            Event::SlateFailed => self.slate = Slate::Failed,
            Event::FailbackRequested => self.failback_requested = true,
            Event::Shutdown => self.shutting_down = true,
            Event::Tick => {
                if self.deadline.is_some_and(|d| now >= d) {
                    self.decisions
                        .push_back(Decision::Retire { window_over: true });
                    return;
                }
                self.choose_feed(now);
            }
            Event::SlateCheck => {
                if self.slate_due().is_some_and(|at| at <= now) {
                    self.slate = Slate::On;
                    self.decisions.push_back(Decision::SlateOn);
                }
            }
        }
    }

    /// Where a joining publisher goes: on air if none is, or in place of
    /// the one of its role; else beside it.
    fn joined(&mut self, role: Role, now: Instant) {
        self.deadline = None;
        let side = Side::joined(role, now);
        let decision = match self.on_air.map(|f| f.role) {
            None => Decision::OnAir { replaces: false },
            Some(current) if current == role => Decision::OnAir { replaces: true },
            Some(_) => Decision::Standby {
                replaces: self.standby.is_some(),
            },
        };
        match decision {
            Decision::Standby { .. } => self.standby = Some(side),
            _ => self.on_air = Some(side),
        }
        self.decisions.push_back(decision);
    }

    /// Failover and failback between the two feeds.
    fn choose_feed(&mut self, now: Instant) {
        let Some(standby) = self.standby else {
            return;
        };
        if !self.ready(&standby, now) {
            return;
        }
        let after = self.rules.failover_after;
        let on_air_silent = self.on_air.is_none_or(|f| f.silent(now, after));
        let failback_wanted = standby.role == Role::Primary
            && (self.rules.failback == Failback::Auto
                || std::mem::take(&mut self.failback_requested));
        if on_air_silent {
            self.swap(match standby.role {
                Role::Backup => Switch::Failover,
                Role::Primary => Switch::Failback,
            });
        } else if failback_wanted {
            self.swap(Switch::Failback);
        }
    }

    fn swap(&mut self, why: Switch) {
        let Some(next) = self.standby.take() else {
            return;
        };
        if self.slate == Slate::On {
            self.slate = Slate::Off;
        }
        self.last_input = next.last_input;
        // The feed that goes off air keeps no GOP of its past.
        self.standby = self.on_air.replace(next).map(|mut f| {
            f.keyed = false;
            f
        });
        self.decisions.push_back(Decision::Swap(why));
    }

    /// Whether the standby can go on air now: recent input and a keyframe
    /// to start on.
    fn ready(&self, s: &Side, now: Instant) -> bool {
        !s.silent(now, self.rules.failover_after) && s.keyed
    }

    /// When the slate should go on air (None: it should not).
    fn slate_due(&self) -> Option<Instant> {
        let after = self.rules.slate_after?;
        if self.slate != Slate::Off || !self.packager || !self.video || self.shutting_down {
            return None;
        }
        Some(self.last_input + after)
    }

    /// No feed is left: the renditions wait out the reconnect window (on
    /// the slate), or end now.
    fn nobody_publishes(&mut self, now: Instant) {
        if self.on_air.is_some() || self.standby.is_some() || self.deadline.is_some() {
            return;
        }
        if self.rules.reconnect_window.is_zero() || self.shutting_down || !self.packager {
            self.decisions.push_back(Decision::End);
            return;
        }
        self.deadline = Some(now + self.rules.reconnect_window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(failback: Failback) -> Rules {
        Rules {
            failover_after: Duration::from_millis(2000),
            slate_after: Some(Duration::from_millis(2500)),
            failback,
            reconnect_window: Duration::from_secs(10),
        }
    }

    /// A fake clock: milliseconds after `t0`.
    struct Clock(Instant);
    impl Clock {
        fn at(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    fn decisions(s: &mut Switcher) -> Vec<Decision> {
        std::iter::from_fn(|| s.poll()).collect()
    }

    /// A switcher with the primary on air and publishing (renditions
    /// made), and a keyed backup beside it sending every 100 ms up to
    /// `until` ms; the primary sends up to `primary_until` ms.
    fn pair(failback: Failback, primary_until: u64, until: u64) -> (Clock, Switcher) {
        let c = Clock(Instant::now());
        let mut s = Switcher::new(rules(failback), Role::Primary, c.at(0));
        s.handle(
            c.at(0),
            Event::Renditions {
                packager: true,
                video: true,
            },
        );
        s.handle(c.at(0), Event::Joined(Role::Backup));
        assert_eq!(decisions(&mut s), [Decision::Standby { replaces: false }]);
        for ms in (0..=until).step_by(100) {
            if ms <= primary_until {
                s.handle(c.at(ms), Event::OnAirPacket);
            }
            s.handle(
                c.at(ms),
                Event::StandbyInput {
                    packet: true,
                    keyed: true,
                },
            );
            s.handle(c.at(ms), Event::Tick);
            s.handle(c.at(ms), Event::SlateCheck);
            if ms < primary_until + 2000 {
                assert_eq!(decisions(&mut s), [], "{ms} ms");
            }
        }
        (c, s)
    }

    /// The primary goes silent at 1 s: the backup takes over once it has
    /// been silent for failover_after_ms (2 s), not before; no slate, the
    /// backup's input keeps the renditions fed.
    #[test]
    fn failover_after_failover_after_ms_of_silence() {
        let (c, mut s) = pair(Failback::Auto, 1000, 2900);
        s.handle(c.at(2999), Event::Tick);
        assert_eq!(decisions(&mut s), []);
        s.handle(c.at(3000), Event::Tick);
        assert_eq!(decisions(&mut s), [Decision::Swap(Switch::Failover)]);
        s.handle(c.at(3000), Event::SlateCheck);
        assert_eq!(decisions(&mut s), [], "the backup's input is recent");
        // The backup is on air now: its packets are the renditions'.
        s.handle(c.at(3100), Event::OnAirPacket);
        s.handle(c.at(3100), Event::Tick);
        assert_eq!(decisions(&mut s), []);
        assert_eq!(s.last_input(), c.at(3100));
    }

    /// A backup that has no keyframe yet, or has gone silent itself, does
    /// not take over.
    #[test]
    fn a_standby_takes_over_only_keyed_and_fresh() {
        let c = Clock(Instant::now());
        let mut s = Switcher::new(rules(Failback::Auto), Role::Primary, c.at(0));
        s.handle(c.at(0), Event::Joined(Role::Backup));
        let _ = decisions(&mut s);
        let unkeyed = Event::StandbyInput {
            packet: true,
            keyed: false,
        };
        s.handle(c.at(2500), unkeyed);
        s.handle(c.at(2500), Event::Tick);
        assert_eq!(decisions(&mut s), [], "no keyframe to start on");
        let keyed = Event::StandbyInput {
            packet: false,
            keyed: true,
        };
        s.handle(c.at(4600), keyed);
        s.handle(c.at(4600), Event::Tick);
        assert_eq!(decisions(&mut s), [], "its last packet is 2.1 s old");
        s.handle(c.at(4700), unkeyed);
        s.handle(c.at(4700), keyed);
        s.handle(c.at(4700), Event::Tick);
        assert_eq!(decisions(&mut s), [Decision::Swap(Switch::Failover)]);
    }

    /// failback = "auto": the primary, back beside the backup on air and
    /// keyed, goes on air at the next tick.
    #[test]
    fn auto_failback_when_the_primary_is_back() {
        let (c, mut s) = pair(Failback::Auto, 1000, 3000);
        assert_eq!(decisions(&mut s), [Decision::Swap(Switch::Failover)]);
        // The primary's publisher reconnects: it waits beside the backup.
        s.handle(c.at(3100), Event::StandbyClosed);
        s.handle(c.at(3200), Event::Joined(Role::Primary));
        assert_eq!(decisions(&mut s), [Decision::Standby { replaces: false }]);
        s.handle(c.at(3200), Event::OnAirPacket);
        s.handle(c.at(3200), Event::Tick);
        assert_eq!(decisions(&mut s), [], "not keyed yet");
        s.handle(
            c.at(3300),
            Event::StandbyInput {
                packet: true,
                keyed: true,
            },
        );
        s.handle(c.at(3300), Event::OnAirPacket);
        s.handle(c.at(3300), Event::Tick);
        assert_eq!(decisions(&mut s), [Decision::Swap(Switch::Failback)]);
    }

    /// failback = "manual": the primary waits beside the backup until an
    /// operator asks; the request is taken only once it can be acted on.
    #[test]
    fn manual_failback_on_request() {
        let (c, mut s) = pair(Failback::Manual, 1000, 3000);
        assert_eq!(decisions(&mut s), [Decision::Swap(Switch::Failover)]);
        // The primary (now the standby) sends again.
        assert!(!s.wants_failback_request(c.at(3100)), "silent since 1 s");
        let primary = Event::StandbyInput {
            packet: true,
            keyed: true,
        };
        for ms in (3100..=6000).step_by(100) {
            s.handle(c.at(ms), primary);
            s.handle(c.at(ms), Event::OnAirPacket);
            s.handle(c.at(ms), Event::Tick);
            assert_eq!(decisions(&mut s), [], "{ms} ms: no request, no failback");
        }
        assert!(s.wants_failback_request(c.at(6000)));
        s.handle(c.at(6000), Event::FailbackRequested);
        s.handle(c.at(6000), Event::Tick);
        assert_eq!(decisions(&mut s), [Decision::Swap(Switch::Failback)]);
        // Taken once: the backup, now the standby, stays there.
        s.handle(c.at(6100), Event::OnAirPacket);
        s.handle(c.at(6100), Event::Tick);
        assert_eq!(decisions(&mut s), []);
        assert!(!s.wants_failback_request(c.at(6100)), "a backup waits");
    }

    /// No input for slate_after_ms (2.5 s): the slate goes on (once), and
    /// off again with the next packet of the feed on air.
    #[test]
    fn slate_after_slate_after_ms_and_off_when_the_feed_returns() {
        let c = Clock(Instant::now());
        let renditions = Event::Renditions {
            packager: true,
            video: true,
        };
        let mut s = Switcher::new(rules(Failback::Auto), Role::Primary, c.at(0));
        s.handle(c.at(0), Event::OnAirPacket);
        s.handle(c.at(2500), Event::SlateCheck);
        assert_eq!(decisions(&mut s), [], "nothing published yet: no slate");
        assert_eq!(s.poll_timeout(c.at(2499)), None);
        s.handle(c.at(2499), renditions);
        assert_eq!(s.poll_timeout(c.at(2499)), Some(c.at(2500)));
        s.handle(c.at(2499), Event::SlateCheck);
        assert_eq!(decisions(&mut s), []);
        s.handle(c.at(2500), Event::SlateCheck);
        assert_eq!(decisions(&mut s), [Decision::SlateOn]);
        assert!(s.slate_on());
        s.handle(c.at(5000), Event::SlateCheck);
        assert_eq!(decisions(&mut s), [], "on already");
        s.handle(c.at(5000), Event::OnAirPacket);
        assert_eq!(decisions(&mut s), [Decision::SlateOff]);
        assert!(!s.slate_on());
        s.handle(c.at(7499), Event::SlateCheck);
        assert_eq!(decisions(&mut s), []);
        // A slate that failed is not tried again; none while shutting down.
        s.handle(c.at(7500), Event::SlateCheck);
        assert_eq!(decisions(&mut s), [Decision::SlateOn]);
        s.handle(c.at(7500), Event::SlateFailed);
        s.handle(c.at(20_000), Event::SlateCheck);
        assert_eq!(decisions(&mut s), []);
        let mut s = Switcher::new(rules(Failback::Auto), Role::Primary, c.at(0));
        s.handle(c.at(0), renditions);
        s.handle(c.at(0), Event::Shutdown);
        s.handle(c.at(5000), Event::SlateCheck);
        assert_eq!(decisions(&mut s), []);
    }

    /// The publisher goes away: the renditions wait out the reconnect
    /// window (10 s), then retire; a publisher back within it goes on air.
    #[test]
    fn retire_after_the_reconnect_window() {
        let c = Clock(Instant::now());
        let renditions = Event::Renditions {
            packager: true,
            video: true,
        };
        let mut s = Switcher::new(rules(Failback::Auto), Role::Primary, c.at(0));
        s.handle(c.at(0), renditions);
        s.handle(c.at(500), Event::OnAirClosed { parkable: true });
        assert_eq!(decisions(&mut s), []);
        assert!(s.waiting());
        assert_eq!(
            s.poll_timeout(c.at(500)),
            Some(c.at(2500)),
            "the slate first"
        );
        s.handle(c.at(10_499), Event::Tick);
        assert_eq!(decisions(&mut s), []);
        s.handle(c.at(10_500), Event::Tick);
        assert_eq!(decisions(&mut s), [Decision::Retire { window_over: true }]);
        // Back within the window: on air again, the window off.
        let mut s = Switcher::new(rules(Failback::Auto), Role::Primary, c.at(0));
        s.handle(c.at(0), renditions);
        s.handle(c.at(500), Event::OnAirClosed { parkable: true });
        s.handle(c.at(8000), Event::Joined(Role::Primary));
        assert_eq!(decisions(&mut s), [Decision::OnAir { replaces: false }]);
        assert!(!s.waiting());
        s.handle(c.at(20_000), Event::Tick);
        assert_eq!(decisions(&mut s), []);
        // Kicked: no window.
        let mut s = Switcher::new(rules(Failback::Auto), Role::Primary, c.at(0));
        s.handle(c.at(0), renditions);
        s.handle(c.at(500), Event::OnAirClosed { parkable: false });
        assert_eq!(decisions(&mut s), [Decision::Retire { window_over: false }]);
        // Nothing published yet, or shutting down: the stream ends at once.
        let mut s = Switcher::new(rules(Failback::Auto), Role::Primary, c.at(0));
        s.handle(c.at(500), Event::OnAirClosed { parkable: true });
        assert_eq!(decisions(&mut s), [Decision::End]);
        let mut s = Switcher::new(rules(Failback::Auto), Role::Primary, c.at(0));
        s.handle(c.at(0), renditions);
        s.handle(c.at(0), Event::Shutdown);
        s.handle(c.at(500), Event::OnAirClosed { parkable: false });
        assert_eq!(decisions(&mut s), [Decision::End]);
    }

    /// A publisher of the role on air takes it over; one of the other role
    /// waits beside it, replacing the one waiting there.
    #[test]
    fn joiners_go_on_air_or_beside_it_by_role() {
        let c = Clock(Instant::now());
        let mut s = Switcher::new(rules(Failback::Auto), Role::Primary, c.at(0));
        s.handle(c.at(1), Event::Joined(Role::Primary));
        assert_eq!(decisions(&mut s), [Decision::OnAir { replaces: true }]);
        s.handle(c.at(2), Event::Joined(Role::Backup));
        s.handle(c.at(3), Event::Joined(Role::Backup));
        assert_eq!(
            decisions(&mut s),
            [
                Decision::Standby { replaces: false },
                Decision::Standby { replaces: true }
            ]
        );
    }
}
