//! Evaluates a [`Kubefile`] for one platform into a [`BuildPlan`]: stages, each instruction after substitution,
//! every COPY/ADD with its sources and destination, and the final image config.
//!
//! Pure: nothing here touches the file system. [`super::context::resolve_sources`] later lists the context files
//! each COPY/ADD takes.
//!
//! The plan is also the stable JSON of `sealos build --dry-run --format json`: fields are only ever added.
//! Plan fields are camelCase; the image config uses the OCI image-config names (`Env`, `Cmd`, `WorkingDir`...).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::ast::{Command, CopyArgs, Flag, Healthcheck, InstructionKind, Kubefile, Source};
use super::error::{EvalError, EvalErrorKind};
use super::substitute::{SubstitutionError, expand};
use crate::manifest::Platform;

/// Inputs of an evaluation besides the Kubefile.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The file name used in error messages.
    pub file: String,
    /// `--build-arg K=V` values, in command-line order (a later one wins).
    pub build_args: Vec<(String, String)>,
    /// The platform being built (TARGETPLATFORM and friends).
    pub platform: Platform,
    /// The platform doing the build (BUILDPLATFORM and friends).
    pub build_platform: Platform,
    /// `--label K=V`: override or add labels of the final image.
    pub labels: Vec<(String, String)>,
    /// `--env K=V`: override or add environment variables of the final image.
    pub env: Vec<(String, String)>,
    /// `--annotation K=V`: manifest annotations of the final image.
    pub annotations: Vec<(String, String)>,
    /// The `Env` of each base image's config, keyed by the `FROM` reference after substitution: it is
    /// visible to substitution in that stage, as buildah makes it (empty: bases are treated as env-less).
    pub base_env: BTreeMap<String, Vec<String>>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            file: "Kubefile".to_string(),
            build_args: Vec::new(),
            platform: Platform::host(),
            build_platform: Platform::host(),
            labels: Vec::new(),
            env: Vec::new(),
            annotations: Vec::new(),
            base_env: BTreeMap::new(),
        }
    }
}

/// The evaluated plan of a Kubefile for one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildPlan {
    /// The target platform, `os/arch[/variant]`.
    pub platform: String,
    /// ARGs in scope before the first FROM (predefined platform ARGs included), after `--build-arg`.
    pub global_args: BTreeMap<String, String>,
    /// Build stages in file order; the last one is the image.
    pub stages: Vec<Stage>,
    /// The config of the final image: the last stage's config with `--label`/`--env` applied. Fields the
    /// Kubefile did not set are empty or null and come from the base image when there is one.
    pub config: ImageConfig,
    /// Manifest annotations from `--annotation`.
    pub annotations: BTreeMap<String, String>,
    /// `--build-arg` names no ARG declared (Docker warns about these too).
    pub unused_build_args: Vec<String>,
}

impl BuildPlan {
    /// The final stage (the image that is built).
    pub fn final_stage(&self) -> Option<&Stage> {
        self.stages.last()
    }

    /// Every COPY/ADD of every stage, with the stage index, in order.
    pub fn copies(&self) -> impl Iterator<Item = (usize, &Step, &CopyPlan)> {
        self.stages.iter().enumerate().flat_map(|(i, stage)| {
            stage
                .steps
                .iter()
                .filter_map(move |step| step.copy.as_ref().map(|copy| (i, step, copy)))
        })
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum BaseImage {
    /// `FROM scratch`: an empty file system and config.
    Scratch,
    /// A registry image; its config is the starting point of the stage's config.
    Image {
        /// The image reference after substitution, as written.
        reference: String,
    },
    /// An earlier stage of the same file (`FROM builder`).
    Stage {
        /// Its index.
        index: usize,
    },
}

/// One build stage: from `FROM` to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// 0-based index.
    pub index: usize,
    /// The `AS name`, when given.
    pub name: Option<String>,
    /// Line of the FROM instruction.
    pub line: usize,
    /// What the stage starts from.
    pub base: BaseImage,
    /// `FROM --platform=...` after substitution, when given.
    pub platform: Option<String>,
    /// The ARGs in scope at the end of the stage, after `--build-arg`.
    pub args: BTreeMap<String, String>,
    /// `KEY=value` entries the stage inherits from its base image's config (see [`EvalOptions::base_env`]);
    /// visible to substitution, not repeated in `config`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inherited_env: Vec<String>,
    /// Every instruction after FROM, in order.
    pub steps: Vec<Step>,
    /// The stage's image config after its last instruction.
    pub config: ImageConfig,
    /// `MAINTAINER`, the image author.
    pub author: Option<String>,
}

/// One instruction of a stage after substitution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Line of the instruction in the Kubefile.
    pub line: usize,
    /// The keyword (`COPY`, `ENV`...).
    pub instruction: String,
    /// The instruction as it takes effect: words substituted and unquoted (CMD/ENTRYPOINT as written).
    pub text: String,
    /// For COPY and ADD: what is copied where.
    pub copy: Option<CopyPlan>,
    /// Why an instruction has no effect on a cluster image, when that is so.
    pub note: Option<String>,
}

