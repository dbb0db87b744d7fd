//! `[admin]`: the API's token and address.

use std::net::SocketAddr;

use serde::Deserialize;

use super::invalid::{ensure, Invalid};
use super::secret::Secret;
use super::server::{listen_conflict, Server};

/// Who may read the API and `/metrics`, and kick publishers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// When set, `/api/…` and `/metrics` need `Authorization: Bearer TOKEN`.
    pub token: Option<Secret>,
    /// When set, `/api/…` and `/metrics` are served only here (health too),
    /// not on `server.http_listen`.
    pub listen: Option<SocketAddr>,
}

impl Admin {
    /// Its own address must not overlap `[server]`'s listeners.
    pub fn validate(&self, server: &Server) -> Result<(), Invalid> {
        let Some(admin) = self.listen else {
            return Ok(());
        };
        for (key, other) in [
            ("server.http_listen", server.http_listen),
            ("server.rtmp_listen", server.rtmp_listen),
        ]
        .into_iter()
        .chain(server.https_listen.map(|a| ("server.https_listen", a)))
        {
            ensure(
                !listen_conflict(admin, other),
                "admin.listen",
                format!("{admin} overlaps {key} {other}"),
            )?;
        }
        Ok(())
    }
}
