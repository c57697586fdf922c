//! Image archives to save into a registry directory: `--tars` arguments and the `images/skopeo/tar.txt`
//! list of a cluster-image build context, as sealos spells them:
//! `docker-archive:FILE[:REF]@NAME[:TAG]` or `oci-archive:FILE[:REF]@NAME[:TAG]`.
//!
//! `NAME[:TAG]` is the image the archive holds (tag `latest` when absent), named in the directory as a
//! pulled image is: without its registry host (`@example.com/team/app:v1` is saved as `team/app:v1`,
//! `@nginx:1.25` as `library/nginx:1.25`), the repository a node's mirror request asks for. Without
//! `@NAME` the name stored in the archive is used, without its registry host. A `--tars` path is the
//! user's own, taken as written; a `tar.txt` path is resolved inside the context as the build resolves it
//! ([`context_tars`]). Reading the archives is left to the caller (the CLI reads them with the builder's
//! archive readers); this module only parses and resolves.

use std::path::Path;

use formats::archive_list::{ArchiveLine, ArchiveTransport, parse_archive_line};
use formats::kubefile::{ContextPathError, resolve_in_context};

use super::MirrorError;

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

/// One entry split into its parts, its file not yet resolved.
struct Entry<'a> {
    transport: ArchiveTransport,
    file: &'a str,
    reference: Option<&'a str>,
    repository: Option<String>,
    tag: Option<String>,
}

impl Entry<'_> {
    /// The entry with its file at `path`.
    fn at(self, spec: &str, path: &Path) -> TarImage {
        let reference = self.reference.map(|r| format!(":{r}")).unwrap_or_default();
        TarImage {
            spec: spec.to_string(),
            source: format!("{}{}{reference}", self.transport.prefix(), path.display()),
            repository: self.repository,
            tag: self.tag,
        }
    }
}

/// Splits a trimmed `TRANSPORT:FILE[:REF][@NAME[:TAG]]` entry with the one parser,
/// [`parse_archive_line`], then names it as a pulled image is.
fn parse_entry(spec: &str) -> Result<Entry<'_>, MirrorError> {
    let bad = |reason: String| MirrorError::BadReference {
        image: spec.to_string(),
        reason,
    };
    let ArchiveLine {
        transport,
        file,
        archive_ref: reference,
        name,
    } = parse_archive_line(spec).map_err(|e| bad(e.to_string()))?;
    let (repository, tag) = match name {
        None => (None, None),
        Some(n) => {
            let (repo, tag) = split_name(n);
            if !formats::reference::is_valid_tag(tag) {
                return Err(bad(format!("`{tag}` is not a valid tag")));
            }
            // Named as a pulled image is: the reference without its registry host, so a node that asks
            // a mirror for `example.com/team/app` (`/v2/team/app/...`) or `app` (`/v2/library/app/...`)
            // finds it.
            let r = formats::reference::Reference::parse(&format!("{repo}:{tag}")).map_err(|e| {
                bad(format!(
                    "`{repo}` is not a valid repository name (lower-case path components such as \
                     `library/nginx`, after an optional registry host): {e}"
                ))
            })?;
            (Some(r.repository().to_string()), Some(tag.to_string()))
        }
    };
    Ok(Entry {
        transport,
        file,
        reference,
        repository,
        tag,
    })
}

/// Parses one `TRANSPORT:FILE[:REF][@NAME[:TAG]]` entry given by the user (`--tars`); a relative `FILE` is
/// taken relative to `base`, an absolute one as it is.
pub fn parse_tar_spec(spec: &str, base: &Path) -> Result<TarImage, MirrorError> {
    let spec = spec.trim();
    let entry = parse_entry(spec)?;
    let path = base.join(entry.file);
    Ok(entry.at(spec, &path))
}

/// Splits `repo[:tag]` (the tag is after the last `:` that follows the last `/`); `latest` by default.
fn split_name(name: &str) -> (&str, &str) {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name, "latest"),
    }
}

/// Where a context lists its archives, relative to the context root.
pub use formats::archive_list::CONTEXT_TAR_LIST;

