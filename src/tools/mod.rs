//! Commands built from the boxes: `transcode` (a file through the ladder and
//! the packager), `bench`, `probe`, `hwtest`.

pub mod bench;
pub mod hwtest;
pub mod probe;
pub mod transcode;
