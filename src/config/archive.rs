//! `[archive]`: the cold tier in object storage.

use std::path::PathBuf;

use serde::Deserialize;

use super::dvr::Dvr;
use super::invalid::{ensure, Invalid};

/// Why `archive.credentials_file` gave no credentials; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
}

/// The cold tier: what the DVR writes, copied to object storage.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Archive {
    /// `s3://BUCKET[/PREFIX]` or `file:///DIR`; empty: no archive.
    pub url: String,
    /// S3 endpoint for a store that is not AWS (`http://HOST:3900`).
    pub endpoint: String,
    /// S3 region (`us-east-1` when empty; Garage's is its `s3_region`).
    pub region: String,
    /// A TOML file with `access_key_id` and `secret_access_key`; empty: the
    /// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).
    pub credentials_file: std::path::PathBuf,
}

/// `archive.credentials_file`'s contents.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveCredentials {
    access_key_id: String,
    secret_access_key: String,
}

impl Archive {
    /// The access key id and secret from `credentials_file` (None: from the
    /// environment); the error names the file.
    pub fn credentials(&self) -> Result<Option<(String, String)>, CredentialsError> {
        if self.credentials_file.as_os_str().is_empty() {
            return Ok(None);
        }
        let path = || self.credentials_file.clone();
        let text = std::fs::read_to_string(&self.credentials_file).map_err(|e| {
            CredentialsError::Read {
                path: path(),
                source: e,
            }
        })?;
        let c: ArchiveCredentials = toml::from_str(&text).map_err(|e| CredentialsError::Parse {
            path: path(),
            source: e,
        })?;
        Ok(Some((c.access_key_id, c.secret_access_key)))
    }

    /// Its keys; the archive copies what `[dvr]` writes.
    pub fn validate(&self, dvr: &Dvr) -> Result<(), Invalid> {
        if self.url.is_empty() {
            return Ok(());
        }
        ensure(
            !dvr.dir.as_os_str().is_empty(),
            "archive.url",
            "the archive copies what the DVR writes: set dvr.dir too",
        )?;
        ensure(
            self.url.starts_with("s3://") || self.url.starts_with("file:///"),
            "archive.url",
            "must be s3://BUCKET[/PREFIX] or file:///DIR",
        )?;
        self.credentials()
            .map_err(|e| Invalid::new("archive.credentials_file", e))?;
        Ok(())
    }
}
