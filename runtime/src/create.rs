//! `sealos create`: unpack one image into a working directory (safe unpacker), render its templates with
//! the env, and show the exact commands `run` would execute, without executing anything.

use std::path::{Path, PathBuf};

use builder::store::Store;

use crate::env::Env;
use crate::image;
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
}

/// Unpacks `name` into `dir` (created afresh), renders its templates with the image ENV overridden by
/// `env`, and plans its commands (`cmd` replaces CMD).
pub fn create(
    store: &Store,
    name: &str,
    env: &Env,
    cmd: Option<&[String]>,
    dir: &Path,
) -> Result<CreateReport, RunError> {
    let image = image::open(store, name)?;
    unpack_image(store, &image, dir)?;
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
    Ok(CreateReport {
        image: planned.image.name.clone(),
        digest: planned.image.digest.to_string(),
        kind: planned.image.kind.as_str().to_string(),
        dir: dir.to_path_buf(),
        rendered,
        commands,
    })
}
