//! The console's TLS: the configured certificate and key, or a self-signed pair made at first
//! start beside the users file (`tls/cert.pem`, `tls/key.pem`, 0600 in a 0700 folder). Its
//! SHA-256 fingerprint is what an admin compares in the browser's warning
//! (`facegate console fingerprint`).

use super::ConsoleError;
use crate::config::ConsoleConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

fn tls_err(path: &Path, e: impl std::fmt::Display) -> ConsoleError {
    ConsoleError::Tls(format!("{}: {e}", path.display()))
}

/// Makes the self-signed pair when the config asks for one and it is not there yet.
pub fn ensure_self_signed(config: &ConsoleConfig) -> Result<(), ConsoleError> {
    if !config.self_signed() {
        return Ok(());
    }
    let (cert, key) = config.tls_files();
    if cert.exists() && key.exists() {
        return Ok(());
    }
    let dir = cert.parent().unwrap_or_else(|| Path::new("."));
    let io = |source| ConsoleError::Io {
        path: dir.to_owned(),
        source,
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let host = hostname();
    let made = rcgen::generate_simple_self_signed(vec![host, "localhost".into()])
        .map_err(|e| tls_err(&cert, e))?;
    write_private(&key, made.key_pair.serialize_pem().as_bytes())?;
    write_private(&cert, made.cert.pem().as_bytes())?;
    tracing::info!(
        "made a self-signed certificate {} (SHA-256 {})",
        cert.display(),
        fingerprint(&cert)?
    );
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        })
        .unwrap_or_else(|| "facegate".into())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ConsoleError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let io = |source| ConsoleError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// The certificate chain in `path` (PEM).
fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConsoleError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_err(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(path, e))?;
    if certs.is_empty() {
        return Err(tls_err(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The SHA-256 of the first certificate in `path`, as `AB:CD:...`.
pub fn fingerprint(path: &Path) -> Result<String, ConsoleError> {
    let first = certs(path)?.remove(0);
    Ok(Sha256::digest(first.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// The server's TLS settings (TLS 1.2 and 1.3, ring, HTTP/1.1).
pub fn server_config(config: &ConsoleConfig) -> Result<Arc<rustls::ServerConfig>, ConsoleError> {
    ensure_self_signed(config)?;
    let (cert, key) = config.tls_files();
    let chain = certs(&cert)?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| tls_err(&key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&cert, e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_err(&cert, e))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn self_signed_made_once_private_and_loadable() {
        let dir = tempfile::tempdir().unwrap();
        let config = ConsoleConfig {
            users: dir.path().join("users.toml"),
            ..ConsoleConfig::default()
        };
        server_config(&config).unwrap();
        let (cert, key) = config.tls_files();
        assert_eq!(cert, dir.path().join("tls/cert.pem"));
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(dir.path().join("tls"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        let f = fingerprint(&cert).unwrap();
        assert_eq!(f.len(), 32 * 3 - 1);
        // A second start keeps the same certificate.
        server_config(&config).unwrap();
        assert_eq!(fingerprint(&cert).unwrap(), f);
    }
}
