//! The plain lists of a context: `images/shim/*` (one image a line, read by the registry crate's parser)
//! and `images/skopeo/tar.txt` (`docker-archive:<file>@<name:tag>` or `oci-archive:<file>@<name:tag>`, files
//! relative to `images/skopeo`).

use std::path::Path;

use formats::reference::Reference;
use registry::mirror::shim::parse_image_list_lines;

use super::ignore::SealIgnore;
use super::{
    ArchiveEntry, ArchiveTransport, Collector, DiscoverError, Provenance, context_entries,
    in_context, read_text, relative,
};

/// Reads every file of `images/shim/` (sorted by name) not left out by `.sealignore`.
pub(crate) fn shim_lists(
    context: &Path,
    ignore: &SealIgnore,
    found: &mut Collector,
) -> Result<(), DiscoverError> {
    for path in context_entries(context, &context.join("images").join("shim"), found)? {
        let rel = relative(context, &path);
        if ignore.ignores_path(&rel) {
            continue;
        }
        let Some(path) = in_context(context, &path, found)?.filter(|p| p.is_file()) else {
            continue;
        };
        for (line, image) in parse_image_list_lines(&read_text(&path)?) {
            found.image(
                &image,
                Provenance::List {
                    file: rel.clone(),
                    line,
                },
            );
        }
    }
    Ok(())
}

/// Parses one line of `tar.txt` (already trimmed of comments and quotes) with the one parser,
/// [`formats::archive_list::parse_archive_line`]: the transport, the archive path as written (without an
/// in-archive `:REF`) and the name, if any.
fn parse_archive_line(line: &str) -> Option<(ArchiveTransport, &str, Option<&str>)> {
    use formats::archive_list::ArchiveTransport as Written;
    let parsed = formats::archive_list::parse_archive_line(line).ok()?;
    let transport = match parsed.transport {
        Written::DockerArchive => ArchiveTransport::DockerArchive,
        Written::OciArchive => ArchiveTransport::OciArchive,
    };
    Some((transport, parsed.file, parsed.name))
}

/// Reads `images/skopeo/tar.txt`: the archives in file order. A line that is not an archive, names a
/// missing file or an invalid reference is a warning.
pub(crate) fn archives(
    context: &Path,
    ignore: &SealIgnore,
    found: &mut Collector,
) -> Result<Vec<ArchiveEntry>, DiscoverError> {
    let Some(dir) = in_context(context, &context.join("images").join("skopeo"), found)? else {
        return Ok(Vec::new());
    };
    let list = dir.join("tar.txt");
    let rel_list = relative(context, &list);
    if ignore.ignores_path(&rel_list) {
        return Ok(Vec::new());
    }
    let Some(list) = in_context(context, &list, found)?.filter(|p| p.is_file()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (line, text) in parse_image_list_lines(&read_text(&list)?) {
        let source = Provenance::List {
            file: rel_list.clone(),
            line,
        };
        let Some((transport, file, name)) = parse_archive_line(&text) else {
            found.warn(
                source.to_string(),
                format!("`{text}` is not `docker-archive:FILE@NAME:TAG` or `oci-archive:FILE@NAME:TAG`; skipped"),
            );
            continue;
        };
        // Relative to `images/skopeo`; an absolute path starts at the context root, as a COPY source does.
        let path = match file.strip_prefix('/') {
            Some(from_root) => context.join(from_root),
            None => dir.join(file),
        };
        let rel = relative(context, &path);
        if ignore.ignores_path(&rel) {
            continue;
        }
        let Some(path) = in_context(context, &path, found)?.filter(|p| p.is_file()) else {
            found.warn(
                source.to_string(),
                format!("archive `{rel}` is not in the context; skipped"),
            );
            continue;
        };
        let rel = relative(context, &path);
        let reference = match name.map(Reference::parse) {
            None => None,
            Some(Ok(r)) => Some(r.to_string()),
            Some(Err(e)) => {
                found.warn(source.to_string(), format!("archive `{rel}`: {e}; skipped"));
                continue;
            }
        };
        out.push(ArchiveEntry {
            transport,
            file: rel,
            reference,
            written_name: name.map(str::to_string),
            source,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_lines_give_transport_file_and_name() {
        assert_eq!(
            parse_archive_line("docker-archive:app.tar@example.com/team/app:v1"),
            Some((
                ArchiveTransport::DockerArchive,
                "app.tar",
                Some("example.com/team/app:v1")
            ))
        );
        assert_eq!(
            parse_archive_line("oci-archive:sub/x.tar"),
            Some((ArchiveTransport::OciArchive, "sub/x.tar", None))
        );
        assert_eq!(parse_archive_line("dir:foo"), None);
        assert_eq!(parse_archive_line("docker-archive:@x"), None);
    }

    #[test]
    fn archive_entries_keep_the_name_as_written_beside_its_normalised_form() {
        let ctx = tempfile::tempdir().unwrap();
        let dir = ctx.path().join("images/skopeo");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app.tar"), b"").unwrap();
        std::fs::write(dir.join("cli.tar"), b"").unwrap();
        std::fs::write(
            dir.join("tar.txt"),
            "docker-archive:app.tar@nginx\noci-archive:cli.tar\n",
        )
        .unwrap();
        let ignore = SealIgnore::load(ctx.path()).unwrap();
        let entries = archives(ctx.path(), &ignore, &mut Collector::default()).unwrap();
        let names: Vec<_> = entries
            .iter()
            .map(|e| (e.written_name.as_deref(), e.reference.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                (Some("nginx"), Some("docker.io/library/nginx:latest")),
                (None, None)
            ]
        );
    }
}
