//! Build outputs besides the store: the file system unpacked into a directory, the file system as one tar, or
//! the image as an OCI archive. Files are staged beside their destination and renamed into place when complete.

use std::fs;
use std::io::Write;
use std::path::Path;

use formats::digest::Algorithm;
use formats::fsutil::StagedFile;
use formats::layer::{Compression, ExpansionLimit, LayerOptions, write_dir_layer};
use formats::manifest::{Descriptor, ImageIndex, ParsedManifest, RawManifest, to_canonical_json};
use formats::oci_layout::{ANNOTATION_REF_NAME, IMAGE_LAYOUT_VERSION, OciLayout};

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
        Output::OciArchive(file) => write_oci_archive(store, output, top, tags, timestamp, file),
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn write_oci_archive(
    store: &OciLayout,
    output: &Output,
    top: &RawManifest,
    tags: &[String],
    timestamp: u64,
    file: &Path,
) -> Result<(), BuildError> {
    let mut blobs = vec![(top.digest.clone(), top.bytes.len() as u64)];
    for (_, raw) in images(store, top)? {
        if raw.digest != top.digest {
            blobs.push((raw.digest.clone(), raw.bytes.len() as u64));
        }
        if let ParsedManifest::Image(m) = &raw.parsed {
            blobs.push((m.config.digest.clone(), m.config.size));
            blobs.extend(m.layers.iter().map(|l| (l.digest.clone(), l.size)));
        }
    }
    blobs.sort();
    blobs.dedup();
    let mut descriptor = top.descriptor();
    if let Some(tag) = tags.first() {
        descriptor
            .annotations
            .insert(ANNOTATION_REF_NAME.to_string(), tag.clone());
    }
    let index =
        to_canonical_json(&ImageIndex::new(vec![descriptor])).map_err(|e| out_err(output, e))?;
    let layout = format!(r#"{{"imageLayoutVersion":"{IMAGE_LAYOUT_VERSION}"}}"#);

    let staged = StagedFile::new_in(parent_of(file), Algorithm::Sha256)?;
    let mut tar = tar::Builder::new(staged);
    let header = |path: &str, size: u64, dir: bool| -> Result<tar::Header, BuildError> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).map_err(|e| out_err(output, e))?;
        h.set_size(size);
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_mtime(timestamp);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_cksum();
        Ok(h)
    };
    let io_err = |e: std::io::Error| BuildError::io(file, e);
    tar.append(&header("blobs/", 0, true)?, std::io::empty())
        .map_err(io_err)?;
    tar.append(&header("blobs/sha256/", 0, true)?, std::io::empty())
        .map_err(io_err)?;
    for (digest, size) in &blobs {
        let blob = store.open_blob(digest)?;
        let path = format!("blobs/{}/{}", digest.algorithm().as_str(), digest.hex());
        tar.append(&header(&path, *size, false)?, blob)
            .map_err(io_err)?;
    }
    tar.append(
        &header("index.json", index.len() as u64, false)?,
        index.as_slice(),
    )
    .map_err(io_err)?;
    tar.append(
        &header("oci-layout", layout.len() as u64, false)?,
        layout.as_bytes(),
    )
    .map_err(io_err)?;
    let mut staged = tar.into_inner().map_err(io_err)?;
    staged.flush().map_err(io_err)?;
    staged.commit_by_digest(|_| file.to_path_buf())?;
    Ok(())
}
