//! Container image references (`nginx`, `quay.io/cilium/cilium:v1.12.0`, `name:tag@sha256:...`), parsed and
//! normalised exactly as docker/distribution's `reference` package does (`ParseNormalizedNamed` followed by
//! `TagNameOnly`): `nginx` becomes `docker.io/library/nginx:latest`.
//!
//! The grammar, from docker/distribution:
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain '/'] path-component ['/' path-component]*
//! domain           := host [':' port-number]
//! host             := domain-name | IPv4address | '[' IPv6address ']'
//! domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//! path-component   := /[a-z0-9]+/ (separator /[a-z0-9]+/)*
//! separator        := /[_.]|__|[-]+/
//! tag              := /[\w][\w.-]{0,127}/
//! ```
//!
//! The first path component is a registry host when it contains `.` or `:`, is `localhost`, or has an
//! upper-case letter (docker's rule); otherwise the registry is `docker.io` and a single-component path gets the
//! `library/` prefix. A [`Reference`] is valid once constructed and always has a tag, a digest, or both.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};
use crate::repository::check_grammar;
pub use crate::repository::{REPOSITORY_LENGTH_MAX, Repository, RepositoryError};

/// The registry that names without a host refer to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag added to a name that has neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// The path prefix of official images on the default registry (`nginx` -> `library/nginx`).
pub const OFFICIAL_REPOSITORY_PREFIX: &str = "library/";
/// Longest allowed full name (registry, `/` and repository), as in docker/distribution.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// Longest allowed tag.
pub const TAG_LENGTH_MAX: usize = 128;

/// Why an image reference was rejected. Every variant names the rejected input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The input was the empty string.
    #[error(
        "invalid reference ``: the reference is empty; give a name such as `nginx` or `quay.io/org/app:tag`"
    )]
    Empty,
    /// The input was a 64-character hex string, which docker reserves for image IDs.
    #[error(
        "invalid reference `{0}`: a 64-character hex string is an image ID, not a repository name; use `name@sha256:<hex>`"
    )]
    ImageId(String),
    /// The repository path contains upper-case letters.
    #[error("invalid reference `{0}`: repository name must be lowercase")]
    Uppercase(String),
    /// A path component is empty (`a//b`, a leading or trailing `/`).
    #[error(
        "invalid reference `{0}`: repository name has an empty path component (`//`, or a leading or trailing `/`)"
    )]
    EmptyPathComponent(String),
    /// A path component has characters or separators outside the grammar.
    #[error(
        "invalid reference `{reference}`: path component `{component}` must be lower-case letters and digits joined by single `.`, `_`, `__` or runs of `-`"
    )]
    InvalidPathComponent {
        /// The rejected input.
        reference: String,
        /// The offending path component.
        component: String,
    },
    /// The registry part is not `host[:port]`.
    #[error(
        "invalid reference `{reference}`: registry `{registry}` is not a valid `host[:port]` (letters, digits, `-` and `.`, or `[ipv6]`, then an optional numeric port)"
    )]
    InvalidRegistry {
        /// The rejected input.
        reference: String,
        /// The offending registry host.
        registry: String,
    },
    /// The reference ends in `:` with no tag after it.
    #[error("invalid reference `{0}`: `:` must be followed by a tag")]
    EmptyTag(String),
    /// The tag has characters outside `[A-Za-z0-9_.-]` or starts with `.` or `-`.
    #[error(
        "invalid reference `{reference}`: tag `{tag}` must start with a letter, digit or `_` and contain only letters, digits, `_`, `.` and `-`"
    )]
    InvalidTag {
        /// The rejected input.
        reference: String,
        /// The offending tag.
        tag: String,
    },
    /// The tag is longer than [`TAG_LENGTH_MAX`].
    #[error("invalid reference `{reference}`: tag is {len} characters long, the limit is 128")]
    TagTooLong {
        /// The rejected input.
        reference: String,
        /// The tag's length.
        len: usize,
    },
    /// The reference ends in `@` with no digest after it.
    #[error("invalid reference `{0}`: `@` must be followed by a digest such as `sha256:<64 hex>`")]
    EmptyDigest(String),
    /// The digest part is not a valid sha256 or sha512 digest.
    #[error("invalid reference `{reference}`: {source}")]
    InvalidDigest {
        /// The rejected input.
        reference: String,
        /// Why the digest was rejected.
        source: DigestError,
    },
    /// The full normalised name is longer than [`NAME_TOTAL_LENGTH_MAX`].
    #[error(
        "invalid reference `{reference}`: the full name `{name}` is {len} characters long, the limit is 255"
    )]
    NameTooLong {
        /// The rejected input.
        reference: String,
        /// The normalised name (registry and repository).
        name: String,
        /// Its length.
        len: usize,
    },
}

