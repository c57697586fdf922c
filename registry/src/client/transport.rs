//! Sending one registry request well: choosing https or http per host, attaching credentials or bearer
//! tokens (answering challenges and caching tokens per host and scope), limiting concurrency per host, and
//! retrying transient errors ([`is_transient`]: timeouts, resets, cut bodies), 5xx and 429 with backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, StatusCode};
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use super::auth::{Challenge, Credentials, parse_challenge, parse_token_response};
use super::certs::HostTls;
use super::conf::Endpoint;
use super::{ClientError, ClientOptions, api_host, normalize_host};

/// Shared state behind a [`super::RegistryClient`].
pub(crate) struct Inner {
    pub(crate) opts: ClientOptions,
    secure: reqwest::Client,
    insecure: reqwest::Client,
    hosts: Mutex<HashMap<String, Arc<HostState>>>,
}

/// What we know about one registry host.
struct HostState {
    limit: Arc<Semaphore>,
    /// The verifying client for this host: the shared one, or one that also trusts the host's own CA
    /// certificates ([`super::CertDirs`]).
    verifying: OnceCell<reqwest::Client>,
    /// The client for this host when it is insecure: the shared one, or one with the host's client certificate.
    unverified: OnceCell<reqwest::Client>,
    base: OnceCell<String>,
    auth: Mutex<AuthState>,
    creds: Mutex<HashMap<String, Option<Credentials>>>,
}

#[derive(Default)]
struct AuthState {
    /// The last challenge the host sent: lets later requests authenticate without a 401 first.
    scheme: Option<Challenge>,
    /// Bearer tokens by scope set, with when they expire.
    tokens: HashMap<String, (String, Instant)>,
}

/// A response together with the host slot it occupies; the slot is freed when the body is dropped.
pub(crate) struct Sent {
    pub(crate) resp: reqwest::Response,
    pub(crate) _permit: OwnedSemaphorePermit,
}

/// Builds the request for one attempt; `Err` when the request cannot be made again (a one-shot body).
pub(crate) type Build<'a> =
    dyn Fn(RequestBuilder) -> Result<RequestBuilder, ClientError> + Send + Sync + 'a;

impl Inner {
    pub(crate) fn new(opts: ClientOptions) -> Result<Self, ClientError> {
        Ok(Inner {
            secure: http_client(&opts, false, HostTls::default())?,
            insecure: http_client(&opts, true, HostTls::default())?,
            hosts: Mutex::new(HashMap::new()),
            opts,
        })
    }

