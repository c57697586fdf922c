//! Loading a chart from a directory (honouring `.helmignore`) or a packed `.tgz`, as Helm's loader does:
//! files sorted into metadata, values, schema, templates, subcharts and everything else.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use gotmpl::Value;

use crate::Error;
use crate::bridge;
use crate::chart::{Chart, File, Metadata, dependencies_from};
use crate::ignore::IgnoreRules;

/// The largest file a chart may hold (Helm's `MaxDecompressedFileSize`, 5 MiB).
pub const MAX_FILE_SIZE: u64 = 5 * 1024 * 1024;
/// The largest a packed chart may decompress to (Helm's `MaxDecompressedChartSize`, 100 MiB).
pub const MAX_CHART_SIZE: u64 = 100 * 1024 * 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Loads the chart at `path`: a chart directory or a packed chart archive.
pub fn load(path: &Path) -> Result<Chart, Error> {
    let meta = std::fs::metadata(path)
        .map_err(|_| Error::new(format!("path {:?} not found", path.display().to_string())))?;
    if meta.is_dir() {
        load_dir(path)
    } else {
        let data = std::fs::read(path)
            .map_err(|e| Error::new(format!("error reading {}: {e}", path.display())))?;
        if !data.starts_with(&GZIP_MAGIC) {
            return Err(Error::new(format!(
                "file '{}' does not appear to be a gzipped archive; got 'application/octet-stream'",
                path.display()
            )));
        }
        load_archive(&data)
    }
}

/// Loads a chart directory, skipping what its `.helmignore` names.
pub fn load_dir(dir: &Path) -> Result<Chart, Error> {
    let chart_yaml = std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .join("Chart.yaml");
    if !chart_yaml.is_file() {
        return Err(Error::new(format!(
            "unable to detect chart at {}: open {}: no such file or directory",
            chart_yaml.display(),
            chart_yaml.display()
        )));
    }
    let rules = match std::fs::read_to_string(dir.join(".helmignore")) {
        Ok(text) => IgnoreRules::parse(&text).map_err(|e| Error::new(e.to_string()))?,
        Err(_) => IgnoreRules::defaults(),
    };
    let mut files = Vec::new();
    let mut total = 0;
    walk(dir, &rules, &mut files, &mut total)?;
    load_files(files)
}

/// Reads the files of chart directory `dir` in name order, as Helm's loader does: symlinks are followed (Helm's
/// `sympath.Walk`; a loop is an error), and what `.helmignore` names is left out, an ignored directory
/// without being entered.
fn walk(
    dir: &Path,
    rules: &IgnoreRules,
    files: &mut Vec<(String, Vec<u8>)>,
    total: &mut u64,
) -> Result<(), Error> {
    let rel_of = |path: &Path| -> String {
        let rel = path.strip_prefix(dir).unwrap_or(path);
        let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy()).collect();
        parts.join("/")
    };
    let mut entries = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(entry) = entries.next() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                let path = e.path().unwrap_or(dir).to_path_buf();
                if let Some(ancestor) = e.loop_ancestor() {
                    return Err(Error::new(format!(
                        "chart directory {} is a symlink loop: it leads back to {}",
                        path.display(),
                        ancestor.display()
                    )));
                }
                let source = e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("unreadable"));
                if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                    return Err(Error::new(format!(
                        "error reading {}: {source}",
                        path.display()
                    )));
                }
                if rules.ignored(&rel_of(&path), false) {
                    continue;
                }
                return Err(Error::new(format!("stat {}: {source}", path.display())));
            }
        };
        let rel = rel_of(entry.path());
        // The walk follows symlinks: the type is the target's.
        if entry.file_type().is_dir() {
            if rules.ignored(&rel, true) {
                entries.skip_current_dir();
            }
            continue;
        }
        if rules.ignored(&rel, false) {
            continue;
        }
        let path = entry.path();
        let meta = entry
            .metadata()
            .map_err(|e| Error::new(format!("stat {}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(Error::new(format!(
                "cannot load irregular file {} as it has file mode type bits set",
                path.display()
            )));
        }
        if meta.len() > MAX_FILE_SIZE {
            return Err(Error::new(format!(
                "chart file {:?} is larger than the maximum file size {MAX_FILE_SIZE}",
                entry.file_name().to_string_lossy()
            )));
        }
        *total += meta.len();
        if *total > MAX_CHART_SIZE {
            return Err(Error::new(format!(
                "chart is larger than the maximum size {MAX_CHART_SIZE}"
            )));
        }
        let mut data =
            std::fs::read(path).map_err(|e| Error::new(format!("error reading {rel}: {e}")))?;
        if data.starts_with(UTF8_BOM) {
            data.drain(..UTF8_BOM.len());
        }
        files.push((rel, data));
    }
    Ok(())
}

