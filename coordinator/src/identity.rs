//! The coordinator's TLS certificate: self-signed (rcgen), created once in
//! the state directory and kept, so the fingerprint clients pin stays valid
//! across restarts.

use std::path::Path;

/// Why the certificate could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing the files failed.
    #[error("coordinator certificate {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// rcgen could not make the certificate.
    #[error("cannot generate the coordinator certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The certificate and its private key, DER.
#[derive(Clone)]
pub struct Certificate {
    /// The certificate.
    pub der: Vec<u8>,
    /// The PKCS#8 private key.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Certificate(sha256 {})", hex::encode(self.fingerprint()))
    }
}

impl Certificate {
    /// Loads `cert.der` and `key.der` from `dir`, or creates them (for the
    /// names `localhost` and `names`) if neither exists.
    pub fn load_or_create(dir: &Path, names: &[String]) -> Result<Self, IdentityError> {
        let cert_path = dir.join("cert.der");
        let key_path = dir.join("key.der");
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| IdentityError::Io {
                path: path.clone(),
                source,
            }
        };
        if cert_path.exists() || key_path.exists() {
            return Ok(Self {
                der: std::fs::read(&cert_path).map_err(io(&cert_path))?,
                key: std::fs::read(&key_path).map_err(io(&key_path))?,
            });
        }
        let mut subject_names = vec!["localhost".to_string()];
        subject_names.extend(names.iter().cloned());
        let certified = rcgen::generate_simple_self_signed(subject_names)?;
        let certificate = Self {
            der: certified.cert.der().to_vec(),
            key: certified.signing_key.serialize_der(),
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        write_private(&key_path, &certificate.key).map_err(io(&key_path))?;
        std::fs::write(&cert_path, &certificate.der).map_err(io(&cert_path))?;
        Ok(certificate)
    }

    /// SHA-256 of the certificate: what clients pin.
    pub fn fingerprint(&self) -> [u8; 32] {
        fedstake_quic::fingerprint(&self.der)
    }
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = Certificate::load_or_create(dir.path(), &[]).unwrap();
        let again = Certificate::load_or_create(dir.path(), &["example.org".into()]).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_eq!(first.key, again.key);
    }
}
