//! This node's certificates, as files in the data directory.
//!
//! - [`TlsIdentity`]: the Ed25519 TLS key peers pin. The identity key vouches
//!   for it in the node's signed key set; peers trust the key, never a name
//!   or a certificate authority.
//! - [`PublicIdentity`]: the certificate every mainstream client accepts
//!   (ECDSA P-256 by default, or the operator's own), for anonymous callers
//!   of the public listeners (DESIGN §5).
//!
//! The rustls side (verifiers, certificate choice, acceptor, dialer) is the
//! edge's (`meridian-server`).

use std::io;
use std::path::{Path, PathBuf};

/// File names of the TLS key and certificate inside the data directory.
pub const TLS_KEY_FILE: &str = "tls.key";
pub const TLS_CERT_FILE: &str = "tls.crt";
/// The next TLS key and certificate: made by `keys rotate --tls`, listed in
/// the key set next to the key in use, served once `keys switch-tls` makes
/// them the key in use.
pub const TLS_NEXT_KEY_FILE: &str = "tls-next.key";
pub const TLS_NEXT_CERT_FILE: &str = "tls-next.crt";
/// The name every node presents and every client asks for; identity is the
/// pinned key, never the name.
pub const SERVER_NAME: &str = "meridian.node";

/// Why the TLS identity could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The key or certificate file could not be read or written.
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The key or certificate does not parse.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// This node's TLS key and self-signed certificate.
#[derive(Clone)]
pub struct TlsIdentity {
    cert: Vec<u8>,
    key_der: Vec<u8>,
    spki: Vec<u8>,
}

impl TlsIdentity {
    /// Creates a new Ed25519 TLS key and certificate in `dir`.
    pub fn create(dir: &Path, node_id: &str) -> Result<Self, TlsError> {
        Self::create_as(dir, node_id, TLS_KEY_FILE, TLS_CERT_FILE)
    }

    /// Creates the next TLS key and certificate in `dir`
    /// ([`TLS_NEXT_KEY_FILE`]), replacing a next key made before.
    pub fn create_next(dir: &Path, node_id: &str) -> Result<Self, TlsError> {
        Self::remove_next(dir)?;
        Self::create_as(dir, node_id, TLS_NEXT_KEY_FILE, TLS_NEXT_CERT_FILE)
    }