/// Loads a packed chart (`.tgz`): every entry under one top directory; absolute paths, `..`, links and
/// oversized entries are refused.
pub fn load_archive(data: &[u8]) -> Result<Chart, Error> {
    // Go's gzip reader: a header is ten bytes, starting with the magic number.
    if data.len() < 10 {
        return Err(Error::new("unexpected EOF"));
    }
    if !data.starts_with(&GZIP_MAGIC) {
        return Err(Error::new("gzip: invalid header"));
    }
    let gz = flate2::read::GzDecoder::new(data);
    let mut archive = tar::Archive::new(gz);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut total: u64 = 0;
    let entries = archive
        .entries()
        .map_err(|e| Error::new(format!("reading chart archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::new(format!("reading chart archive: {e}")))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() || kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        if matches!(
            kind,
            tar::EntryType::GNULongName | tar::EntryType::GNULongLink
        ) {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(Error::new(format!(
                "chart illegally contains a link: {raw:?}"
            )));
        }
        if !kind.is_file() && kind != tar::EntryType::Continuous {
            return Err(Error::new(format!(
                "chart illegally contains a special file: {raw:?}"
            )));
        }
        let delimiter = if raw.contains('\\') { '\\' } else { '/' };
        let parts: Vec<&str> = raw.split(delimiter).collect();
        if parts[0] == "Chart.yaml" {
            return Err(Error::new("chart yaml not in base directory"));
        }
        let joined = parts[1..].join("/");
        if joined.starts_with('/') {
            return Err(Error::new("chart illegally contains absolute paths"));
        }
        let name = clean_path(&joined);
        if name == "." || name.is_empty() {
            return Err(Error::new(format!(
                "chart illegally contains content outside the base directory: {raw:?}"
            )));
        }
        if name.starts_with("..") {
            return Err(Error::new("chart illegally references parent directory"));
        }
        let bytes = name.as_bytes();
        if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
            return Err(Error::new("chart contains illegally named files"));
        }
        let size = entry.header().size().unwrap_or(0);
        if size > MAX_FILE_SIZE {
            return Err(Error::new(format!(
                "decompressed chart file {name:?} is larger than the maximum file size {MAX_FILE_SIZE}"
            )));
        }
        let mut data = Vec::with_capacity(size as usize);
        (&mut entry)
            .take(MAX_FILE_SIZE + 1)
            .read_to_end(&mut data)
            .map_err(|e| Error::new(format!("reading chart archive: {e}")))?;
        total += data.len() as u64;
        if total > MAX_CHART_SIZE {
            return Err(Error::new(format!(
                "decompressed chart is larger than the maximum size {MAX_CHART_SIZE}"
            )));
        }
        if data.starts_with(UTF8_BOM) {
            data.drain(..UTF8_BOM.len());
        }
        // A later entry of the same name replaces an earlier one.
        files.retain(|(n, _)| *n != name);
        files.push((name, data));
    }
    if files.is_empty() {
        return Err(Error::new("no files in chart archive"));
    }
    load_files(files)
}

