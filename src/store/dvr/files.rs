//! The DVR's file I/O: whole objects written and read with O_DIRECT through
//! io_uring, index appends synced, small files written durably.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::index::{self, Record};

/// A whole file, read through io_uring (the files were written with O_DIRECT).
pub(super) async fn read_path(path: &Path) -> Option<Bytes> {
    let f = glommio::io::DmaFile::open(path).await.ok()?;
    let len = f.file_size().await.ok()?;
    let data = f.read_at(0, len as usize).await.ok();
    let _ = f.close().await;
    let data = data?;
    Some(Bytes::copy_from_slice(&data))
}

/// Writes a small file durably (temporary name, synced, renamed).
pub(super) fn write_durably(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.new"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

pub(super) fn subdirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    Ok(v)
}

/// Writes `data` to `path` with O_DIRECT (glommio pads to the device's block
/// size and truncates on close; close syncs). Opened read+write: a
/// write-only `DmaFile` breaks glommio's polling check (glommio #670).
pub(super) async fn write_file(dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = glommio::io::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(path)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut w = glommio::io::DmaStreamWriterBuilder::new(file).build();
    use futures_lite::AsyncWriteExt;
    let written = w.write_all(data).await;
    let closed = w.close().await;
    written?;
    closed
}

/// Appends one record to a rendition's index and makes it durable
/// (through io_uring: a blocking sync would stall every other lane).
pub(super) async fn append_index(path: &Path, record: &Record) -> std::io::Result<()> {
    let io = |e: glommio::GlommioError<()>| std::io::Error::other(e.to_string());
    let f = glommio::io::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .buffered_open(path)
        .await
        .map_err(io)?;
    let pos = f.file_size().await.map_err(io)?;
    let synced = match f.write_at(record.encode().to_vec(), pos).await {
        Ok(n) if n == index::RECORD => f.fdatasync().await.map_err(io),
        Ok(n) => Err(std::io::Error::other(format!(
            "short index write: {n} bytes"
        ))),
        Err(e) => Err(io(e)),
    };
    let _ = f.close().await;
    synced
}