    fn host_state(&self, host: &str) -> Arc<HostState> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .entry(host.to_string())
            .or_insert_with(|| {
                Arc::new(HostState {
                    limit: Arc::new(Semaphore::new(self.opts.max_concurrent_per_host.max(1))),
                    verifying: OnceCell::new(),
                    unverified: OnceCell::new(),
                    base: OnceCell::new(),
                    auth: Mutex::new(AuthState::default()),
                    creds: Mutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    /// Where to look for `host/repository`, mirrors first when pulling.
    pub(crate) fn endpoints(
        &self,
        host: &str,
        repository: &str,
        for_pull: bool,
        by_digest: bool,
    ) -> Result<Vec<Endpoint>, ClientError> {
        let host = normalize_host(host);
        let mut eps = self
            .opts
            .registries_conf
            .endpoints(&host, repository, for_pull, by_digest)?;
        for e in &mut eps {
            if self.always_insecure(&e.host) {
                e.insecure = true;
            }
        }
        Ok(eps)
    }

    /// Whether `host` is insecure whatever `registries.conf` says: `--tls-verify=false`, or a loopback
    /// host with [`ClientOptions::insecure_loopback`].
    fn always_insecure(&self, host: &str) -> bool {
        !self.opts.tls_verify || (self.opts.insecure_loopback && super::is_loopback_host(host))
    }

    /// The one endpoint for requests that have no mirrors: writes and what a destination has (push,
    /// delete, `HEAD`), the registry-wide ping, and the original host's catalog. Reading an image uses
    /// [`Self::endpoints`].
    pub(crate) fn single_endpoint(
        &self,
        host: &str,
        repository: &str,
    ) -> Result<Endpoint, ClientError> {
        let host = normalize_host(host);
        if repository.is_empty() {
            let insecure = self.always_insecure(&host)
                || self.opts.registries_conf.registries.iter().any(|r| {
                    r.insecure && normalize_host(r.location.split('/').next().unwrap_or("")) == host
                });
            let blocked = self
                .opts
                .registries_conf
                .registries
                .iter()
                .find(|r| r.blocked && r.prefix == host);
            if let Some(b) = blocked {
                return Err(ClientError::Blocked {
                    registry: b.prefix.clone(),
                    conf: self.opts.registries_conf.source.clone(),
                });
            }
            return Ok(Endpoint {
                host,
                repository: String::new(),
                insecure,
                mirror: false,
            });
        }
        let mut eps = self.endpoints(&host, repository, false, false)?;
        eps.pop().ok_or_else(|| {
            ClientError::InvalidInput(format!("no endpoint for `{host}/{repository}`"))
        })
    }

    /// `scheme://api-host` of an endpoint: https, or http for insecure hosts that do not speak TLS.
    pub(crate) async fn base(&self, ep: &Endpoint) -> Result<String, ClientError> {
        let state = self.host_state(&ep.host);
        let api = api_host(&ep.host);
        let base = state
            .base
            .get_or_try_init(|| async {
                if !ep.insecure {
                    return Ok(format!("https://{api}"));
                }
                // Insecure: https without verification first (with the host's client certificate, if it
                // has one); plain http only when the host does not speak TLS (it answered the handshake
                // with something else, or dropped it). A host that is down, unknown, or that speaks TLS
                // but refuses us keeps https: its error names it.
                let probe = self
                    .client(ep)
                    .await?
                    .get(format!("https://{api}/v2/"))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                Ok::<_, ClientError>(match probe {
                    Ok(_) => format!("https://{api}"),
                    Err(e) if tls_refusal(&e).is_some() || is_refused(&e) || is_dns_failure(&e) => {
                        format!("https://{api}")
                    }
                    Err(e) => {
                        tracing::debug!(host = %api, error = %e, "no TLS on the https probe; using plain http");
                        format!("http://{api}")
                    }
                })
            })
            .await?;
        Ok(base.clone())
    }

    /// The full URL of `path` (starting with `/v2/`) on an endpoint.
    pub(crate) async fn url(&self, ep: &Endpoint, path: &str) -> Result<String, ClientError> {
        Ok(format!("{}{path}", self.base(ep).await?))
    }

    /// The HTTP client for an endpoint: verifying with the system roots plus the host's own CA certificates
    /// ([`super::CertDirs`]), or unverified for insecure ones; either presents the host's client certificate,
    /// if its directory holds one.
    async fn client(&self, ep: &Endpoint) -> Result<reqwest::Client, ClientError> {
        let state = self.host_state(&ep.host);
        let cell = if ep.insecure {
            &state.unverified
        } else {
            &state.verifying
        };
        let client = cell
            .get_or_try_init(|| async {
                let mut tls = self.opts.cert_dirs.tls_for(&ep.host)?;
                if ep.insecure {
                    // Nothing is verified: only a client certificate still matters.
                    tls.roots.clear();
                }
                match (tls.is_empty(), ep.insecure) {
                    (true, false) => Ok(self.secure.clone()),
                    (true, true) => Ok(self.insecure.clone()),
                    (false, insecure) => http_client(&self.opts, insecure, tls),
                }
            })
            .await?;
        Ok(client.clone())
    }

    async fn credentials(&self, ep: &Endpoint) -> Result<Option<Credentials>, ClientError> {
        if let Some(c) = self.opts.credentials.get(&ep.host) {
            return Ok(Some(c.clone()));
        }
        let state = self.host_state(&ep.host);
        if let Some(c) = state
            .creds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ep.repository)
        {
            return Ok(c.clone());
        }
        let files = self.opts.credential_files.clone();
        let (host, repo) = (ep.host.clone(), ep.repository.clone());
        // Credential helpers are processes: keep them off the async threads.
        let found = tokio::task::spawn_blocking(move || files.lookup(&host, &repo))
            .await
            .map_err(|e| ClientError::InvalidInput(format!("credential lookup panicked: {e}")))??;
        state
            .creds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ep.repository.clone(), found.clone());
        Ok(found)
    }

    /// The Authorization header to send for `scopes`, from what the host asked for before.
    async fn auth_header(
        &self,
        ep: &Endpoint,
        scopes: &[String],
    ) -> Result<Option<String>, ClientError> {
        let state = self.host_state(&ep.host);
        let key = scopes.join(" ");
        let scheme = {
            let auth = state.auth.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((token, until)) = auth.tokens.get(&key)
                && Instant::now() < *until
            {
                return Ok(Some(format!("Bearer {token}")));
            }
            auth.scheme.clone()
        };
        match scheme {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credentials(ep).await?.map(|c| c.basic_header())),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let token = self
                    .fetch_token(ep, &realm, service.as_deref(), scopes)
                    .await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Gets a token for `scopes` from `realm` (with Basic credentials when we have some) and caches it.
    async fn fetch_token(
        &self,
        ep: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, ClientError> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        for s in scopes {
            query.push(("scope", s));
        }
        let creds = self.credentials(ep).await?;
        let (method, rb) = match creds.as_ref().and_then(Credentials::identity_token) {
            // An identity (refresh) token from `docker login` with OAuth: the OAuth2 POST flow.
            Some(refresh) => {
                let joined = scopes.join(" ");
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh),
                    ("client_id", "sealos"),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                if !joined.is_empty() {
                    form.push(("scope", &joined));
                }
                ("POST", self.client(ep).await?.post(realm).form(&form))
            }
            None => {
                let mut rb = self.client(ep).await?.get(realm).query(&query);
                if let Some(c) = &creds {
                    rb = rb.header(AUTHORIZATION, c.basic_header());
                }
                ("GET", rb)
            }
        };
        let resp = rb.send().await.map_err(|e| ClientError::Transport {
            method: method.into(),
            url: realm.to_string(),
            source: e,
            hint: " (token server)".into(),
        })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| ClientError::Transport {
            method: method.into(),
            url: realm.to_string(),
            source: e,
            hint: " (token server)".into(),
        })?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let said = error_body_text(&body);
            let said = if said.is_empty() {
                String::new()
            } else {
                format!(" ({said})")
            };
            let detail = match (&creds, status) {
                (Some(_), StatusCode::UNAUTHORIZED) => {
                    format!("wrong user name or password{said}")
                }
                _ => format!(
                    "the token server refused access to `{}`{said}",
                    scopes.join(" ")
                ),
            };
            return Err(ClientError::Unauthorized {
                host: ep.host.clone(),
                url: realm.to_string(),
                detail,
                credentials_sent: creds.is_some(),
            });
        }
        if !status.is_success() {
            return Err(ClientError::InvalidResponse {
                url: realm.to_string(),
                message: format!("token server answered {status}"),
            });
        }
        let token = parse_token_response(&body).ok_or_else(|| ClientError::InvalidResponse {
            url: realm.to_string(),
            message: "token server answer has no `token` or `access_token`".into(),
        })?;
        // Renew a little early so a token does not expire between check and use.
        let slack = Duration::from_secs(5).min(token.lifetime / 2);
        let until = Instant::now() + token.lifetime - slack;
        let state = self.host_state(&ep.host);
        state
            .auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tokens
            .insert(scopes.join(" "), (token.token.clone(), until));
        Ok(token.token)
    }