/// Go's `path.Clean` on a `/`-separated relative path.
fn clean_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|p| *p != "..") {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            p => out.push(p),
        }
    }
    if out.is_empty() {
        ".".to_string()
    } else {
        out.join("/")
    }
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Builds a chart from its files (paths relative to the chart root), as Helm's `LoadFiles` sorts them.
fn load_files(files: Vec<(String, Vec<u8>)>) -> Result<Chart, Error> {
    let mut metadata: Option<Metadata> = None;
    if let Some((_, data)) = files.iter().find(|(n, _)| n == "Chart.yaml") {
        let doc = bridge::parse_yaml(&text(data))
            .map_err(|e| Error::new(format!("cannot load Chart.yaml: {e}")))?;
        let mut md = Metadata::from_value(&doc).map_err(|e| {
            Error::new(format!(
                "cannot load Chart.yaml: error unmarshaling JSON: while decoding JSON: {e}"
            ))
        })?;
        if md.api_version.is_empty() {
            md.api_version = "v1".to_string();
        }
        metadata = Some(md);
    }
    let mut chart = Chart {
        metadata: metadata.unwrap_or_default(),
        values: Value::empty_map(),
        schema: None,
        templates: Vec::new(),
        files: Vec::new(),
        dependencies: Vec::new(),
    };
    let has_metadata = files.iter().any(|(n, _)| n == "Chart.yaml");
    let mut subcharts: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for (name, data) in files {
        let file = |name: String, data: Vec<u8>| File {
            name,
            data: Rc::from(data),
        };
        match name.as_str() {
            "Chart.yaml" | "Chart.lock" => {}
            "values.yaml" => {
                chart.values = bridge::parse_values(&text(&data))
                    .map_err(|e| Error::new(format!("cannot load values.yaml: {e}")))?;
            }
            "values.schema.json" => chart.schema = Some(Rc::from(data)),
            "requirements.yaml" => {
                let doc = bridge::parse_yaml(&text(&data))
                    .map_err(|e| Error::new(format!("cannot load requirements.yaml: {e}")))?;
                if let Value::Map(map) = &doc {
                    chart.metadata.dependencies = dependencies_from(&map.borrow())
                        .map_err(|e| Error::new(format!("cannot load requirements.yaml: {e}")))?;
                }
                if chart.metadata.api_version == "v1" {
                    chart.files.push(file(name, data));
                }
            }
            "requirements.lock" => {
                if chart.metadata.api_version == "v1" {
                    chart.files.push(file(name, data));
                }
            }
            n if n.starts_with("templates/") => chart.templates.push(file(name, data)),
            n if n.starts_with("charts/") => {
                if n.ends_with(".prov") {
                    chart.files.push(file(name, data));
                    continue;
                }
                let rest = &n["charts/".len()..];
                let sub = rest.split('/').next().unwrap_or(rest).to_string();
                subcharts
                    .entry(sub)
                    .or_default()
                    .push((rest.to_string(), data));
            }
            _ => chart.files.push(file(name, data)),
        }
    }
    if !has_metadata {
        return Err(Error::new("Chart.yaml file is missing"));
    }
    if !matches!(chart.metadata.api_version.as_str(), "v1" | "v2") {
        return Err(Error::new("invalid chart apiVersion"));
    }
    validate(&chart.metadata).map_err(|e| Error::new(format!("validation: {e}")))?;
    for (sub, files) in subcharts {
        if sub.starts_with('_') || sub.starts_with('.') {
            continue;
        }
        let loaded = if sub.ends_with(".tgz") {
            let (first, data) = &files[0];
            if *first != sub {
                return Err(Error::new(format!(
                    "error unpacking subchart tar in {}: expected {sub}, got {first}",
                    chart.name()
                )));
            }
            load_archive(data)
        } else {
            let nested = files
                .into_iter()
                .filter_map(|(n, d)| n.split_once('/').map(|(_, rest)| (rest.to_string(), d)))
                .collect();
            load_files(nested)
        };
        let loaded = loaded.map_err(|e| {
            Error::new(format!(
                "error unpacking subchart {sub} in {}: {}",
                chart.name(),
                e.message()
            ))
        })?;
        chart.dependencies.push(loaded);
    }
    Ok(chart)
}

