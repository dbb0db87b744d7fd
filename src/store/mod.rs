//! The one owner of published media: the in-memory hot ring (`hot`) and
//! the warm tier on local disk (`dvr`).

pub mod archive;
pub mod dvr;
pub mod hot;
