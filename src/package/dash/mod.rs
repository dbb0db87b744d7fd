//! DASH and LL-DASH: a dynamic MPD over the same CMAF objects LL-HLS serves
//! (`RENDITION/init{v}.mp4`, `RENDITION/seg{msn}.m4s`). Sans-IO: a
//! description of each rendition's window and `now` in, MPD text out.
//!
//! Timeline: every rendition's decode times count from one instant (the
//! stream's media epoch,
//! [`Timing::media_epoch_ms`](crate::package::hls::Timing::media_epoch_ms)),
//! which is the MPD's `availabilityStartTime`; each Period's `start` equals its
//! `presentationTimeOffset`, so a segment's presentation time is its media
//! time and its wall-clock time its PROGRAM-DATE-TIME, in every Period.
//!
//! Periods: one per continuous run of the reference rendition (the first
//! video rendition listed): a segment with a discontinuity, or with a new
//! init version, starts a new Period. A Period keeps its `start` and `id` on
//! every refresh while any of its segments is in the window (the store keeps
//! the start of the oldest run once its first segment is evicted).
//!
//! Files: `window` (what an MPD shows), `periods` (runs cut into Periods and
//! each rendition's segments in them), `mpd` (the text), `text` (XML and
//! ISO 8601 values).

mod mpd;
mod periods;
mod text;
mod window;

#[cfg(test)]
mod tests;

pub use mpd::{availability_time_offset, latency_ms, manifest};
pub use window::{EarlierRun, Manifest, MpdError, RenditionWindow};
