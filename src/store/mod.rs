//! The one owner of published media: the in-memory hot ring (`hot`) with
//! its requests parked on the live edge (`waiters`, sans-IO), and the warm
//! tier on local disk (`dvr`).

pub mod archive;
pub mod dvr;
pub mod hot;
pub mod waiters;
