//! The ladder: configured rungs, and which of them a given source gets.

pub use crate::config::{default_ladder, RungConfig};

/// A rung as it will run for one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Rung {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Take every `frame_step`-th source frame (2 for a 30 fps rung from 60 fps).
    pub frame_step: u32,
    pub fps: f64,
    pub bitrate_bps: u32,
}

/// Picks the rungs a source of `width`x`height`@`fps` gets: none above its
/// resolution or frame rate; aspect ratio kept with even dimensions.
pub fn plan(ladder: &[RungConfig], width: u32, height: u32, fps: f64) -> Vec<Rung> {
    ladder
        .iter()
        .filter(|r| r.height <= height && r.fps <= fps * 1.01)
        .map(|r| {
            // Integer steps only: 60→30 is 2; 50→30 keeps every frame (rung runs at 50).
            let step = ((fps / r.fps) + 0.01).floor().max(1.0) as u32;
            let out_w = even((width as u64 * r.height as u64) as f64 / height as f64);
            Rung {
                name: r.name.clone(),
                width: out_w,
                height: even(r.height as f64),
                frame_step: step,
                fps: fps / step as f64,
                bitrate_bps: r.bitrate_kbps * 1000,
            }
        })
        .collect()
}

/// The rungs a stream keeps when its source changes size or frame rate in
/// the middle of a publish: the same rungs, in the same order (players hold
/// their playlists), re-fitted to the new source. Each keeps its configured
/// height but never goes above the source's (no upscaling: a rung taller than
/// the new source runs at the source's size), takes the new aspect ratio, and
/// steps its frame rate down from the new one. No rung is added mid-stream,
/// so the multivariant playlist a player already loaded stays valid.
pub fn replan(
    previous: &[Rung],
    ladder: &[RungConfig],
    width: u32,
    height: u32,
    fps: f64,
) -> Vec<Rung> {
    previous
        .iter()
        .map(|old| {
            let (rung_height, rung_fps) = ladder
                .iter()
                .find(|c| c.name == old.name)
                .map_or((old.height, old.fps), |c| (c.height, c.fps));
            let out_h = rung_height.min(height);
            let step = ((fps / rung_fps) + 0.01).floor().max(1.0) as u32;
            Rung {
                name: old.name.clone(),
                width: even((width as u64 * out_h as u64) as f64 / height.max(1) as f64),
                height: even(out_h as f64),
                frame_step: step,
                fps: fps / step as f64,
                bitrate_bps: old.bitrate_bps,
            }
        })
        .collect()
}

fn even(x: f64) -> u32 {
    ((x / 2.0).round() as u32 * 2).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(r: &[Rung]) -> Vec<&str> {
        r.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn sixty_fps_1080_source_gets_the_full_ladder() {
        let r = plan(&default_ladder(), 1920, 1080, 60.0);
        assert_eq!(
            names(&r),
            ["1080p60", "1080p30", "720p30", "480p30", "360p30"]
        );
        assert_eq!(r[0].frame_step, 1);
        assert_eq!(r[1].frame_step, 2);
        assert_eq!((r[2].width, r[2].height), (1280, 720));
        assert_eq!((r[3].width, r[3].height), (854, 480));
        assert_eq!((r[4].width, r[4].height), (640, 360));
    }

    #[test]
    fn rungs_above_the_source_are_dropped() {
        let r = plan(&default_ladder(), 1280, 720, 30.0);
        assert_eq!(names(&r), ["720p30", "480p30", "360p30"]);
        assert!(r.iter().all(|r| r.frame_step == 1 && r.fps == 30.0));
        let r = plan(&default_ladder(), 1920, 1080, 29.97);
        assert_eq!(names(&r), ["1080p30", "720p30", "480p30", "360p30"]);
    }

    /// 720p → 1080p mid-publish: the 720p ladder's rungs go on, scaled from
    /// the new size, and no 1080p rung appears; 1080p → 720p: the 1080p rung
    /// goes on at 720p (never upscaled) so its playlist continues.
    #[test]
    fn replan_keeps_the_rungs_players_hold() {
        let ladder = default_ladder();
        let old = plan(&ladder, 1280, 720, 30.0);
        let new = replan(&old, &ladder, 1920, 1080, 30.0);
        assert_eq!(names(&new), ["720p30", "480p30", "360p30"]);
        assert_eq!(new, old, "same rungs, same sizes from a 16:9 source");
        let old = plan(&ladder, 1920, 1080, 30.0);
        let new = replan(&old, &ladder, 1280, 720, 30.0);
        assert_eq!(names(&new), ["1080p30", "720p30", "480p30", "360p30"]);
        assert_eq!((new[0].width, new[0].height), (1280, 720));
        let new = replan(&old, &ladder, 1440, 1080, 60.0);
        assert_eq!(
            (new[0].width, new[0].height, new[0].frame_step),
            (1440, 1080, 2)
        );
    }

    #[test]
    fn odd_aspect_gives_even_dimensions() {
        let r = plan(&default_ladder(), 1440, 1080, 30.0);
        assert!(r.iter().all(|r| r.width % 2 == 0 && r.height % 2 == 0));
        assert_eq!(r[1].width, 960);
    }
}
