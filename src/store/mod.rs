//! The one owner of published media: the in-memory hot ring (`hot`).

pub mod hot;