/// Where a COPY/ADD takes its sources from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum CopyFrom {
    /// The build context directory.
    Context,
    /// An earlier stage's file system (`--from=name` or `--from=0`).
    Stage {
        /// Its index.
        index: usize,
    },
    /// Another image (`--from=nginx:1.25`).
    Image {
        /// The reference as written after substitution.
        reference: String,
    },
}

/// A file given inline by a here-document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InlineFile {
    /// The file name (the here-document delimiter), placed under the destination.
    pub name: String,
    /// The content.
    pub content: String,
}

/// The kind of a context entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (copied as a link).
    Symlink,
}

/// One entry of the build context a COPY/ADD takes, and where it lands in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextFile {
    /// Path relative to the context, `/`-separated.
    pub path: String,
    /// Absolute path in the image.
    pub destination: String,
    /// File, directory or symlink.
    pub kind: FileKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
}

/// A COPY or ADD after substitution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyPlan {
    /// True for ADD (which also fetches URLs), false for COPY.
    pub add: bool,
    /// Where the sources come from.
    pub from: CopyFrom,
    /// Source paths, globs or URLs after substitution, as written (relative to the context or stage root).
    pub sources: Vec<String>,
    /// Files given inline by here-documents.
    pub inline: Vec<InlineFile>,
    /// The absolute destination in the image (relative destinations are resolved against WORKDIR).
    pub destination: String,
    /// True when the destination is a directory the sources go into (it ends in `/`, is `.`, or there are
    /// several sources); false when a single file source becomes the destination file.
    pub destination_is_dir: bool,
    /// `--chown` after substitution.
    pub chown: Option<String>,
    /// `--chmod` after substitution.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// The context entries taken, sorted by path; filled by [`super::context::resolve_sources`] for context
    /// copies (empty until then, and for stage or image sources).
    pub files: Vec<ContextFile>,
    /// What this copy's `registry` source (sealos's saved images) does, when it has one; set by
    /// [`super::context::resolve_sources`] with [`super::context::SourceRules::images`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryCopy>,
}

/// What a COPY/ADD of the context's `registry` directory does: sealos saves the context's images there before
/// building; `sealos build` embeds them as per-image layers at `/registry` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RegistryCopy {
    /// The embedded registry stands for the source (an empty or missing `registry`, or a `.keep`-only one).
    Embedded,
    /// The context's own files under `registry/` are copied and merged with the embedded registry.
    Merged,
    /// No images are embedded (`--save-image=false`): the placeholder source is skipped.
    Skipped,
}

/// Image config fields a Kubefile sets, named as in the OCI image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// `KEY=value` entries in the order first set.
    pub env: Vec<String>,
    /// CMD; the shell form is stored as SHELL + the text (`["/bin/sh", "-c", "..."]`).
    pub cmd: Option<Vec<String>>,
    /// ENTRYPOINT, same forms as `Cmd`.
    pub entrypoint: Option<Vec<String>>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// WORKDIR, absolute.
    pub working_dir: Option<String>,
    /// USER.
    pub user: Option<String>,
    /// EXPOSE entries, `port/proto`.
    pub exposed_ports: BTreeSet<String>,
    /// VOLUME paths.
    pub volumes: BTreeSet<String>,
    /// STOPSIGNAL.
    pub stop_signal: Option<String>,
    /// SHELL.
    pub shell: Option<Vec<String>>,
    /// HEALTHCHECK (`["NONE"]` or `["CMD", ...]`/`["CMD-SHELL", ...]`, as Docker stores it).
    pub healthcheck: Option<Vec<String>>,
    /// ONBUILD triggers, as written.
    pub on_build: Vec<String>,
}

