//! TLS client configuration for wss:// and https://: rustls with the ring provider, the
//! webpki-roots trust anchors, plus the certificates of an optional PEM CA file
//! (`--ca-file PATH`, for test servers and private gateways), ALPN `http/1.1`.
//!
//! Owns configuration only (built once at start-up). Never disables certificate or hostname
//! verification, and never silently ignores a CA file it cannot use: the error names the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Why a TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read.
    #[error("cannot read CA file {path}: {source}")]
    ReadCaFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CA file is not valid PEM.
    #[error("cannot parse CA file {path} as PEM: {detail}")]
    ParseCaFile {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        detail: String,
    },
    /// The CA file holds no `CERTIFICATE` block.
    #[error("CA file {path} contains no PEM CERTIFICATE block")]
    NoCertificates {
        /// The file.
        path: PathBuf,
    },
    /// A certificate in the CA file is not a usable trust anchor.
    #[error("certificate #{index} in CA file {path} is not a usable trust anchor: {source}")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Its position in the file, from 1.
        index: usize,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The webpki roots plus every certificate in `ca_file`.
pub fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| TlsError::ReadCaFile {
            path: path.to_owned(),
            source,
        })?;
        let mut count = 0;
        for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
            let cert = cert.map_err(|e| TlsError::ParseCaFile {
                path: path.to_owned(),
                detail: e.to_string(),
            })?;
            roots.add(cert).map_err(|source| TlsError::BadCertificate {
                path: path.to_owned(),
                index: i + 1,
                source,
            })?;
            count += 1;
        }
        if count == 0 {
            return Err(TlsError::NoCertificates {
                path: path.to_owned(),
            });
        }
    }
    Ok(roots)
}

/// A client configuration: ring provider, safe default protocol versions (TLS 1.2 and 1.3),
/// [`root_store`]`(ca_file)`, no client certificate, ALPN `http/1.1`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = root_store(ca_file)?;
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, content: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("keel-tls-{}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn default_and_private_ca() {
        let base = root_store(None).unwrap().len();
        assert!(base > 100, "webpki roots present");
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let two = format!("{}\n{}", ca.cert.pem(), ca.cert.pem());
        let path = temp_file("ca.pem", two.as_bytes());
        assert_eq!(root_store(Some(&path)).unwrap().len(), base + 2);
        let cfg = client_config(Some(&path)).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn errors_name_the_file() {
        let missing = std::env::temp_dir().join("keel-no-such-ca.pem");
        let e = client_config(Some(&missing)).unwrap_err();
        assert!(matches!(e, TlsError::ReadCaFile { .. }), "{e}");
        assert!(e.to_string().contains("keel-no-such-ca.pem"), "{e}");

        let empty = temp_file("empty.pem", b"not a pem file\n");
        let e = client_config(Some(&empty)).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificates { .. }), "{e}");
        assert!(e.to_string().contains("empty.pem"), "{e}");

        let broken = temp_file(
            "broken.pem",
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        let e = client_config(Some(&broken)).unwrap_err();
        assert!(matches!(e, TlsError::ParseCaFile { .. }), "{e}");
        assert!(e.to_string().contains("broken.pem"), "{e}");

        let garbage = temp_file(
            "garbage.pem",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let e = client_config(Some(&garbage)).unwrap_err();
        assert!(
            matches!(e, TlsError::BadCertificate { index: 1, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("garbage.pem"), "{e}");
        for p in [empty, broken, garbage] {
            std::fs::remove_file(p).ok();
        }
    }
}
