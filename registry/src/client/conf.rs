//! `registries.conf` (containers v2 TOML format): which registries are blocked or insecure, where a
//! registry's images really live (`location`), and which mirrors to try first when pulling.
//!
//! Only the `[[registry]]` tables matter here; other keys (`unqualified-search-registries`, aliases...) are
//! read and ignored so an ordinary system file loads.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ClientError;

/// The default system-wide file.
pub const SYSTEM_REGISTRIES_CONF: &str = "/etc/containers/registries.conf";

/// A parsed `registries.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesConf {
    /// The `[[registry]]` entries in file order.
    pub registries: Vec<RegistryEntry>,
    /// Where the configuration came from (for error messages); empty when built in code.
    pub source: String,
}

/// One `[[registry]]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RegistryEntry {
    /// What images this entry applies to: `host[:port][/path]` or `*.domain`; defaults to `location`.
    #[serde(default)]
    pub prefix: String,
    /// Where images matching `prefix` really are (`host[:port][/path]`); empty means `prefix` itself.
    #[serde(default)]
    pub location: String,
    /// Plain HTTP and unverified TLS are allowed for `location`.
    #[serde(default)]
    pub insecure: bool,
    /// Images matching `prefix` may not be pulled or pushed.
    #[serde(default)]
    pub blocked: bool,
    /// Mirrors are used only for pulls by digest.
    #[serde(default)]
    pub mirror_by_digest_only: bool,
    /// Mirrors tried in order before `location` when pulling.
    #[serde(default, rename = "mirror")]
    pub mirrors: Vec<MirrorEntry>,
}

/// One `[[registry.mirror]]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct MirrorEntry {
    /// Where the mirror is (`host[:port][/path]`).
    pub location: String,
    /// Plain HTTP and unverified TLS are allowed for this mirror.
    #[serde(default)]
    pub insecure: bool,
    /// `all` (default), `digest-only` or `tag-only`.
    #[serde(default)]
    pub pull_from_mirror: Option<String>,
}

#[derive(Deserialize)]
struct FileV2 {
    #[serde(default)]
    registry: Vec<RegistryEntry>,
}

/// One place to try for an image: a registry host and the repository name there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Registry host (and port) to talk to.
    pub host: String,
    /// Repository name on that host.
    pub repository: String,
    /// Plain HTTP and unverified TLS are allowed.
    pub insecure: bool,
    /// This is a mirror, not the registry the image is named after.
    pub mirror: bool,
}

impl RegistriesConf {
    /// Parses the text of a `registries.conf`; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, ClientError> {
        let file: FileV2 = toml::from_str(text).map_err(|e| ClientError::Config {
            path: PathBuf::from(source),
            message: format!("not a valid registries.conf (v2 format): {e}"),
        })?;
        let mut registries = file.registry;
        for (i, r) in registries.iter_mut().enumerate() {
            if r.prefix.is_empty() {
                r.prefix = r.location.clone();
            }
            if r.prefix.is_empty() {
                return Err(ClientError::Config {
                    path: PathBuf::from(source),
                    message: format!(
                        "[[registry]] number {} has neither prefix nor location",
                        i + 1
                    ),
                });
            }
            if r.location.is_empty() && !r.prefix.starts_with("*.") {
                r.location = r.prefix.clone();
            }
            r.prefix = normalize_prefix(&r.prefix);
        }
        Ok(RegistriesConf {
            registries,
            source: source.to_string(),
        })
    }

    /// Loads `path`.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path).map_err(|e| ClientError::Config {
            path: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Loads the system file when it exists, or an empty configuration when it does not.
    pub fn load_system() -> Result<Self, ClientError> {
        let path = Path::new(SYSTEM_REGISTRIES_CONF);
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Self::default())
        }
    }

    /// The entry with the longest prefix matching `host/repository`, if any.
    pub fn find(&self, host: &str, repository: &str) -> Option<&RegistryEntry> {
        let name = format!("{host}/{repository}");
        self.registries
            .iter()
            .filter(|r| prefix_matches(&r.prefix, &name))
            .max_by_key(|r| r.prefix.len())
    }

    /// Where to find `host/repository`: mirrors first (when `for_pull`), then the (rewritten) original.
    /// `by_digest` tells whether the reference is a digest (some mirrors serve only digests or only tags).
    pub fn endpoints(
        &self,
        host: &str,
        repository: &str,
        for_pull: bool,
        by_digest: bool,
    ) -> Result<Vec<Endpoint>, ClientError> {
        let Some(entry) = self.find(host, repository) else {
            return Ok(vec![Endpoint {
                host: host.to_string(),
                repository: repository.to_string(),
                insecure: false,
                mirror: false,
            }]);
        };
        if entry.blocked {
            return Err(ClientError::Blocked {
                registry: entry.prefix.clone(),
                conf: self.source.clone(),
            });
        }
        let name = format!("{host}/{repository}");
        let mut out = Vec::new();
        if for_pull && (by_digest || !entry.mirror_by_digest_only) {
            for m in &entry.mirrors {
                let wanted = match m.pull_from_mirror.as_deref() {
                    Some("digest-only") => by_digest,
                    Some("tag-only") => !by_digest,
                    _ => true,
                };
                if wanted && let Some(ep) = rewrite(&entry.prefix, &m.location, &name, m.insecure) {
                    out.push(Endpoint { mirror: true, ..ep });
                }
            }
        }
        let location = if entry.location.is_empty() {
            name.clone()
        } else {
            entry.location.clone()
        };
        match rewrite(&entry.prefix, &location, &name, entry.insecure) {
            Some(ep) => out.push(ep),
            None => out.push(Endpoint {
                host: host.to_string(),
                repository: repository.to_string(),
                insecure: entry.insecure,
                mirror: false,
            }),
        }
        Ok(out)
    }
}

