//! Shared helpers for integration tests, one file per kind: the server
//! harness (`server`), inputs made with ffmpeg (`inputs`), publishers
//! (`push`), a raw RTMP client (`rtmp_client`), browsers (`browser`), CMAF
//! boxes (`mp4`) and playlists/MPDs (`playlist`). Every name is re-exported
//! here, so a test file says `use common::{Server, push, …}`. Every process a
//! test starts is killed when its guard drops.
#![allow(dead_code)]

mod browser;
mod inputs;
mod mp4;
mod playlist;
mod push;
mod rtmp_client;
mod server;

#[allow(unused_imports)]
pub use browser::*;
#[allow(unused_imports)]
pub use inputs::*;
#[allow(unused_imports)]
pub use mp4::*;
#[allow(unused_imports)]
pub use playlist::*;
#[allow(unused_imports)]
pub use push::*;
#[allow(unused_imports)]
pub use rtmp_client::*;
#[allow(unused_imports)]
pub use server::*;