    /// Removes the next TLS key and certificate, if there are any: the
    /// certificate first, since a next certificate without its key is what
    /// [`TlsIdentity::load`] takes for a switch cut between its renames.
    pub fn remove_next(dir: &Path) -> Result<(), TlsError> {
        for name in [TLS_NEXT_CERT_FILE, TLS_NEXT_KEY_FILE] {
            let path = dir.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(TlsError::File {
                        path: path.display().to_string(),
                        source,
                    })
                }
            }
        }
        sync_dir(dir)
    }

    fn create_as(
        dir: &Path,
        node_id: &str,
        key_file: &str,
        cert_file: &str,
    ) -> Result<Self, TlsError> {
        use rcgen::PublicKeyData;
        let invalid = |message: String| TlsError::Invalid {
            path: dir.display().to_string(),
            message,
        };
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|e| invalid(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()])
            .map_err(|e| invalid(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, node_id);
        params.not_after = rcgen::date_time_ymd(2099, 12, 31);
        let cert = params
            .self_signed(&key)
            .map_err(|e| invalid(e.to_string()))?;
        write_private(&dir.join(key_file), key.serialize_pem().as_bytes())?;
        let cert_path = dir.join(cert_file);
        std::fs::write(&cert_path, cert.pem())
            .and_then(|()| std::fs::File::open(&cert_path)?.sync_all())
            .map_err(|source| TlsError::File {
                path: cert_path.display().to_string(),
                source,
            })?;
        sync_dir(dir)?;
        Ok(Self {
            cert: cert.der().to_vec(),
            key_der: key.serialize_der(),
            spki: key.subject_public_key_info(),
        })
    }

    /// Loads the key and certificate in use from `dir`, first finishing a
    /// switch to the next key that stopped between its two renames.
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        if !dir.join(TLS_NEXT_KEY_FILE).exists() && dir.join(TLS_NEXT_CERT_FILE).exists() {
            rename_durably(dir, TLS_NEXT_CERT_FILE, TLS_CERT_FILE)?;
        }
        Self::load_from(dir, TLS_KEY_FILE, TLS_CERT_FILE)
    }

    /// Loads the next key and certificate from `dir`; `None` when there is
    /// no next key.
    pub fn load_next(dir: &Path) -> Result<Option<Self>, TlsError> {
        if !dir.join(TLS_NEXT_KEY_FILE).exists() {
            return Ok(None);
        }
        if !dir.join(TLS_NEXT_CERT_FILE).exists() {
            // Its making or its removal was cut short (the key is written
            // before the certificate, and removed after it): no key set
            // lists a key whose certificate was never written, and one
            // being removed was given up.
            Self::remove_next(dir)?;
            return Ok(None);
        }
        Self::load_from(dir, TLS_NEXT_KEY_FILE, TLS_NEXT_CERT_FILE).map(Some)
    }

    /// Makes the next key and certificate in `dir` the ones in use: the key
    /// file is renamed first, so [`TlsIdentity::load`] finishes a switch a
    /// crash cut between the renames. Returns the new identity.
    pub fn switch_to_next(dir: &Path) -> Result<Self, TlsError> {
        let next = Self::load_next(dir)?.ok_or_else(|| TlsError::Invalid {
            path: dir.join(TLS_NEXT_KEY_FILE).display().to_string(),
            message: "no next TLS key: run `meridian keys rotate --tls` first".into(),
        })?;
        rename_durably(dir, TLS_NEXT_KEY_FILE, TLS_KEY_FILE)?;
        rename_durably(dir, TLS_NEXT_CERT_FILE, TLS_CERT_FILE)?;
        Ok(next)
    }

    fn load_from(dir: &Path, key_file: &str, cert_file: &str) -> Result<Self, TlsError> {
        use rcgen::PublicKeyData;
        let key_path = dir.join(key_file);
        let cert_path = dir.join(cert_file);
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| TlsError::File {
                path: path.display().to_string(),
                source,
            })
        };
        check_private(&key_path)?;
        let key = rcgen::KeyPair::from_pem(&read(&key_path)?).map_err(|e| TlsError::Invalid {
            path: key_path.display().to_string(),
            message: e.to_string(),
        })?;
        let cert_pem = read(&cert_path)?;
        let cert = pem_to_der(&cert_pem).ok_or_else(|| TlsError::Invalid {
            path: cert_path.display().to_string(),
            message: "no CERTIFICATE block".into(),
        })?;
        let identity = Self {
            cert,
            key_der: key.serialize_der(),
            spki: key.subject_public_key_info(),
        };
        if spki_of(&identity.cert).as_deref() != Some(identity.spki.as_slice()) {
            return Err(TlsError::Invalid {
                path: cert_path.display().to_string(),
                message: format!("certificate does not match {key_file}"),
            });
        }
        Ok(identity)
    }

    /// SubjectPublicKeyInfo (DER) of the TLS key: what peers pin.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert
    }

    /// The private key, PKCS#8 DER.
    pub fn key_der(&self) -> &[u8] {
        &self.key_der
    }
}

/// Renames `from` to `to` inside `dir` (replacing `to`) and makes the
/// rename durable.
fn rename_durably(dir: &Path, from: &str, to: &str) -> Result<(), TlsError> {
    std::fs::rename(dir.join(from), dir.join(to)).map_err(|source| TlsError::File {
        path: dir.join(from).display().to_string(),
        source,
    })?;
    sync_dir(dir)
}