/// Why Chart.yaml's metadata is invalid; worded as Helm's `Metadata.Validate` words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// No `name`.
    #[error("chart.metadata.name is required")]
    NameRequired,
    /// A `name` with a `/`, or `.` or `..`.
    #[error("chart.metadata.name {0:?} is invalid")]
    InvalidName(String),
    /// No `version`.
    #[error("chart.metadata.version is required")]
    VersionRequired,
    /// A `version` that is not semver.
    #[error("chart.metadata.version {0:?} is invalid")]
    InvalidVersion(String),
    /// A `type` other than `application` or `library`.
    #[error("chart.metadata.type must be application or library")]
    InvalidType,
    /// A dependency alias with characters other than letters, digits, `_` and `-`.
    #[error("dependency {0:?} has disallowed characters in the alias")]
    InvalidAlias(String),
    /// Two dependencies with one name or alias.
    #[error("more than one dependency with name or alias {0:?}")]
    DuplicateDependency(String),
}

/// Helm's `Metadata.Validate`.
fn validate(md: &Metadata) -> Result<(), MetadataError> {
    if md.name.is_empty() {
        return Err(MetadataError::NameRequired);
    }
    if md.name.contains('/') || md.name == "." || md.name == ".." {
        return Err(MetadataError::InvalidName(md.name.clone()));
    }
    if md.version.is_empty() {
        return Err(MetadataError::VersionRequired);
    }
    if gotmpl::sprig::semver::Version::parse(&md.version).is_err() {
        return Err(MetadataError::InvalidVersion(md.version.clone()));
    }
    if !matches!(md.chart_type.as_str(), "" | "application" | "library") {
        return Err(MetadataError::InvalidType);
    }
    let mut seen = std::collections::BTreeSet::new();
    for dep in &md.dependencies {
        let key = if dep.alias.is_empty() {
            &dep.name
        } else {
            &dep.alias
        };
        if !dep.alias.is_empty()
            && !dep
                .alias
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(MetadataError::InvalidAlias(dep.name.clone()));
        }
        if !seen.insert(key.clone()) {
            return Err(MetadataError::DuplicateDependency(key.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    fn chart_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(
            root.join("Chart.yaml"),
            "apiVersion: v2\nname: x\nversion: 0.1.0\n",
        )
        .unwrap();
        fs::create_dir_all(root.join("templates")).unwrap();
        fs::write(root.join("templates/a.yaml"), "a: 1\n").unwrap();
        dir
    }

    fn names(files: &[(String, Vec<u8>)]) -> Vec<&str> {
        files.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn symlinks_are_followed_and_ignored_directories_are_not_entered() {
        let dir = chart_dir();
        let root = dir.path();
        let elsewhere = tempfile::tempdir().unwrap();
        fs::write(elsewhere.path().join("b.yaml"), "b: 2\n").unwrap();
        symlink(elsewhere.path(), root.join("templates/linked")).unwrap();
        // An ignored directory holding a broken link: never entered, so never an error.
        fs::create_dir_all(root.join("skipped")).unwrap();
        symlink("/nonexistent", root.join("skipped/broken")).unwrap();
        let rules = IgnoreRules::parse("skipped/\n").unwrap();
        let (mut files, mut total) = (Vec::new(), 0);
        walk(root, &rules, &mut files, &mut total).unwrap();
        assert_eq!(
            names(&files),
            ["Chart.yaml", "templates/a.yaml", "templates/linked/b.yaml"]
        );
        assert_eq!(files[2].1, b"b: 2\n");
    }

    #[test]
    fn broken_links_and_loops_are_errors() {
        let dir = chart_dir();
        let root = dir.path();
        symlink("/nonexistent", root.join("templates/broken")).unwrap();
        let (mut files, mut total) = (Vec::new(), 0);
        let err = walk(root, &IgnoreRules::defaults(), &mut files, &mut total).unwrap_err();
        assert!(err.to_string().starts_with("stat "), "{err}");
        fs::remove_file(root.join("templates/broken")).unwrap();
        symlink("..", root.join("templates/up")).unwrap();
        let err = walk(root, &IgnoreRules::defaults(), &mut files, &mut total).unwrap_err();
        assert!(err.to_string().contains("symlink loop"), "{err}");
    }
}
