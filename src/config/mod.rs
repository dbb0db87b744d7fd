//! The one TOML configuration file, CLI overrides, and validation.
//!
//! Every error names the key at fault (`server.rtmp_listen: invalid socket
//! address syntax`), and the binary exits with code 2 on any of them.
//!
//! One file per section: each owns its keys' types, defaults and `validate`
//! (a typed [`Invalid`] built through the one range check, `invalid::range`);
//! this one loads the file, applies the CLI overrides and checks every
//! section after them. Config holds the choices as plain data: what a codec
//! choice does is `transcode`'s (`transcode::backend::SoftCodecs`).

mod admin;
mod archive;
mod cdn;
mod cidr;
mod demo;
mod dvr;
mod hls;
mod ingest;
mod invalid;
mod ladder;
mod limits;
mod playback;
mod runtime;
mod secret;
mod server;
mod streams;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

pub use admin::Admin;
pub use archive::{Archive, CredentialsError};
pub use cdn::{Cdn, Pathway};
pub use cidr::{Cidr, CidrError};
pub use demo::DemoConfig;
pub use dvr::Dvr;
pub use hls::Hls;
pub use ingest::{Failback, Ingest};
pub use invalid::Invalid;
pub use ladder::{
    default_ladder, encoder_usable, BackendChoice, DecoderChoice, EncoderChoice, EncoderUnusable,
    Ladder, RungConfig, ScalerChoice, X264_PRESETS,
};
pub use limits::Limits;
pub use playback::Playback;
pub use runtime::{available_cpus, Runtime};
pub use secret::Secret;
pub use server::Server;
pub use streams::{valid_name, StreamConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{file}: {key}: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

impl ConfigError {
    fn invalid(file: String, e: Invalid) -> Self {
        ConfigError::Invalid {
            file,
            key: e.key,
            reason: e.reason,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: Server,
    pub runtime: Runtime,
    pub limits: Limits,
    pub ingest: Ingest,
    pub ladder: Ladder,
    pub hls: Hls,
    pub dvr: Dvr,
    pub archive: Archive,
    pub admin: Admin,
    pub cdn: Cdn,
    pub playback: Playback,
    pub demo: DemoConfig,
    pub streams: Vec<StreamConfig>,
}

/// Settings given on the command line; they win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub rtmp_listen: Option<SocketAddr>,
    pub srt_listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    /// `serve --demo`: run the built-in demo stream.
    pub demo: bool,
}

impl Config {
    /// Loads and validates a file, or the defaults when `path` is `None`.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                Config::parse(&text, &p.display().to_string())?
            }
            None => Config::default(),
        };
        if let Some(a) = overrides.rtmp_listen {
            config.server.rtmp_listen = a;
        }
        if let Some(a) = overrides.http_listen {
            config.server.http_listen = a;
        }
        if let Some(a) = overrides.srt_listen {
            config.server.srt_listen = a;
        }
        if overrides.demo {
            config.demo.enabled = true;
        }
        // Again after the overrides: `--http-listen` equal to `--rtmp-listen` must fail
        // exactly as the same two keys in the file do.
        config.validate().map_err(|e| {
            ConfigError::invalid(
                path.map_or("(defaults)".into(), |p| p.display().to_string()),
                e,
            )
        })?;
        Ok(config)
    }

    /// Parses and validates TOML text; `file` only labels errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            // toml's message carries line/column and a caret diagram; keep its first line
            // plus the position so the operator can find it.
            let inner = e.into_inner();
            let reason = inner.message().to_string();
            let at = inner
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            ConfigError::Invalid {
                file: file.into(),
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                reason: format!("{reason}{at}"),
            }
        })?;
        config
            .validate()
            .map_err(|e| ConfigError::invalid(file.into(), e))?;
        Ok(config)
    }

    /// Each section's own check, a section after those it is checked
    /// against (`[hls]` after `[ladder]`, `[dvr]` after `[hls]`, ...); the
    /// first invalid key is the answer.
    fn validate(&self) -> Result<(), Invalid> {
        self.cdn.validate()?;
        self.runtime.validate()?;
        self.server.validate()?;
        self.admin.validate(&self.server)?;
        self.ingest.validate()?;
        self.limits.validate()?;
        self.ladder.validate()?;
        self.hls.validate(&self.ladder)?;
        self.dvr.validate(&self.hls)?;
        self.archive.validate(&self.dvr)?;
        self.demo.validate(&self.streams)?;
        streams::validate(&self.streams)
    }

    /// Finds the configured stream with this public name.
    pub fn stream(&self, name: &str) -> Option<&StreamConfig> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// The executors' CPUs: `runtime.cores`, or every CPU this process may run on.
    pub fn cores(&self) -> Vec<usize> {
        if self.runtime.cores.is_empty() {
            available_cpus()
        } else {
            self.runtime.cores.clone()
        }
    }
}
