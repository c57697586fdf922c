//! Which upstream registry a repository of the cache comes from: `--proxy UPSTREAM` (every repository) or a
//! `--proxy-config` file mapping repository prefixes to registries (`docker.io/` to `registry-1.docker.io`).

use std::path::Path;

use serde::Deserialize;

use crate::client::{ClientOptions, RegistryEntry};

/// Why a proxy configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The file could not be read.
    #[error("cannot read proxy config `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("proxy config `{path}`: {message}")]
    Parse {
        /// The file (or `--proxy`).
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// One upstream: repositories of the cache named `prefix` + REST come from `registry`'s repository
/// `repository_prefix` + REST.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// The start of the cache's repository names this upstream serves (`docker.io/`); empty for all.
    #[serde(default)]
    pub prefix: String,
    /// The upstream registry host, `host[:port]` (`registry-1.docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Put in front of REST to name the upstream repository (`library/`); usually empty.
    #[serde(default)]
    pub repository_prefix: String,
    /// Plain HTTP or unverified TLS to this upstream (what `http://` in `--proxy` means).
    #[serde(default)]
    pub insecure: bool,
}

impl Upstream {
    /// The upstream of `--proxy TEXT`: `host[:port]`, optionally with `https://` or `http://` (plain HTTP
    /// allowed) in front and a path (a repository prefix upstream) behind.
    pub fn parse_url(text: &str) -> Result<Upstream, UpstreamError> {
        let bad = |message: String| UpstreamError::Parse {
            path: "--proxy".into(),
            message,
        };
        let trimmed = text.trim();
        let (insecure, rest) = if let Some(r) = trimmed.strip_prefix("http://") {
            (true, r)
        } else if let Some(r) = trimmed.strip_prefix("https://") {
            (false, r)
        } else if trimmed.contains("://") {
            return Err(bad(format!(
                "`{text}`: only http:// and https:// upstreams are supported"
            )));
        } else {
            (false, trimmed)
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            return Err(bad(format!(
                "`{text}` names no registry: give `host[:port]`, e.g. `registry-1.docker.io`"
            )));
        }
        let path = path.trim_matches('/');
        Ok(Upstream {
            prefix: String::new(),
            registry: host.to_string(),
            repository_prefix: if path.is_empty() {
                String::new()
            } else {
                format!("{path}/")
            },
            insecure,
        })
    }
}

/// Every upstream of a cache; the longest matching prefix wins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstreams {
    /// The `[[upstream]]` tables.
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<Upstream>,
}

/// Where a repository of the cache comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The upstream registry host.
    pub registry: String,
    /// The repository there.
    pub repository: String,
}

impl Upstreams {
    /// One upstream for every repository.
    pub fn single(upstream: Upstream) -> Upstreams {
        Upstreams {
            upstreams: vec![upstream],
        }
    }

    /// Parses a `--proxy-config` file's text (`source` names it in errors).
    pub fn parse(text: &str, source: &str) -> Result<Upstreams, UpstreamError> {
        let parsed: Upstreams = toml::from_str(text).map_err(|e| UpstreamError::Parse {
            path: source.to_string(),
            message: e.to_string(),
        })?;
        if parsed.upstreams.is_empty() {
            return Err(UpstreamError::Parse {
                path: source.to_string(),
                message: "no `[[upstream]]` table: add one with `prefix` and `registry`".into(),
            });
        }
        for u in &parsed.upstreams {
            if u.registry.trim().is_empty() || u.registry.contains('/') {
                return Err(UpstreamError::Parse {
                    path: source.to_string(),
                    message: format!(
                        "upstream `{}` for prefix `{}`: `registry` is `host[:port]` without a path \
                         (put a path in `repository_prefix`)",
                        u.registry, u.prefix
                    ),
                });
            }
            if !u.prefix.is_empty() && !u.prefix.ends_with('/') {
                return Err(UpstreamError::Parse {
                    path: source.to_string(),
                    message: format!(
                        "prefix `{}` must end with `/` (a whole first path segment, e.g. `docker.io/`)",
                        u.prefix
                    ),
                });
            }
        }
        let mut prefixes: Vec<&str> = parsed.upstreams.iter().map(|u| u.prefix.as_str()).collect();
        prefixes.sort_unstable();
        if let Some(w) = prefixes.windows(2).find(|w| w[0] == w[1]) {
            return Err(UpstreamError::Parse {
                path: source.to_string(),
                message: format!("prefix `{}` is given twice", w[0]),
            });
        }
        Ok(parsed)
    }