impl ImageConfig {
    /// The value of environment variable `key`, if set.
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find_map(|e| e.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    }

    fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self
            .env
            .iter_mut()
            .find(|e| e.split_once('=').is_some_and(|(k, _)| k == key))
        {
            Some(existing) => *existing = entry,
            None => self.env.push(entry),
        }
    }
}

const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];
/// The `PATH` buildah and BuildKit give a `FROM scratch` stage.
pub const SCRATCH_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const NO_EFFECT: &str =
    "recorded in the image config only: cluster images are not run as containers";

/// Evaluates `kubefile` for `options.platform`.
pub fn evaluate(kubefile: &Kubefile, options: &EvalOptions) -> Result<BuildPlan, EvalError> {
    let mut evaluator = Evaluator::new(kubefile, options);
    for instruction in &kubefile.instructions {
        evaluator.line = instruction.line;
        evaluator.instruction(&instruction.kind)?;
    }
    evaluator.finish()
}

/// The images the stages of `kubefile` start `FROM` (neither `scratch` nor an earlier stage), each with its
/// `FROM --platform` and the FROM's line, in file order: what a builder looks up to fill [`EvalOptions::base_env`]. Only the
/// ARGs before the first FROM and the FROM lines are evaluated, so this works when the rest of the file
/// needs the base images' ENV.
pub fn base_images(
    kubefile: &Kubefile,
    options: &EvalOptions,
) -> Result<Vec<(String, Option<String>, usize)>, EvalError> {
    let mut evaluator = Evaluator::new(kubefile, options);
    for instruction in &kubefile.instructions {
        let relevant = match &instruction.kind {
            InstructionKind::From { .. } => true,
            InstructionKind::Arg(_) => evaluator.stages.is_empty(),
            _ => false,
        };
        if relevant {
            evaluator.line = instruction.line;
            evaluator.instruction(&instruction.kind)?;
        }
    }
    Ok(evaluator
        .stages
        .into_iter()
        .filter_map(|stage| match stage.base {
            BaseImage::Image { reference } => Some((reference, stage.platform, stage.line)),
            _ => None,
        })
        .collect())
}

struct Evaluator<'a> {
    options: &'a EvalOptions,
    escape: char,
    line: usize,
    build_args: BTreeMap<String, String>,
    used_build_args: BTreeSet<String>,
    predefined: BTreeMap<String, String>,
    global_args: BTreeMap<String, String>,
    global_declared: BTreeSet<String>,
    stages: Vec<Stage>,
    cmd_set_in_stage: bool,
}

impl<'a> Evaluator<'a> {
    fn new(kubefile: &Kubefile, options: &'a EvalOptions) -> Self {
        let mut predefined = BTreeMap::new();
        for (prefix, p) in [
            ("TARGET", &options.platform),
            ("BUILD", &options.build_platform),
        ] {
            predefined.insert(format!("{prefix}PLATFORM"), p.to_string());
            predefined.insert(format!("{prefix}OS"), p.os.clone());
            predefined.insert(format!("{prefix}ARCH"), p.architecture.clone());
            predefined.insert(
                format!("{prefix}VARIANT"),
                p.variant.clone().unwrap_or_default(),
            );
        }
        let build_args: BTreeMap<String, String> = options.build_args.iter().cloned().collect();
        let mut global_args = predefined.clone();
        for (k, v) in &build_args {
            if predefined.contains_key(k) {
                global_args.insert(k.clone(), v.clone());
            }
        }
        Evaluator {
            options,
            escape: kubefile.directives.escape,
            line: 0,
            build_args,
            used_build_args: BTreeSet::new(),
            predefined,
            global_args,
            global_declared: BTreeSet::new(),
            stages: Vec::new(),
            cmd_set_in_stage: false,
        }
    }

    fn error(&self, kind: EvalErrorKind) -> EvalError {
        EvalError {
            file: self.options.file.clone(),
            line: self.line,
            kind,
        }
    }

