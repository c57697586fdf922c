//! Unpacking a cluster image into a local directory with the safe layer unpacker (every layer verified
//! against its digest while it streams), and rendering its `*.tmpl` files with the env.
//!
//! Nothing here executes anything: `run` unpacks every image before the first command, so an image whose
//! layers try to escape the directory is refused before anything runs.

use std::fs;
use std::io::{self, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use builder::store::Store;
use formats::digest::DigestReader;
use formats::layer::{UnpackError, UnpackOptions, decompressing_reader, unpack};
use formats::walk::Walk;

use crate::env::Env;
use crate::image::ClusterImage;
use crate::template::{TemplateError, render};

/// Directories of an image whose `*.tmpl` files are rendered.
pub const TEMPLATE_DIRS: [&str; 3] = ["etc", "scripts", "manifests"];

/// The directory of an image that `run` serves from the first master as the embedded registry.
pub const REGISTRY_DIR: &str = "registry";

/// Why an image could not be unpacked or its templates rendered.
#[derive(Debug, thiserror::Error)]
pub enum UnpackImageError {
    /// A layer was refused or could not be written; nothing of the image is kept.
    #[error("image `{image}`, layer {layer}: {source}")]
    Layer {
        /// The image.
        image: String,
        /// The layer digest.
        layer: String,
        /// What went wrong.
        source: UnpackError,
    },
    /// A layer blob is missing, unreadable or does not match its digest.
    #[error("image `{image}`, layer {layer}: {problem}")]
    Blob {
        /// The image.
        image: String,
        /// The layer digest.
        layer: String,
        /// What is wrong.
        #[source]
        problem: Box<BlobProblem>,
    },
    /// The image's `registry` entry, which `run` serves, is a symlink or holds something other than
    /// directories and regular files.
    #[error(
        "image `{image}`: `{path}` is {what}; the embedded registry is served from `registry/`, so it may hold \
         only directories and regular files (rebuild the image without it)"
    )]
    UnsafeRegistry {
        /// The image.
        image: String,
        /// The entry, relative to the image's root.
        path: PathBuf,
        /// What it is (`a symlink to `/var/x``).
        what: String,
    },
    /// A template could not be rendered.
    #[error("template `{path}`: {source}")]
    Template {
        /// The template file.
        path: PathBuf,
        /// What is wrong in it.
        source: TemplateError,
    },
    /// A rendered template could not be written in place atomically.
    #[error("write rendered template `{path}`: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: formats::fsutil::StageError,
    },
    /// A file-system operation failed.
    #[error("{op} `{path}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// What is wrong with a stored layer blob; shown after `image `NAME`, layer DIGEST: `.