fn normalize_prefix(prefix: &str) -> String {
    let p = prefix.trim_end_matches('/');
    match p.split_once('/') {
        Some((host, rest)) => format!("{}/{rest}", super::normalize_host(host)),
        None if p.starts_with("*.") => p.to_string(),
        None => super::normalize_host(p),
    }
}

/// Whether `prefix` covers the image name `host/repository` (at a path-component boundary).
fn prefix_matches(prefix: &str, name: &str) -> bool {
    if let Some(domain) = prefix.strip_prefix("*.") {
        let host = name.split('/').next().unwrap_or("");
        return host.ends_with(&format!(".{domain}"));
    }
    match name.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Replaces `prefix` in `name` with `location` and splits the result into host and repository.
fn rewrite(prefix: &str, location: &str, name: &str, insecure: bool) -> Option<Endpoint> {
    let rewritten = if prefix.starts_with("*.") {
        // A wildcard entry rewrites only the host; its location, when given, replaces it.
        let (_host, repo) = name.split_once('/')?;
        format!("{}/{repo}", location.trim_end_matches('/'))
    } else {
        let rest = name.strip_prefix(prefix)?;
        format!("{}{rest}", location.trim_end_matches('/'))
    };
    let (host, repository) = rewritten.split_once('/')?;
    if repository.is_empty() {
        return None;
    }
    Some(Endpoint {
        host: super::normalize_host(host),
        repository: repository.to_string(),
        insecure,
        mirror: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "example.com/foo"
location = "internal.example:5000/bar"
insecure = true

[[registry.mirror]]
location = "mirror-a.example/cache"
[[registry.mirror]]
location = "mirror-b.example"
insecure = true

[[registry]]
location = "evil.example"
blocked = true

[[registry]]
prefix = "index.docker.io"
[[registry.mirror]]
location = "hub-mirror.example"
"#;

    #[test]
    fn mirrors_come_first_then_the_rewritten_location() {
        let conf = RegistriesConf::parse(CONF, "test.conf").unwrap();
        let eps = conf
            .endpoints("example.com", "foo/app", true, false)
            .unwrap();
        let got: Vec<_> = eps
            .iter()
            .map(|e| (e.host.as_str(), e.repository.as_str(), e.insecure, e.mirror))
            .collect();
        assert_eq!(
            got,
            vec![
                ("mirror-a.example", "cache/app", false, true),
                ("mirror-b.example", "app", true, true),
                ("internal.example:5000", "bar/app", true, false),
            ]
        );
        let push = conf
            .endpoints("example.com", "foo/app", false, false)
            .unwrap();
        assert_eq!(push.len(), 1);
        assert_eq!(push[0].host, "internal.example:5000");
    }

    #[test]
    fn prefix_matches_only_whole_path_components() {
        let conf = RegistriesConf::parse(CONF, "test.conf").unwrap();
        let eps = conf
            .endpoints("example.com", "foobar/app", true, false)
            .unwrap();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].host, "example.com");
        assert_eq!(eps[0].repository, "foobar/app");
    }

    #[test]
    fn blocked_registry_is_a_clear_error() {
        let conf = RegistriesConf::parse(CONF, "test.conf").unwrap();
        let err = conf
            .endpoints("evil.example", "x/y", true, false)
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("evil.example") && msg.contains("blocked") && msg.contains("test.conf")
        );
    }

    #[test]
    fn docker_hub_aliases_share_one_entry() {
        let conf = RegistriesConf::parse(CONF, "test.conf").unwrap();
        let eps = conf
            .endpoints("docker.io", "library/nginx", true, false)
            .unwrap();
        assert_eq!(eps[0].host, "hub-mirror.example");
        assert_eq!(eps[1].host, "docker.io");
    }

    #[test]
    fn malformed_file_names_the_file() {
        let err =
            RegistriesConf::parse("[[registry]]\nprefix = 3", "/x/registries.conf").unwrap_err();
        assert!(err.to_string().contains("/x/registries.conf"));
    }
}
