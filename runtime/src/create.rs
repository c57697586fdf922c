//! `sealos create`: unpack one image into a working directory (safe unpacker), render its templates with
//! the env, and show the exact commands `run` would execute, without executing anything.
//!
//! The directory is replaced on every create, so create only replaces what it made: an empty or missing
//! directory, or one holding the [`CREATE_MARKER`] file an earlier create wrote. Anything else (`--dir
//! ~/project` by mistake) is refused unless `force` is given.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use builder::store::Store;

use crate::env::Env;
use crate::image;
use crate::image_check::{
    CheckedImage, EmbeddedImages, ImageCheck, check_images, kube_version_of, registry_dir,
};
use crate::plan::{self, PlannedImage, Target};
use crate::run::RunError;
use crate::unpack::{render_templates, unpack_image};

/// One command `run` would execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedCommand {
    /// The step (`check`, `init`, `cmd`...).
    pub step: String,
    /// Whether it runs on every host or only the first master.
    pub all_hosts: bool,
    /// The working directory (inside the created directory).
    pub workdir: PathBuf,
    /// The command, expanded.
    pub command: String,
}

/// What `create` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateReport {
    /// The image's full name.
    pub image: String,
    /// Its digest.
    pub digest: String,
    /// Its type (`rootfs`, `patch`, `application`).
    pub kind: String,
    /// The directory it was unpacked into.
    pub dir: PathBuf,
    /// The templates rendered.
    pub rendered: Vec<PathBuf>,
    /// The commands `run` would execute, in order (without the embedded registry).
    pub commands: Vec<PlannedCommand>,
    /// Every image the install would pull, and whether the image's embedded registry holds it (the check
    /// `run` makes, which refuses a missing one; `create` only reports). A check that could not run is one
    /// of its warnings.
    pub image_check: ImageCheck,
}

/// The file create writes into each directory it makes, so that a later create may replace it.
pub const CREATE_MARKER: &str = ".sealos-create";

/// Unpacks `name` into `dir` (created afresh), renders its templates with the image ENV overridden by
/// `env`, and plans its commands (`cmd` replaces CMD). A `dir` that is not empty and was not made by
/// create is refused unless `force`.
pub fn create(
    store: &Store,
    name: &str,
    env: &Env,
    cmd: Option<&[String]>,
    dir: &Path,
    force: bool,
) -> Result<CreateReport, RunError> {
    let image = image::open(store, name)?;
    make_room(dir, force)?;
    unpack_image(store, &image, dir)?;
    let marker = dir.join(CREATE_MARKER);
    fs::write(&marker, format!("{} {}\n", image.name, image.digest)).map_err(|source| {
        RunError::Io {
            op: "write",
            path: marker.clone(),
            source,
        }
    })?;
    let mut full_env = image.env.clone();
    full_env.extend(env.clone());
    let rendered = render_templates(dir, &full_env)?;
    let planned = PlannedImage {
        commands: image.commands(cmd),
        local_dir: dir.to_path_buf(),
        host_dir: dir.to_string_lossy().into_owned(),
        env: full_env,
        image,
    };
    let steps = plan::build(std::slice::from_ref(&planned), None);
    let mut commands = Vec::new();
    for step in &steps {
        commands.push(PlannedCommand {
            step: step.name.clone(),
            all_hosts: step.target == Target::AllHosts,
            workdir: PathBuf::from(&step.workdir),
            command: step.command(&Env::new())?,
        });
    }
    let image_check = image_list(&planned);
    Ok(CreateReport {
        image_check,
        image: planned.image.name.clone(),
        digest: planned.image.digest.to_string(),
        kind: planned.image.kind.as_str().to_string(),
        dir: dir.to_path_buf(),
        rendered,
        commands,
    })
}

/// The image check of `planned` against its own `registry/` tree; an error becomes the check's only warning.
fn image_list(planned: &PlannedImage) -> ImageCheck {
    let checked = CheckedImage {
        name: &planned.image.name,
        dir: &planned.local_dir,
        env: &planned.env,
        commands: &planned.commands,
    };
    let mut embedded = EmbeddedImages::default();
    embedded
        .add_tree(&registry_dir(&planned.local_dir), &planned.image.name)
        .and_then(|()| {
            let kube_version = kube_version_of([&planned.image]);
            check_images(&[checked], &embedded, kube_version.as_deref())
        })
        .unwrap_or_else(|e| ImageCheck {
            images: Vec::new(),
            warnings: vec![format!("the image check could not run: {e}")],
        })
}

/// Refuses `dir` when it holds something create did not make, unless `force`; with `force`, removes a file
/// or symlink in its place (a directory is replaced by the unpacking).
fn make_room(dir: &Path, force: bool) -> Result<(), RunError> {
    let io_err = |op: &'static str| {
        move |source: io::Error| RunError::Io {
            op,
            path: dir.to_path_buf(),
            source,
        }
    };
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect")(e)),
    };
    if meta.is_dir() {
        let empty = formats::walk::Walk::children(dir)
            .into_iter()
            .next()
            .transpose()
            .map_err(|e| RunError::Io {
                op: "read directory",
                path: e.path,
                source: e.source,
            })?
            .is_none();
        let ours = fs::symlink_metadata(dir.join(CREATE_MARKER)).is_ok_and(|m| m.is_file());
        if empty || ours || force {
            return Ok(());
        }
    } else if force {
        return fs::remove_file(dir).map_err(io_err("remove"));
    }
    Err(RunError::Usage(format!(
        "`{}` is not an empty directory and `sealos create` did not make it; refusing to replace it: \
         choose another `--dir`, or pass `--force` to replace it",
        dir.display()
    )))
}