/// What to do about an archive of `tar.txt` that is not in the context.
const NOT_IN_CONTEXT_HINT: &str =
    "copy the archive into the context, or give a host archive with `--tars`";

/// The archives listed in `<context>/images/skopeo/tar.txt` (one entry per line, `#` comments and blank
/// lines skipped). The list and every archive are resolved inside the context by the build's one rule,
/// [`resolve_in_context`]: an archive is relative to `images/skopeo` (a leading `/` starts at the context
/// root) and symlinks are followed only while they stay inside; an archive that is not in the context (`..`
/// above it, a symlink out, a host path) is an error naming the line. A context without the list lists
/// nothing.
pub fn context_tars(context: &Path) -> Result<Vec<TarImage>, MirrorError> {
    let file = context.join(CONTEXT_TAR_LIST);
    let list_error = |line: Option<usize>, reason: String| MirrorError::ArchiveList {
        location: match line {
            Some(n) => format!("{}:{n}", file.display()),
            None => file.display().to_string(),
        },
        reason,
    };
    let list = resolve_in_context(context, CONTEXT_TAR_LIST)
        .map_err(|e| list_error(None, e.to_string()))?;
    if list.metadata().is_none() {
        return match list.outside_error(CONTEXT_TAR_LIST) {
            Some(e) => Err(list_error(None, format!("{e}; the list is not read"))),
            None => Ok(Vec::new()),
        };
    }
    let text = std::fs::read_to_string(&list.path).map_err(|source| MirrorError::Io {
        op: "read archive list",
        path: file.clone(),
        source,
    })?;
    let mut out: Vec<TarImage> = Vec::new();
    for (n, line) in super::shim::parse_image_list_lines(&text) {
        let entry = parse_entry(&line).map_err(|e| {
            list_error(
                Some(n),
                match e {
                    MirrorError::BadReference { reason, .. } => format!("`{line}`: {reason}"),
                    other => other.to_string(),
                },
            )
        })?;
        let rel = if entry.file.starts_with('/') {
            entry.file.to_string()
        } else {
            format!("images/skopeo/{}", entry.file)
        };
        let not_here =
            |why: String| list_error(Some(n), format!("`{line}`: {why}; {NOT_IN_CONTEXT_HINT}"));
        let found = match resolve_in_context(context, &rel) {
            Ok(found) => found,
            Err(e @ ContextPathError::Outside { .. }) => return Err(not_here(e.to_string())),
            Err(e) => return Err(list_error(Some(n), format!("`{line}`: {e}"))),
        };
        if !found.path.is_file() {
            return Err(match (found.metadata(), found.outside_error(&rel)) {
                (None, Some(e)) => not_here(e.to_string()),
                (None, None) if entry.file.starts_with('/') => not_here(format!(
                    "`{}` is not in the build context (in tar.txt a leading `/` starts at the context \
                     root, as `sealos build` reads it, and `{}` does not exist there)",
                    entry.file, found.rel
                )),
                (None, None) => list_error(Some(n), format!("`{line}`: `{rel}` does not exist")),
                (Some(_), _) => list_error(Some(n), format!("`{line}`: `{rel}` is not a file")),
            });
        }
        let t = entry.at(&line, &found.path);
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
    fn tar_entry_names_drop_their_host_as_pulled_images_do_with_latest_by_default() {
        let base = Path::new("/ctx/images/skopeo");
        for (spec, repo, tag) in [
            (
                "docker-archive:app.tar@example.com/team/app:v1.0.0",
                "team/app",
                "v1.0.0",
            ),
            (
                "docker-archive:app.tar@127.0.0.1:5000/team/app",
                "team/app",
                "latest",
            ),
            ("docker-archive:app.tar@nginx:1.25", "library/nginx", "1.25"),
            (
                "docker-archive:app.tar@docker.io/library/nginx",
                "library/nginx",
                "latest",
            ),
        ] {
            let t = parse_tar_spec(spec, base).unwrap();
            assert_eq!(t.repository.as_deref(), Some(repo), "{spec}");
            assert_eq!(t.tag.as_deref(), Some(tag), "{spec}");
        }
    }

    #[test]
    fn tar_entry_names_keep_their_path_with_latest_by_default() {
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
    fn context_tar_list_resolves_paths_inside_the_context_and_keeps_file_ref() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        let skopeo = ctx.join("images/skopeo");
        std::fs::create_dir_all(&skopeo).unwrap();
        std::fs::create_dir_all(ctx.join("abs")).unwrap();
        std::fs::write(skopeo.join("a.tar"), b"").unwrap();
        std::fs::write(ctx.join("abs/b.tar"), b"").unwrap();
        std::os::unix::fs::symlink("/abs/b.tar", skopeo.join("linked.tar")).unwrap();
        std::fs::write(
            skopeo.join("tar.txt"),
            "# archives\n\ndocker-archive:a.tar:app:v1@a:1\noci-archive:/abs/b.tar@team/b:2\n\
             docker-archive:a.tar:app:v1@a:1\noci-archive:linked.tar@c\n",
        )
        .unwrap();
        let list = context_tars(&ctx).unwrap();
        let sources: Vec<&str> = list.iter().map(|t| t.source.as_str()).collect();
        assert_eq!(
            sources,
            [
                format!("docker-archive:{}:app:v1", skopeo.join("a.tar").display()),
                format!("oci-archive:{}", ctx.join("abs/b.tar").display()),
                format!("oci-archive:{}", ctx.join("abs/b.tar").display()),
            ]
        );
        assert!(context_tars(&dir.path().join("none")).unwrap().is_empty());
        std::fs::write(skopeo.join("tar.txt"), "\n# x\ndocker-archive:a.tar@BAD\n").unwrap();
        let err = context_tars(&ctx).unwrap_err().to_string();
        assert!(
            err.contains("tar.txt:3: `docker-archive:a.tar@BAD`"),
            "{err}"
        );
    }

    #[test]
    fn context_tar_list_refuses_archives_out_of_the_context_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        let skopeo = ctx.join("images/skopeo");
        std::fs::create_dir_all(&skopeo).unwrap();
        let host = dir.path().join("host.tar");
        std::fs::write(&host, b"").unwrap();
        std::os::unix::fs::symlink(&host, skopeo.join("out.tar")).unwrap();
        std::os::unix::fs::symlink("../../../host.tar", skopeo.join("up.tar")).unwrap();
        for (line, why) in [
            (
                format!("docker-archive:{}@a", host.display()),
                "is not in the build context (in tar.txt a leading `/` starts at the context root",
            ),
            (
                "docker-archive:../../../host.tar@a".to_string(),
                "is outside the build context",
            ),
            ("docker-archive:out.tar@a".to_string(), "is a symlink to"),
            ("oci-archive:up.tar:v1@a".to_string(), "is a symlink to"),
        ] {
            std::fs::write(skopeo.join("tar.txt"), format!("# list\n{line}\n")).unwrap();
            let err = context_tars(&ctx).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "{}:2: `{line}`: ",
                    skopeo.join("tar.txt").display()
                )) && err.contains(why)
                    && err.contains("give a host archive with `--tars`"),
                "{err}"
            );
        }
        std::fs::write(skopeo.join("tar.txt"), "docker-archive:missing.tar\n").unwrap();
        let err = context_tars(&ctx).unwrap_err().to_string();
        assert!(
            err.contains("`images/skopeo/missing.tar` does not exist"),
            "{err}"
        );
        // The list itself is read only inside the context.
        std::fs::remove_file(skopeo.join("tar.txt")).unwrap();
        let list = dir.path().join("tar.txt");
        std::fs::write(&list, "docker-archive:a.tar@a\n").unwrap();
        std::os::unix::fs::symlink(&list, skopeo.join("tar.txt")).unwrap();
        let err = context_tars(&ctx).unwrap_err().to_string();
        assert!(err.contains("is a symlink to"), "{err}");
    }
}