    /// Variables in scope: global ARGs before the first FROM; inside a stage its ARGs, overridden by the
    /// ENV inherited from the base image, overridden by the stage's own ENV.
    fn scope(&self) -> BTreeMap<String, String> {
        match self.stages.last() {
            None => self.global_args.clone(),
            Some(stage) => {
                let mut vars = stage.args.clone();
                for entry in stage.inherited_env.iter().chain(&stage.config.env) {
                    if let Some((k, v)) = entry.split_once('=') {
                        vars.insert(k.to_string(), v.to_string());
                    }
                }
                vars
            }
        }
    }

    fn expand_with(
        &self,
        word: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<String, EvalError> {
        let lookup = |name: &str| vars.get(name).cloned();
        expand(word, self.escape, &lookup).map_err(|e| match e {
            SubstitutionError::Syntax(problem) => self.error(EvalErrorKind::Substitution {
                text: word.to_string(),
                problem,
            }),
            SubstitutionError::Required { name, message } => {
                self.error(EvalErrorKind::Required { name, message })
            }
        })
    }

    fn expand(&self, word: &str) -> Result<String, EvalError> {
        self.expand_with(word, &self.scope())
    }

    fn stage(&mut self) -> &mut Stage {
        let last = self.stages.len() - 1;
        &mut self.stages[last]
    }

    fn push_step(
        &mut self,
        instruction: &str,
        text: String,
        copy: Option<CopyPlan>,
        note: Option<&str>,
    ) {
        let line = self.line;
        self.stage().steps.push(Step {
            line,
            instruction: instruction.to_string(),
            text,
            copy,
            note: note.map(str::to_string),
        });
    }

    fn instruction(&mut self, kind: &InstructionKind) -> Result<(), EvalError> {
        if self.stages.is_empty() {
            return match kind {
                InstructionKind::Arg(decls) => self.global_arg(decls),
                InstructionKind::From {
                    flags,
                    image,
                    alias,
                } => self.from(flags, image, alias.as_deref()),
                // The parser rejects anything else before FROM.
                other => Err(self.error(EvalErrorKind::Substitution {
                    text: other.keyword().to_string(),
                    problem: "only ARG may come before FROM".to_string(),
                })),
            };
        }
        match kind {
            InstructionKind::From {
                flags,
                image,
                alias,
            } => self.from(flags, image, alias.as_deref()),
            InstructionKind::Arg(decls) => self.stage_arg(decls),
            InstructionKind::Env { pairs, .. } => {
                let vars = self.scope();
                let mut expanded = Vec::new();
                for pair in pairs {
                    let key = self.expand_with(&pair.key, &vars)?;
                    if key.is_empty() {
                        return Err(self.error(EvalErrorKind::EmptyName {
                            instruction: "ENV",
                            text: pair.key.clone(),
                        }));
                    }
                    expanded.push((key, self.expand_with(&pair.value, &vars)?));
                }
                for (k, v) in &expanded {
                    self.stage().config.set_env(k, v);
                }
                self.push_step("ENV", format!("ENV {}", show_pairs(&expanded)), None, None);
                Ok(())
            }
            InstructionKind::Label { pairs, .. } => {
                let vars = self.scope();
                let mut expanded = Vec::new();
                for pair in pairs {
                    let key = self.expand_with(&pair.key, &vars)?;
                    if key.is_empty() {
                        return Err(self.error(EvalErrorKind::EmptyName {
                            instruction: "LABEL",
                            text: pair.key.clone(),
                        }));
                    }
                    expanded.push((key, self.expand_with(&pair.value, &vars)?));
                }
                for (k, v) in &expanded {
                    self.stage().config.labels.insert(k.clone(), v.clone());
                }
                self.push_step(
                    "LABEL",
                    format!("LABEL {}", show_pairs(&expanded)),
                    None,
                    None,
                );
                Ok(())
            }
            InstructionKind::Copy(args) => self.copy(false, args),
            InstructionKind::Add(args) => self.copy(true, args),
            InstructionKind::Cmd(command) => {
                let value = self.command_value(command);
                self.stage().config.cmd = Some(value);
                self.cmd_set_in_stage = true;
                self.push_step("CMD", kind.to_string(), None, None);
                Ok(())
            }
            InstructionKind::Entrypoint(command) => {
                let value = self.command_value(command);
                let keep_cmd = self.cmd_set_in_stage;
                let stage = self.stage();
                stage.config.entrypoint = Some(value);
                if !keep_cmd {
                    stage.config.cmd = None;
                }
                self.push_step("ENTRYPOINT", kind.to_string(), None, None);
                Ok(())
            }
            InstructionKind::Run { .. } => Err(self.error(EvalErrorKind::RunNotSupported)),
            InstructionKind::Workdir(raw) => {
                let path = self.expand(raw)?;
                if path.is_empty() {
                    return Err(self.error(EvalErrorKind::EmptyPath {
                        instruction: "WORKDIR",
                        what: "path",
                        text: raw.clone(),
                    }));
                }
                let resolved = resolve_path(self.workdir(), &path);
                self.stage().config.working_dir = Some(resolved.clone());
                self.push_step("WORKDIR", format!("WORKDIR {resolved}"), None, None);
                Ok(())
            }
            InstructionKind::User(raw) => {
                let user = self.expand(raw)?;
                self.stage().config.user = Some(user.clone());
                self.push_step("USER", format!("USER {user}"), None, Some(NO_EFFECT));
                Ok(())
            }
            InstructionKind::Maintainer(name) => {
                self.stage().author = Some(name.clone());
                self.push_step("MAINTAINER", kind.to_string(), None, None);
                Ok(())
            }
            InstructionKind::StopSignal(raw) => {
                let signal = self.expand(raw)?;
                self.stage().config.stop_signal = Some(signal.clone());
                self.push_step(
                    "STOPSIGNAL",
                    format!("STOPSIGNAL {signal}"),
                    None,
                    Some(NO_EFFECT),
                );
                Ok(())
            }
            InstructionKind::Expose(words) => {
                let mut ports = Vec::new();
                for word in words {
                    for port in self.expand(word)?.split_whitespace() {
                        let port = if port.contains('/') {
                            port.to_ascii_lowercase()
                        } else {
                            format!("{port}/tcp")
                        };
                        ports.push(port);
                    }
                }
                self.stage()
                    .config
                    .exposed_ports
                    .extend(ports.iter().cloned());
                self.push_step(
                    "EXPOSE",
                    format!("EXPOSE {}", ports.join(" ")),
                    None,
                    Some(NO_EFFECT),
                );
                Ok(())
            }
            InstructionKind::Volume { paths, .. } => {
                let mut expanded = Vec::new();
                for p in paths {
                    expanded.push(self.expand(p)?);
                }
                self.stage().config.volumes.extend(expanded.iter().cloned());
                self.push_step(
                    "VOLUME",
                    format!("VOLUME {}", expanded.join(" ")),
                    None,
                    Some(NO_EFFECT),
                );
                Ok(())
            }
            InstructionKind::Shell(shell) => {
                self.stage().config.shell = Some(shell.clone());
                self.push_step("SHELL", kind.to_string(), None, None);
                Ok(())
            }
            InstructionKind::Healthcheck(check) => {
                let test = match check {
                    Healthcheck::None => vec!["NONE".to_string()],
                    Healthcheck::Cmd {
                        command: Command::Exec(args),
                        ..
                    } => std::iter::once("CMD".to_string())
                        .chain(args.iter().cloned())
                        .collect(),
                    Healthcheck::Cmd {
                        command: Command::Shell(text),
                        ..
                    } => vec!["CMD-SHELL".to_string(), text.clone()],
                };
                self.stage().config.healthcheck = Some(test);
                self.push_step("HEALTHCHECK", kind.to_string(), None, Some(NO_EFFECT));
                Ok(())
            }
            InstructionKind::Onbuild(inner) => {
                let text = inner.to_string();
                self.stage().config.on_build.push(text);
                self.push_step("ONBUILD", kind.to_string(), None, Some(NO_EFFECT));
                Ok(())
            }
        }
    }

    fn workdir(&self) -> &str {
        self.stages
            .last()
            .and_then(|s| s.config.working_dir.as_deref())
            .unwrap_or("/")
    }

    fn command_value(&self, command: &Command) -> Vec<String> {
        match command {
            Command::Exec(args) => args.clone(),
            Command::Shell(text) => {
                let shell = self
                    .stages
                    .last()
                    .and_then(|s| s.config.shell.clone())
                    .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect());
                shell
                    .into_iter()
                    .chain(std::iter::once(text.clone()))
                    .collect()
            }
        }
    }

