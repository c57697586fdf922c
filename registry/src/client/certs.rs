//! Extra CA certificates to trust per registry, found where podman, skopeo and docker look for them: a
//! `--cert-dir DIR` given for every registry, else the first existing `ROOT/HOST[:PORT]/` of
//! `$HOME/.config/containers/certs.d`, `/etc/containers/certs.d` and `/etc/docker/certs.d`. Every `*.crt` file in
//! that directory is a PEM CA certificate (a bundle may hold several), added to the system roots for that host.
//! A `NAME.cert` file there is a client certificate (PEM, leaf first) presented to registries that ask for one
//! (mutual TLS), with its private key in `NAME.key` beside it; as in docker and podman, one without the other is
//! an error, and the first pair by name is used.

use std::path::{Path, PathBuf};

use super::ClientError;

/// Where per-registry CA certificates are looked up.
#[derive(Debug, Clone, Default)]
pub struct CertDirs {
    /// `--cert-dir`: one directory of `*.crt` files used for every registry; the per-host roots are then ignored.
    pub explicit: Option<PathBuf>,
    /// Roots holding one `HOST[:PORT]` directory per registry, searched in order; the first existing one is used.
    pub roots: Vec<PathBuf>,
}

impl CertDirs {
    /// The roots podman and docker use: the user's `~/.config/containers/certs.d`, then
    /// `/etc/containers/certs.d`, then `/etc/docker/certs.d`.
    pub fn system() -> Self {
        let mut roots = Vec::new();
        if let Some(home) = std::env::var_os("HOME") {
            roots.push(PathBuf::from(home).join(".config/containers/certs.d"));
        }
        roots.push(PathBuf::from("/etc/containers/certs.d"));
        roots.push(PathBuf::from("/etc/docker/certs.d"));
        CertDirs {
            explicit: None,
            roots,
        }
    }

    /// The directory whose `*.crt` files apply to `host` (as written in image references, with its port), if any.
    pub fn dir_for(&self, host: &str) -> Option<PathBuf> {
        if let Some(dir) = &self.explicit {
            return Some(dir.clone());
        }
        // A host name never holds a path separator; refuse one rather than look outside the roots.
        if host.is_empty() || host.contains('/') || host.contains("..") {
            return None;
        }
        self.roots.iter().map(|r| r.join(host)).find(|d| d.is_dir())
    }

    /// The CA certificates to trust for `host`, each read from a `*.crt` file (sorted by name); empty when no
    /// directory applies. An unreadable file or one holding no PEM certificate is an error naming the file.
    pub fn certificates_for(&self, host: &str) -> Result<Vec<reqwest::Certificate>, ClientError> {
        Ok(self.tls_for(host)?.roots)
    }

    /// Everything `host`'s directory holds: the CA certificates (`*.crt`) and the client certificate
    /// (`NAME.cert` with `NAME.key`), if any. Nothing when no directory applies.
    pub fn tls_for(&self, host: &str) -> Result<HostTls, ClientError> {
        let Some(dir) = self.dir_for(host) else {
            return Ok(HostTls::default());
        };
        let mut roots = Vec::new();
        for file in files_with_extension(&dir, "crt")? {
            roots.extend(read_bundle(&file)?);
        }
        Ok(HostTls {
            roots,
            identity: client_identity(&dir)?,
        })
    }
}

/// The TLS settings one registry host gets from its certificate directory.
#[derive(Default)]
pub struct HostTls {
    /// CA certificates trusted besides the system roots.
    pub roots: Vec<reqwest::Certificate>,
    /// The client certificate and key presented when the registry asks for one.
    pub identity: Option<reqwest::Identity>,
}

impl HostTls {
    /// Whether the directory adds nothing to the defaults.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty() && self.identity.is_none()
    }
}

