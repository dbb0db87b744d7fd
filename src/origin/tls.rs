//! HTTPS on `server.https_listen`: rustls (ring), HTTP/2 or HTTP/1.1 by ALPN.
//! The certificate chain and key are PEM files, read at start-up and again
//! on SIGHUP ([`super::Keys::reload`]); a connection keeps the configuration
//! it was accepted with.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("cannot read the TLS key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the TLS certificate {cert} and key {key} do not go together: {reason}")]
    Mismatch {
        cert: String,
        key: String,
        reason: String,
    },
}

/// The server configuration for `cert` (PEM chain, leaf first) and `key` (PEM,
/// PKCS#8, PKCS#1 or SEC1).
pub fn load(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let shown = |p: &Path| p.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Cert {
            path: shown(cert),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Cert {
            path: shown(cert),
            reason: "no CERTIFICATE block in it".into(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: shown(key),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mismatch = |reason: String| TlsError::Mismatch {
        cert: shown(cert),
        key: shown(key),
        reason,
    };
    // A renewed certificate with the old key (or the reverse) must not take.
    let signing = provider
        .key_provider
        .load_private_key(private.clone_key())
        .map_err(|e| mismatch(e.to_string()))?;
    match rustls::sign::CertifiedKey::new(chain.clone(), signing).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => return Err(mismatch(e.to_string())),
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| mismatch(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn loads_a_pair_and_names_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path(), "a");
        let config = load(&cert, &key).unwrap();
        assert_eq!(config.alpn_protocols[0], b"h2");
        let (_, other_key) = pair(dir.path(), "b");
        let e = load(&cert, &other_key).unwrap_err().to_string();
        assert!(e.contains("do not go together"), "{e}");
        let e = load(&dir.path().join("none.crt"), &key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read the TLS certificate"), "{e}");
        let e = load(&key, &key).unwrap_err().to_string();
        assert!(e.contains("no CERTIFICATE"), "{e}");
        let e = load(&cert, &cert).unwrap_err().to_string();
        assert!(e.contains("cannot read the TLS key"), "{e}");
    }
}