#[derive(Debug, thiserror::Error)]
pub enum BlobProblem {
    /// The blob cannot be opened.
    #[error(transparent)]
    Open(#[from] formats::oci_layout::LayoutError),
    /// The blob's size cannot be read.
    #[error("cannot read the stored blob: {0}")]
    Read(#[source] io::Error),
    /// The blob's size is not the manifest's.
    #[error("the stored blob is {actual} bytes but the manifest says {expected}")]
    Size {
        /// The size on disk.
        actual: u64,
        /// The size in the manifest.
        expected: u64,
    },
    /// The blob cannot be decompressed.
    #[error("cannot decompress: {0}")]
    Decompress(#[source] io::Error),
    /// The data after the layer's tar cannot be read or is refused.
    #[error(transparent)]
    Trailing(io::Error),
    /// The blob does not hash to its digest.
    #[error("the stored blob is corrupt: {0}")]
    Corrupt(#[source] formats::digest::VerifyError),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> UnpackImageError + 'a {
    move |source| UnpackImageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Unpacks every layer of `image` onto `target`, which is created afresh (anything there is removed).
/// On failure `target` is removed again.
pub fn unpack_image(
    store: &Store,
    image: &ClusterImage,
    target: &Path,
) -> Result<(), UnpackImageError> {
    if fs::symlink_metadata(target).is_ok() {
        fs::remove_dir_all(target).map_err(io_err("remove old", target))?;
    }
    fs::create_dir_all(target).map_err(io_err("create", target))?;
    let result = image
        .layers
        .iter()
        .try_for_each(|layer| unpack_layer(store, image, layer, target))
        .and_then(|()| check_registry_tree(image, target));
    if result.is_err() {
        let _cleanup = fs::remove_dir_all(target);
    }
    result
}

/// Refuses an unpacked image whose `registry` entry is a symlink (a layer may legally hold `registry ->
/// /var/x`), or whose registry tree holds a symlink, device, fifo or socket: `run` starts a registry over that
/// tree, which must never serve or accept pushes into host files and directories. (The registry's store
/// refuses to follow symlinks too; refusing here stops the run before anything executes.)
fn check_registry_tree(image: &ClusterImage, target: &Path) -> Result<(), UnpackImageError> {
    let root = target.join(REGISTRY_DIR);
    let refuse = |path: &Path, what: String| UnpackImageError::UnsafeRegistry {
        image: image.name.clone(),
        path: path.strip_prefix(target).unwrap_or(path).to_path_buf(),
        what,
    };
    if let Err(e) = fs::symlink_metadata(&root) {
        return match e.kind() {
            io::ErrorKind::NotFound => Ok(()),
            _ => Err(io_err("inspect", &root)(e)),
        };
    }
    for entry in Walk::new(&root) {
        let entry = entry.map_err(|e| io_err("read directory", &e.path)(e.source))?;
        let kind = entry.file_type();
        let path = entry.path();
        if kind.is_symlink() {
            let what = match fs::read_link(path) {
                Ok(to) => format!("a symlink to `{}`", to.display()),
                Err(_) => "a symlink".to_string(),
            };
            return Err(refuse(path, what));
        }
        if !kind.is_dir() && !kind.is_file() {
            return Err(refuse(path, "not a regular file or directory".into()));
        }
    }
    Ok(())
}

fn unpack_layer(
    store: &Store,
    image: &ClusterImage,
    layer: &formats::manifest::Descriptor,
    target: &Path,
) -> Result<(), UnpackImageError> {
    let blob_err = |problem: BlobProblem| UnpackImageError::Blob {
        image: image.name.clone(),
        layer: layer.digest.to_string(),
        problem: Box::new(problem),
    };
    let file = store
        .layout()
        .open_blob(&layer.digest)
        .map_err(|e| blob_err(e.into()))?;
    // A blob larger than its descriptor says would buy itself a larger decompression budget: refuse it
    // before decompressing anything.
    let size = file
        .metadata()
        .map_err(|e| blob_err(BlobProblem::Read(e)))?
        .len();
    if size != layer.size {
        return Err(blob_err(BlobProblem::Size {
            actual: size,
            expected: layer.size,
        }));
    }
    let mut hashed = DigestReader::new(BufReader::new(file), layer.digest.algorithm());
    {
        let mut tar = decompressing_reader(&mut hashed, layer.size, store.expansion_limit())
            .map_err(|e| blob_err(BlobProblem::Decompress(e)))?;
        unpack(&mut tar, target, &UnpackOptions::default()).map_err(|source| {
            UnpackImageError::Layer {
                image: image.name.clone(),
                layer: layer.digest.to_string(),
                source,
            }
        })?;
        // The tar ends before the stream does: the rest (padding, further members) is read and checked
        // too, so data hidden after the compressed stream is refused.
        tar.finish()
            .map_err(|e| blob_err(BlobProblem::Trailing(e)))?;
    }
    hashed
        .verify_to_end(&layer.digest, Some(layer.size))
        .map_err(|e| blob_err(BlobProblem::Corrupt(e)))?;
    Ok(())
}

/// Renders every `*.tmpl` file under `etc/`, `scripts/` and `manifests/` of `dir` with `env`, writing
/// the result beside it without the suffix (same permissions). Symlinks are not followed. Returns the
/// files written.
pub fn render_templates(dir: &Path, env: &Env) -> Result<Vec<PathBuf>, UnpackImageError> {
    let mut written = Vec::new();
    // A template directory that is a symlink is not followed, like every symlink below them.
    let roots = TEMPLATE_DIRS
        .iter()
        .map(|d| dir.join(d))
        .filter(|d| fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()));
    for walked in roots.flat_map(|root| Walk::new(root).sorted()) {
        let walked = walked.map_err(|e| io_err("read directory", &e.path)(e.source))?;
        let is_template = walked.path().extension().is_some_and(|e| e == "tmpl");
        if !walked.file_type().is_file() || !is_template {
            continue;
        }
        let meta = walked
            .metadata()
            .map_err(|e| io_err("inspect", &e.path)(e.source))?;
        let current = walked.into_path();
        let text = fs::read_to_string(&current).map_err(io_err("read template", &current))?;
        let rendered = render(&text, env).map_err(|source| UnpackImageError::Template {
            path: current.clone(),
            source,
        })?;
        let out = current.with_extension("");
        if fs::symlink_metadata(&out).is_ok_and(|m| m.is_dir() || m.file_type().is_symlink()) {
            return Err(UnpackImageError::Io {
                op: "write rendered template (a directory or symlink is in the way)",
                path: out,
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
        formats::fsutil::atomic_write(&out, rendered.as_bytes()).map_err(|source| {
            UnpackImageError::Write {
                path: out.clone(),
                source,
            }
        })?;
        fs::set_permissions(&out, fs::Permissions::from_mode(meta.permissions().mode()))
            .map_err(io_err("set permissions", &out))?;
        written.push(out);
    }
    written.sort();
    Ok(written)
}