    /// A `GET` of `url` that reads `ep`'s repository (the pull scope), through [`Inner::send`].
    pub(crate) async fn get_pull(
        &self,
        ep: &Endpoint,
        url: &str,
        build: &Build<'_>,
    ) -> Result<Sent, ClientError> {
        self.send(
            ep,
            &[repo_scope(&ep.repository, false)],
            Method::GET,
            url,
            build,
        )
        .await
    }

    /// Sends a request built by `build`, authenticating, waiting for a host slot and retrying as configured.
    pub(crate) async fn send(
        &self,
        ep: &Endpoint,
        scopes: &[String],
        method: Method,
        url: &str,
        build: &Build<'_>,
    ) -> Result<Sent, ClientError> {
        let policy = &self.opts.retry;
        let state = self.host_state(&ep.host);
        let mut retries = 0u32;
        let mut challenges = 0u32;
        // Why the previous attempt failed: reported instead of "cannot replay" when a one-shot body is spent.
        let mut last: Option<ClientError> = None;
        loop {
            let permit = state.limit.clone().acquire_owned().await.map_err(|_| {
                ClientError::InvalidInput("the client's connection limiter was closed".into())
            })?;
            let auth = self.auth_header(ep, scopes).await?;
            let mut rb = match build(self.client(ep).await?.request(method.clone(), url)) {
                Ok(rb) => rb,
                Err(e) => return Err(last.unwrap_or(e)),
            };
            if let Some(a) = &auth {
                rb = rb.header(AUTHORIZATION, a);
            }
            tracing::debug!(target: "registry::client", "{method} {}", loggable_url(url));
            let (failure, wait) = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    tracing::debug!(target: "registry::client", "{method} {} -> {status}", loggable_url(url));
                    if status == StatusCode::UNAUTHORIZED && challenges < 2 {
                        challenges += 1;
                        let challenge = pick_challenge(resp.headers());
                        drop(permit);
                        let Some(challenge) = challenge else {
                            return Err(ClientError::Unauthorized {
                                host: ep.host.clone(),
                                url: url.to_string(),
                                detail: "the registry sent no usable WWW-Authenticate challenge"
                                    .into(),
                                credentials_sent: self.credentials(ep).await?.is_some(),
                            });
                        };
                        self.answer_challenge(ep, url, challenge, scopes, auth.is_some())
                            .await?;
                        continue;
                    }
                    if status == StatusCode::UNAUTHORIZED {
                        // A bearer token got without credentials is anonymous: then we are not logged in.
                        let credentials_sent = self.credentials(ep).await?.is_some();
                        return Err(ClientError::Unauthorized {
                            host: ep.host.clone(),
                            url: url.to_string(),
                            detail: String::new(),
                            credentials_sent,
                        });
                    }
                    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                        return Ok(Sent {
                            resp,
                            _permit: permit,
                        });
                    }
                    let wait = retry_after(resp.headers()).map(|d| d.min(policy.max_retry_after));
                    (registry_error(resp, method.as_str(), url).await, wait)
                }
                Err(e) => {
                    tracing::debug!(target: "registry::client", "{method} {} -> failed: {e}", loggable_url(url));
                    let retryable = is_transient(&e);
                    let failure = transport_error(&method, url, e, ep);
                    if !retryable {
                        return Err(failure);
                    }
                    (failure, None)
                }
            };
            drop(permit);
            if retries + 1 >= policy.max_attempts {
                return Err(failure);
            }
            retries += 1;
            let wait = wait.unwrap_or_else(|| policy.backoff(retries));
            tracing::debug!(%url, error = %failure, ?wait, retries, "retrying");
            last = Some(failure);
            tokio::time::sleep(wait).await;
        }
    }

    /// Records what the host asked for and gets what it takes (a fresh token, or checks we have creds).
    async fn answer_challenge(
        &self,
        ep: &Endpoint,
        url: &str,
        challenge: Challenge,
        scopes: &[String],
        had_auth: bool,
    ) -> Result<(), ClientError> {
        let state = self.host_state(&ep.host);
        {
            let mut auth = state.auth.lock().unwrap_or_else(|p| p.into_inner());
            auth.scheme = Some(challenge.clone());
            // Whatever we sent was not good enough: forget the token for this scope.
            auth.tokens.remove(&scopes.join(" "));
        }
        match challenge {
            Challenge::Basic => {
                let have = self.credentials(ep).await?.is_some();
                if had_auth || !have {
                    return Err(ClientError::Unauthorized {
                        host: ep.host.clone(),
                        url: url.to_string(),
                        detail: if had_auth {
                            "wrong user name or password".into()
                        } else {
                            String::new()
                        },
                        credentials_sent: had_auth,
                    });
                }
                Ok(())
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let mut wanted: Vec<String> = scopes.to_vec();
                if let Some(s) = scope {
                    for part in s.split(' ').filter(|p| !p.is_empty()) {
                        if !wanted.iter().any(|w| w == part) {
                            wanted.push(part.to_string());
                        }
                    }
                }
                let token = self
                    .fetch_token(ep, &realm, service.as_deref(), &wanted)
                    .await?;
                // Cache under the scopes the caller will ask with, too.
                if wanted.len() != scopes.len() {
                    let until = Instant::now() + Duration::from_secs(30);
                    state
                        .auth
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .tokens
                        .insert(scopes.join(" "), (token, until));
                }
                Ok(())
            }
        }
    }
}

