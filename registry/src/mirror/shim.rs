//! Image lists of a cluster-image build context (`images/shim/*`): one image per line, `#` comments and
//! blank lines skipped, surrounding quotes trimmed.

use std::path::Path;

use super::MirrorError;

/// Parses the text of one image list.
pub fn parse_image_list(text: &str) -> Vec<String> {
    parse_image_list_lines(text)
        .into_iter()
        .map(|(_, image)| image)
        .collect()
}

/// Parses the text of one image list, keeping each image's 1-based line number (for provenance).
pub fn parse_image_list_lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split_once('#').map_or(l, |(before, _)| before)))
        .map(|(n, l)| (n, l.trim().trim_matches(|c| c == '"' || c == '\'').trim()))
        .filter(|(_, l)| !l.is_empty())
        .map(|(n, l)| (n, l.to_string()))
        .collect()
}

/// Every image listed in the files of `<context>/images/shim/` (sorted by file name), duplicates removed,
/// first occurrence kept. A context without that directory lists nothing.
pub fn shim_images(context: &Path) -> Result<Vec<String>, MirrorError> {
    let dir = context.join("images").join("shim");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(MirrorError::Io {
                op: "list",
                path: dir,
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| MirrorError::Io {
            op: "list",
            path: dir.clone(),
            source,
        })?;
        if entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    let mut out: Vec<String> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|source| MirrorError::Io {
            op: "read image list",
            path: f.clone(),
            source,
        })?;
        for image in parse_image_list(&text) {
            if !out.contains(&image) {
                out.push(image);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_list_skips_comments_and_blanks_and_trims_quotes() {
        let text =
            "# images\n\nnginx:1.25\n  \"quay.io/a/b:v1\"  \n'c:2' # trailing\n   # indented\n";
        assert_eq!(
            parse_image_list(text),
            vec!["nginx:1.25", "quay.io/a/b:v1", "c:2"]
        );
        assert_eq!(
            parse_image_list_lines(text),
            vec![
                (3, "nginx:1.25".to_string()),
                (4, "quay.io/a/b:v1".to_string()),
                (5, "c:2".to_string())
            ]
        );
    }

    #[test]
    fn shim_images_reads_every_file_in_order_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let shim = dir.path().join("images/shim");
        std::fs::create_dir_all(&shim).unwrap();
        std::fs::write(shim.join("b.txt"), "x:1\ny:2\n").unwrap();
        std::fs::write(shim.join("a.txt"), "y:2\nz:3\n").unwrap();
        assert_eq!(shim_images(dir.path()).unwrap(), vec!["y:2", "z:3", "x:1"]);
        assert!(shim_images(&dir.path().join("none")).unwrap().is_empty());
    }
}
