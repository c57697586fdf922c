//! Build outputs besides the store: the file system unpacked into a directory, the file system as one tar, or
//! the image as an OCI archive. Files are staged beside their destination and renamed into place when complete.

use std::fs;
use std::path::Path;

use formats::digest::Algorithm;
use formats::fsutil::StagedFile;
use formats::layer::{Compression, ExpansionLimit, LayerOptions, write_dir_layer};
use formats::manifest::{Descriptor, ParsedManifest, RawManifest};
use formats::oci_layout::OciLayout;

use super::{BuildError, Output, unpack_layers};

fn out_err(output: &Output, reason: impl ToString) -> BuildError {
    BuildError::Output {
        output: format!("{output:?}"),
        reason: reason.to_string(),
    }
}

/// The image manifests under `top`, with their platform directory names (`linux_amd64`).
fn images(store: &OciLayout, top: &RawManifest) -> Result<Vec<(String, RawManifest)>, BuildError> {
    match &top.parsed {
        ParsedManifest::Image(_) => Ok(vec![(String::new(), top.clone())]),
        ParsedManifest::Index(index) => index
            .manifests
            .iter()
            .map(|d| {
                let name = d.platform.as_ref().map_or_else(
                    || d.digest.hex().to_string(),
                    |p| {
                        let mut n = format!("{}_{}", p.os, p.architecture);
                        if let Some(v) = &p.variant {
                            n.push('_');
                            n.push_str(v);
                        }
                        n
                    },
                );
                Ok((name, store.read_manifest(d)?))
            })
            .collect(),
    }
}

fn layers_of(raw: &RawManifest) -> Vec<Descriptor> {
    match &raw.parsed {
        ParsedManifest::Image(m) => m.layers.clone(),
        ParsedManifest::Index(_) => Vec::new(),
    }
}

/// Writes one output of the image `top` (a manifest or an index in `store`).
pub fn write(
    store: &OciLayout,
    temp_root: &Path,
    output: &Output,
    top: &RawManifest,
    tags: &[String],
    timestamp: u64,
    limit: ExpansionLimit,
) -> Result<(), BuildError> {
    match output {
        Output::Local(dir) => {
            for (sub, raw) in images(store, top)? {
                let target = if sub.is_empty() {
                    dir.clone()
                } else {
                    dir.join(sub)
                };
                fs::create_dir_all(&target).map_err(|e| BuildError::io(&target, e))?;
                unpack_layers(store, &layers_of(&raw), &target, limit)?;
            }
            Ok(())
        }
        Output::Tar(file) => {
            let list = images(store, top)?;
            let [(_, raw)] = list.as_slice() else {
                return Err(out_err(
                    output,
                    "type=tar holds one file system: build one platform, or use type=local or type=oci-archive",
                ));
            };
            let temp = tempfile::Builder::new()
                .prefix(".tar-output-")
                .tempdir_in(temp_root)
                .map_err(|e| BuildError::io(temp_root, e))?;
            unpack_layers(store, &layers_of(raw), temp.path(), limit)?;
            let mut staged = StagedFile::new_in(parent_of(file), Algorithm::Sha256)?;
            let options = LayerOptions {
                compression: Compression::None,
                mtime: timestamp,
            };
            write_dir_layer(temp.path(), "", &options, &mut staged)?;
            staged.commit_by_digest(|_| file.clone())?;
            Ok(())
        }
        Output::OciArchive(file) => write_oci_archive(store, top, tags, timestamp, file),
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The image as an OCI archive, through the store's one writer (the one `save` uses), named by the first tag;
/// every entry carries the build's timestamp.
fn write_oci_archive(
    store: &OciLayout,
    top: &RawManifest,
    tags: &[String],
    timestamp: u64,
    file: &Path,
) -> Result<(), BuildError> {
    let image = crate::store::Image {
        name: tags.first().cloned().unwrap_or_default(),
        descriptor: top.descriptor(),
        manifest: top.clone(),
    };
    crate::store::write_oci_archive(store, &[image], file, timestamp)?;
    Ok(())
}