/// The scope of a repository for pulling (and pushing).
pub(crate) fn repo_scope(repository: &str, push: bool) -> String {
    if push {
        format!("repository:{repository}:pull,push")
    } else {
        format!("repository:{repository}:pull")
    }
}

fn pick_challenge(headers: &HeaderMap) -> Option<Challenge> {
    let all: Vec<Challenge> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_challenge)
        .collect();
    all.iter()
        .find(|c| matches!(c, Challenge::Bearer { .. }))
        .or_else(|| all.first())
        .cloned()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<u64>().ok().map(Duration::from_secs)
}

/// A reqwest client with the options' user agent and timeouts; `insecure` skips certificate checks, `tls`
/// adds CA certificates to the system roots and a client certificate.
fn http_client(
    opts: &ClientOptions,
    insecure: bool,
    tls: HostTls,
) -> Result<reqwest::Client, ClientError> {
    let builder = tls
        .roots
        .into_iter()
        .fold(reqwest::Client::builder(), |b, ca| {
            b.add_root_certificate(ca)
        });
    match tls.identity {
        Some(identity) => builder.identity(identity),
        None => builder,
    }
    .user_agent(opts.user_agent.clone())
    .connect_timeout(opts.connect_timeout)
    .read_timeout(opts.read_timeout)
    .danger_accept_invalid_certs(insecure)
    .build()
    .map_err(|e| ClientError::InvalidInput(format!("cannot set up HTTP client: {e}")))
}

