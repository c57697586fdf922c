//! `sealos build`: turns a Kubefile and its build context into an OCI image in the local store.
//!
//! The Kubefile is planned once per target platform in [`plan::plan_platform`] (evaluated with the base
//! images' ENV, context sources listed and filtered by `.dockerignore`, see [`ignore`]); `--dry-run` prints
//! the same plan. Each stage the final stage needs is built from its base (scratch, an earlier stage, or an image from the store, an `oci:`
//! directory or an `oci-archive:` file, see [`base`]); every COPY/ADD becomes exactly one deterministic layer
//! and every other instruction a history entry. Layers are reused through the caches in [`cache`] (the rule
//! for skipping file reads is documented there). Blobs are written through staged files and renamed into the
//! store only once verified; tags are set last, so a failed or interrupted build tags nothing. Several
//! platforms give one image each and an OCI index over them, which is what gets tagged.

pub mod base;
pub mod cache;
mod fetch;
pub mod ignore;
mod output;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use formats::digest::{Algorithm, Digest};
use formats::fsutil::StagedFile;
use formats::kubefile::{
    BaseImage, BuildPlan, ContextFile, CopyFrom, CopyPlan, EvalOptions, FileKind,
    ImageConfig as PlanConfig, Stage, Step,
};
use formats::layer::{
    Compression, ExpansionLimit, GzipBlocks, LayerEntry, LayerError, LayerOptions, PreviousBlob,
    decompressing_reader, write_entries_layer_reusing,
};
use formats::manifest::{
    ContainerConfig, Descriptor, EmptyObject, History, ImageConfig as OciConfig, ImageIndex,
    ImageManifest, Platform, RawManifest, RootFs,
};
use formats::media_type;
use formats::oci_layout::{LayoutError, OciLayout};
use formats::reference::Reference;
use serde::Serialize;
use tempfile::TempDir;

pub use self::base::{BaseImageError, PullPolicy, UnknownPullPolicy};
use self::base::{ImageState, Remote, resolve_image, unpack_layers};
use self::cache::{CachedLayer, LayerCache, StatCache, StepBlocks, chain_id, hash_file};
pub use self::fetch::{ChecksumError, FetchError};
use self::ignore::IgnoreRules;
use crate::store::stale::{WORK_ROOT, WorkDir};

/// Where the built image is also written, besides the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=local,dest=DIR`: the final image's file system unpacked into DIR.
    Local(PathBuf),
    /// `type=tar,dest=FILE`: the final image's file system as one tar.
    Tar(PathBuf),
    /// `type=oci-archive,dest=FILE`: a tar of an OCI layout holding the image.
    OciArchive(PathBuf),
}

/// A `--output` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OutputSyntaxError(String);

impl FromStr for Output {
    type Err = OutputSyntaxError;

    /// Parses `type=local|tar|oci-archive,dest=PATH`.
    fn from_str(text: &str) -> Result<Output, OutputSyntaxError> {
        let mut kind = None;
        let mut dest = None;
        for part in text.split(',') {
            match part.split_once('=') {
                Some(("type", v)) => kind = Some(v.to_string()),
                Some(("dest", v)) if !v.is_empty() => dest = Some(PathBuf::from(v)),
                _ => {
                    return Err(OutputSyntaxError(format!(
                        "unknown output option {part:?}: write type=local|tar|oci-archive,dest=PATH"
                    )));
                }
            }
        }
        let dest =
            dest.ok_or_else(|| OutputSyntaxError(format!("output {text:?} has no dest=PATH")))?;
        match kind.as_deref() {
            Some("local") => Ok(Output::Local(dest)),
            Some("tar") => Ok(Output::Tar(dest)),
            Some("oci-archive") => Ok(Output::OciArchive(dest)),
            other => Err(OutputSyntaxError(format!(
                "unknown output type {:?}: use type=local, type=tar or type=oci-archive",
                other.unwrap_or("")
            ))),
        }
    }
}

/// Everything a build needs besides the Kubefile's content.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The local store (an OCI image layout; created when missing).
    pub store: PathBuf,
    /// The build context directory.
    pub context: PathBuf,
    /// The Kubefile; `None` looks for Sealfile, Kubefile, Dockerfile, Containerfile in the context.
    pub kubefile: Option<PathBuf>,
    /// Tags to set on the result (normalised with [`Reference::parse`]).
    pub tags: Vec<String>,
    /// `--build-arg` values.
    pub build_args: Vec<(String, String)>,
    /// `--label` values.
    pub labels: Vec<(String, String)>,
    /// `--env` values.
    pub env: Vec<(String, String)>,
    /// `--annotation` values (manifest annotations).
    pub annotations: Vec<(String, String)>,
    /// Target platforms; empty means the host's.
    pub platforms: Vec<Platform>,
    /// Bypass the layer cache (results are still recorded).
    pub no_cache: bool,
    /// The image `created` time and every tar mtime, in seconds since the epoch.
    pub timestamp: u64,
    /// Layer compression.
    pub compression: Compression,
    /// Extra outputs.
    pub outputs: Vec<Output>,
    /// Registry access for `FROM`/`COPY --from` registry images and embedded images; `None` refuses them
    /// with a clear error.
    pub client: Option<registry::client::RegistryClient>,
    /// When registry images are pulled (`--pull`); a local image of that name wins unless `Always`.
    pub pull: PullPolicy,
    /// How the context's images are embedded (see [`crate::embed`]).
    pub embed: crate::embed::EmbedOptions,
    /// How far base-image layers and ADD archives may expand when decompressed.
    pub expansion_limit: ExpansionLimit,
}

/// What happened in one COPY/ADD step (other steps are reported with no layer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// Index of the stage.
    pub stage: usize,
    /// Kubefile line.
    pub line: usize,
    /// The instruction as evaluated.
    pub text: String,
    /// True when the layer came from the layer cache.
    pub cached: bool,
    /// The layer blob, for COPY/ADD.
    pub layer: Option<Digest>,
    /// Entries the step copies.
    pub files: u64,
    /// Files whose content was read to compute the cache key.
    pub files_hashed: u64,
    /// Bytes read to compute the cache key.
    pub bytes_hashed: u64,
    /// Bytes of layer blob written (0 when cached).
    pub bytes_written: u64,
    /// Compressed blocks of a gzip layer written (0 when cached or not gzip).
    pub blocks: u64,
    /// Of those, blocks copied from the step's previous blob instead of being compressed again.
    pub blocks_reused: u64,
}

/// One platform's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageReport {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// Manifest digest.
    pub manifest: Digest,
    /// Config digest.
    pub config: Digest,
    /// Layer-producing steps of the stages built, in order.
    pub steps: Vec<StepReport>,
}

/// The result of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildReport {
    /// Digest of what was tagged: the manifest, or the index for several platforms.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Tags set, normalised.
    pub tags: Vec<String>,
    /// One entry per platform.
    pub images: Vec<ImageReport>,
    /// The embedded images: normalised references of pulled images in layer order, then the
    /// `repository:tag` names of `tar.txt` archives.
    pub embedded: Vec<String>,
    /// Embedded images that had to be fetched from a registry (0 when the lock and store had everything).
    pub pulled: usize,
}