/// Makes the names in `dir` (files created, renamed or removed) durable.
fn sync_dir(dir: &Path) -> Result<(), TlsError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| TlsError::File {
            path: dir.display().to_string(),
            source,
        })
}

/// How operators and logs name a TLS key: `sha256:` and the first 16 bytes
/// of the SHA-256 of its SubjectPublicKeyInfo, in hex.
pub fn tls_key_id(spki: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(spki);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Refuses a private key file that group or others may access (as ssh
/// does), saying how to fix it.
fn check_private(key_path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(key_path)
        .map_err(|source| TlsError::File {
            path: key_path.display().to_string(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(TlsError::Invalid {
            path: key_path.display().to_string(),
            message: format!(
                "mode {:04o} gives group or others access; run `chmod 600 {}`",
                mode & 0o7777,
                key_path.display()
            ),
        });
    }
    Ok(())
}

/// Writes a new private file (mode 0600) durably: the file and its
/// directory entry are on disk before this returns.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let file_error = |source| TlsError::File {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(file_error)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(file_error)?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// The first certificate of a PEM file's validity, as Unix seconds
/// (not before, not after); `None` if it does not parse.
pub fn validity_of_pem(pem: &str) -> Option<(i64, i64)> {
    let der = pem_to_der(pem)?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).ok()?;
    let validity = parsed.validity();
    Some((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

/// The SubjectPublicKeyInfo (DER) of a certificate.
pub fn spki_of(cert: &[u8]) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(parsed.public_key().raw.to_vec())
}

/// File names of the public certificate and key inside the data directory,
/// when the operator names none of their own.
pub const PUBLIC_CERT_FILE: &str = "public.crt";
pub const PUBLIC_KEY_FILE: &str = "public.key";

/// The certificate public clients see on the node's listeners (anonymous
/// gRPC, HTTP): an ECDSA P-256 certificate made at `init`, or the operator's
/// own (an institutional CA, ACME). Peers never see it: they ask for
/// [`SERVER_NAME`] and get the pinned key's certificate. Held as PEM; the
/// edge parses it.
#[derive(Clone)]
pub struct PublicIdentity {
    /// The certificate chain, PEM, leaf first.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8, SEC1 or PKCS#1).
    pub key_pem: zeroize::Zeroizing<String>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl std::fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicIdentity")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl PublicIdentity {
    /// Makes an ECDSA P-256 key and a self-signed certificate for `names`
    /// (DNS names or IP addresses) in `dir`, valid for ten years.
    pub fn create(dir: &Path, node_id: &str, names: &[String]) -> Result<(), TlsError> {
        let invalid = |message: String| TlsError::Invalid {
            path: dir.display().to_string(),
            message,
        };
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| invalid(e.to_string()))?;
        let mut params =
            rcgen::CertificateParams::new(names.to_vec()).map_err(|e| invalid(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, node_id);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Meridian node");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params
            .self_signed(&key)
            .map_err(|e| invalid(e.to_string()))?;
        write_private(&dir.join(PUBLIC_KEY_FILE), key.serialize_pem().as_bytes())?;
        let cert_path = dir.join(PUBLIC_CERT_FILE);
        std::fs::write(&cert_path, cert.pem()).map_err(|source| TlsError::File {
            path: cert_path.display().to_string(),
            source,
        })?;
        Ok(())
    }

    /// The names a certificate made at `init` is valid for: loopback, and
    /// the listener's own address when it is a specific one.
    pub fn default_names(listen: std::net::SocketAddr) -> Vec<String> {
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let ip = listen.ip();
        if !ip.is_unspecified() && !ip.is_loopback() {
            names.push(ip.to_string());
        }
        names
    }

    /// Reads the certificate chain and key. The key file must not be
    /// readable by group or others.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| TlsError::File {
                path: path.display().to_string(),
                source,
            })
        };
        check_private(key_path)?;
        Ok(Self {
            cert_pem: read(cert_path)?,
            key_pem: zeroize::Zeroizing::new(read(key_path)?),
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Issue item (files): a TLS key others may read is refused at load, as
    /// the identity key is, and a new key is written 0600.
    #[test]
    fn a_tls_key_that_group_or_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        TlsIdentity::create(dir.path(), "polar").unwrap();
        let key = dir.path().join(TLS_KEY_FILE);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(TlsIdentity::load(dir.path()).is_ok());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let Err(error) = TlsIdentity::load(dir.path()) else {
            panic!("a key others may read was loaded");
        };
        let error = error.to_string();
        assert!(
            error.contains("mode 0640") && error.contains("chmod 600"),
            "{error}"
        );
    }

    /// A switch to the next TLS key that a crash cut between its two
    /// renames (the key renamed, the certificate not) is finished at the
    /// next load, never left with a key and a certificate that disagree.
    #[test]
    fn a_switch_cut_between_its_renames_is_finished_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let old = TlsIdentity::create(dir.path(), "polar").unwrap();
        let next = TlsIdentity::create_next(dir.path(), "polar").unwrap();
        assert_eq!(
            TlsIdentity::load_next(dir.path()).unwrap().unwrap().spki(),
            next.spki()
        );
        assert_eq!(TlsIdentity::load(dir.path()).unwrap().spki(), old.spki());
        // The crash: only the key was renamed.
        rename_durably(dir.path(), TLS_NEXT_KEY_FILE, TLS_KEY_FILE).unwrap();
        let loaded = TlsIdentity::load(dir.path()).unwrap();
        assert_eq!(loaded.spki(), next.spki());
        assert!(TlsIdentity::load_next(dir.path()).unwrap().is_none());
        assert!(!dir.path().join(TLS_NEXT_CERT_FILE).exists());

        // A whole switch, then none to make.
        let third = TlsIdentity::create_next(dir.path(), "polar").unwrap();
        assert_eq!(
            TlsIdentity::switch_to_next(dir.path()).unwrap().spki(),
            third.spki()
        );
        assert_eq!(TlsIdentity::load(dir.path()).unwrap().spki(), third.spki());
        let none = TlsIdentity::switch_to_next(dir.path()).err().unwrap();
        assert!(none.to_string().contains("keys rotate --tls"), "{none}");
        assert_ne!(tls_key_id(old.spki()), tls_key_id(third.spki()));
        assert!(tls_key_id(old.spki()).starts_with("sha256:"));
    }

    /// A next key whose making or removal a crash cut short (the key there,
    /// its certificate not) is given up: the identity in use loads as it
    /// was, with no next key, and a new next key can be made.
    #[test]
    fn a_next_key_cut_short_is_given_up_and_the_key_in_use_loads() {
        let dir = tempfile::tempdir().unwrap();
        let in_use = TlsIdentity::create(dir.path(), "polar").unwrap();
        TlsIdentity::create_next(dir.path(), "polar").unwrap();
        // The crash: the certificate removed, the key not yet.
        std::fs::remove_file(dir.path().join(TLS_NEXT_CERT_FILE)).unwrap();
        assert_eq!(TlsIdentity::load(dir.path()).unwrap().spki(), in_use.spki());
        assert!(TlsIdentity::load_next(dir.path()).unwrap().is_none());
        assert!(!dir.path().join(TLS_NEXT_KEY_FILE).exists());
        let next = TlsIdentity::create_next(dir.path(), "polar").unwrap();
        assert_eq!(
            TlsIdentity::load_next(dir.path()).unwrap().unwrap().spki(),
            next.spki()
        );

        // Removed in the order that leaves no such certificate behind: the
        // key in use still loads whatever step a crash stops at.
        TlsIdentity::remove_next(dir.path()).unwrap();
        assert_eq!(TlsIdentity::load(dir.path()).unwrap().spki(), in_use.spki());
    }
}