/// Whether a failed request may succeed when sent again: timeouts, resets and cut bodies are transient;
/// a refused connection, a name that does not resolve and a TLS handshake that fails (certificates, or a
/// plain-HTTP server answering HTTPS) fail the same way every time, so they are not.
pub(crate) fn is_transient(e: &reqwest::Error) -> bool {
    if tls_refusal(e).is_some() || is_dns_failure(e) || is_tls_mismatch(e) {
        return false;
    }
    if is_refused(e) {
        return false;
    }
    // A body cut short is reported as a decode error.
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() || e.is_decode()
}

/// The kinds of the I/O errors in `e`'s source chain.
fn io_kinds(e: &reqwest::Error) -> Vec<std::io::ErrorKind> {
    let mut kinds = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            kinds.push(io.kind());
        }
        cur = err.source();
    }
    kinds
}

/// Whether the host refused the connection (nothing listens on that port).
pub(crate) fn is_refused(e: &reqwest::Error) -> bool {
    io_kinds(e).contains(&std::io::ErrorKind::ConnectionRefused)
}

/// Whether the host name did not resolve (hyper reports it as a "dns error" connect error).
pub(crate) fn is_dns_failure(e: &reqwest::Error) -> bool {
    e.is_connect() && format!("{e:?}").contains("dns error")
}

/// Whether the TLS handshake failed because the peer does not speak TLS (a plain-HTTP server).
pub(crate) fn is_tls_mismatch(e: &reqwest::Error) -> bool {
    let text = format!("{e:?}");
    text.contains("InvalidContentType") || text.contains("InvalidMessage")
}

/// Why a TLS handshake failed over certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsRefusal {
    /// The registry asks for a client certificate and we have none for it.
    ClientCertificateRequired,
    /// The registry refused the client certificate we presented.
    ClientCertificateRefused,
    /// We do not trust the registry's certificate.
    ServerCertificateUntrusted,
}

/// Reads a certificate failure out of a request error (rustls' errors, as reqwest reports them).
fn tls_refusal(e: &reqwest::Error) -> Option<TlsRefusal> {
    let text = format!("{e:?}");
    // rustls' error itself, or its message when an I/O error carries it.
    let alert = |name: &str| {
        text.contains(&format!("AlertReceived({name})"))
            || text.contains(&format!("received fatal alert: {name}"))
    };
    const REFUSED: [&str; 4] = [
        "UnknownCA",
        "BadCertificate",
        "CertificateUnknown",
        // A certificate from another CA of the same name fails its signature check.
        "DecryptError",
    ];
    if alert("CertificateRequired") {
        Some(TlsRefusal::ClientCertificateRequired)
    } else if REFUSED.into_iter().any(alert) {
        Some(TlsRefusal::ClientCertificateRefused)
    } else if text.contains("InvalidCertificate") || text.contains("certificate") {
        Some(TlsRefusal::ServerCertificateUntrusted)
    } else {
        None
    }
}

