//! Downloading a plain `http(s)://` URL (a Kubefile's `ADD <URL>`) through the client's transport: the same
//! TLS setup (system roots plus the host's `certs.d` CA certificates and client certificate, `--tls-verify`,
//! `insecure` hosts of `registries.conf`), proxies, timeouts, per-host limits and retries (transient network
//! errors, 5xx and 429, `Retry-After`) as registry requests. A body cut off mid-way is continued with
//! `Range: bytes=N-` when the server serves ranges, as blob downloads are. Mirrors do not apply: they map
//! registry repositories, and a URL names no repository.

use bytes::Bytes;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Method, StatusCode};

use super::conf::Endpoint;
use super::transport::{Sent, expect_success, is_transient, transport_error};
use super::{ClientError, RegistryClient};

/// The body of a URL being downloaded by [`RegistryClient::fetch_url`]; read it with [`UrlBody::chunk`].
pub struct UrlBody {
    client: RegistryClient,
    endpoint: Endpoint,
    url: String,
    sent: Sent,
    received: u64,
    resumes: u32,
}

impl std::fmt::Debug for UrlBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlBody")
            .field("url", &self.url)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// Starts downloading `url` (`http://` or `https://`): sends `GET`, retrying as registry requests are,
    /// and returns the body once the server answered 2xx; another status is a [`ClientError::Registry`]
    /// naming it. No credentials are sent unless the host asks for them and we hold some for it.
    pub async fn fetch_url(&self, url: &str) -> Result<UrlBody, ClientError> {
        let endpoint = url_endpoint(self, url)?;
        let sent = self
            .inner
            .send(&endpoint, &[], Method::GET, url, &|rb| Ok(rb))
            .await?;
        let sent = expect_success(sent, "GET", url).await?;
        Ok(UrlBody {
            client: self.clone(),
            endpoint,
            url: url.to_string(),
            sent,
            received: 0,
            resumes: 0,
        })
    }
}

impl UrlBody {
    /// The body's length when the server said it (`Content-Length` of the first answer).
    pub fn content_length(&self) -> Option<u64> {
        self.sent.resp.content_length()
    }

    /// The next piece of the body; `None` at its end. A body cut off by a transient error is continued
    /// with a range request (up to the client's [`super::RetryPolicy::max_resumes`] times).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            match self.sent.resp.chunk().await {
                Ok(Some(bytes)) => {
                    self.received += bytes.len() as u64;
                    return Ok(Some(bytes));
                }
                Ok(None) => return Ok(None),
                Err(e) => {
                    let policy = &self.client.inner.opts.retry;
                    if !is_transient(&e) || self.resumes >= policy.max_resumes {
                        return Err(transport_error(&Method::GET, &self.url, e, &self.endpoint));
                    }
                    self.resumes += 1;
                    tracing::debug!(url = %self.url, error = %e, at = self.received, "resuming a cut download");
                    tokio::time::sleep(policy.backoff(self.resumes)).await;
                    self.resume(e).await?;
                }
            }
        }
    }

    /// Asks for the rest of the body from byte `received` on; a server that answers with the whole body
    /// again (no range support) cannot continue it: `cause` is then the error.
    async fn resume(&mut self, cause: reqwest::Error) -> Result<(), ClientError> {
        let range = format!("bytes={}-", self.received);
        let sent = self
            .client
            .inner
            .send(&self.endpoint, &[], Method::GET, &self.url, &|rb| {
                Ok(rb.header(RANGE, range.as_str()))
            })
            .await?;
        let continues = sent.resp.status() == StatusCode::PARTIAL_CONTENT
            && sent
                .resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(&format!("bytes {}-", self.received)));
        if !continues {
            return Err(transport_error(
                &Method::GET,
                &self.url,
                cause,
                &self.endpoint,
            ));
        }
        self.sent = sent;
        Ok(())
    }
}

/// The endpoint a URL's requests go to: its `host[:port]`, insecure as that host is for registries.
fn url_endpoint(client: &RegistryClient, url: &str) -> Result<Endpoint, ClientError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ClientError::InvalidInput(format!("`{url}` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ClientError::InvalidInput(format!(
            "`{url}`: only http:// and https:// URLs can be fetched"
        )));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| ClientError::InvalidInput(format!("`{url}` names no host")))?;
    let host = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    client.inner.single_endpoint(&host, "")
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::client::{ClientOptions, RetryPolicy};

    /// An HTTP peer on 127.0.0.1 that answers its n-th request with `answers[n]` (raw bytes, then it closes
    /// the connection) and records every request head. Returns the base URL and the heads.
    async fn scripted(answers: Vec<Vec<u8>>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            for answer in answers {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).to_lowercase());
                let _ = stream.write_all(&answer).await;
                let _ = stream.shutdown().await;
            }
        });
        (base, heads)
    }

    fn client() -> RegistryClient {
        RegistryClient::new(ClientOptions {
            retry: RetryPolicy {
                initial_backoff: Duration::from_millis(1),
                ..RetryPolicy::default()
            },
            ..ClientOptions::default()
        })
        .unwrap()
    }

    async fn read_all(body: &mut UrlBody) -> Result<Vec<u8>, ClientError> {
        let mut all = Vec::new();
        while let Some(chunk) = body.chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    #[tokio::test]
    async fn a_503_is_retried_and_the_body_then_read() {
        let (base, heads) = scripted(vec![
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        ])
        .await;
        let mut body = client().fetch_url(&format!("{base}/f")).await.unwrap();
        assert_eq!(body.content_length(), Some(5));
        assert_eq!(read_all(&mut body).await.unwrap(), b"hello");
        assert_eq!(heads.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_cut_body_is_continued_with_a_range_request() {
        let (base, heads) = scripted(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123".to_vec(),
            b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 4-9/10\r\nContent-Length: 6\r\n\r\n456789"
                .to_vec(),
        ])
        .await;
        let mut body = client().fetch_url(&format!("{base}/f")).await.unwrap();
        assert_eq!(read_all(&mut body).await.unwrap(), b"0123456789");
        let heads = heads.lock().unwrap();
        assert!(heads[1].contains("range: bytes=4-"), "{}", heads[1]);
    }

    #[tokio::test]
    async fn a_cut_body_from_a_server_without_ranges_fails_naming_the_url() {
        let (base, _) = scripted(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789".to_vec(),
        ])
        .await;
        let url = format!("{base}/f");
        let mut body = client().fetch_url(&url).await.unwrap();
        let err = read_all(&mut body).await.unwrap_err().to_string();
        assert!(err.contains(&url), "{err}");
    }

    #[tokio::test]
    async fn other_schemes_and_error_statuses_are_refused_clearly() {
        let err = client().fetch_url("ftp://h/x").await.unwrap_err();
        assert!(
            err.to_string().contains("only http:// and https://"),
            "{err}"
        );
        let (base, heads) = scripted(vec![
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found".to_vec(),
        ])
        .await;
        let err = client().fetch_url(&format!("{base}/f")).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Registry { status: 404, .. }),
            "{err}"
        );
        assert_eq!(heads.lock().unwrap().len(), 1, "a 404 is not retried");
    }
}
