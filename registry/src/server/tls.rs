//! TLS for `sealos registry serve --tls-cert FILE --tls-key FILE`: loading a PEM certificate chain and key
//! into a rustls (ring provider) configuration, and serving over it: each TLS handshake runs in its
//! connection's own task (with a timeout) so a slow or silent client cannot hold up other connections.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::conn;
use super::limits::ConnectionLimits;

/// A loaded TLS server configuration, shared by every connection.
pub type TlsConfig = Arc<rustls::ServerConfig>;

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file is missing, unreadable or holds no usable PEM.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The key does not fit the certificate, or rustls refused the pair.
    #[error("certificate `{}` with key `{}`: {message}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        message: String,
    },
}

/// Builds a rustls server configuration (TLS 1.2 and 1.3, ring provider, HTTP/1.1 over ALPN) from a PEM
/// certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
    build_config(cert, key, None)
}

/// As [`server_config`], and every client must present a certificate signed by one of the CA certificates
/// in the PEM file `client_ca` (mutual TLS; `--tls-client-ca`, docker-registry's `http.tls.clientcas`):
/// a connection without one fails its handshake.
pub fn server_config_with_client_ca(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<TlsConfig, TlsError> {
    build_config(cert, key, Some(client_ca))
}

/// Reads the CA certificates clients' certificates must chain to.
fn client_verifier(
    path: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let err = |message: String| TlsError::File {
        path: path.to_path_buf(),
        message,
    };
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(format!("cannot read client CA file: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(format!("not a valid PEM certificate file: {e}")))?;
    if cas.is_empty() {
        return Err(err(
            "holds no `BEGIN CERTIFICATE` block; give the PEM certificate(s) of the CA that signs client certificates"
                .into(),
        ));
    }
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots
            .add(ca)
            .map_err(|e| err(format!("not a usable CA certificate: {e}")))?;
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| err(format!("cannot verify clients with it: {e}")))
}

fn build_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<TlsConfig, TlsError> {
    let file_err = |path: &Path, message: String| TlsError::File {
        path: path.to_path_buf(),
        message,
    };
    std::fs::metadata(cert).map_err(|e| file_err(cert, format!("cannot read certificate: {e}")))?;
    std::fs::metadata(key).map_err(|e| file_err(key, format!("cannot read key: {e}")))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, format!("cannot read certificate: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert, format!("not a valid PEM certificate file: {e}")))?;
    if chain.is_empty() {
        return Err(file_err(
            cert,
            "holds no `BEGIN CERTIFICATE` block; give the PEM certificate chain, leaf first".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        file_err(
            key,
            format!("no usable PEM private key (PKCS#8, RSA or EC, unencrypted): {e}"),
        )
    })?;
    let pair_err = |e: rustls::Error| TlsError::Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        message: e.to_string(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(pair_err)?;
    let builder = match client_ca {
        Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider)?),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, private).map_err(pair_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` over TLS on `listener` with the default [`ConnectionLimits`] until `shutdown` completes,
/// then finishes in-flight requests.
pub async fn serve_tls(
    listener: TcpListener,
    config: TlsConfig,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_tls_with(
        listener,
        config,
        router,
        &ConnectionLimits::default(),
        shutdown,
    )
    .await
}

/// As [`serve_tls`], within `limits`. Each connection's first byte is looked at before the handshake (within
/// the header timeout): plain HTTP gets a readable 400 naming the `https://` URL to use, as Go's servers answer
/// it, instead of a TLS alert; the handshake itself must finish within [`HANDSHAKE_TIMEOUT`].
pub async fn serve_tls_with(
    listener: TcpListener,
    config: TlsConfig,
    router: Router,
    limits: &ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    let first_byte_timeout = limits.header_timeout;
    let prepare = move |tcp: TcpStream, peer: SocketAddr| {
        let acceptor = acceptor.clone();
        async move {
            let mut first = [0u8; 1];
            match tokio::time::timeout(first_byte_timeout, tcp.peek(&mut first)).await {
                Ok(Ok(1..)) if first[0] == TLS_HANDSHAKE_RECORD => {}
                Ok(Ok(1..)) => {
                    answer_plain_http(tcp).await;
                    return None;
                }
                _ => return None,
            }
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    None
                }
            }
        }
    };
    conn::serve_connections(listener, router, limits, shutdown, prepare).await
}

/// The first byte of every TLS connection: the content type of a handshake record (the ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Answers a plain-HTTP request sent to the TLS port with a 400 that says so, then closes the connection.
async fn answer_plain_http(mut tcp: TcpStream) {
    // Read the head (a short while, a few KiB at most) to name the Host in the hint, and so the connection is
    // not closed with unread bytes, which would reset it before the client reads the answer.
    let mut head = Vec::new();
    let reading = async {
        let mut buf = [0u8; 2048];
        while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _late = tokio::time::timeout(Duration::from_secs(2), reading).await;
    let text = String::from_utf8_lossy(&head);
    let host = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim().to_string())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()));
    let hint = match host {
        Some(h) => format!("this registry serves HTTPS only: use `https://{h}/`\n"),
        None => "this registry serves HTTPS only: use an `https://` URL\n".to_string(),
    };
    let answer = format!(
        "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n\
         Client sent an HTTP request to an HTTPS server.\n{hint}"
    );
    let _ignored = tokio::time::timeout(Duration::from_secs(2), async {
        tcp.write_all(answer.as_bytes()).await?;
        tcp.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let e = server_config(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("cert.pem"), "{e}");
        std::fs::write(&cert, "not pem").unwrap();
        std::fs::write(&key, "").unwrap();
        let e = server_config(&cert, &key).unwrap_err().to_string();
        assert!(
            e.contains("cert.pem") && e.contains("BEGIN CERTIFICATE"),
            "{e}"
        );
    }
}
