//! Where a publish's objects go on disk, with the DVR on.

use std::sync::Arc;

use crate::store::dvr::Dvr;

/// A publish's place in the DVR: its key is `NAME/EPOCH` (the media epoch,
/// Unix ms), so a later publish of the NAME never overwrites its files.
#[derive(Clone)]
pub struct DvrTap {
    pub dvr: Arc<Dvr>,
    pub key: String,
    pub name: String,
    pub epoch_ms: u64,
}

impl DvrTap {
    pub(super) fn new(dvr: Arc<Dvr>, name: &str, epoch_ms: u64) -> DvrTap {
        DvrTap {
            dvr,
            key: format!("{name}/{epoch_ms}"),
            name: name.to_string(),
            epoch_ms,
        }
    }
}