pub(crate) fn transport_error(
    method: &Method,
    url: &str,
    e: reqwest::Error,
    ep: &Endpoint,
) -> ClientError {
    let host = &ep.host;
    let hint = match tls_refusal(&e) {
        Some(TlsRefusal::ClientCertificateRequired) => format!(
            "; `{host}` asks for a client certificate (mutual TLS): put it in /etc/containers/certs.d/{host}/client.cert with its key in client.key, or in the directory given with --cert-dir"
        ),
        Some(TlsRefusal::ClientCertificateRefused) => format!(
            "; `{host}` refused our client certificate (the *.cert file in its certs.d directory or --cert-dir): it must be signed by a CA the registry trusts for clients"
        ),
        Some(TlsRefusal::ServerCertificateUntrusted) => format!(
            "; if `{host}` uses its own CA, put the CA certificate in /etc/containers/certs.d/{host}/ca.crt or pass --cert-dir DIR; to skip verification, mark it `insecure` in registries.conf or pass --tls-verify=false"
        ),
        None if is_dns_failure(&e) => String::new(),
        None if is_refused(&e) => {
            "; is the registry running, and listening on that port?".to_string()
        }
        None if is_tls_mismatch(&e) && !ep.insecure => format!(
            "; `{host}` seems to speak plain HTTP: mark it `insecure = true` in registries.conf or pass --tls-verify=false"
        ),
        None if e.is_connect() && !ep.insecure => format!(
            "; is `{host}` up? A plain-HTTP registry needs `insecure = true` in registries.conf or --tls-verify=false"
        ),
        None => String::new(),
    };
    ClientError::Transport {
        method: method.to_string(),
        url: url.to_string(),
        source: e,
        hint,
    }
}

/// Returns the response when its status is 2xx, else the registry's error read from the body.
pub(crate) async fn expect_success(
    sent: Sent,
    method: &str,
    url: &str,
) -> Result<Sent, ClientError> {
    if sent.resp.status().is_success() {
        return Ok(sent);
    }
    Err(registry_error(sent.resp, method, url).await)
}

/// `url` without user information (`user:password@`), for logs.
fn loggable_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The first code and a short description of every error in an OCI error body
/// (`{"errors":[{"code":..,"message":..,"detail":..}]}`): `CODE: message (detail); CODE: ...`. A body
/// that is not one gives no code and its start.
pub(crate) fn describe_error_body(body: &[u8]) -> (Option<String>, String) {
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
    let errors = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.as_array())
        .filter(|e| !e.is_empty());
    let Some(errors) = errors else {
        return (None, error_body_text(body));
    };
    let code = errors[0]
        .get("code")
        .and_then(|c| c.as_str())
        .map(str::to_string);
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let text = |k: &str| e.get(k).and_then(|c| c.as_str()).unwrap_or("").trim();
            let mut part = match (text("code"), text("message")) {
                ("", m) => m.to_string(),
                (c, "") => c.to_string(),
                (c, m) => format!("{c}: {m}"),
            };
            if let Some(d) = e.get("detail").map(short_detail).filter(|d| !d.is_empty()) {
                part.push_str(&format!(" ({d})"));
            }
            part
        })
        .collect();
    (code, parts.join("; "))
}

/// An error `detail` in a few words: a string as it is, an object of plain values as `Key=value` pairs
/// (docker-registry's `{"Tag":"v1"}` is `Tag=v1`), anything else as compact JSON; cut at 200 characters.
fn short_detail(detail: &serde_json::Value) -> String {
    let scalar = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let pairs = detail.as_object().and_then(|o| {
        o.iter()
            .map(|(k, v)| scalar(v).map(|v| format!("{k}={v}")))
            .collect::<Option<Vec<_>>>()
    });
    let text = match detail {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.trim().to_string(),
        _ if pairs.is_some() => pairs.unwrap_or_default().join(", "),
        other => other.to_string(),
    };
    if text.chars().count() > 200 {
        format!("{}...", text.chars().take(200).collect::<String>())
    } else {
        text
    }
}

