//! The hot store: per stream and rendition, a ring of the most recent
//! segments and their parts, in memory. Published objects never change; a
//! publish wakes only the parked requests it reaches (each rendition's
//! [`Waiters`](crate::store::waiters::Waiters) table; the request's glue
//! sleeps until its deadline).
//!
//! Files: this one holds the streams by name; `stream` is one publish's
//! media (its renditions, viewers, DVR tap), `rendition` one rendition's
//! publish and lookups and the requests parked on it, `timeline` the window
//! of segments it keeps, `answer` what a lookup gets back.

mod answer;
mod dvr_tap;
mod lock;
mod rendition;
mod stream;
mod timeline;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

pub use answer::{Block, Object};
pub use dvr_tap::DvrTap;
use lock::{read, write};
pub use rendition::{Parking, Rendition};
use stream::RecentCount;
pub use stream::StreamMedia;
#[cfg(test)]
pub(crate) use tests::{test_segment, test_stream};

use crate::package::hls::Timing;
pub use crate::package::RenditionKind;
use crate::store::dvr::Dvr;

pub struct HotStore {
    streams: RwLock<HashMap<String, Arc<StreamMedia>>>,
    window_secs: f64,
    dvr: Option<Arc<Dvr>>,
}

impl HotStore {
    pub fn new(window_secs: f64) -> Self {
        HotStore {
            streams: RwLock::new(HashMap::new()),
            window_secs,
            dvr: None,
        }
    }

    /// Every segment and init object also goes to the DVR.
    pub fn with_dvr(mut self, dvr: Arc<Dvr>) -> Self {
        self.dvr = Some(dvr);
        self
    }

    pub fn dvr(&self) -> Option<&Arc<Dvr>> {
        self.dvr.as_ref()
    }

    /// Starts a stream's media, replacing what an earlier publish left.
    pub fn open(
        &self,
        name: &str,
        generation: u64,
        timing: Timing,
        group: u64,
    ) -> Arc<StreamMedia> {
        let media = Arc::new(StreamMedia {
            name: name.to_string(),
            generation,
            timing,
            group,
            window_secs: self.window_secs,
            renditions: RwLock::new(Vec::new()),
            ended: AtomicBool::new(false),
            requests: RecentCount::default(),
            served: Mutex::new(None),
            dvr: self
                .dvr
                .as_ref()
                .map(|d| DvrTap::new(d.clone(), name, timing.media_epoch_ms)),
        });
        let old = write(&self.streams).insert(name.to_string(), media.clone());
        if let Some(old) = old {
            old.end();
        }
        media
    }

    pub fn all(&self) -> Vec<Arc<StreamMedia>> {
        read(&self.streams).values().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<Arc<StreamMedia>> {
        read(&self.streams).get(name).cloned()
    }

    /// A playback request for `name` arrived: the stream's media, with the
    /// request counted (the API's `viewers`, [`StreamMedia::recent_requests`]).
    pub fn playback(&self, name: &str) -> Option<Arc<StreamMedia>> {
        let media = self.get(name)?;
        media.requests.add();
        Some(media)
    }

    /// Streams that have something to play, by name.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = read(&self.streams)
            .values()
            .filter(|s| !s.is_ended())
            .map(|s| s.name.clone())
            .collect();
        v.sort();
        v
    }

    /// Forgets an ended stream's media (if no newer publish replaced it).
    pub fn remove(&self, name: &str, generation: u64) {
        let mut streams = write(&self.streams);
        if streams
            .get(name)
            .is_some_and(|s| s.generation == generation)
        {
            streams.remove(name);
        }
    }
}