    fn take_build_arg(&mut self, name: &str) -> Option<String> {
        let value = self.build_args.get(name).cloned();
        if value.is_some() {
            self.used_build_args.insert(name.to_string());
        }
        value
    }

    fn global_arg(&mut self, decls: &[super::ast::ArgDecl]) -> Result<(), EvalError> {
        for decl in decls {
            let vars = self.global_args.clone();
            let name = self.expand_with(&decl.name, &vars)?;
            if name.is_empty() {
                return Err(self.error(EvalErrorKind::EmptyName {
                    instruction: "ARG",
                    text: decl.name.clone(),
                }));
            }
            let value = match self.take_build_arg(&name) {
                Some(v) => Some(v),
                None => match &decl.default {
                    Some(d) => Some(self.expand_with(d, &vars)?),
                    None => self.predefined.get(&name).cloned(),
                },
            };
            self.global_declared.insert(name.clone());
            match value {
                Some(v) => {
                    self.global_args.insert(name, v);
                }
                None => {
                    self.global_args.remove(&name);
                }
            }
        }
        Ok(())
    }

    fn stage_arg(&mut self, decls: &[super::ast::ArgDecl]) -> Result<(), EvalError> {
        let mut shown = Vec::new();
        for decl in decls {
            let vars = self.scope();
            let name = self.expand_with(&decl.name, &vars)?;
            if name.is_empty() {
                return Err(self.error(EvalErrorKind::EmptyName {
                    instruction: "ARG",
                    text: decl.name.clone(),
                }));
            }
            let value = match self.take_build_arg(&name) {
                Some(v) => Some(v),
                None => match &decl.default {
                    Some(d) => Some(self.expand_with(d, &vars)?),
                    None => self.global_args.get(&name).cloned(),
                },
            };
            match value {
                Some(v) => {
                    shown.push(format!("{name}={}", show_value(&v)));
                    self.stage().args.insert(name, v);
                }
                None => shown.push(name),
            }
        }
        self.push_step("ARG", format!("ARG {}", shown.join(" ")), None, None);
        Ok(())
    }