/// What an error body says, in one line without JSON: the messages of an OCI error body, the `details`,
/// `error_description`, `error` or `message` of a token server's, else the start of the body.
pub(crate) fn error_body_text(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(errors) = v.get("errors").and_then(|e| e.as_array()) {
            let msgs: Vec<&str> = errors
                .iter()
                .filter_map(|e| e.get("message").and_then(|m| m.as_str()))
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .collect();
            if !msgs.is_empty() {
                return msgs.join("; ");
            }
        }
        for key in ["details", "error_description", "error", "message"] {
            if let Some(text) = v.get(key).and_then(|m| m.as_str()) {
                return text.trim().to_string();
            }
        }
        return String::new();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads an OCI error body (`{"errors":[{"code":..,"message":..}]}`) into a [`ClientError::Registry`].
pub(crate) async fn registry_error(
    mut resp: reqwest::Response,
    method: &str,
    url: &str,
) -> ClientError {
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    while body.len() < 64 * 1024 {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    let (code, message) = describe_error_body(&body);
    ClientError::Registry {
        method: method.to_string(),
        url: url.to_string(),
        status,
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn fail(url: &str) -> reqwest::Error {
        reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .expect_err("the request must fail")
    }

    #[test]
    fn every_error_of_a_body_is_described_with_code_message_and_detail() {
        let body = br#"{"errors":[
            {"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content","detail":"invalid digest"},
            {"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:abc"},
            {"code":"UNKNOWN","message":"unknown error","detail":{"Op":"stat","Path":"/x"}}
        ]}"#;
        let (code, text) = describe_error_body(body);
        assert_eq!(code.as_deref(), Some("DIGEST_INVALID"));
        assert_eq!(
            text,
            "DIGEST_INVALID: provided digest did not match uploaded content (invalid digest); \
             MANIFEST_BLOB_UNKNOWN: blob unknown to registry (sha256:abc); \
             UNKNOWN: unknown error (Op=stat, Path=/x)"
        );
        let (code, text) = describe_error_body(b"<html>\n  Bad   Gateway\n</html>");
        assert_eq!((code, text.as_str()), (None, "<html> Bad Gateway </html>"));
    }

    #[test]
    fn token_server_bodies_read_as_one_line_without_json() {
        assert_eq!(
            error_body_text(
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}"#
            ),
            "invalid username or password"
        );
        assert_eq!(
            error_body_text(br#"{"details":"incorrect username or password"}"#),
            "incorrect username or password"
        );
        assert_eq!(error_body_text(br#"{"token":""}"#), "");
    }

    #[test]
    fn logged_urls_carry_no_credentials() {
        assert_eq!(
            loggable_url("https://u:secret@example.com/v2/"),
            "https://example.com/v2/"
        );
        assert_eq!(loggable_url("http://h:5000/v2/x"), "http://h:5000/v2/x");
    }

    #[tokio::test]
    async fn refused_connection_and_unresolvable_name_are_not_transient() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let refused = fail(&format!("http://127.0.0.1:{port}/v2/")).await;
        assert!(!is_transient(&refused), "{refused:?}");
        let dns = fail("http://unresolvable.invalid/v2/").await;
        assert!(is_dns_failure(&dns), "{dns:?}");
        assert!(!is_transient(&dns), "{dns:?}");
    }

    #[tokio::test]
    async fn plain_http_server_on_https_is_not_transient() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let e = fail(&format!("https://127.0.0.1:{port}/v2/")).await;
        assert!(!is_transient(&e), "{e:?}");
    }

    #[tokio::test]
    async fn timeout_and_closed_connection_stay_transient() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            let mut n = 0;
            while let Ok((s, _)) = l.accept().await {
                n += 1;
                // The first connection hangs (a timeout), the second is closed unanswered.
                if n == 1 {
                    held.push(s);
                }
            }
        });
        let url = format!("http://127.0.0.1:{port}/v2/");
        let timeout = fail(&url).await;
        assert!(
            timeout.is_timeout() && is_transient(&timeout),
            "{timeout:?}"
        );
        let closed = fail(&url).await;
        assert!(is_transient(&closed), "{closed:?}");
    }
}
