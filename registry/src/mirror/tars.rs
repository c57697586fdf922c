//! Image archives to save into a registry directory: `--tars` arguments and the `images/skopeo/tar.txt`
//! list of a cluster-image build context, as sealos spells them:
//! `docker-archive:FILE[:REF]@NAME[:TAG]` or `oci-archive:FILE[:REF]@NAME[:TAG]`.
//!
//! `NAME[:TAG]` is the repository (and tag, `latest` when absent) the image gets in the directory, used as
//! written, the way sealos uses it: `@library/nginx:1.25` is saved as `library/nginx:1.25`. Without
//! `@NAME` the name stored in the archive is used, without its registry host. Relative paths in `tar.txt`
//! are relative to `images/skopeo`. Reading the archives is left to the caller (the CLI reads them with
//! the builder's archive readers); this module only parses.

use std::path::Path;

use super::MirrorError;

/// The transports an archive entry may use.
const TRANSPORTS: &[&str] = &["docker-archive:", "oci-archive:"];

/// One archive image to save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarImage {
    /// The entry as written, for messages.
    pub spec: String,
    /// The archive in skopeo's transport syntax (`docker-archive:/abs/file.tar[:REF]`), paths resolved.
    pub source: String,
    /// The repository to save it as; `None` = the name stored in the archive, without its host.
    pub repository: Option<String>,
    /// The tag to save it as (`latest` when the name has none); `None` with `repository`.
    pub tag: Option<String>,
}

/// Parses one `TRANSPORT:FILE[:REF][@NAME[:TAG]]` entry; a relative `FILE` is taken relative to `base`.
pub fn parse_tar_spec(spec: &str, base: &Path) -> Result<TarImage, MirrorError> {
    let bad = |reason: String| MirrorError::BadReference {
        image: spec.to_string(),
        reason,
    };
    let spec_trimmed = spec.trim();
    let Some(transport) = TRANSPORTS.iter().find(|t| spec_trimmed.starts_with(**t)) else {
        return Err(bad(
            "an archive entry starts with `docker-archive:` or `oci-archive:` \
             (e.g. `docker-archive:nginx.tar@library/nginx:1.25`)"
                .into(),
        ));
    };
    let rest = &spec_trimmed[transport.len()..];
    // The name never holds `@` (digests are not accepted), so the last `@` ends the archive part.
    let (archive, name) = match rest.rsplit_once('@') {
        Some((a, n)) => (a, Some(n.trim())),
        None => (rest, None),
    };
    if archive.is_empty() || archive.starts_with(':') {
        return Err(bad("the archive file is missing".into()));
    }
    let archive = if archive.starts_with('/') {
        archive.to_string()
    } else {
        base.join(archive).to_string_lossy().into_owned()
    };
    let (repository, tag) = match name {
        None => (None, None),
        Some(n) => {
            let (repo, tag) = split_name(n);
            if !formats::reference::is_valid_repository(repo) {
                return Err(bad(format!(
                    "`{repo}` is not a valid repository name (lower-case path components such as \
                     `library/nginx`)"
                )));
            }
            if !formats::reference::is_valid_tag(tag) {
                return Err(bad(format!("`{tag}` is not a valid tag")));
            }
            (Some(repo.to_string()), Some(tag.to_string()))
        }
    };
    Ok(TarImage {
        spec: spec_trimmed.to_string(),
        source: format!("{transport}{archive}"),
        repository,
        tag,
    })
}

/// Splits `repo[:tag]` (the tag is after the last `:` that follows the last `/`); `latest` by default.
fn split_name(name: &str) -> (&str, &str) {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name, "latest"),
    }
}

/// The archives listed in `<context>/images/skopeo/tar.txt` (one entry per line, `#` comments and blank
/// lines skipped), paths relative to `images/skopeo`. A context without that file lists nothing.
pub fn context_tars(context: &Path) -> Result<Vec<TarImage>, MirrorError> {
    let dir = context.join("images").join("skopeo");
    let file = dir.join("tar.txt");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(MirrorError::Io {
                op: "read archive list",
                path: file,
                source,
            });
        }
    };
    let mut out: Vec<TarImage> = Vec::new();
    for (i, line) in super::shim::parse_image_list(&text).iter().enumerate() {
        let t = parse_tar_spec(line, &dir).map_err(|e| MirrorError::BadReference {
            image: format!("{}:{}: {line}", file.display(), i + 1),
            reason: match e {
                MirrorError::BadReference { reason, .. } => reason,
                other => other.to_string(),
            },
        })?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_entry_names_are_used_as_written_with_latest_by_default() {
        let base = Path::new("/ctx/images/skopeo");
        let t = parse_tar_spec(
            "oci-archive:/root/config_main.tar@library/config_main",
            base,
        )
        .unwrap();
        assert_eq!(t.source, "oci-archive:/root/config_main.tar");
        assert_eq!(t.repository.as_deref(), Some("library/config_main"));
        assert_eq!(t.tag.as_deref(), Some("latest"));
        let t = parse_tar_spec(
            "docker-archive:calico.tar:calico/cni:v3@calico/cni:v3.24.1",
            base,
        )
        .unwrap();
        assert_eq!(
            t.source,
            "docker-archive:/ctx/images/skopeo/calico.tar:calico/cni:v3"
        );
        assert_eq!(t.repository.as_deref(), Some("calico/cni"));
        assert_eq!(t.tag.as_deref(), Some("v3.24.1"));
        let t = parse_tar_spec("docker-archive:x.tar", base).unwrap();
        assert_eq!((t.repository, t.tag), (None, None));
    }

    #[test]
    fn bad_tar_entries_are_refused_with_the_reason() {
        let base = Path::new("/b");
        for (spec, why) in [
            ("nginx.tar@nginx", "starts with"),
            ("docker-archive:@nginx", "missing"),
            ("docker-archive:a.tar@Upper/Case", "not a valid repository"),
            ("docker-archive:a.tar@app:bad tag", "not a valid tag"),
        ] {
            let err = parse_tar_spec(spec, base).unwrap_err().to_string();
            assert!(err.contains(why), "{spec}: {err}");
            assert!(err.contains(spec), "{spec}: {err}");
        }
    }

    #[test]
    fn context_tar_list_resolves_paths_against_images_skopeo() {
        let dir = tempfile::tempdir().unwrap();
        let skopeo = dir.path().join("images/skopeo");
        std::fs::create_dir_all(&skopeo).unwrap();
        std::fs::write(
            skopeo.join("tar.txt"),
            "# archives\n\ndocker-archive:a.tar@a:1\noci-archive:/abs/b.tar@team/b:2\ndocker-archive:a.tar@a:1\n",
        )
        .unwrap();
        let list = context_tars(dir.path()).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[0].source,
            format!("docker-archive:{}", skopeo.join("a.tar").display())
        );
        assert_eq!(list[1].source, "oci-archive:/abs/b.tar");
        assert!(context_tars(&dir.path().join("none")).unwrap().is_empty());
        std::fs::write(skopeo.join("tar.txt"), "docker-archive:a.tar@BAD\n").unwrap();
        let err = context_tars(dir.path()).unwrap_err().to_string();
        assert!(err.contains("tar.txt:1"), "{err}");
    }
}
