//! Manifests, tags, catalogs and referrers: fetched and pushed byte-exact, every manifest checked against
//! its digest before it is returned.

use bytes::Bytes;
use formats::digest::{Digest, DigestError};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LINK};

use super::conf::Endpoint;
use super::transport::{expect_success, registry_error, repo_scope};
use super::{ClientError, RegistryClient};

/// The manifest media types we accept by default: OCI and Docker v2, single images and indexes.
pub const DEFAULT_MANIFEST_ACCEPT: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// Largest manifest accepted (the distribution spec lets registries refuse more than 4 MiB).
const MAX_MANIFEST: usize = 4 * 1024 * 1024;

/// A manifest as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The exact bytes; their digest is `digest`.
    pub bytes: Bytes,
    /// The media type (from `Content-Type`, or the manifest's own `mediaType` when the header is generic).
    pub media_type: String,
    /// The verified digest of `bytes`.
    pub digest: Digest,
}

/// What a `HEAD` on a manifest tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// `Docker-Content-Digest`, when the registry sent it.
    pub digest: Option<Digest>,
    /// `Content-Type`.
    pub media_type: Option<String>,
    /// `Content-Length`.
    pub size: Option<u64>,
}

/// One entry of a referrers list: a manifest (signature, SBOM...) whose `subject` is the asked digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its artifact type, when set.
    pub artifact_type: Option<String>,
}