/// The regular files in `dir` named `*.EXT`, sorted by name.
fn files_with_extension(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, ClientError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ClientError::InvalidInput(format!(
            "cannot read certificate directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext) && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// The first `NAME.cert` in `dir` with its `NAME.key`; a certificate without its key, or a key without its
/// certificate, is an error naming the missing file (docker's rule: a half pair is a mistake, not a choice).
fn client_identity(dir: &Path) -> Result<Option<reqwest::Identity>, ClientError> {
    for key in files_with_extension(dir, "key")? {
        let cert = key.with_extension("cert");
        if !cert.is_file() {
            return Err(ClientError::InvalidInput(format!(
                "client key {} has no certificate {} beside it; add the certificate or remove the key",
                key.display(),
                cert.display()
            )));
        }
    }
    let Some(cert) = files_with_extension(dir, "cert")?.into_iter().next() else {
        return Ok(None);
    };
    let key = cert.with_extension("key");
    let bad = |why: String| {
        ClientError::InvalidInput(format!(
            "client certificate {} with key {}: {why}",
            cert.display(),
            key.display()
        ))
    };
    if !key.is_file() {
        return Err(bad(
            "the key is missing; put the PEM private key beside the certificate".into(),
        ));
    }
    let mut pem =
        std::fs::read(&cert).map_err(|e| bad(format!("cannot read the certificate: {e}")))?;
    pem.push(b'\n');
    pem.extend(std::fs::read(&key).map_err(|e| bad(format!("cannot read the key: {e}")))?);
    reqwest::Identity::from_pem(&pem).map(Some).map_err(|e| {
        bad(format!(
            "{e}; they must be a PEM certificate (leaf first) and its unencrypted PEM private key"
        ))
    })
}

fn read_bundle(file: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let bad = |why: String| {
        ClientError::InvalidInput(format!(
            "CA certificate {}: {why}; it must hold PEM certificates (-----BEGIN CERTIFICATE-----)",
            file.display()
        ))
    };
    let pem = std::fs::read(file).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_existing_host_directory_wins_and_an_explicit_directory_wins_over_all() {
        let tmp = tempfile::tempdir().unwrap();
        let (user, etc) = (tmp.path().join("user"), tmp.path().join("etc"));
        std::fs::create_dir_all(etc.join("reg.example:5000")).unwrap();
        std::fs::create_dir_all(user.join("other.example")).unwrap();
        let dirs = CertDirs {
            explicit: None,
            roots: vec![user.clone(), etc.clone()],
        };
        assert_eq!(
            dirs.dir_for("reg.example:5000"),
            Some(etc.join("reg.example:5000"))
        );
        assert_eq!(
            dirs.dir_for("other.example"),
            Some(user.join("other.example"))
        );
        assert_eq!(dirs.dir_for("unknown.example"), None);
        assert_eq!(dirs.dir_for("../etc"), None);
        assert!(dirs.certificates_for("unknown.example").unwrap().is_empty());
        let explicit = CertDirs {
            explicit: Some(tmp.path().to_path_buf()),
            ..dirs
        };
        assert_eq!(
            explicit.dir_for("reg.example:5000"),
            Some(tmp.path().to_path_buf())
        );
    }

    #[test]
    fn a_crt_file_without_a_certificate_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("reg.example");
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("ca.crt"), "not a certificate\n").unwrap();
        // Other files (notes) are not read.
        std::fs::write(host.join("README"), "secret").unwrap();
        let dirs = CertDirs {
            explicit: None,
            roots: vec![tmp.path().to_path_buf()],
        };
        let e = dirs
            .certificates_for("reg.example")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ca.crt") && e.contains("BEGIN CERTIFICATE"),
            "{e}"
        );
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_a_key_its_certificate() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("reg.example");
        std::fs::create_dir_all(&host).unwrap();
        let dirs = CertDirs {
            explicit: None,
            roots: vec![tmp.path().to_path_buf()],
        };
        std::fs::write(host.join("client.key"), "key").unwrap();
        let e = dirs.tls_for("reg.example").err().unwrap().to_string();
        assert!(
            e.contains("client.key") && e.contains("client.cert") && e.contains("no certificate"),
            "{e}"
        );
        std::fs::remove_file(host.join("client.key")).unwrap();
        std::fs::write(host.join("client.cert"), "cert").unwrap();
        let e = dirs.tls_for("reg.example").err().unwrap().to_string();
        assert!(
            e.contains("client.cert") && e.contains("key is missing"),
            "{e}"
        );
        std::fs::write(host.join("client.key"), "key").unwrap();
        let e = dirs.tls_for("reg.example").err().unwrap().to_string();
        assert!(e.contains("client.cert") && e.contains("PEM"), "{e}");
        std::fs::remove_file(host.join("client.cert")).unwrap();
        std::fs::remove_file(host.join("client.key")).unwrap();
        assert!(dirs.tls_for("reg.example").unwrap().is_empty());
    }
}