    fn from(&mut self, flags: &[Flag], image: &str, alias: Option<&str>) -> Result<(), EvalError> {
        let vars = self.global_args.clone();
        let reference = self.expand_with(image, &vars)?;
        if reference.is_empty() {
            return Err(self.error(EvalErrorKind::EmptyPath {
                instruction: "FROM",
                what: "image",
                text: image.to_string(),
            }));
        }
        let platform = match flag(flags, "platform") {
            Some(raw) => {
                let p = self.expand_with(raw, &vars)?;
                if let Err(e) = Platform::parse(&p) {
                    return Err(self.error(EvalErrorKind::BadPlatform(e)));
                }
                Some(p)
            }
            None => None,
        };
        if let Some(name) = alias
            && self.stage_index(name).is_some()
        {
            return Err(self.error(EvalErrorKind::DuplicateStage {
                name: name.to_string(),
            }));
        }
        let (base, config, inherited_env) = if reference.eq_ignore_ascii_case("scratch") {
            let config = ImageConfig {
                env: vec![format!("PATH={SCRATCH_PATH}")],
                ..ImageConfig::default()
            };
            (BaseImage::Scratch, config, Vec::new())
        } else if let Some(index) = self.stage_index(&reference) {
            let earlier = &self.stages[index];
            (
                BaseImage::Stage { index },
                earlier.config.clone(),
                earlier.inherited_env.clone(),
            )
        } else {
            let inherited = self
                .options
                .base_env
                .get(&reference)
                .cloned()
                .unwrap_or_default();
            (
                BaseImage::Image { reference },
                ImageConfig::default(),
                inherited,
            )
        };
        self.cmd_set_in_stage = false;
        self.stages.push(Stage {
            index: self.stages.len(),
            name: alias.map(str::to_string),
            line: self.line,
            base,
            platform,
            args: BTreeMap::new(),
            inherited_env,
            steps: Vec::new(),
            config,
            author: None,
        });
        Ok(())
    }

    fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    }

    fn copy(&mut self, add: bool, args: &CopyArgs) -> Result<(), EvalError> {
        let keyword = if add { "ADD" } else { "COPY" };
        let vars = self.scope();
        let opt = |me: &Self, name: &str| -> Result<Option<String>, EvalError> {
            flag(&args.flags, name)
                .map(|v| me.expand_with(v, &vars))
                .transpose()
        };
        let from = match opt(self, "from")? {
            None => CopyFrom::Context,
            Some(name) => {
                let current = self.stages.len() - 1;
                if let Some(index) = self.stage_index(&name) {
                    CopyFrom::Stage { index }
                } else if let Ok(index) = name.parse::<usize>() {
                    if index >= current {
                        return Err(self.error(EvalErrorKind::UnknownStage { name }));
                    }
                    CopyFrom::Stage { index }
                } else {
                    CopyFrom::Image { reference: name }
                }
            }
        };
        let chown = opt(self, "chown")?;
        let chmod = opt(self, "chmod")?;
        let link = args
            .flags
            .iter()
            .any(|f| f.name == "link" && f.value.as_deref() != Some("false"));
        let mut sources = Vec::new();
        let mut inline = Vec::new();
        for source in &args.sources {
            match source {
                Source::Path(raw) => {
                    let s = self.expand_with(raw, &vars)?;
                    if s.is_empty() {
                        return Err(self.error(EvalErrorKind::EmptyPath {
                            instruction: keyword,
                            what: "source",
                            text: raw.clone(),
                        }));
                    }
                    sources.push(s);
                }
                Source::HereDoc(doc) => inline.push(InlineFile {
                    name: doc.delimiter.clone(),
                    content: doc.body.clone(),
                }),
            }
        }
        let dest = self.expand_with(&args.destination, &vars)?;
        if dest.is_empty() {
            return Err(self.error(EvalErrorKind::EmptyPath {
                instruction: keyword,
                what: "destination",
                text: args.destination.clone(),
            }));
        }
        let written_as_dir =
            dest.ends_with('/') || dest == "." || dest.ends_with("/.") || dest == "..";
        let destination = resolve_path(self.workdir(), &dest);
        let several = sources.len() + inline.len() > 1;
        if several && !written_as_dir {
            return Err(self.error(EvalErrorKind::DestinationNotDirectory { destination: dest }));
        }
        let destination_is_dir = written_as_dir || several || destination == "/";
        let mut text = String::from(keyword);
        for f in &args.flags {
            let value = match f.value.as_deref() {
                Some(v) => Some(self.expand_with(v, &vars)?),
                None => None,
            };
            match value {
                Some(v) => text.push_str(&format!(" --{}={}", f.name, show_value(&v))),
                None => text.push_str(&format!(" --{}", f.name)),
            }
        }
        for s in &sources {
            text.push(' ');
            text.push_str(&show_value(s));
        }
        for doc in &inline {
            text.push_str(&format!(" <<{}", doc.name));
        }
        text.push(' ');
        text.push_str(&show_value(&dest));
        let plan = CopyPlan {
            add,
            from,
            sources,
            inline,
            destination,
            destination_is_dir,
            chown,
            chmod,
            link,
            files: Vec::new(),
            registry: None,
        };
        self.push_step(keyword, text, Some(plan), None);
        Ok(())
    }

    fn finish(self) -> Result<BuildPlan, EvalError> {
        let mut config = self
            .stages
            .last()
            .map(|s| s.config.clone())
            .unwrap_or_default();
        for (k, v) in &self.options.labels {
            config.labels.insert(k.clone(), v.clone());
        }
        for (k, v) in &self.options.env {
            config.set_env(k, v);
        }
        let unused_build_args = self
            .build_args
            .keys()
            .filter(|k| !self.used_build_args.contains(*k) && !self.predefined.contains_key(*k))
            .cloned()
            .collect();
        Ok(BuildPlan {
            platform: self.options.platform.to_string(),
            global_args: self.global_args,
            stages: self.stages,
            config,
            annotations: self.options.annotations.iter().cloned().collect(),
            unused_build_args,
        })
    }
}

fn flag<'f>(flags: &'f [Flag], name: &str) -> Option<&'f str> {
    flags
        .iter()
        .rev()
        .find(|f| f.name == name)
        .and_then(|f| f.value.as_deref())
}

/// A value for display: quoted (JSON style) when it would not read back as one plain word.
fn show_value(v: &str) -> String {
    let plain = !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '$' | '`'));
    if plain {
        v.to_string()
    } else {
        serde_json::to_string(v).unwrap_or_else(|_| v.to_string())
    }
}

fn show_pairs(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", show_value(k), show_value(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Joins `path` onto `base` when relative and removes `.`, `..` and repeated slashes; always absolute.
pub fn resolve_path(base: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{base}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}
