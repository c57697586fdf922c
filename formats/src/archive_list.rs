//! Lines of `images/skopeo/tar.txt` and `--tars` entries: `TRANSPORT:FILE[:REF][@NAME[:TAG]]` with
//! `TRANSPORT` `docker-archive` or `oci-archive`, as skopeo's archive transports read them. The one parser;
//! what a caller does with the name (keep it whole, drop the host) and where it resolves the file is its own.

/// Where a build context lists its archives, relative to the context root.
pub const CONTEXT_TAR_LIST: &str = "images/skopeo/tar.txt";

/// The archive transports an entry may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveTransport {
    /// `docker-archive:` (`docker save` output).
    DockerArchive,
    /// `oci-archive:` (a tarred OCI layout).
    OciArchive,
}

impl ArchiveTransport {
    /// The prefix as written, with its `:` (`docker-archive:`).
    pub fn prefix(self) -> &'static str {
        match self {
            ArchiveTransport::DockerArchive => "docker-archive:",
            ArchiveTransport::OciArchive => "oci-archive:",
        }
    }
}

/// One entry split into its parts; nothing is resolved or normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveLine<'a> {
    /// The transport.
    pub transport: ArchiveTransport,
    /// The archive file as written (ends at its first `:`).
    pub file: &'a str,
    /// The image inside the archive (`:REF`), if given.
    pub archive_ref: Option<&'a str>,
    /// The image name after `@`, trimmed, if given.
    pub name: Option<&'a str>,
}

/// Why an entry was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveLineError {
    /// The entry does not start with a known transport.
    #[error(
        "an archive entry starts with `docker-archive:` or `oci-archive:` (e.g. `docker-archive:nginx.tar@library/nginx:1.25`)"
    )]
    Transport,
    /// The entry has no file.
    #[error("the archive file is missing")]
    MissingFile,
}

/// Parses one trimmed entry. The name never holds `@` (digests are not accepted), so the last `@` ends the
/// archive part; the file ends at its first `:`.
pub fn parse_archive_line(line: &str) -> Result<ArchiveLine<'_>, ArchiveLineError> {
    let line = line.trim();
    let (transport, rest) = [
        ArchiveTransport::DockerArchive,
        ArchiveTransport::OciArchive,
    ]
    .into_iter()
    .find_map(|t| line.strip_prefix(t.prefix()).map(|rest| (t, rest)))
    .ok_or(ArchiveLineError::Transport)?;
    let (archive, name) = match rest.rsplit_once('@') {
        Some((a, n)) => (a, Some(n.trim()).filter(|n| !n.is_empty())),
        None => (rest, None),
    };
    let (file, archive_ref) = match archive.split_once(':') {
        Some((f, r)) => (f.trim(), Some(r.trim()).filter(|r| !r.is_empty())),
        None => (archive.trim(), None),
    };
    if file.is_empty() {
        return Err(ArchiveLineError::MissingFile);
    }
    Ok(ArchiveLine {
        transport,
        file,
        archive_ref,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_into_transport_file_ref_and_name() {
        let l = parse_archive_line(" docker-archive:app.tar@nginx:1.25 ").unwrap();
        assert_eq!(l.transport, ArchiveTransport::DockerArchive);
        assert_eq!(
            (l.file, l.archive_ref, l.name),
            ("app.tar", None, Some("nginx:1.25"))
        );
        let l = parse_archive_line("oci-archive:/abs/x.tar:inner@example.com/a/b:v1").unwrap();
        assert_eq!(l.transport, ArchiveTransport::OciArchive);
        assert_eq!(
            (l.file, l.archive_ref, l.name),
            ("/abs/x.tar", Some("inner"), Some("example.com/a/b:v1"))
        );
        let l = parse_archive_line("oci-archive:x.tar").unwrap();
        assert_eq!((l.file, l.archive_ref, l.name), ("x.tar", None, None));
        let l = parse_archive_line("oci-archive:x.tar@").unwrap();
        assert_eq!(l.name, None);
    }

    /// Where the builder's and the mirror's copies disagreed: the builder split at the first `@` and kept
    /// `:REF` in the file name.
    #[test]
    fn the_last_at_ends_the_archive_and_the_file_ends_at_its_first_colon() {
        let l = parse_archive_line("docker-archive:a@b.tar:ref@nginx").unwrap();
        assert_eq!(
            (l.file, l.archive_ref, l.name),
            ("a@b.tar", Some("ref"), Some("nginx"))
        );
        let l = parse_archive_line("docker-archive:app.tar:0@nginx").unwrap();
        assert_eq!((l.file, l.archive_ref), ("app.tar", Some("0")));
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        assert_eq!(
            parse_archive_line("app.tar"),
            Err(ArchiveLineError::Transport)
        );
        assert_eq!(
            parse_archive_line("dir:app"),
            Err(ArchiveLineError::Transport)
        );
        assert_eq!(
            parse_archive_line("docker-archive:@nginx"),
            Err(ArchiveLineError::MissingFile)
        );
        assert!(
            ArchiveLineError::Transport
                .to_string()
                .contains("docker-archive:")
        );
    }
}