/// A parsed, normalised image reference: registry, repository path, and a tag and/or a digest.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises `s` the way docker does (`nginx` -> `docker.io/library/nginx:latest`).
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::ImageId(s.to_string()));
        }
        let owned = || s.to_string();

        // Neither names nor tags contain `@`, so the first `@` starts the digest.
        let (name_and_tag, digest) = match s.split_once('@') {
            Some((_, "")) => return Err(ReferenceError::EmptyDigest(owned())),
            Some((left, digest)) => (left, Some(digest)),
            None => (s, None),
        };
        // A `:` after the last `/` starts the tag; an earlier one belongs to `host:port`.
        let last_slash = name_and_tag.rfind('/');
        let (name, tag) = match name_and_tag.rfind(':') {
            Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
                (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
            }
            _ => (name_and_tag, None),
        };

        let (registry, path) = split_registry(name);
        check_grammar(path).map_err(|e| match e {
            RepositoryError::Uppercase(_) => ReferenceError::Uppercase(owned()),
            RepositoryError::InvalidComponent { component, .. } => {
                ReferenceError::InvalidPathComponent {
                    reference: owned(),
                    component,
                }
            }
            _ => ReferenceError::EmptyPathComponent(owned()),
        })?;
        if let Some(registry) = registry.filter(|r| !is_valid_registry_host(r)) {
            return Err(ReferenceError::InvalidRegistry {
                reference: owned(),
                registry: registry.to_string(),
            });
        }
        let tag = match tag {
            Some("") => return Err(ReferenceError::EmptyTag(owned())),
            Some(tag) if tag.len() > TAG_LENGTH_MAX => {
                return Err(ReferenceError::TagTooLong {
                    reference: owned(),
                    len: tag.len(),
                });
            }
            Some(tag) if !is_valid_tag(tag) => {
                return Err(ReferenceError::InvalidTag {
                    reference: owned(),
                    tag: tag.to_string(),
                });
            }
            other => other,
        };
        let digest = digest.map(Digest::parse).transpose().map_err(|source| {
            ReferenceError::InvalidDigest {
                reference: owned(),
                source,
            }
        })?;

        let registry = match registry {
            None => DEFAULT_REGISTRY,
            Some(host) if is_docker_hub(host) => DEFAULT_REGISTRY,
            Some(host) => host,
        };
        let repository = hub_repository(registry, path);
        let len = registry.len() + 1 + repository.len();
        if len > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong {
                reference: owned(),
                name: format!("{registry}/{repository}"),
                len,
            });
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (tag, _) => tag.map(str::to_string),
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// The registry host, with an optional port (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path without the registry host (`library/nginx`, `cilium/cilium`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` is filled in for names with neither tag nor digest).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// This reference with its tag replaced by `tag`; a digest is kept, as docker's `WithTag` does.
    ///
    /// `tag` must satisfy [`is_valid_tag`]; for tags from outside use [`Reference::try_with_tag`].
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            ..self.clone()
        }
    }

    /// Like [`Reference::with_tag`], but rejects a tag that is not valid.
    pub fn try_with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if tag.is_empty() {
            return Err(ReferenceError::EmptyTag(format!("{self}")));
        }
        if tag.len() > TAG_LENGTH_MAX {
            return Err(ReferenceError::TagTooLong {
                reference: format!("{}:{tag}", self.name()),
                len: tag.len(),
            });
        }
        if !is_valid_tag(tag) {
            return Err(ReferenceError::InvalidTag {
                reference: format!("{}:{tag}", self.name()),
                tag: tag.to_string(),
            });
        }
        Ok(self.with_tag(tag))
    }

    /// This reference pinned to `digest`; a tag is kept, as docker's `WithDigest` does.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// This reference moved to another registry host (`sealos.hub:5000`), keeping path, tag and digest.
    ///
    /// The host is normalised with [`normalize_registry_host`]; moving onto `docker.io` adds the `library/`
    /// prefix to a single-component path. `host` must be a valid `host[:port]` that docker recognises as a host
    /// (contains `.` or `:`, or is `localhost`); for hosts from outside use [`Reference::try_with_registry`].
    pub fn with_registry(&self, host: &str) -> Reference {
        let registry = normalize_registry_host(host);
        let repository = hub_repository(&registry, &self.repository);
        Reference {
            registry,
            repository,
            ..self.clone()
        }
    }

    /// Like [`Reference::with_registry`], but rejects a host that is not valid or would not be read back as a
    /// host, and a resulting name longer than 255 characters.
    pub fn try_with_registry(&self, host: &str) -> Result<Reference, ReferenceError> {
        let moved = self.with_registry(host);
        let looks_like_host = host.contains(['.', ':']) || host == "localhost";
        if !looks_like_host || !is_valid_registry_host(host) {
            return Err(ReferenceError::InvalidRegistry {
                reference: format!("{host}/{}", self.path_without_host()),
                registry: host.to_string(),
            });
        }
        let name = moved.name();
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong {
                reference: moved.to_string(),
                len: name.len(),
                name,
            });
        }
        Ok(moved)
    }

    /// The full name without tag or digest (`docker.io/library/nginx`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Docker's short form (`nginx:latest`, `user/app:1.0`, `quay.io/org/app:v1`), as `docker images` shows it.
    ///
    /// Unlike docker, `docker.io/` is kept when the path's first component would otherwise be read as a host
    /// (`docker.io/a.b/c`), so the short form always parses back to the same reference.
    pub fn familiar(&self) -> String {
        let mut out = if self.registry != DEFAULT_REGISTRY {
            self.name()
        } else if split_registry(&self.repository).0.is_some() {
            // `docker.io/a.b/c` shortened to `a.b/c` would read back as host `a.b`; docker has this bug.
            self.name()
        } else {
            match self.repository.strip_prefix(OFFICIAL_REPOSITORY_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.repository.clone(),
            }
        };
        self.push_tag_and_digest(&mut out);
        out
    }

    /// The repository with `:tag` and/or `@digest`, as the embedded registry names images
    /// (`registry.k8s.io/pause:3.9` -> `pause:3.9`).
    pub fn path_without_host(&self) -> String {
        let mut out = self.repository.clone();
        self.push_tag_and_digest(&mut out);
        out
    }

    /// What goes after `/manifests/` in the registry API: the tag when there is one, else the digest.
    pub fn reference_str(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => tag.clone(),
            (None, Some(digest)) => digest.to_string(),
            // Unreachable through the constructors; fall back to docker's default rather than panic.
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    fn push_tag_and_digest(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.registry)?;
        f.write_str("/")?;
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Docker Hub's other host names: all of them are [`DEFAULT_REGISTRY`].
pub const DOCKER_HUB_ALIASES: &[&str] = &[
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// True when `host` names Docker Hub (`docker.io` or one of [`DOCKER_HUB_ALIASES`], any case).
pub fn is_docker_hub(host: &str) -> bool {
    host.eq_ignore_ascii_case(DEFAULT_REGISTRY)
        || DOCKER_HUB_ALIASES
            .iter()
            .any(|alias| host.eq_ignore_ascii_case(alias))
}

/// Normalises a registry host for comparison, the one rule for it: blanks and a trailing `/` dropped,
/// lower-case, and Docker Hub's aliases ([`DOCKER_HUB_ALIASES`]) become `docker.io`.
pub fn normalize_registry_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if is_docker_hub(host) {
        DEFAULT_REGISTRY.to_string()
    } else {
        host.to_ascii_lowercase()
    }
}

/// `path` as stored on `registry`: a single-component path on Docker Hub gets the `library/` prefix
/// (`nginx` -> `library/nginx`); `registry` must already be normalised.
pub fn hub_repository(registry: &str, path: &str) -> String {
    if registry == DEFAULT_REGISTRY && !path.contains('/') {
        format!("{OFFICIAL_REPOSITORY_PREFIX}{path}")
    } else {
        path.to_string()
    }
}

/// True when `tag` matches `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    tag.len() <= TAG_LENGTH_MAX
        && (first.is_ascii_alphanumeric() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Splits off the registry host the way docker's `splitDockerDomain` does; `None` means the default registry.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// `host[:port]` where host is dot-separated domain components (IPv4 included) or `[ipv6]`.
fn is_valid_registry_host(registry: &str) -> bool {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some((ipv6, after)) = rest.split_once(']') else {
            return false;
        };
        if ipv6.is_empty() || !ipv6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = host.is_none_or(|h| h.split('.').all(is_valid_domain_component));
    port_ok && host_ok
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn is_valid_domain_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn sha() -> String {
        format!("sha256:{HEX}")
    }

    fn parsed(s: &str) -> Reference {
        match Reference::parse(s) {
            Ok(r) => r,
            Err(e) => panic!("`{s}` should parse: {e}"),
        }
    }

    fn rejected(s: &str) -> ReferenceError {
        match Reference::parse(s) {
            Ok(r) => panic!("`{s}` should be rejected, parsed as {r}"),
            Err(e) => e,
        }
    }

    #[test]
    fn bare_name_gets_docker_hub_library_and_latest() {
        let r = parsed("nginx");
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/nginx");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.digest(), None);
        assert_eq!(r.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(r.familiar(), "nginx:latest");
    }

    #[test]
    fn user_repository_gets_docker_hub_without_library() {
        let r = parsed("user/app");
        assert_eq!(r.to_string(), "docker.io/user/app:latest");
        assert_eq!(r.familiar(), "user/app:latest");
    }

    #[test]
    fn legacy_docker_hub_host_normalises_to_docker_io() {
        assert_eq!(
            parsed("index.docker.io/nginx:1.25").to_string(),
            "docker.io/library/nginx:1.25"
        );
        assert_eq!(
            parsed("index.docker.io/user/app").to_string(),
            "docker.io/user/app:latest"
        );
        assert_eq!(
            parsed("docker.io/nginx").to_string(),
            "docker.io/library/nginx:latest"
        );
    }

    #[test]
    fn host_with_port_and_deep_path_is_kept() {
        let r = parsed("registry.example.com:5000/a/b:tag");
        assert_eq!(r.registry(), "registry.example.com:5000");
        assert_eq!(r.repository(), "a/b");
        assert_eq!(r.tag(), Some("tag"));
        assert_eq!(r.path_without_host(), "a/b:tag");
    }

    #[test]
    fn localhost_is_a_host_even_without_dot_or_port() {
        let r = parsed("localhost/x");
        assert_eq!(r.registry(), "localhost");
        assert_eq!(r.repository(), "x");
        assert_eq!(r.to_string(), "localhost/x:latest");
        assert_eq!(parsed("localhost:5000/x").registry(), "localhost:5000");
    }

    #[test]
    fn first_component_without_dot_colon_or_localhost_is_a_path() {
        let r = parsed("myhost/app");
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "myhost/app");
    }

    #[test]
    fn upper_case_first_component_is_a_host_as_docker_treats_it() {
        let r = parsed("MyRegistry/app");
        assert_eq!(r.registry(), "MyRegistry");
        assert_eq!(r.repository(), "app");
    }

    #[test]
    fn localhost_with_port_and_no_slash_is_a_name_with_a_tag() {
        let r = parsed("localhost:5000");
        assert_eq!(r.to_string(), "docker.io/library/localhost:5000");
    }

    #[test]
    fn digest_only_reference_gets_no_default_tag() {
        let r = parsed(&format!("nginx@{}", sha()));
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().map(|d| d.to_string()), Some(sha()));
        assert_eq!(r.to_string(), format!("docker.io/library/nginx@{}", sha()));
        assert_eq!(r.reference_str(), sha());
    }

    #[test]
    fn tag_and_digest_are_both_kept() {
        let r = parsed(&format!("nginx:1.25@{}", sha()));
        assert_eq!(r.tag(), Some("1.25"));
        assert!(r.digest().is_some());
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/nginx:1.25@{}", sha())
        );
        assert_eq!(r.familiar(), format!("nginx:1.25@{}", sha()));
        assert_eq!(r.reference_str(), "1.25");
    }

    #[test]
    fn sha512_digest_is_accepted() {
        let hex512 = "a".repeat(128);
        let r = parsed(&format!("quay.io/a/b@sha512:{hex512}"));
        assert_eq!(
            r.digest().map(|d| d.algorithm()),
            Some(crate::Algorithm::Sha512)
        );
    }

    #[test]
    fn path_without_host_matches_the_embedded_registry_naming() {
        assert_eq!(
            parsed("registry.k8s.io/pause:3.9").path_without_host(),
            "pause:3.9"
        );
        assert_eq!(
            parsed("quay.io/cilium/cilium:v1.12.0").path_without_host(),
            "cilium/cilium:v1.12.0"
        );
        assert_eq!(
            parsed("docker.io/library/nginx").path_without_host(),
            "library/nginx:latest"
        );
    }

    #[test]
    fn familiar_keeps_non_docker_hosts_and_nested_library_paths() {
        assert_eq!(
            parsed("quay.io/cilium/cilium:v1").familiar(),
            "quay.io/cilium/cilium:v1"
        );
        assert_eq!(
            parsed("library/a/b").familiar(),
            "library/a/b:latest",
            "library/ is only dropped for single-component official images"
        );
    }

    #[test]
    fn reference_str_is_the_tag_when_present() {
        assert_eq!(parsed("nginx").reference_str(), "latest");
        assert_eq!(parsed("nginx:1.25").reference_str(), "1.25");
    }

    #[test]
    fn separators_in_path_components_follow_the_grammar() {
        for ok in [
            "a.b/c_d",
            "a__b",
            "a-b",
            "a---b",
            "a.b-c_d__e",
            "0/1/2/3/4/5/6/7/8/9",
        ] {
            parsed(ok);
        }
        for bad in ["a..b", "a___b", "a._b", "-a", "a-", "_a", "a.", "a-_b"] {
            assert!(
                matches!(rejected(bad), ReferenceError::InvalidPathComponent { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn tags_may_have_upper_case_dots_and_dashes() {
        assert_eq!(parsed("app:V1.2-rc_3").tag(), Some("V1.2-rc_3"));
        assert_eq!(parsed("app:_x").tag(), Some("_x"));
    }

    #[test]
    fn empty_reference_is_rejected() {
        assert_eq!(rejected(""), ReferenceError::Empty);
    }

    #[test]
    fn upper_case_repository_is_rejected_with_docker_message() {
        let err = rejected("Nginx");
        assert_eq!(
            err.to_string(),
            "invalid reference `Nginx`: repository name must be lowercase"
        );
        assert!(matches!(
            rejected("quay.io/Org/app"),
            ReferenceError::Uppercase(_)
        ));
    }

    #[test]
    fn bad_characters_are_rejected_naming_the_component() {
        let err = rejected("quay.io/org/ap$p:1");
        assert_eq!(
            err,
            ReferenceError::InvalidPathComponent {
                reference: "quay.io/org/ap$p:1".into(),
                component: "ap$p".into()
            }
        );
        assert!(err.to_string().contains("`ap$p`"));
        rejected("ngi nx");
        rejected("nginx!");
        rejected("ñginx");
    }

    #[test]
    fn tag_longer_than_128_is_rejected() {
        let tag = "a".repeat(129);
        assert_eq!(
            rejected(&format!("nginx:{tag}")),
            ReferenceError::TagTooLong {
                reference: format!("nginx:{tag}"),
                len: 129
            }
        );
        parsed(&format!("nginx:{}", "a".repeat(128)));
    }

    #[test]
    fn tag_starting_with_dot_or_dash_or_with_bad_characters_is_rejected() {
        for bad in ["nginx:.x", "nginx:-x", "nginx:a+b", "nginx:a~b"] {
            assert!(
                matches!(rejected(bad), ReferenceError::InvalidTag { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn two_tags_are_rejected() {
        assert!(matches!(
            rejected("nginx:a:b"),
            ReferenceError::InvalidPathComponent { .. }
        ));
    }

    #[test]
    fn familiar_form_keeps_docker_io_when_the_path_looks_like_a_host() {
        let r = parsed("docker.io/a.b/c");
        assert_eq!(r.familiar(), "docker.io/a.b/c:latest");
        assert_eq!(parsed(&r.familiar()), r);
    }

    #[test]
    fn name_longer_than_255_is_rejected_counting_the_registry() {
        // docker.io/library/ is 18 characters.
        let ok = "a".repeat(255 - 18);
        parsed(&ok);
        let err = rejected(&format!("{ok}a"));
        assert!(
            matches!(err, ReferenceError::NameTooLong { len: 256, .. }),
            "{err}"
        );
    }

    #[test]
    fn bad_digests_are_rejected_with_the_digest_reason() {
        for bad in [
            "nginx@sha256:abc".to_string(),
            format!("nginx@md5:{HEX}"),
            format!("nginx@sha256:{}", HEX.to_uppercase()),
            format!("nginx@{HEX}"),
            format!("nginx@sha256:{HEX}@sha256:{HEX}"),
        ] {
            assert!(
                matches!(rejected(&bad), ReferenceError::InvalidDigest { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn empty_path_components_are_rejected() {
        for bad in [
            "a//b",
            "quay.io/",
            "/a",
            "a/",
            "quay.io//a",
            "localhost:5000/",
        ] {
            assert!(
                matches!(rejected(bad), ReferenceError::EmptyPathComponent(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn trailing_colon_or_at_is_rejected() {
        assert_eq!(
            rejected("nginx:"),
            ReferenceError::EmptyTag("nginx:".into())
        );
        assert_eq!(
            rejected("nginx@"),
            ReferenceError::EmptyDigest("nginx@".into())
        );
        assert!(matches!(
            rejected("nginx:1@"),
            ReferenceError::EmptyDigest(_)
        ));
        assert!(matches!(
            rejected(&format!("nginx:@{}", sha())),
            ReferenceError::EmptyTag(_)
        ));
    }

    #[test]
    fn invalid_registry_hosts_are_rejected() {
        for bad in [
            "-bad.io/a",
            "bad-.io/a",
            "a..io/a",
            "host:port/a",
            "host:/a",
            "[zz]:5000/a",
            "[::1/a",
            "a_b.io/a",
        ] {
            assert!(
                matches!(rejected(bad), ReferenceError::InvalidRegistry { .. }),
                "{bad}: {}",
                rejected(bad)
            );
        }
    }

    #[test]
    fn ipv4_and_ipv6_registries_are_accepted() {
        assert_eq!(parsed("127.0.0.1:5000/a").registry(), "127.0.0.1:5000");
        assert_eq!(parsed("[::1]:5000/a:v1").registry(), "[::1]:5000");
        assert_eq!(parsed("[fe80::1]/a").registry(), "[fe80::1]");
    }

    #[test]
    fn sixty_four_hex_characters_are_an_image_id_not_a_name() {
        assert_eq!(rejected(HEX), ReferenceError::ImageId(HEX.into()));
        parsed(&HEX[..63]);
    }

    #[test]
    fn with_tag_replaces_the_tag_and_keeps_the_digest() {
        let r = parsed(&format!("nginx@{}", sha()));
        let t = r.with_tag("1.25");
        assert_eq!(
            t.to_string(),
            format!("docker.io/library/nginx:1.25@{}", sha())
        );
        assert_eq!(
            parsed("nginx:1").with_tag("2").to_string(),
            "docker.io/library/nginx:2"
        );
        assert!(matches!(
            r.try_with_tag("-bad"),
            Err(ReferenceError::InvalidTag { .. })
        ));
        assert!(r.try_with_tag(&"a".repeat(129)).is_err());
        assert!(r.try_with_tag("").is_err());
        assert_eq!(
            r.try_with_tag("ok").map(|r| r.tag().map(str::to_string)),
            Ok(Some("ok".into()))
        );
    }

    #[test]
    fn with_digest_pins_and_keeps_the_tag() {
        let d = Digest::sha256_of(b"x");
        let r = parsed("quay.io/a/b:v1").with_digest(d.clone());
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest(), Some(&d));
        assert_eq!(r.to_string(), format!("quay.io/a/b:v1@{d}"));
    }

    #[test]
    fn with_registry_moves_the_image_and_normalises_docker_hosts() {
        let r = parsed("registry.k8s.io/pause:3.9").with_registry("sealos.hub:5000");
        assert_eq!(r.to_string(), "sealos.hub:5000/pause:3.9");
        let hub = parsed("registry.k8s.io/pause:3.9").with_registry("Registry-1.Docker.IO");
        assert_eq!(hub.to_string(), "docker.io/library/pause:3.9");
        assert_eq!(parsed(&hub.to_string()), hub);
        assert!(parsed("nginx").try_with_registry("nohost").is_err());
        assert!(parsed("nginx").try_with_registry("bad_host.io").is_err());
        assert_eq!(
            parsed("nginx")
                .try_with_registry("localhost:5000")
                .map(|r| r.to_string()),
            Ok("localhost:5000/library/nginx:latest".to_string())
        );
    }

    #[test]
    fn normalize_registry_host_maps_docker_hub_aliases_and_lowercases() {
        assert_eq!(normalize_registry_host("docker.io"), "docker.io");
        assert_eq!(normalize_registry_host("index.docker.io"), "docker.io");
        assert_eq!(normalize_registry_host("registry-1.docker.io"), "docker.io");
        assert_eq!(
            normalize_registry_host("registry.hub.docker.com"),
            "docker.io"
        );
        assert_eq!(normalize_registry_host(" Index.Docker.IO/ "), "docker.io");
        assert!(is_docker_hub("Registry.Hub.Docker.com") && !is_docker_hub("hub.example.com"));
        // The parser and the host rule agree on every alias (the parser used to know only `index.docker.io`).
        for alias in DOCKER_HUB_ALIASES {
            assert_eq!(
                parsed(&format!("{alias}/nginx:1")).to_string(),
                "docker.io/library/nginx:1"
            );
        }
        assert_eq!(hub_repository("docker.io", "nginx"), "library/nginx");
        assert_eq!(hub_repository("quay.io", "nginx"), "nginx");
        assert_eq!(normalize_registry_host("Quay.IO"), "quay.io");
        assert_eq!(normalize_registry_host("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn validators_for_the_registry_server() {
        assert!(is_valid_tag("latest"));
        assert!(is_valid_tag(&"a".repeat(128)));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(!is_valid_tag(""));
        assert!(!is_valid_tag(".a"));
        assert!(Repository::is_valid("library/nginx"));
        assert!(Repository::is_valid("a/b/c/d/e/f/g/h/i/j"));
        assert!(!Repository::is_valid("Library/nginx"));
        assert!(!Repository::is_valid("a//b"));
        assert!(!Repository::is_valid(""));
        assert!(!Repository::is_valid(&"a".repeat(256)));
    }

    #[test]
    fn from_str_and_serde_use_the_full_string() {
        let r: Reference = "nginx:1.25".parse().unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"docker.io/library/nginx:1.25\"");
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
        let err = serde_json::from_str::<Reference>("\"Nginx\"").unwrap_err();
        assert!(err.to_string().contains("must be lowercase"), "{err}");
    }

    #[test]
    fn equal_references_hash_equal() {
        use std::collections::HashSet;
        let set: HashSet<Reference> = [
            "nginx",
            "docker.io/library/nginx:latest",
            "index.docker.io/nginx",
        ]
        .iter()
        .map(|s| parsed(s))
        .collect();
        assert_eq!(set.len(), 1);
    }

    fn path_component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,6}(([._]|__|-{1,3})[a-z0-9]{1,6}){0,2}"
    }

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("localhost".to_string()),
            Just("docker.io".to_string()),
            Just("index.docker.io".to_string()),
            "[a-z0-9]{1,5}(-[a-z0-9]{1,3})?\\.[a-z]{2,4}",
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            Just("[::1]".to_string()),
        ]
    }

    prop_compose! {
        fn reference_text()(
            host in proptest::option::of((host(), proptest::option::of(1u16..))),
            path in proptest::collection::vec(path_component(), 1..4),
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            digest in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
        ) -> String {
            let mut s = String::new();
            if let Some((host, port)) = host {
                s.push_str(&host);
                if let Some(port) = port {
                    s.push_str(&format!(":{port}"));
                }
                s.push('/');
            } else if path[0].contains('.') {
                // Without a host, a first component with a dot would be read as one.
                s.push_str("docker.io/");
            }
            s.push_str(&path.join("/"));
            if let Some(tag) = tag {
                s.push(':');
                s.push_str(&tag);
            }
            if let Some(bytes) = digest {
                s.push('@');
                s.push_str(&Digest::sha256_of(&bytes).to_string());
            }
            s
        }
    }

    proptest! {
        #[test]
        fn display_of_a_valid_reference_parses_back_to_itself(s in reference_text()) {
            let r = Reference::parse(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(Reference::parse(&r.to_string()), Ok(r.clone()));
            prop_assert!(r.tag().is_some() || r.digest().is_some());
            prop_assert!(r.to_string().ends_with(&r.path_without_host()));
            let familiar = Reference::parse(&r.familiar()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(familiar, r.clone());
        }

        #[test]
        fn parse_never_panics_and_accepted_input_round_trips(s in "\\PC{0,80}") {
            if let Ok(r) = Reference::parse(&s) {
                prop_assert_eq!(Reference::parse(&r.to_string()), Ok(r));
            }
        }

        #[test]
        fn parse_never_panics_on_reference_like_noise(s in "[a-zA-Z0-9:@/._\\-\\[\\]]{0,60}") {
            if let Ok(r) = Reference::parse(&s) {
                prop_assert_eq!(Reference::parse(&r.to_string()), Ok(r));
            }
        }
    }
}