    /// Loads a `--proxy-config` file.
    pub fn load(path: &Path) -> Result<Upstreams, UpstreamError> {
        let text = std::fs::read_to_string(path).map_err(|source| UpstreamError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The upstream of repository `repo` of the cache, or `None` when no prefix matches (a local repository).
    pub fn source_of(&self, repo: &str) -> Option<Source> {
        self.upstreams
            .iter()
            .filter(|u| repo.starts_with(&u.prefix) && repo.len() > u.prefix.len())
            .max_by_key(|u| u.prefix.len())
            .map(|u| Source {
                registry: u.registry.clone(),
                repository: format!("{}{}", u.repository_prefix, &repo[u.prefix.len()..]),
            })
    }

    /// Marks the insecure upstreams so in `opts`' `registries.conf` (plain HTTP allowed).
    pub fn allow_insecure(&self, opts: &mut ClientOptions) {
        for u in self.upstreams.iter().filter(|u| u.insecure) {
            opts.registries_conf.registries.push(RegistryEntry {
                prefix: u.registry.clone(),
                location: u.registry.clone(),
                insecure: true,
                ..RegistryEntry::default()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_names_the_upstream_repository() {
        let u = Upstreams::parse(
            r#"
[[upstream]]
prefix = "docker.io/"
registry = "registry-1.docker.io"
[[upstream]]
prefix = "docker.io/library/"
registry = "mirror.example:5000"
repository_prefix = "hub/"
[[upstream]]
prefix = "quay.io/"
registry = "quay.io"
"#,
            "proxy.toml",
        )
        .unwrap();
        let s = |r: &str| {
            u.source_of(r)
                .map(|s| format!("{}/{}", s.registry, s.repository))
        };
        assert_eq!(
            s("docker.io/bitnami/redis").as_deref(),
            Some("registry-1.docker.io/bitnami/redis")
        );
        assert_eq!(
            s("docker.io/library/nginx").as_deref(),
            Some("mirror.example:5000/hub/nginx")
        );
        assert_eq!(
            s("quay.io/coreos/etcd").as_deref(),
            Some("quay.io/coreos/etcd")
        );
        assert_eq!(s("local/app"), None);
        assert_eq!(s("quay.io/"), None);
    }

    #[test]
    fn proxy_flag_takes_a_host_with_optional_scheme_and_path() {
        let u = Upstream::parse_url("http://127.0.0.1:5000").unwrap();
        assert_eq!((u.registry.as_str(), u.insecure), ("127.0.0.1:5000", true));
        let u = Upstream::parse_url("https://registry-1.docker.io/library").unwrap();
        assert_eq!(u.registry, "registry-1.docker.io");
        assert_eq!(u.repository_prefix, "library/");
        assert!(!u.insecure);
        let all = Upstreams::single(Upstream::parse_url("quay.io").unwrap());
        assert_eq!(
            all.source_of("coreos/etcd").unwrap().repository,
            "coreos/etcd"
        );
        assert!(Upstream::parse_url("ftp://x").is_err());
        assert!(Upstream::parse_url("https:///x").is_err());
    }

    #[test]
    fn bad_configs_say_what_to_fix() {
        let err = |t: &str| Upstreams::parse(t, "p.toml").unwrap_err().to_string();
        assert!(err("").contains("no `[[upstream]]`"));
        assert!(
            err("[[upstream]]\nprefix = \"docker.io\"\nregistry = \"r\"\n")
                .contains("end with `/`")
        );
        assert!(err("[[upstream]]\nregistry = \"r/x\"\n").contains("without a path"));
        assert!(
            err("[[upstream]]\nprefix = \"a/\"\nregistry = \"r\"\n[[upstream]]\nprefix = \"a/\"\nregistry = \"s\"\n")
                .contains("twice")
        );
        assert!(err("[[upstream]]\nregistry = \"r\"\nbogus = 1\n").contains("bogus"));
    }
}