/// The manifest's own `mediaType` field, when it has one (the small JSON view this module needs).
fn embedded_media_type(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("mediaType")?.as_str().map(str::to_string)
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn header_digest(h: &HeaderMap, url: &str) -> Result<Option<Digest>, ClientError> {
    match header_str(h, "docker-content-digest") {
        None => Ok(None),
        Some(s) => Digest::parse(s.trim())
            .map(Some)
            .map_err(|e| ClientError::InvalidResponse {
                url: url.to_string(),
                message: format!("bad Docker-Content-Digest: {e}"),
            }),
    }
}

impl RegistryClient {
    /// Fetches a manifest by tag or digest, trying mirrors first. When `reference` is a digest the bytes
    /// must hash to it; otherwise their digest is computed and must equal `Docker-Content-Digest` when
    /// the registry sent one. `accept` lists the media types asked for (see [`DEFAULT_MANIFEST_ACCEPT`]).
    pub async fn get_manifest(
        &self,
        host: &str,
        repository: &str,
        reference: &str,
        accept: &[&str],
    ) -> Result<FetchedManifest, ClientError> {
        let expected = parse_digest_reference(reference)?;
        let eps = self
            .inner
            .endpoints(host, repository, true, expected.is_some())?;
        let mut last = None;
        for ep in &eps {
            match self
                .get_manifest_at(ep, reference, expected.as_ref(), accept)
                .await
            {
                Ok(m) => return Ok(m),
                Err(e) => last = Some(mirror_failed(ep, e)),
            }
        }
        Err(last.unwrap_or_else(|| no_source(host, repository)))
    }

    pub(super) async fn get_manifest_at(
        &self,
        ep: &Endpoint,
        reference: &str,
        expected: Option<&Digest>,
        accept: &[&str],
    ) -> Result<FetchedManifest, ClientError> {
        let url = self
            .inner
            .url(ep, &format!("/v2/{}/manifests/{reference}", ep.repository))
            .await?;
        let accept = accept.join(", ");
        let (headers, body) = self.get_small(ep, &url, &accept, MAX_MANIFEST).await?;
        let served = header_digest(&headers, &url)?;
        let digest = match (expected, &served) {
            (Some(want), _) => {
                want.verify(&body)
                    .map_err(|source| ClientError::Verification {
                        what: url.clone(),
                        source,
                    })?;
                want.clone()
            }
            (None, Some(said)) => {
                let actual = Digest::of(said.algorithm(), &body);
                said.expect(&actual)
                    .map_err(|source| ClientError::Verification {
                        what: format!("{url} (Docker-Content-Digest)"),
                        source,
                    })?;
                actual
            }
            (None, None) => Digest::sha256_of(&body),
        };
        let header_type = header_str(&headers, "content-type")
            .map(|t| t.split(';').next().unwrap_or("").trim().to_string())
            .filter(|t| !t.is_empty() && t != "application/json" && t != "text/plain");
        let media_type = header_type
            .or_else(|| embedded_media_type(&body))
            .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".to_string());
        Ok(FetchedManifest {
            bytes: Bytes::from(body),
            media_type,
            digest,
        })
    }

    /// GETs a small document (at most `limit` bytes), retrying the whole request when its body is cut.
    async fn get_small(
        &self,
        ep: &Endpoint,
        url: &str,
        accept: &str,
        limit: usize,
    ) -> Result<(HeaderMap, Vec<u8>), ClientError> {
        let policy = &self.inner.opts.retry;
        let mut attempt = 1u32;
        loop {
            let sent = self
                .inner
                .get_pull(ep, url, &|rb| Ok(rb.header(ACCEPT, accept)))
                .await?;
            let mut sent = expect_success(sent, "GET", url).await?;
            let too_large = || ClientError::InvalidResponse {
                url: url.to_string(),
                message: format!("manifest larger than {limit} bytes"),
            };
            if sent.resp.content_length().is_some_and(|n| n > limit as u64) {
                return Err(too_large());
            }
            let headers = sent.resp.headers().clone();
            let mut body = Vec::new();
            let cut = loop {
                match sent.resp.chunk().await {
                    Ok(Some(chunk)) => {
                        if body.len() + chunk.len() > limit {
                            return Err(too_large());
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            match cut {
                None => return Ok((headers, body)),
                Some(e)
                    if attempt >= policy.max_attempts || !super::transport::is_transient(&e) =>
                {
                    return Err(super::transport::transport_error(&Method::GET, url, e, ep));
                }
                Some(e) => {
                    tracing::debug!(%url, error = %e, attempt, "body cut; fetching again");
                    drop(sent);
                    tokio::time::sleep(policy.backoff(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// `HEAD` on a manifest: `None` when it does not exist.
    pub async fn head_manifest(
        &self,
        host: &str,
        repository: &str,
        reference: &str,
        accept: &[&str],
    ) -> Result<Option<ManifestHead>, ClientError> {
        let ep = self.inner.single_endpoint(host, repository)?;
        let url = self
            .inner
            .url(&ep, &format!("/v2/{}/manifests/{reference}", ep.repository))
            .await?;
        let accept = accept.join(", ");
        let sent = self
            .inner
            .send(
                &ep,
                &[repo_scope(&ep.repository, false)],
                Method::HEAD,
                &url,
                &|rb| Ok(rb.header(ACCEPT, accept.as_str())),
            )
            .await?;
        if sent.resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let sent = expect_success(sent, "HEAD", &url).await?;
        let h = sent.resp.headers();
        Ok(Some(ManifestHead {
            digest: header_digest(h, &url)?,
            media_type: header_str(h, "content-type").map(str::to_string),
            size: header_str(h, "content-length").and_then(|s| s.trim().parse().ok()),
        }))
    }

    /// Pushes manifest `bytes` (sent byte-exact with `media_type`) under `reference` (a tag or its digest);
    /// returns its digest. A digest reference must match the bytes, and so must the registry's answer.
    /// A manifest with a `subject` pushed to a registry without the referrers API (its answer lacks
    /// `OCI-Subject`) is also added to the subject's referrers tag (`sha256-<hex>`), as OCI distribution
    /// 1.1 asks of clients, so tools that read that tag find it.
    pub async fn put_manifest(
        &self,
        host: &str,
        repository: &str,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<Digest, ClientError> {
        let ep = self.inner.single_endpoint(host, repository)?;
        let (digest, subject_handled) = self
            .put_manifest_at(&ep, reference, bytes.clone(), media_type)
            .await?;
        if !subject_handled {
            self.add_to_referrers_tag(&ep, &bytes, media_type, &digest)
                .await?;
        }
        Ok(digest)
    }

    /// [`Self::put_manifest`] at one endpoint, without the referrers tag; also returns whether the registry
    /// answered with `OCI-Subject` (it keeps the referrers itself).
    pub(super) async fn put_manifest_at(
        &self,
        ep: &Endpoint,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<(Digest, bool), ClientError> {
        let digest = match parse_digest_reference(reference)? {
            Some(d) => {
                d.verify(&bytes)
                    .map_err(|source| ClientError::Verification {
                        what: format!("manifest to push as `{reference}`"),
                        source,
                    })?;
                d
            }
            None => Digest::sha256_of(&bytes),
        };
        let url = self
            .inner
            .url(ep, &format!("/v2/{}/manifests/{reference}", ep.repository))
            .await?;
        let sent = self
            .inner
            .send(
                ep,
                &[repo_scope(&ep.repository, true)],
                Method::PUT,
                &url,
                &|rb| Ok(rb.header(CONTENT_TYPE, media_type).body(bytes.clone())),
            )
            .await?;
        let sent = expect_success(sent, "PUT", &url).await?;
        if let Some(said) = header_digest(sent.resp.headers(), &url)?
            && said.algorithm() == digest.algorithm()
            && said != digest
        {
            return Err(ClientError::Verification {
                what: format!("{url} (registry stored different bytes)"),
                source: DigestError::Mismatch {
                    expected: digest,
                    actual: said,
                },
            });
        }
        let subject_handled = sent.resp.headers().contains_key("oci-subject");
        Ok((digest, subject_handled))
    }

    /// Deletes a manifest by digest (registries refuse deleting by tag unless configured otherwise).
    pub async fn delete_manifest(
        &self,
        host: &str,
        repository: &str,
        digest: &Digest,
    ) -> Result<(), ClientError> {
        let ep = self.inner.single_endpoint(host, repository)?;
        let url = self
            .inner
            .url(&ep, &format!("/v2/{}/manifests/{digest}", ep.repository))
            .await?;
        let sent = self
            .inner
            .send(
                &ep,
                &[repo_scope(&ep.repository, true)],
                Method::DELETE,
                &url,
                &|rb| Ok(rb),
            )
            .await?;
        expect_success(sent, "DELETE", &url).await.map(|_| ())
    }

    /// Every tag of `repository`, following `Link` pagination to the end.
    /// Tries mirrors first, as [`Self::get_manifest`] does.
    pub async fn tags(&self, host: &str, repository: &str) -> Result<Vec<String>, ClientError> {
        let eps = self.inner.endpoints(host, repository, true, false)?;
        let mut last = None;
        for ep in &eps {
            let scope = vec![repo_scope(&ep.repository, false)];
            match self
                .list_pages(
                    ep,
                    &format!("/v2/{}/tags/list", ep.repository),
                    &scope,
                    "tags",
                )
                .await
            {
                Ok(t) => return Ok(t),
                Err(e) => last = Some(mirror_failed(ep, e)),
            }
        }
        Err(last.unwrap_or_else(|| no_source(host, repository)))
    }

    /// Every repository of the registry at `host` (`/v2/_catalog`), following `Link` pagination to the end.
    /// Tries first the mirrors registries.conf gives the whole host (their repositories under the mirror's
    /// path, without it), as [`Self::get_manifest`] does.
    pub async fn catalog(&self, host: &str) -> Result<Vec<String>, ClientError> {
        // Where a repository named by the sentinel would go tells each mirror's path for the whole host.
        const SENTINEL: &str = "_";
        let scope = vec!["registry:catalog:*".to_string()];
        for ep in self.inner.endpoints(host, SENTINEL, true, false)? {
            let Some(path) = ep.repository.strip_suffix(SENTINEL) else {
                continue;
            };
            if !ep.mirror {
                continue;
            }
            match self
                .list_pages(&ep, "/v2/_catalog", &scope, "repositories")
                .await
            {
                Ok(repos) => {
                    return Ok(repos
                        .into_iter()
                        .filter_map(|r| r.strip_prefix(path).map(str::to_string))
                        .collect());
                }
                Err(e) => {
                    mirror_failed(&ep, e);
                }
            }
        }
        // The original, as before registries.conf mirrors: its error is the one reported.
        let ep = self.inner.single_endpoint(host, "")?;
        self.list_pages(&ep, "/v2/_catalog", &scope, "repositories")
            .await
    }

    async fn list_pages(
        &self,
        ep: &Endpoint,
        path: &str,
        scopes: &[String],
        field: &str,
    ) -> Result<Vec<String>, ClientError> {
        let base = self.inner.base(ep).await?;
        let mut url = match self.inner.opts.list_page_size {
            Some(n) => format!("{base}{path}?n={n}"),
            None => format!("{base}{path}"),
        };
        let mut out = Vec::new();
        let mut seen_pages = std::collections::HashSet::new();
        loop {
            if !seen_pages.insert(url.clone()) {
                return Err(ClientError::InvalidResponse {
                    url,
                    message: "pagination loops back to a page already read".into(),
                });
            }
            let sent = self
                .inner
                .send(ep, scopes, Method::GET, &url, &|rb| Ok(rb))
                .await?;
            let sent = expect_success(sent, "GET", &url).await?;
            let next = next_link(sent.resp.headers())
                .map(|l| resolve(&base, &l))
                .transpose()
                .map_err(|source| ClientError::BadLink {
                    url: url.clone(),
                    source,
                })?;
            let body = sent
                .resp
                .bytes()
                .await
                .map_err(|e| ClientError::Transport {
                    method: "GET".into(),
                    url: url.clone(),
                    source: e,
                    hint: String::new(),
                })?;
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| ClientError::InvalidResponse {
                    url: url.clone(),
                    message: format!("not JSON: {e}"),
                })?;
            if let Some(items) = v.get(field).and_then(|t| t.as_array()) {
                out.extend(items.iter().filter_map(|t| t.as_str()).map(str::to_string));
            }
            match next {
                Some(n) => url = n,
                None => return Ok(out),
            }
        }
    }

    /// Manifests whose `subject` is `digest` (signatures, SBOMs), optionally only of `artifact_type`.
    /// Uses the referrers API and falls back to the `<alg>-<hex>` tag schema when the registry lacks it.
    /// Tries mirrors first, as [`Self::get_manifest`] does.
    pub async fn referrers(
        &self,
        host: &str,
        repository: &str,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, ClientError> {
        let eps = self.inner.endpoints(host, repository, true, true)?;
        let mut last = None;
        for ep in &eps {
            match self.referrers_at(ep, digest, artifact_type).await {
                Ok(list) => return Ok(list),
                Err(e) => last = Some(mirror_failed(ep, e)),
            }
        }
        Err(last.unwrap_or_else(|| no_source(host, repository)))
    }

    async fn referrers_at(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, ClientError> {
        let mut url = self
            .inner
            .url(ep, &format!("/v2/{}/referrers/{digest}", ep.repository))
            .await?;
        if let Some(t) = artifact_type {
            url = format!("{url}?artifactType={t}");
        }
        let sent = self
            .inner
            .get_pull(ep, &url, &|rb| {
                Ok(rb.header(ACCEPT, "application/vnd.oci.image.index.v1+json"))
            })
            .await?;
        let status = sent.resp.status();
        let body = if status.is_success() {
            sent.resp
                .bytes()
                .await
                .map_err(|e| ClientError::Transport {
                    method: "GET".into(),
                    url: url.clone(),
                    source: e,
                    hint: String::new(),
                })?
        } else if status == reqwest::StatusCode::NOT_FOUND {
            drop(sent);
            let tag = super::referrers_tag::referrers_tag(digest);
            match self
                .get_manifest_at(ep, &tag, None, &["application/vnd.oci.image.index.v1+json"])
                .await
            {
                Ok(m) => m.bytes,
                Err(e) if e.is_not_found() => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        } else {
            return Err(registry_error(sent.resp, "GET", &url).await);
        };
        let mut list = parse_referrers(&body).map_err(|message| ClientError::InvalidResponse {
            url: url.clone(),
            message,
        })?;
        if let Some(t) = artifact_type {
            list.retain(|r| r.artifact_type.as_deref() == Some(t));
        }
        Ok(list)
    }
}

/// Logs a failed mirror before the next source is tried; returns the error.
fn mirror_failed(ep: &Endpoint, e: ClientError) -> ClientError {
    if ep.mirror {
        tracing::info!(mirror = %ep.host, error = %e, "mirror failed; trying the next source");
    }
    e
}

/// The error when registries.conf leaves no source for `host/repository`.
fn no_source(host: &str, repository: &str) -> ClientError {
    ClientError::InvalidInput(format!("no source for `{host}/{repository}`"))
}

/// `Some(digest)` when a manifest reference is a digest, `None` for a tag.
fn parse_digest_reference(reference: &str) -> Result<Option<Digest>, ClientError> {
    if reference.contains(':') {
        Digest::parse(reference).map(Some).map_err(|e| {
            ClientError::InvalidInput(format!("invalid manifest reference `{reference}`: {e}"))
        })
    } else if reference.is_empty() {
        Err(ClientError::InvalidInput("empty manifest reference".into()))
    } else {
        Ok(None)
    }
}

fn parse_referrers(body: &[u8]) -> Result<Vec<Referrer>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("referrers index is not JSON: {e}"))?;
    let mut out = Vec::new();
    for m in v
        .get("manifests")
        .and_then(|m| m.as_array())
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let digest = m
            .get("digest")
            .and_then(|d| d.as_str())
            .ok_or("referrer without digest")?;
        out.push(Referrer {
            media_type: m
                .get("mediaType")
                .and_then(|d| d.as_str())
                .unwrap_or_default()
                .to_string(),
            digest: Digest::parse(digest).map_err(|e| e.to_string())?,
            size: m.get("size").and_then(|s| s.as_u64()).unwrap_or(0),
            artifact_type: m
                .get("artifactType")
                .and_then(|d| d.as_str())
                .map(str::to_string),
        });
    }
    Ok(out)
}

/// The `rel="next"` target of a `Link` header.
fn next_link(h: &HeaderMap) -> Option<String> {
    for v in h.get_all(LINK) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let (target, params) = part.split_once(';').unwrap_or((part, ""));
            if params.contains("rel=\"next\"") || params.contains("rel=next") {
                let t = target.trim().trim_start_matches('<').trim_end_matches('>');
                return Some(t.to_string());
            }
        }
    }
    None
}

/// A URL a registry sent (`Location`, `Link`) that cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The base the URL is relative to is no URL.
    #[error("bad base URL `{base}`: {source}")]
    Base {
        /// The base.
        base: String,
        /// Why it does not parse.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The URL cannot be resolved against the base.
    #[error("bad URL `{target}`: {source}")]
    Target {
        /// The URL as the registry sent it.
        target: String,
        /// Why it does not resolve.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Resolves a possibly relative URL from a registry against `base` (`scheme://host`).
pub(crate) fn resolve(base: &str, target: &str) -> Result<String, ResolveError> {
    let b = reqwest::Url::parse(base).map_err(|e| ResolveError::Base {
        base: base.to_string(),
        source: e.into(),
    })?;
    b.join(target)
        .map(|u| u.to_string())
        .map_err(|e| ResolveError::Target {
            target: target.to_string(),
            source: e.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next_page_is_found() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            "</v2/_catalog?last=a%2Fb&n=1>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("/v2/_catalog?last=a%2Fb&n=1")
        );
        assert_eq!(
            resolve("http://127.0.0.1:5000", "/v2/_catalog?last=a&n=1").unwrap(),
            "http://127.0.0.1:5000/v2/_catalog?last=a&n=1"
        );
    }

    #[test]
    fn tags_and_digests_are_told_apart() {
        assert!(parse_digest_reference("v1").unwrap().is_none());
        assert!(
            parse_digest_reference(&Digest::sha256_of(b"x").to_string())
                .unwrap()
                .is_some()
        );
        assert!(parse_digest_reference("sha256:zz").is_err());
    }
}