/// Progress events, for a UI to draw.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// Something the user should know that does not stop the build (a discovery warning).
    Warning {
        /// The warning, naming file and line.
        message: &'a str,
    },
    /// Something the build did that the user should know, not a problem (a `COPY registry` the embedded
    /// images stand for).
    Note {
        /// The note, naming file and line.
        message: &'a str,
    },
    /// An instruction of the Kubefile is about to be applied, FROM included: every instruction of every
    /// stage the build needs, in order, numbered within its stage as buildah numbers them
    /// (`STEP 2/3: COPY . .`). COPY and ADD are then reported by [`Progress::StepStarted`] and
    /// [`Progress::StepFinished`].
    Instruction {
        /// Target platform.
        platform: &'a str,
        /// Position of the stage among the stages built, from 1.
        stage: usize,
        /// How many stages are built.
        stages: usize,
        /// Position of the instruction in its stage, from 1 (1 is the FROM).
        number: usize,
        /// Instructions in the stage, FROM included.
        total: usize,
        /// The instruction as evaluated (`FROM scratch`, `COPY . .`).
        text: &'a str,
    },
    /// A layer step is starting.
    StepStarted {
        /// Target platform.
        platform: &'a str,
        /// Kubefile line.
        line: usize,
        /// The instruction.
        text: &'a str,
    },
    /// Bytes moved so far in a layer step; sent after every downloaded chunk, hashed file, and MiB of layer
    /// written.
    StepBytes {
        /// Target platform.
        platform: &'a str,
        /// Kubefile line.
        line: usize,
        /// Bytes of the files the step copies (0 while downloading, when unknown).
        total: u64,
        /// Bytes of source content read (hashed or downloaded) so far.
        read: u64,
        /// Bytes of (compressed) layer blob written so far.
        written: u64,
    },
    /// A layer step finished.
    StepFinished {
        /// Target platform.
        platform: &'a str,
        /// What it did.
        report: &'a StepReport,
    },
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No Kubefile was given or found.
    #[error(
        "no Kubefile in {context}: add one named Sealfile, Kubefile, Dockerfile or Containerfile, or pass -f FILE"
    )]
    NoKubefile {
        /// The context.
        context: PathBuf,
    },
    /// The Kubefile leads out of the build context through a symlink, or cannot be looked up.
    #[error(transparent)]
    KubefilePath(#[from] formats::kubefile::ContextPathError),
    /// The Kubefile does not parse.
    #[error(transparent)]
    Parse(#[from] formats::kubefile::ParseError),
    /// The Kubefile cannot be evaluated or its sources listed.
    #[error(transparent)]
    Eval(#[from] formats::kubefile::EvalError),
    /// A step failed, at `file:line`.
    #[error("{file}:{line}: {problem}")]
    Step {
        /// Kubefile name.
        file: String,
        /// Line.
        line: usize,
        /// What went wrong.
        #[source]
        problem: Box<StepError>,
    },
    /// A tag is not a valid image reference.
    #[error("invalid tag {tag:?}: {source}")]
    Tag {
        /// The tag as given.
        tag: String,
        /// Why.
        #[source]
        source: formats::reference::ReferenceError,
    },
    /// A base image could not be used.
    #[error("base image {reference}: {problem}")]
    BaseImage {
        /// The reference as written.
        reference: String,
        /// Why.
        #[source]
        problem: Box<BaseImageError>,
    },
    /// Writing a layer failed.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// The store could not be opened or locked.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Unpacking a layer failed.
    #[error("unpacking layer {layer}: {source}")]
    Unpack {
        /// The layer digest.
        layer: String,
        /// The error.
        #[source]
        source: formats::layer::UnpackError,
    },
    /// The store failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Embedded images could not be resolved or pulled.
    #[error(transparent)]
    Embed(Box<crate::embed::EmbedError>),
    /// A file-system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// An output could not be written.
    #[error("output {output}: {reason}")]
    Output {
        /// The output.
        output: String,
        /// Why.
        reason: String,
    },
    /// The image's config, manifest or index could not be serialized.
    #[error("output {what}: {source}")]
    Serialize {
        /// `config`, `manifest` or `index`.
        what: &'static str,
        /// The error.
        #[source]
        source: formats::manifest::ManifestError,
    },
    /// A staged file could not be written or committed.
    #[error(transparent)]
    Stage(#[from] formats::fsutil::StageError),
}

/// What went wrong in one Kubefile step; shown after `FILE:LINE: `.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A rule of the step was broken; the message says which and what to write instead.
    #[error("{0}")]
    Invalid(String),
    /// A base image or another part of the build failed at this step.
    #[error(transparent)]
    Build(Box<BuildError>),
    /// `ADD --checksum=` does not parse.
    #[error(transparent)]
    Checksum(#[from] ChecksumError),
    /// No HTTP client could be set up for `ADD <URL>`.
    #[error("cannot set up the download: {0}")]
    DownloadSetup(#[source] registry::client::ClientError),
    /// `ADD <URL>` failed.
    #[error("ADD {url}: {source}")]
    Download {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: FetchError,
    },
    /// `ADD` of a local tar archive could not unpack it.
    #[error("ADD {}: cannot unpack the archive: {source}", path.display())]
    Unpack {
        /// The archive.
        path: PathBuf,
        /// Why.
        #[source]
        source: formats::layer::UnpackError,
    },
    /// `ADD` of a local tar archive could not read it to its end.
    #[error("ADD {}: cannot unpack the archive: {source}", path.display())]
    UnpackRead {
        /// The archive.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl From<String> for StepError {
    fn from(message: String) -> Self {
        StepError::Invalid(message)
    }
}

impl From<&str> for StepError {
    fn from(message: &str) -> Self {
        StepError::Invalid(message.to_string())
    }
}

impl BuildError {
    fn io(path: &Path, source: io::Error) -> BuildError {
        BuildError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<crate::embed::EmbedError> for BuildError {
    fn from(e: crate::embed::EmbedError) -> Self {
        BuildError::Embed(Box::new(e))
    }
}

struct Ctx<'a> {
    opts: &'a BuildOptions,
    store: OciLayout,
    temp_root: PathBuf,
    file: String,
    ignore: IgnoreRules,
    stat: StatCache,
    layers: LayerCache,
    remote: Remote,
    /// Base images resolved in this build, by reference and platform (read once for their Env, used again).
    bases: std::cell::RefCell<HashMap<(String, String), ImageState>>,
}

/// How the Kubefile is evaluated for `platform`.
fn eval_options(opts: &BuildOptions, file: &str, platform: &Platform) -> EvalOptions {
    EvalOptions {
        file: file.to_string(),
        build_args: opts.build_args.clone(),
        platform: platform.clone(),
        build_platform: Platform::host(),
        labels: opts.labels.clone(),
        env: opts.env.clone(),
        annotations: opts.annotations.clone(),
        base_env: BTreeMap::new(),
    }
}

/// Builds the image described by `opts`, tags it and writes the outputs.
pub fn build(
    opts: &BuildOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<BuildReport, BuildError> {
    let tags = opts
        .tags
        .iter()
        .map(|t| {
            Reference::parse(t)
                .map(|r| r.to_string())
                .map_err(|source| BuildError::Tag {
                    tag: t.clone(),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let context = fs::canonicalize(&opts.context).map_err(|e| BuildError::io(&opts.context, e))?;
    // Read through the context's own rule (a symlinked Kubefile never names a host file); named as given.
    let kubefile_path = formats::kubefile::locate_kubefile(&context, opts.kubefile.as_deref())?
        .ok_or_else(|| BuildError::NoKubefile {
            context: context.clone(),
        })?;
    let file = opts
        .kubefile
        .as_ref()
        .unwrap_or(&kubefile_path)
        .display()
        .to_string();
    let text = fs::read_to_string(&kubefile_path).map_err(|e| BuildError::io(&kubefile_path, e))?;
    let kubefile = formats::kubefile::parse_named(&file, &text)?;

    let store = OciLayout::create(&opts.store)?;
    // Held until the tags are set: garbage collection waits, and stale leftovers are cleaned on the way in.
    let writer = crate::store::Store::open(&opts.store)?;
    let _guard = writer.write_guard()?;
    let work =
        WorkDir::create(&opts.store).map_err(|e| BuildError::io(&opts.store.join(WORK_ROOT), e))?;
    let cache_dir = opts.store.join("cache");
    let temp_root = work.path().to_path_buf();
    let ignore = IgnoreRules::load(&context)?;
    let mut ctx = Ctx {
        opts,
        store,
        temp_root,
        file: file.clone(),
        ignore,
        stat: StatCache::load(&cache_dir),
        layers: LayerCache::new(&cache_dir),
        remote: Remote::new(opts.client.clone(), opts.pull),
        bases: Default::default(),
    };

    let platforms = if opts.platforms.is_empty() {
        vec![Platform::host()]
    } else {
        opts.platforms.clone()
    };
    // Discovery reads the Kubefile's CMD for `helm ... -f values --set k=v`; it is the same on every platform.
    let first_plan = evaluate_with_base_env(
        &kubefile,
        eval_options(opts, &file, &platforms[0]),
        &mut |r, p, line| base_env(&ctx, r, p, line),
    )?;
    let discover = crate::discover::DiscoverOptions {
        strict: opts.embed.strict,
        helm: None,
        cmd: first_plan
            .config
            .entrypoint
            .iter()
            .chain(&first_plan.config.cmd)
            .flatten()
            .cloned()
            .collect(),
        env: crate::discover::cmd::plan_env(&first_plan),
        renderer: opts.embed.chart_renderer,
        kube_version: match &opts.embed.kube_version {
            Some(version) => Some(version.clone()),
            None => crate::discover::charts::rootfs_kube_version(&final_labels(
                &ctx,
                &first_plan,
                &platforms[0],
            )?),
        },
    };
    let (inputs, warnings) = if opts.embed.save_image {
        crate::embed::requests_from_context(&context, &discover)?
    } else {
        (crate::embed::EmbedInputs::default(), Vec::new())
    };
    for warning in &warnings {
        progress(Progress::Warning {
            message: &warning.to_string(),
        });
    }
    let embed_plan = crate::embed::prepare(
        &ctx.store,
        opts.client.as_ref(),
        &context,
        &inputs,
        &platforms,
        &opts.embed,
        opts.expansion_limit,
    )?;
    for message in &embed_plan.warnings {
        progress(Progress::Warning { message });
    }
    let mut images = Vec::new();
    let mut manifests = Vec::new();
    let mut warned_registry = false;
    for platform in &platforms {
        let plan = plan::plan_platform(
            opts,
            &kubefile,
            &file,
            &context,
            platform,
            &ctx.ignore,
            &mut |r, p, line| base_env(&ctx, r, p, line),
        )?;
        let root = match registry_copy(&plan) {
            Some((line, destination)) => {
                if destination != formats::kubefile::EMBEDDED_REGISTRY && !warned_registry {
                    warned_registry = true;
                    progress(Progress::Warning {
                        message: &format!(
                            "{file}:{line}: `COPY registry` writes the embedded images at `{destination}`, \
                             but sealos's runtime serves only `/registry`: the image installs without its \
                             images unless its own scripts serve `{destination}`"
                        ),
                    });
                }
                crate::embed::layer::registry_root(&destination)
            }
            None => crate::embed::layer::REGISTRY_DIR.to_string(),
        };
        let embedded = crate::embed::layers(
            &ctx.store,
            &ctx.layers,
            &embed_plan,
            platform,
            &root,
            opts.timestamp,
        )?;
        let (raw, report) =
            build_platform(&mut ctx, &context, &plan, platform, &embedded, progress)?;
        let mut descriptor = raw.descriptor();
        descriptor.platform = Some(platform.clone());
        manifests.push((raw, descriptor));
        images.push(report);
    }
    // Save what was learnt even if a later step fails; it only speeds up later builds.
    let _ = ctx.stat.save();

    let (top, top_raw) = if manifests.len() == 1 {
        let (raw, mut descriptor) = manifests.remove(0);
        descriptor.platform = None;
        (descriptor, raw)
    } else {
        let mut index = ImageIndex::new(manifests.iter().map(|(_, d)| d.clone()).collect());
        index.annotations = opts.annotations.iter().cloned().collect();
        let raw = RawManifest::from_created(&index, media_type::OCI_INDEX).map_err(|source| {
            BuildError::Serialize {
                what: "index",
                source,
            }
        })?;
        ctx.store.write_manifest(&raw)?;
        (raw.descriptor(), raw)
    };

    for out in &opts.outputs {
        output::write(
            &ctx.store,
            &ctx.temp_root,
            out,
            &top_raw,
            &tags,
            opts.timestamp,
            opts.expansion_limit,
        )?;
    }
    for tag in &tags {
        ctx.store.set_tag(tag, top.clone())?;
    }
    Ok(BuildReport {
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        tags,
        images,
        embedded: embed_plan
            .images
            .iter()
            .map(|i| i.reference.to_string())
            .chain(embed_plan.archives.iter().map(|a| a.name()))
            .collect(),
        pulled: embed_plan.fetched,
    })
}

/// Gives the config `Env` of a base image: `(reference, platform, line of its FROM)`, `None` when unknown.
pub type BaseEnvLookup<'a> =
    dyn FnMut(&str, &Platform, usize) -> Result<Option<Vec<String>>, BuildError> + 'a;

/// Evaluates `kubefile` with the config `Env` of its base images in `options.base_env`, so substitution
/// sees inherited values as buildah's does. `lookup(reference, platform, line)` gives the Env of the image
/// a `FROM` on `line` names (`None`:
/// unknown, treated as empty). When the file evaluates without them, only the stages the final one needs
/// are looked up; otherwise every `FROM` image.
pub fn evaluate_with_base_env(
    kubefile: &formats::kubefile::Kubefile,
    mut options: EvalOptions,
    lookup: &mut BaseEnvLookup<'_>,
) -> Result<BuildPlan, BuildError> {
    let bases: Vec<(String, Option<String>, usize)> =
        match formats::kubefile::evaluate(kubefile, &options) {
            Ok(plan) => needed_stages(&plan)
                .into_iter()
                .filter_map(|i| match &plan.stages[i].base {
                    BaseImage::Image { reference } => Some((
                        reference.clone(),
                        plan.stages[i].platform.clone(),
                        plan.stages[i].line,
                    )),
                    _ => None,
                })
                .collect(),
            Err(_) => formats::kubefile::base_images(kubefile, &options)?,
        };
    for (reference, platform, line) in bases {
        let platform = platform
            .as_deref()
            .and_then(|p| Platform::parse(p).ok())
            .unwrap_or(options.platform.clone());
        if let Some(env) = lookup(&reference, &platform, line)?.filter(|e| !e.is_empty()) {
            options.base_env.insert(reference, env);
        }
    }
    Ok(formats::kubefile::evaluate(kubefile, &options)?)
}

/// The config `Env` of the base image `reference` for `platform` (named on `line`), pulled into the store
/// when needed.
fn base_env(
    ctx: &Ctx<'_>,
    reference: &str,
    platform: &Platform,
    line: usize,
) -> Result<Option<Vec<String>>, BuildError> {
    let state = resolve_base(ctx, reference, platform, line)?;
    Ok(state.config.config.map(|c| c.env))
}

/// The labels of the image `plan` builds: its base image's (through `FROM stage` chains), then the
/// Kubefile's and `--label`.
fn final_labels(
    ctx: &Ctx<'_>,
    plan: &BuildPlan,
    platform: &Platform,
) -> Result<BTreeMap<String, String>, BuildError> {
    let mut labels = BTreeMap::new();
    let mut stage = plan.final_stage();
    let mut hops = 0;
    while let Some(s) = stage {
        match &s.base {
            BaseImage::Stage { index } if hops < plan.stages.len() => {
                stage = plan.stages.get(*index);
                hops += 1;
            }
            BaseImage::Image { reference } => {
                let platform = s
                    .platform
                    .as_deref()
                    .and_then(|p| Platform::parse(p).ok())
                    .unwrap_or(platform.clone());
                let state = resolve_base(ctx, reference, &platform, s.line)?;
                labels.extend(state.config.config.map(|c| c.labels).unwrap_or_default());
                break;
            }
            _ => break,
        }
    }
    labels.extend(plan.config.labels.clone());
    Ok(labels)
}

/// The base image `reference` for `platform` (named on `line`), resolved once per build.
fn resolve_base(
    ctx: &Ctx<'_>,
    reference: &str,
    platform: &Platform,
    line: usize,
) -> Result<ImageState, BuildError> {
    let key = (reference.to_string(), platform.to_string());
    if let Some(state) = ctx.bases.borrow().get(&key) {
        return Ok(state.clone());
    }
    let state = resolve_image(
        &ctx.store,
        reference,
        platform,
        &ctx.temp_root,
        &ctx.remote,
        ctx.opts.expansion_limit,
    )
    .map_err(|e| match e {
        e @ BuildError::BaseImage { .. } => step_err(ctx, line, StepError::Build(Box::new(e))),
        other => other,
    })?;
    ctx.bases.borrow_mut().insert(key, state.clone());
    Ok(state)
}

/// Stages the final stage depends on (itself included), through FROM and COPY --from.
fn needed_stages(plan: &BuildPlan) -> BTreeSet<usize> {
    let mut needed = BTreeSet::new();
    let mut pending: Vec<usize> = plan.stages.len().checked_sub(1).into_iter().collect();
    while let Some(i) = pending.pop() {
        if !needed.insert(i) {
            continue;
        }
        let Some(stage) = plan.stages.get(i) else {
            continue;
        };
        if let BaseImage::Stage { index } = stage.base {
            pending.push(index);
        }
        for step in &stage.steps {
            if let Some(CopyPlan {
                from: CopyFrom::Stage { index },
                ..
            }) = &step.copy
            {
                pending.push(*index);
            }
        }
    }
    needed
}

/// A stage's FROM line as evaluated: `FROM scratch`, `FROM image AS name`, `FROM --platform=P builder`.
fn from_text(plan: &BuildPlan, stage: &formats::kubefile::Stage) -> String {
    let base = match &stage.base {
        BaseImage::Scratch => "scratch".to_string(),
        BaseImage::Image { reference } => reference.clone(),
        BaseImage::Stage { index } => plan
            .stages
            .get(*index)
            .and_then(|s| s.name.clone())
            .unwrap_or_else(|| index.to_string()),
    };
    let platform = stage
        .platform
        .as_deref()
        .map(|p| format!("--platform={p} "))
        .unwrap_or_default();
    let name = stage
        .name
        .as_deref()
        .map(|n| format!(" AS {n}"))
        .unwrap_or_default();
    format!("FROM {platform}{base}{name}")
}

/// The root file systems of stages and images unpacked for `COPY --from`, made on first use.
#[derive(Default)]
struct Rootfs {
    dirs: HashMap<String, TempDir>,
}

fn build_platform(
    ctx: &mut Ctx<'_>,
    context: &Path,
    plan: &BuildPlan,
    platform: &Platform,
    embedded: &[crate::embed::EmbeddedLayer],
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(RawManifest, ImageReport), BuildError> {
    let platform_text = platform.to_string();
    let needed = needed_stages(plan);
    let mut states: Vec<Option<ImageState>> = vec![None; plan.stages.len()];
    let mut rootfs = Rootfs::default();
    let mut steps_report = Vec::new();
    let created = formats::time::rfc3339(ctx.opts.timestamp);
    let last = plan.stages.len().saturating_sub(1);
    let mut stage_number = 0;
    for stage in &plan.stages {
        if !needed.contains(&stage.index) {
            continue;
        }
        stage_number += 1;
        let instruction = |number: usize, text: &str, progress: &mut dyn FnMut(Progress<'_>)| {
            progress(Progress::Instruction {
                platform: &platform_text,
                stage: stage_number,
                stages: needed.len(),
                number,
                total: stage.steps.len() + 1,
                text,
            });
        };
        instruction(1, &from_text(plan, stage), progress);
        let mut state = match &stage.base {
            BaseImage::Scratch => ImageState {
                layers: Vec::new(),
                config: OciConfig::default(),
            },
            BaseImage::Stage { index } => states
                .get(*index)
                .and_then(Clone::clone)
                .ok_or_else(|| step_err(ctx, stage.line, format!("stage {index} was not built")))?,
            BaseImage::Image { reference } => {
                let image_platform = stage
                    .platform
                    .as_deref()
                    .and_then(|p| Platform::parse(p).ok())
                    .unwrap_or(platform.clone());
                resolve_base(ctx, reference, &image_platform, stage.line)?
            }
        };
        for (number, step) in (2..).zip(&stage.steps) {
            instruction(number, &step.text, progress);
            // A `COPY registry` the embedded images (or --save-image=false) stand for copies nothing itself.
            let registry_only = step
                .copy
                .as_ref()
                .is_some_and(|c| c.registry.is_some() && c.files.is_empty() && c.inline.is_empty());
            if registry_only && let Some(note) = &step.note {
                progress(Progress::Note {
                    message: &format!("{}:{}: {}: {note}", ctx.file, step.line, step.text),
                });
            }
            let Some(copy) = step.copy.as_ref().filter(|_| !registry_only) else {
                state.config.history.push(History {
                    created: Some(created.clone()),
                    created_by: Some(step.text.clone()),
                    author: stage.author.clone(),
                    comment: step.note.clone().filter(|_| registry_only),
                    empty_layer: true,
                });
                continue;
            };
            if copy.registry == Some(formats::kubefile::RegistryCopy::Merged) {
                check_registry_merge(ctx, step.line, copy, embedded)?;
            }
            progress(Progress::StepStarted {
                platform: &platform_text,
                line: step.line,
                text: &step.text,
            });
            let mut report = copy_step(
                ctx,
                context,
                plan,
                &states,
                &mut rootfs,
                &state,
                stage,
                step,
                copy,
                platform,
                progress,
            )?;
            let layer = report.1;
            report.0.stage = stage.index;
            progress(Progress::StepFinished {
                platform: &platform_text,
                report: &report.0,
            });
            steps_report.push(report.0);
            state.layers.push(Descriptor::new(
                layer.media_type.clone(),
                layer.blob_digest.clone(),
                layer.blob_size,
            ));
            state.config.rootfs.diff_ids.push(layer.diff_id.clone());
            state.config.history.push(History {
                created: Some(created.clone()),
                created_by: Some(step.text.clone()),
                author: stage.author.clone(),
                comment: None,
                empty_layer: false,
            });
        }
        let plan_config = if stage.index == last {
            &plan.config
        } else {
            &stage.config
        };
        let base_config = state.config.config.take().unwrap_or_default();
        state.config.config = Some(merge_config(base_config, plan_config));
        state.config.created = Some(created.clone());
        if stage.author.is_some() {
            state.config.author = stage.author.clone();
        }
        state.config.architecture = platform.architecture.clone();
        state.config.os = platform.os.clone();
        state.config.variant = platform.variant.clone();
        state.config.rootfs.kind = RootFs::default().kind;
        states[stage.index] = Some(state);
    }
    let mut state = states
        .get_mut(last)
        .and_then(Option::take)
        .ok_or_else(|| step_err(ctx, 0, "the Kubefile has no stage"))?;
    for e in embedded {
        let mut descriptor = Descriptor::new(
            e.layer.media_type.clone(),
            e.layer.blob_digest.clone(),
            e.layer.blob_size,
        );
        let (key, value) = e.annotation();
        descriptor
            .annotations
            .insert(key.to_string(), value.to_string());
        state.layers.push(descriptor);
        state.config.rootfs.diff_ids.push(e.layer.diff_id.clone());
        state.config.history.push(History {
            created: Some(created.clone()),
            created_by: Some(e.created_by()),
            author: None,
            comment: Some("image embedded into registry/".into()),
            empty_layer: false,
        });
    }
    let config_bytes = formats::manifest::to_canonical_json(&state.config).map_err(|source| {
        BuildError::Serialize {
            what: "config",
            source,
        }
    })?;
    let (config_digest, config_size) = ctx.store.write_blob_bytes(&config_bytes)?;
    let mut manifest = ImageManifest::new(
        Descriptor::new(media_type::OCI_CONFIG, config_digest.clone(), config_size),
        state.layers.clone(),
    );
    manifest.annotations = plan.annotations.clone();
    let raw = RawManifest::from_created(&manifest, media_type::OCI_MANIFEST).map_err(|source| {
        BuildError::Serialize {
            what: "manifest",
            source,
        }
    })?;
    ctx.store.write_manifest(&raw)?;
    let report = ImageReport {
        platform: platform_text,
        manifest: raw.digest.clone(),
        config: config_digest,
        steps: steps_report,
    };
    Ok((raw, report))
}

fn step_err(ctx: &Ctx<'_>, line: usize, problem: impl Into<StepError>) -> BuildError {
    BuildError::Step {
        file: ctx.file.clone(),
        line,
        problem: Box::new(problem.into()),
    }
}

/// The base image's runtime config with what the Kubefile set laid over it. As buildah does, a base
/// `Env` entry the Kubefile sets again moves after the base's other entries, in the Kubefile's order.
fn merge_config(mut base: ContainerConfig, plan: &PlanConfig) -> ContainerConfig {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let set: BTreeSet<String> = plan.env.iter().map(|e| key(e)).collect();
    base.env.retain(|e| !set.contains(&key(e)));
    base.env.extend(plan.env.iter().cloned());
    if let Some(cmd) = &plan.cmd {
        base.cmd.clone_from(cmd);
    }
    if let Some(entrypoint) = &plan.entrypoint {
        base.entrypoint.clone_from(entrypoint);
    }
    base.labels
        .extend(plan.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    if plan.working_dir.is_some() {
        base.working_dir.clone_from(&plan.working_dir);
    }
    if plan.user.is_some() {
        base.user.clone_from(&plan.user);
    }
    if plan.stop_signal.is_some() {
        base.stop_signal.clone_from(&plan.stop_signal);
    }
    base.exposed_ports.extend(
        plan.exposed_ports
            .iter()
            .map(|p| (p.clone(), EmptyObject {})),
    );
    base.volumes
        .extend(plan.volumes.iter().map(|v| (v.clone(), EmptyObject {})));
    base
}

/// The line and destination of the `COPY registry` that decides where the embedded images land (the first
/// one embedding them, see [`formats::kubefile::registry_destination`]); `None` when no step does.
fn registry_copy(plan: &BuildPlan) -> Option<(usize, String)> {
    plan.stages.iter().flat_map(|s| &s.steps).find_map(|step| {
        let copy = step.copy.as_ref()?;
        matches!(
            copy.registry,
            Some(
                formats::kubefile::RegistryCopy::Embedded | formats::kubefile::RegistryCopy::Merged
            )
        )
        .then(|| {
            (
                step.line,
                formats::kubefile::registry_destination(&copy.destination),
            )
        })
    })
}

/// Fails when a file a `COPY registry` takes from the context's `registry/` is at a path an embedded image's
/// layer also writes (a directory both share is fine).
fn check_registry_merge(
    ctx: &Ctx<'_>,
    line: usize,
    copy: &CopyPlan,
    embedded: &[crate::embed::EmbeddedLayer],
) -> Result<(), BuildError> {
    let ours: Vec<(&str, &ContextFile)> = copy
        .files
        .iter()
        .map(|f| (f.destination.trim_start_matches('/'), f))
        .collect();
    // Each image's whole part of the tree, shared blobs included: the shared layer needs no check of its own.
    for e in embedded {
        let Some(spec) = &e.spec else { continue };
        for entry in crate::embed::layer::image_entries(&ctx.store, spec)? {
            let theirs = entry.path.as_str();
            let hit = ours.iter().find(|(dest, f)| {
                theirs == *dest
                    || (f.kind != FileKind::Dir
                        && theirs
                            .strip_prefix(*dest)
                            .is_some_and(|r| r.starts_with('/')))
            });
            if let Some((_, f)) = hit {
                return Err(step_err(
                    ctx,
                    line,
                    format!(
                        "`{}` from the build context collides with `/{theirs}` of embedded image `{}`; \
                         remove one of them (the context's file or the image from the images list)",
                        f.path, e.image
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// One entry a COPY/ADD places in its layer.
struct Item {
    /// On disk (context, stage rootfs, extracted archive) or inline content.
    source: ItemSource,
    dest: String,
    kind: FileKind,
    mode: u32,
    size: u64,
    /// Whether the stat cache may be used (context files only).
    stat_cacheable: bool,
    /// For ADD of a local tar archive: unpack it into `dest` instead of copying it.
    extract: bool,
    meta: Option<fs::Metadata>,
    /// The content digest (files) or link target (symlinks), once known.
    content: Option<String>,
}

enum ItemSource {
    Disk(PathBuf),
    Inline(Vec<u8>),
}

fn parse_chmod(ctx: &Ctx<'_>, line: usize, text: &str) -> Result<u32, BuildError> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            step_err(
                ctx,
                line,
                format!("--chmod={text}: write octal permission bits like 755 or 0644"),
            )
        })
}

fn parse_chown(ctx: &Ctx<'_>, line: usize, text: &str) -> Result<(u64, u64), BuildError> {
    let id = |s: &str| -> Option<u64> { if s == "root" { Some(0) } else { s.parse().ok() } };
    let (user, group) = match text.split_once(':') {
        Some((u, g)) => (id(u), id(g)),
        None => {
            let u = id(text);
            (u, u)
        }
    };
    match (user, group) {
        (Some(u), Some(g)) => Ok((u, g)),
        _ => Err(step_err(
            ctx,
            line,
            format!(
                "--chown={text}: only numeric ids (or root) are supported, since a cluster image has no /etc/passwd to \
                 look names up in; write --chown=UID:GID"
            ),
        )),
    }
}

fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://") || source.starts_with("git@")
}

/// Downloads the URL sources of an ADD from the context (see [`fetch`]); each with its destination path.
fn download_urls(
    ctx: &Ctx<'_>,
    step: &Step,
    copy: &CopyPlan,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<Vec<(fetch::Download, String)>, BuildError> {
    let line = step.line;
    if !copy.add || copy.from != CopyFrom::Context {
        return Ok(Vec::new());
    }
    let urls: Vec<&String> = copy.sources.iter().filter(|s| is_url(s)).collect();
    if urls.is_empty() {
        return Ok(Vec::new());
    }
    let checksum = fetch::checksum_flag(&step.text).map_err(|m| step_err(ctx, line, m))?;
    if checksum.is_some() && copy.sources.len() != 1 {
        return Err(step_err(
            ctx,
            line,
            "ADD --checksum needs exactly one source, the URL it checks",
        ));
    }
    // Without the caller's client (a library caller that gave none), one with default settings.
    let fallback;
    let client = match &ctx.opts.client {
        Some(client) => client,
        None => {
            fallback = registry::client::RegistryClient::new(Default::default())
                .map_err(|e| step_err(ctx, line, StepError::DownloadSetup(e)))?;
            &fallback
        }
    };
    let mut out = Vec::with_capacity(urls.len());
    for url in urls {
        if url.starts_with("git@") || url.ends_with(".git") {
            return Err(step_err(
                ctx,
                line,
                format!(
                    "ADD {url}: adding git repositories is not supported; clone it into the build context and \
                     COPY it from there"
                ),
            ));
        }
        let dest = if copy.destination_is_dir {
            let name = fetch::file_name(url).ok_or_else(|| {
                step_err(
                    ctx,
                    line,
                    format!(
                        "ADD {url}: the URL's path has no file name; give a destination file name instead of a \
                         directory"
                    ),
                )
            })?;
            format!("{}/{name}", copy.destination.trim_end_matches('/'))
        } else {
            copy.destination.clone()
        };
        let fetched = fetch::download(client, url, &ctx.temp_root, checksum.as_ref(), on_bytes);
        let download = crate::blocking::wait(fetched)
            .map_err(FetchError::from)
            .and_then(|downloaded| downloaded)
            .map_err(|source| {
                step_err(
                    ctx,
                    line,
                    StepError::Download {
                        url: url.to_string(),
                        source,
                    },
                )
            })?;
        out.push((download, dest));
    }
    Ok(out)
}

/// True when the file is a tar archive (plain, gzip or zstd), which ADD unpacks.
fn is_tar_archive(path: &Path) -> bool {
    let Ok(file) = fs::File::open(path) else {
        return false;
    };
    let Ok(size) = file.metadata().map(|m| m.len()) else {
        return false;
    };
    let Ok(mut reader) = decompressing_reader(file, size, ExpansionLimit::default()) else {
        return false;
    };
    let mut header = [0u8; 512];
    let mut filled = 0;
    while filled < header.len() {
        match reader.read(&mut header[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(_) => return false,
        }
    }
    filled == 512 && (&header[257..262] == b"ustar")
}

/// Lists where a COPY --from takes its files: an unpacked stage or image root, resolved like the context.
fn files_from_rootfs(
    ctx: &Ctx<'_>,
    root: &Path,
    step: &Step,
    copy: &CopyPlan,
) -> Result<Vec<ContextFile>, BuildError> {
    let mut copy = copy.clone();
    copy.from = CopyFrom::Context;
    let mut mini = BuildPlan {
        platform: String::new(),
        global_args: BTreeMap::new(),
        stages: vec![Stage {
            index: 0,
            name: None,
            line: step.line,
            base: BaseImage::Scratch,
            platform: None,
            args: BTreeMap::new(),
            inherited_env: Vec::new(),
            steps: vec![Step {
                line: step.line,
                instruction: step.instruction.clone(),
                text: step.text.clone(),
                copy: Some(copy),
                note: None,
            }],
            config: PlanConfig::default(),
            author: None,
        }],
        config: PlanConfig::default(),
        annotations: BTreeMap::new(),
        unused_build_args: Vec::new(),
    };
    formats::kubefile::resolve_sources(
        &mut mini,
        root,
        &ctx.file,
        &formats::kubefile::SourceRules::default(),
    )?;
    Ok(mini
        .stages
        .pop()
        .and_then(|mut s| s.steps.pop())
        .and_then(|s| s.copy)
        .map(|c| c.files)
        .unwrap_or_default())
}

#[allow(clippy::too_many_arguments)]
fn copy_step(
    ctx: &mut Ctx<'_>,
    context: &Path,
    plan: &BuildPlan,
    states: &[Option<ImageState>],
    rootfs: &mut Rootfs,
    state: &ImageState,
    stage: &Stage,
    step: &Step,
    copy: &CopyPlan,
    platform: &Platform,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(StepReport, CachedLayer), BuildError> {
    let line = step.line;
    let platform_text = &platform.to_string();
    let chmod = copy
        .chmod
        .as_deref()
        .map(|m| parse_chmod(ctx, line, m))
        .transpose()?;
    let owner = copy
        .chown
        .as_deref()
        .map(|o| parse_chown(ctx, line, o))
        .transpose()?;
    let downloads = download_urls(ctx, step, copy, &mut |read| {
        progress(Progress::StepBytes {
            platform: platform_text,
            line,
            total: 0,
            read,
            written: 0,
        });
    })?;
    // The entries and the directory they are read from.
    let (files, root, stat_cacheable) = match &copy.from {
        CopyFrom::Context => (copy.files.clone(), context.to_path_buf(), true),
        CopyFrom::Stage { index } => {
            let key = format!("stage:{index}");
            if !rootfs.dirs.contains_key(&key) {
                let image = states.get(*index).and_then(Option::as_ref).ok_or_else(|| {
                    step_err(
                        ctx,
                        line,
                        format!("COPY --from: stage {index} was not built"),
                    )
                })?;
                let dir = unpack_rootfs(ctx, &image.layers)?;
                rootfs.dirs.insert(key.clone(), dir);
            }
            let root = rootfs.dirs[&key].path().to_path_buf();
            (files_from_rootfs(ctx, &root, step, copy)?, root, false)
        }
        CopyFrom::Image { reference } => {
            let key = format!("image:{reference}");
            if !rootfs.dirs.contains_key(&key) {
                let image = resolve_image(
                    &ctx.store,
                    reference,
                    platform,
                    &ctx.temp_root,
                    &ctx.remote,
                    ctx.opts.expansion_limit,
                )
                .map_err(|e| step_err(ctx, line, StepError::Build(Box::new(e))))?;
                let dir = unpack_rootfs(ctx, &image.layers)?;
                rootfs.dirs.insert(key.clone(), dir);
            }
            let root = rootfs.dirs[&key].path().to_path_buf();
            (files_from_rootfs(ctx, &root, step, copy)?, root, false)
        }
    };
    let _ = plan;
    let mut items = Vec::with_capacity(files.len() + copy.inline.len());
    for f in &files {
        let path = if f.path == "." {
            root.clone()
        } else {
            root.join(&f.path)
        };
        let meta = fs::symlink_metadata(&path).map_err(|e| BuildError::io(&path, e))?;
        let kind = if meta.file_type().is_symlink() {
            FileKind::Symlink
        } else if meta.is_dir() {
            FileKind::Dir
        } else {
            FileKind::File
        };
        let content = match kind {
            FileKind::Symlink => Some(
                fs::read_link(&path)
                    .map_err(|e| BuildError::io(&path, e))?
                    .to_string_lossy()
                    .into_owned(),
            ),
            FileKind::Dir => Some(String::new()),
            FileKind::File => None,
        };
        let extract = copy.add
            && kind == FileKind::File
            && copy.from == CopyFrom::Context
            && is_tar_archive(&path);
        items.push(Item {
            source: ItemSource::Disk(path),
            dest: if extract {
                copy.destination.clone()
            } else {
                f.destination.clone()
            },
            kind,
            mode: chmod.unwrap_or(meta.mode() & 0o7777),
            size: if kind == FileKind::File {
                meta.len()
            } else {
                0
            },
            stat_cacheable,
            extract,
            meta: Some(meta),
            content,
        });
    }
    for (download, dest) in &downloads {
        items.push(Item {
            source: ItemSource::Disk(download.path.clone()),
            dest: dest.clone(),
            kind: FileKind::File,
            mode: chmod.unwrap_or(0o600),
            size: download.size,
            stat_cacheable: false,
            extract: false,
            meta: None,
            content: Some(download.digest.to_string()),
        });
    }
    for inline in &copy.inline {
        let dest = if copy.destination.ends_with('/') {
            format!("{}{}", copy.destination, inline.name)
        } else {
            format!("{}/{}", copy.destination, inline.name)
        };
        let bytes = inline.content.clone().into_bytes();
        items.push(Item {
            content: Some(Digest::sha256_of(&bytes).to_string()),
            size: bytes.len() as u64,
            source: ItemSource::Inline(bytes),
            dest,
            kind: FileKind::File,
            mode: chmod.unwrap_or(0o644),
            stat_cacheable: false,
            extract: false,
            meta: None,
        });
    }

    let mut report = StepReport {
        stage: stage.index,
        line,
        text: step.text.clone(),
        cached: false,
        layer: None,
        files: items.len() as u64,
        files_hashed: 0,
        bytes_hashed: downloads.iter().map(|(d, _)| d.size).sum(),
        bytes_written: 0,
        blocks: 0,
        blocks_reused: 0,
    };
    let total: u64 = items.iter().map(|i| i.size).sum();
    let read = AtomicU64::new(0);
    let parent = state
        .config
        .rootfs
        .diff_ids
        .iter()
        .fold(None, |acc: Option<Digest>, d| {
            Some(chain_id(acc.as_ref(), d))
        });
    let mut remembered = 0usize;
    for item in &mut items {
        if item.content.is_none()
            && item.stat_cacheable
            && let (ItemSource::Disk(path), Some(meta)) = (&item.source, &item.meta)
            && let Some(d) = ctx.stat.lookup(path, meta)
        {
            item.content = Some(d.to_string());
            remembered += 1;
        }
    }
    let unknown: Vec<usize> = (0..items.len())
        .filter(|i| items[*i].content.is_none())
        .collect();
    let cold = unknown.iter().any(|i| items[*i].stat_cacheable) && remembered == 0;
    // Hash first (to find a cached layer) unless the step is cold: context files it copies exist but none was
    // remembered from an earlier build. A cold step hashes its files while its layer is written instead.
    let hash_first = !ctx.opts.no_cache && !cold;
    if hash_first && !unknown.is_empty() {
        let hashed = hash_items(&items, &unknown, &read)?;
        apply_hashes(ctx, &mut items, hashed, &mut report);
        progress(Progress::StepBytes {
            platform: platform_text,
            line,
            total,
            read: read.load(Ordering::Relaxed),
            written: 0,
        });
    }
    let options = LayerOptions {
        compression: ctx.opts.compression,
        mtime: ctx.opts.timestamp,
    };
    if hash_first {
        let key = cache_key(parent.as_ref(), step, &options, &items, owner);
        if let Some(hit) = ctx.layers.lookup(&key)
            && ctx
                .store
                .blob_path(&hit.blob_digest)
                .metadata()
                .is_ok_and(|m| m.len() == hit.blob_size)
        {
            report.cached = true;
            report.layer = Some(hit.blob_digest.clone());
            return Ok((report, hit));
        }
    }
    let pending: Vec<usize> = (0..items.len())
        .filter(|i| items[*i].content.is_none())
        .collect();
    let step_key = step_key(platform_text, stage, step, &options, owner);
    let previous = if ctx.opts.no_cache {
        None
    } else {
        previous_blob(ctx, &step_key, &options)
    };
    let (layer, hashed) = std::thread::scope(|scope| {
        let hasher =
            (!pending.is_empty()).then(|| scope.spawn(|| hash_items(&items, &pending, &read)));
        let mut tick = |written| {
            progress(Progress::StepBytes {
                platform: platform_text,
                line,
                total,
                read: read.load(Ordering::Relaxed),
                written,
            });
        };
        let layer = write_layer(ctx, &items, &options, owner, line, previous, &mut tick);
        let hashed = hasher.map(|h| {
            h.join().unwrap_or_else(|_| {
                Err(BuildError::io(
                    Path::new("<hasher>"),
                    io::Error::other("hashing thread panicked"),
                ))
            })
        });
        (layer, hashed)
    });
    let (layer, blocks) = layer?;
    if let Some(blocks) = blocks {
        report.blocks = blocks.index.blocks.len() as u64;
        report.blocks_reused = blocks.reused;
        let record = StepBlocks {
            blob_digest: layer.blob_digest.clone(),
            blob_size: layer.blob_size,
            index: blocks.index,
        };
        // Like the layer cache record: losing it only costs compressing every block next time.
        let _ = ctx.layers.record_blocks(&step_key, &record);
    }
    if let Some(hashed) = hashed {
        apply_hashes(ctx, &mut items, hashed?, &mut report);
    }
    let key = cache_key(parent.as_ref(), step, &options, &items, owner);
    // A cache record that cannot be written only costs a rebuild later.
    let _ = ctx.layers.record(&key, &layer);
    report.layer = Some(layer.blob_digest.clone());
    report.bytes_written = layer.blob_size;
    Ok((report, layer))
}

type Hashed = Vec<(usize, Digest, u64, i128)>;

/// Hashes the files `which` of `items`, adding the bytes read to `counter` after each.
fn hash_items(items: &[Item], which: &[usize], counter: &AtomicU64) -> Result<Hashed, BuildError> {
    let mut out = Vec::with_capacity(which.len());
    for &i in which {
        if let ItemSource::Disk(path) = &items[i].source {
            let (digest, read, at) = hash_file(path).map_err(|e| BuildError::io(path, e))?;
            counter.fetch_add(read, Ordering::Relaxed);
            out.push((i, digest, read, at));
        }
    }
    Ok(out)
}

fn apply_hashes(ctx: &mut Ctx<'_>, items: &mut [Item], hashed: Hashed, report: &mut StepReport) {
    for (i, digest, read, at) in hashed {
        let item = &mut items[i];
        if item.stat_cacheable
            && let (ItemSource::Disk(path), Some(meta)) = (&item.source, &item.meta)
        {
            ctx.stat.record(path, meta, digest.clone(), at);
        }
        item.content = Some(digest.to_string());
        report.files_hashed += 1;
        report.bytes_hashed += read;
    }
}

fn cache_key(
    parent: Option<&Digest>,
    step: &Step,
    options: &LayerOptions,
    items: &[Item],
    owner: Option<(u64, u64)>,
) -> Digest {
    let mut h = Algorithm::Sha256.hasher();
    let (uid, gid) = owner.unwrap_or((0, 0));
    h.update(
        format!(
            "sealos layer cache v1\nparent {}\nstep {}\ncompression {:?}\nmtime {}\nowner {uid}:{gid}\n",
            parent.map_or_else(String::new, ToString::to_string),
            step.text,
            options.compression,
            options.mtime
        )
        .as_bytes(),
    );
    for item in items {
        let kind = match item.kind {
            FileKind::File => "f",
            FileKind::Dir => "d",
            FileKind::Symlink => "l",
        };
        h.update(
            format!(
                "{kind}\t{}\t{:o}\t{}\t{}\t{}\n",
                item.dest.replace(['\n', '\t'], " "),
                item.mode,
                item.size,
                u8::from(item.extract),
                item.content.as_deref().unwrap_or("?")
            )
            .as_bytes(),
        );
    }
    h.finish()
}

/// The key of a COPY/ADD step apart from its content and parent: which earlier blob's blocks it may reuse.
fn step_key(
    platform: &str,
    stage: &Stage,
    step: &Step,
    options: &LayerOptions,
    owner: Option<(u64, u64)>,
) -> Digest {
    let (uid, gid) = owner.unwrap_or((0, 0));
    Digest::sha256_of(
        format!(
            "sealos layer step v1\nplatform {platform}\nstage {}\nstep {}\ncompression {:?}\nmtime {}\nowner {uid}:{gid}\n",
            stage.index, step.text, options.compression, options.mtime
        )
        .as_bytes(),
    )
}

/// The blob the step `step_key` wrote last, open, with its block index: when the layer is gzip and the blob is
/// still in the store at the recorded size.
fn previous_blob(ctx: &Ctx<'_>, step_key: &Digest, options: &LayerOptions) -> Option<PreviousBlob> {
    if !matches!(options.compression, Compression::Gzip { .. }) {
        return None;
    }
    let recorded = ctx.layers.previous_blocks(step_key)?;
    let file = fs::File::open(ctx.store.blob_path(&recorded.blob_digest)).ok()?;
    if file.metadata().ok()?.len() != recorded.blob_size {
        return None;
    }
    PreviousBlob::new(file, recorded.index)
}

fn unpack_rootfs(ctx: &Ctx<'_>, layers: &[Descriptor]) -> Result<TempDir, BuildError> {
    let dir = tempfile::Builder::new()
        .prefix(".rootfs-")
        .tempdir_in(&ctx.temp_root)
        .map_err(|e| BuildError::io(&ctx.temp_root, e))?;
    unpack_layers(&ctx.store, layers, dir.path(), ctx.opts.expansion_limit)?;
    Ok(dir)
}

/// Writes the step's layer into the store through a staged file.
fn write_layer(
    ctx: &Ctx<'_>,
    items: &[Item],
    options: &LayerOptions,
    owner: Option<(u64, u64)>,
    line: usize,
    previous: Option<PreviousBlob>,
    tick: &mut dyn FnMut(u64),
) -> Result<(CachedLayer, Option<GzipBlocks>), BuildError> {
    let mut extracted: Vec<TempDir> = Vec::new();
    let mut entries = Vec::with_capacity(items.len());
    let finish = |mut e: LayerEntry, mode: Option<u32>| {
        if let Some(m) = mode {
            e = e.with_mode(m);
        }
        if let Some((u, g)) = owner {
            e = e.with_owner(u, g);
        }
        e
    };
    for item in items {
        match (&item.source, item.kind) {
            (ItemSource::Disk(path), FileKind::File) if item.extract => {
                let dir = tempfile::Builder::new()
                    .prefix(".add-")
                    .tempdir_in(&ctx.temp_root)
                    .map_err(|e| BuildError::io(&ctx.temp_root, e))?;
                let file = fs::File::open(path).map_err(|e| BuildError::io(path, e))?;
                let size = file.metadata().map_err(|e| BuildError::io(path, e))?.len();
                let mut reader = decompressing_reader(file, size, ctx.opts.expansion_limit)
                    .map_err(|e| BuildError::io(path, e))?;
                let unpack_err = |source| {
                    step_err(
                        ctx,
                        line,
                        StepError::Unpack {
                            path: path.clone(),
                            source,
                        },
                    )
                };
                formats::layer::unpack(
                    &mut reader,
                    dir.path(),
                    &formats::layer::UnpackOptions::default(),
                )
                .map_err(unpack_err)?;
                reader.finish().map_err(|source| {
                    step_err(
                        ctx,
                        line,
                        StepError::UnpackRead {
                            path: path.clone(),
                            source,
                        },
                    )
                })?;
                entries.push(finish(LayerEntry::dir(item.dest.clone()), None));
                for child in formats::walk::Walk::children(dir.path()).sorted() {
                    let child = child.map_err(|e| BuildError::io(&e.path, e.source))?;
                    let name = child.file_name().to_string_lossy().into_owned();
                    let dest = format!("{}/{name}", item.dest.trim_end_matches('/'));
                    let entry = if child.file_type().is_symlink() {
                        let target = fs::read_link(child.path())
                            .map_err(|e| BuildError::io(child.path(), e))?;
                        LayerEntry::symlink(dest, target.to_string_lossy().into_owned())
                    } else {
                        LayerEntry::from_disk(child.into_path(), dest)
                    };
                    entries.push(finish(entry, None));
                }
                extracted.push(dir);
            }
            (ItemSource::Disk(path), FileKind::File) => {
                entries.push(finish(
                    LayerEntry::from_disk(path.clone(), item.dest.clone()),
                    Some(item.mode),
                ));
            }
            (ItemSource::Disk(_), FileKind::Dir) => {
                entries.push(finish(LayerEntry::dir(item.dest.clone()), Some(item.mode)));
            }
            (_, FileKind::Symlink) => {
                let target = item.content.clone().unwrap_or_default();
                entries.push(finish(LayerEntry::symlink(item.dest.clone(), target), None));
            }
            (ItemSource::Inline(bytes), _) => {
                entries.push(finish(
                    LayerEntry::file(item.dest.clone(), bytes.clone()),
                    Some(item.mode),
                ));
            }
        }
    }
    let layer = commit_layer_reusing(&ctx.store, entries, options, previous, tick)?;
    drop(extracted);
    Ok(layer)
}

/// Writes `entries` as one layer into `store` through a staged file, renamed into place once verified;
/// `tick` hears the bytes written so far after every MiB.
pub(crate) fn commit_layer(
    store: &OciLayout,
    entries: Vec<LayerEntry>,
    options: &LayerOptions,
    tick: &mut dyn FnMut(u64),
) -> Result<CachedLayer, BuildError> {
    Ok(commit_layer_reusing(store, entries, options, None, tick)?.0)
}

/// Like [`commit_layer`]; a gzip layer copies the blocks of `previous` its bytes still contain, and the
/// blob's block index comes back with the layer.
fn commit_layer_reusing(
    store: &OciLayout,
    entries: Vec<LayerEntry>,
    options: &LayerOptions,
    previous: Option<PreviousBlob>,
    tick: &mut dyn FnMut(u64),
) -> Result<(CachedLayer, Option<GzipBlocks>), BuildError> {
    let blobs = store.root().join("blobs").join(Algorithm::Sha256.as_str());
    let mut staged = StagedFile::new_in(&blobs, Algorithm::Sha256)?;
    let digests = write_entries_layer_reusing(
        entries,
        options,
        previous,
        &mut Ticking {
            inner: &mut staged,
            written: 0,
            told: 0,
            tick,
        },
    )?;
    let dest = store.blob_path(&digests.blob_digest);
    if !dest.is_file() {
        staged.commit_verified(&digests.blob_digest, Some(digests.blob_size), &dest)?;
    }
    let layer = CachedLayer {
        blob_digest: digests.blob_digest,
        blob_size: digests.blob_size,
        diff_id: digests.diff_id,
        uncompressed_size: digests.uncompressed_size,
        media_type: digests.media_type,
    };
    Ok((layer, digests.blocks))
}

/// Passes writes through, telling `tick` the running total after every MiB.
struct Ticking<'a, W> {
    inner: &'a mut W,
    written: u64,
    told: u64,
    tick: &'a mut dyn FnMut(u64),
}

impl<W: io::Write> io::Write for Ticking<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if self.written - self.told >= 1 << 20 {
            self.told = self.written;
            (self.tick)(self.written);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticking_writer_passes_bytes_through_and_reports_every_mib() {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let mut tick = |n| seen.push(n);
        let mut w = Ticking {
            inner: &mut out,
            written: 0,
            told: 0,
            tick: &mut tick,
        };
        for _ in 0..5 {
            io::Write::write_all(&mut w, &[7u8; 600 * 1024]).unwrap();
        }
        assert_eq!(out.len(), 5 * 600 * 1024);
        assert_eq!(seen, vec![1_228_800, 2_457_600]);
    }

    #[test]
    fn outputs_parse_type_and_dest() {
        assert_eq!("type=local,dest=/x".parse(), Ok(Output::Local("/x".into())));
        assert_eq!(
            "dest=a.tar,type=tar".parse(),
            Ok(Output::Tar("a.tar".into()))
        );
        assert_eq!(
            "type=oci-archive,dest=o".parse(),
            Ok(Output::OciArchive("o".into()))
        );
        assert!("type=registry,dest=x".parse::<Output>().is_err());
        assert!("type=local".parse::<Output>().is_err());
    }
}
