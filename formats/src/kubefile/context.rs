//! File-system side of Kubefiles, kept apart from the pure parser and evaluator: finding the default Kubefile
//! of a context and listing the context files each COPY/ADD takes.
//!
//! Every path of a build context is resolved by [`resolve_in_context`], as buildah and BuildKit resolve COPY
//! sources: symlinks are followed only inside the context (an absolute target starts at the context root,
//! `..` stops there), so a build never reads a host file through a symlink in the context.

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::{EvalError, EvalErrorKind, SharedError};
use super::eval::{BuildPlan, ContextFile, CopyFrom, CopyPlan, FileKind, RegistryCopy};
use crate::walk::{Walk, WalkEntry};

/// File names looked for in a build context when no `-f` is given, in order; the first found is used.
pub const DEFAULT_NAMES: [&str; 4] = ["Sealfile", "Kubefile", "Dockerfile", "Containerfile"];

/// A symlink relative to the context root, and its target.
type Link = (String, String);

/// A context path matched by a source, resolved, and its name as matched.
type Match = (String, String);

/// Symlinks followed while resolving one path before giving up (Linux's `MAXSYMLINKS`).
pub const MAX_SYMLINKS: usize = 40;

/// A path of a build context, resolved inside it by [`resolve_in_context`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextPath {
    /// Relative to the context root, `/`-separated, without `.`, `..` or empty components (empty for the root
    /// itself). No component is a symlink (a dangling one ends the resolution: see [`resolve_in_context`]).
    pub rel: String,
    /// `rel` below the root: safe to read, since no directory on the way is a symlink.
    pub path: PathBuf,
    /// The first symlink followed whose target leaves the context when read on the host (an absolute target,
    /// or `..` above the root), as (link relative to the root, target). It was resolved inside the context
    /// instead; callers name it when the path then does not exist.
    pub escaping_link: Option<(String, String)>,
}

impl ContextPath {
    /// The entry's metadata; `None` when it does not exist.
    pub fn metadata(&self) -> Option<fs::Metadata> {
        fs::symlink_metadata(&self.path).ok()
    }

    /// The error for `path` (as given) not existing: [`ContextPathError::SymlinkOutside`] when a symlink on
    /// the way leads out of the context, else `None` (it is simply missing).
    pub fn outside_error(&self, path: &str) -> Option<ContextPathError> {
        let (link, target) = self.escaping_link.clone()?;
        Some(ContextPathError::SymlinkOutside {
            path: path.to_string(),
            link,
            target,
        })
    }
}

/// Why [`resolve_in_context`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum ContextPathError {
    /// The path itself climbs above the context root with `..`.
    #[error("`{path}` is outside the build context")]
    Outside {
        /// The path as given.
        path: String,
    },
    /// More than [`MAX_SYMLINKS`] symlinks on the way: a loop.
    #[error("`{path}`: too many levels of symlinks at `{link}` (a loop?)")]
    Loop {
        /// The path as given.
        path: String,
        /// The symlink met last, relative to the root.
        link: String,
    },
    /// The path does not exist in the context because a symlink on the way leads out of it (see
    /// [`ContextPath::escaping_link`]).
    #[error(
        "`{path}` is not in the build context: `{link}` is a symlink to `{target}`, which leads out of it \
         (symlinks are followed only inside the context: an absolute target starts at the context root, `..` \
         stops there)"
    )]
    SymlinkOutside {
        /// The path as given.
        path: String,
        /// The symlink, relative to the root.
        link: String,
        /// Its target.
        target: String,
    },
    /// Looking at a component failed for another reason than its absence.
    #[error("reading `{}`: {source}", path.display())]
    Io {
        /// The component.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Resolves `path` (relative to `root`; a leading `/` is ignored) inside `root`, component by component, like
/// openat2's `RESOLVE_IN_ROOT` and buildah's and BuildKit's COPY: every symlink on the way, the last component
/// included, is followed, but only inside the root: an absolute link target starts again at the root and `..`
/// never climbs above it. A component that does not exist ends the resolution: the rest is appended as
/// written, and the caller finds the path missing. `..` of `path` itself above the root is an error.
///
/// This is the one rule for reading a build context (COPY/ADD sources and globs, `COPY --from` roots, the
/// Kubefile, `.dockerignore`, image discovery). Trees we write (stores, unpack targets) refuse symlinks
/// altogether instead.
pub fn resolve_in_context(root: &Path, path: &str) -> Result<ContextPath, ContextPathError> {
    // Each pending component remembers the symlink it came from, if any (for `..` above the root).
    let mut pending: VecDeque<(String, Option<usize>)> =
        components(path).map(|c| (c.to_string(), None)).collect();
    let mut links: Vec<(String, String)> = Vec::new();
    let mut resolved: Vec<String> = Vec::new();
    let mut escaping_link = None;
    let mut missing = false;
    while let Some((part, from_link)) = pending.pop_front() {
        if part == ".." {
            if resolved.pop().is_none() {
                let Some(link) = from_link else {
                    return Err(ContextPathError::Outside {
                        path: path.to_string(),
                    });
                };
                escaping_link.get_or_insert_with(|| links[link].clone());
            }
            continue;
        }
        resolved.push(part);
        if missing {
            continue;
        }
        let at = root.join(resolved.join("/"));
        let meta = match fs::symlink_metadata(&at) {
            Ok(meta) => meta,
            Err(e) if is_missing(&e) => {
                missing = true;
                continue;
            }
            Err(source) => return Err(ContextPathError::Io { path: at, source }),
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        let link = resolved.join("/");
        if links.len() >= MAX_SYMLINKS {
            return Err(ContextPathError::Loop {
                path: path.to_string(),
                link,
            });
        }
        let target = fs::read_link(&at)
            .map_err(|source| ContextPathError::Io {
                path: at.clone(),
                source,
            })?
            .to_string_lossy()
            .into_owned();
        resolved.pop();
        if target.starts_with('/') {
            escaping_link.get_or_insert_with(|| (link.clone(), target.clone()));
            resolved.clear();
        }
        let index = links.len();
        for c in components(&target).rev() {
            pending.push_front((c.to_string(), Some(index)));
        }
        links.push((link, target));
    }
    let rel = resolved.join("/");
    Ok(ContextPath {
        path: if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        },
        rel,
        escaping_link,
    })
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// The Kubefile of a build of `context`: `file` when given, else the first of [`DEFAULT_NAMES`] that is a file
/// in the context (unlike sealos, which concatenates all of them, only one file is used). A Kubefile inside
/// the context (`file` as written, before any symlink, is below the context) is resolved inside it like a COPY
/// source, so a symlinked Kubefile never names a host file; a `file` outside the context is used as given.
/// `Ok(None)`: no `file`, and none of the names is a file.
pub fn locate_kubefile(
    context: &Path,
    file: Option<&Path>,
) -> Result<Option<PathBuf>, ContextPathError> {
    let Some(file) = file else {
        for name in DEFAULT_NAMES {
            let found = resolve_in_context(context, name)?;
            if found.path.is_file() {
                return Ok(Some(found.path));
            }
            if let Some(e) = found.outside_error(name) {
                return Err(e);
            }
        }
        return Ok(None);
    };
    let Some(rel) = lexically_below(context, file) else {
        return Ok(Some(file.to_path_buf()));
    };
    let found = resolve_in_context(context, &rel)?;
    if found.metadata().is_none()
        && let Some(e) = found.outside_error(&file.display().to_string())
    {
        return Err(e);
    }
    Ok(Some(found.path))
}

/// `file` relative to `root` when it is below it as written (`..` and `.` folded, symlinks not followed);
/// `root` is compared both as written and canonical.
fn lexically_below(root: &Path, file: &Path) -> Option<String> {
    fn normal(path: &Path) -> Option<PathBuf> {
        let mut out = PathBuf::new();
        for c in std::path::absolute(path).ok()?.components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        Some(out)
    }
    let file = normal(file)?;
    [normal(root), fs::canonicalize(root).ok()]
        .into_iter()
        .flatten()
        .find_map(|base| {
            let rel = file.strip_prefix(&base).ok()?;
            Some(
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
            )
        })
}

/// Where the embedded registry sits in a cluster image, and the context directory sealos saves images into.
pub const EMBEDDED_REGISTRY: &str = "/registry";

/// Where a `COPY registry` to the absolute `destination` writes the embedded registry tree: the destination
/// without trailing `/` (`/` itself for the root), as buildah places a copied directory's contents.
pub fn registry_destination(destination: &str) -> String {
    match destination.trim_end_matches('/') {
        "" => "/".to_string(),
        d => d.to_string(),
    }
}

/// Whether the build embeds the context's images, which decides what `COPY registry` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedImages {
    /// Images are embedded (at [`EMBEDDED_REGISTRY`], or where `COPY registry` puts them).
    Embedded,
    /// `--save-image=false`: nothing is embedded.
    Skipped,
}

/// The image lock `sealos build` keeps in the context root. A COPY/ADD takes it only when a source names it
/// (`COPY images.lock /x`); a directory or glob source leaves it out, as if `.dockerignore` listed it.
pub const IMAGES_LOCK: &str = "images.lock";

/// The rules [`resolve_sources`] applies on top of the plain Dockerfile ones. The default is the plain rules,
/// as for the root of a stage or image a `COPY --from` reads.
#[derive(Clone, Copy, Default)]
pub struct SourceRules<'a> {
    /// `Some` for a `sealos build` context: a source `registry` (sealos runs its image saver into
    /// `CONTEXT/registry` before building) is satisfied by the embedded images. When the context's `registry`
    /// is missing, empty or holds only `.keep`/`.gitkeep`, the source is dropped and the step notes that the
    /// embedded registry (or, with [`SavedImages::Skipped`], nothing) stands for it; files really under
    /// `registry/` are copied and merged with the embedded tree. The destination decides where the embedded
    /// tree lands ([`registry_destination`]; the first such COPY decides, a later one elsewhere is an error)
    /// and the step must be in the final stage, where the embedded layers go. The context's
    /// [`IMAGES_LOCK`] is taken only by a source that names it.
    pub images: Option<SavedImages>,
    /// True for the context paths (`/`-separated, relative to the root) COPY and ADD never see: the
    /// context's `.dockerignore`.
    pub excluded: Option<&'a dyn Fn(&str) -> bool>,
    /// True for the context directories whose whole content [`SourceRules::excluded`] leaves out (no
    /// exception can re-include anything below them): a directory walk does not enter them, so a large
    /// ignored tree (`.git`, `node_modules`) costs nothing to skip. `None` walks everything and leaves paths
    /// out afterwards.
    pub skip_dir: Option<&'a dyn Fn(&str) -> bool>,
}

impl fmt::Debug for SourceRules<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceRules")
            .field("images", &self.images)
            .field("excluded", &self.excluded.is_some())
            .field("skip_dir", &self.skip_dir.is_some())
            .finish()
    }
}

/// Lists, for every COPY/ADD from the build context in `plan`, the context entries it takes (globs expanded,
/// directories walked, paths `rules` exclude left out) and where each lands. A source that matches nothing
/// or leaves the context is an error naming the Kubefile line. URLs of ADD are left for the builder to fetch.
/// This is the one resolver: `build` and `build --dry-run` both list their files here.
pub fn resolve_sources(
    plan: &mut BuildPlan,
    context: &Path,
    file: &str,
    rules: &SourceRules<'_>,
) -> Result<(), EvalError> {
    let last = plan.stages.len().saturating_sub(1);
    // The first `COPY registry` (line, destination) embedding images: it decides where they land.
    let mut first_registry: Option<(usize, String)> = None;
    for stage in &mut plan.stages {
        let stage_index = stage.index;
        for step in &mut stage.steps {
            let line = step.line;
            let Some(copy) = step.copy.as_mut() else {
                continue;
            };
            if copy.from != CopyFrom::Context {
                continue;
            }
            let err = |kind| EvalError {
                file: file.to_string(),
                line,
                kind,
            };
            let is_registry = |s: &String| clean_relative(s).is_some_and(|p| p == ["registry"]);
            let images = match rules.images {
                Some(images) if copy.sources.iter().any(is_registry) => images,
                _ => {
                    copy.files = files_for(copy, context, rules.skip_dir).map_err(err)?;
                    finish(copy, rules);
                    continue;
                }
            };
            let placeholder = registry_is_placeholder(context).map_err(err)?;
            let kind = match (images, placeholder) {
                (SavedImages::Skipped, false) => {
                    copy.files = files_for(copy, context, rules.skip_dir).map_err(err)?;
                    finish(copy, rules);
                    continue;
                }
                (SavedImages::Skipped, true) => RegistryCopy::Skipped,
                (SavedImages::Embedded, true) => RegistryCopy::Embedded,
                (SavedImages::Embedded, false) => RegistryCopy::Merged,
            };
            let landed = registry_destination(&copy.destination);
            if kind != RegistryCopy::Skipped {
                if let Some((first_line, first)) = &first_registry
                    && *first != landed
                {
                    return Err(err(EvalErrorKind::RegistryDestination {
                        first_line: *first_line,
                        first: first.clone(),
                        destination: landed,
                    }));
                }
                first_registry.get_or_insert((line, landed.clone()));
                if stage_index != last {
                    return Err(err(EvalErrorKind::RegistryNotFinalStage {
                        stage: stage_index,
                    }));
                }
            }
            copy.files = if placeholder {
                let mut rest = copy.clone();
                rest.sources.retain(|s| !is_registry(s));
                files_for(&rest, context, rules.skip_dir).map_err(err)?
            } else {
                files_for(copy, context, rules.skip_dir).map_err(err)?
            };
            finish(copy, rules);
            copy.registry = Some(kind);
            step.note = Some(match kind {
                RegistryCopy::Embedded => format!(
                    "registry: the embedded images, written at {landed} (one layer per image, plus one of the blobs several images share)"
                ),
                RegistryCopy::Merged => format!(
                    "registry: the context's registry/ files, merged with the embedded images at {landed}"
                ),
                RegistryCopy::Skipped => {
                    "registry: skipped, --save-image=false embeds no images".to_string()
                }
            });
        }
    }
    Ok(())
}

/// Leaves out of a context copy's files what `rules` exclude: `.dockerignore`d paths, and (in a `sealos
/// build` context) [`IMAGES_LOCK`] unless a source names it.
fn finish(copy: &mut CopyPlan, rules: &SourceRules<'_>) {
    let names_lock = |s: &String| clean_relative(s).is_some_and(|p| p == [IMAGES_LOCK]);
    if rules.images.is_some() && !copy.sources.iter().any(names_lock) {
        copy.files.retain(|f| f.path != IMAGES_LOCK);
    }
    if let Some(excluded) = rules.excluded {
        copy.files.retain(|f| !excluded(&f.path));
    }
}

/// True when the context's `registry` is missing, an empty directory, or holds only `.keep`/`.gitkeep`.
fn registry_is_placeholder(context: &Path) -> Result<bool, EvalErrorKind> {
    let found = resolve_in_context(context, "registry").map_err(|e| EvalErrorKind::Io {
        path: context.join("registry").display().to_string(),
        source: SharedError::new(e),
    })?;
    let Some(meta) = found.metadata() else {
        // A symlink leading out of the context is reported by the ordinary source rule.
        return Ok(found.outside_error("registry").is_none());
    };
    if !meta.is_dir() {
        return Ok(false);
    }
    for e in Walk::children(&found.path) {
        let e = e.map_err(|e| io_error(&e.path, e.source))?;
        let name = e.file_name();
        let is_keep = (name == ".keep" || name == ".gitkeep") && e.file_type().is_file();
        if !is_keep {
            return Ok(false);
        }
    }
    Ok(true)
}

fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://") || source.starts_with("git@")
}

fn files_for(
    copy: &CopyPlan,
    context: &Path,
    skip_dir: Option<&dyn Fn(&str) -> bool>,
) -> Result<Vec<ContextFile>, EvalErrorKind> {
    let mut files = Vec::new();
    let several = copy.destination_is_dir;
    for source in &copy.sources {
        if copy.add && is_url(source) {
            continue;
        }
        let Some(parts) = clean_relative(source) else {
            return Err(EvalErrorKind::OutsideContext {
                source_path: source.clone(),
            });
        };
        let (matches, escaping_link) = glob(context, &parts)?;
        if matches.is_empty() {
            return Err(match escaping_link {
                Some((link, target)) => EvalErrorKind::SymlinkOutsideContext {
                    source_path: source.clone(),
                    link,
                    target,
                },
                None => EvalErrorKind::SourceNotFound {
                    source_path: source.clone(),
                    context: context.display().to_string(),
                },
            });
        }
        let into_dir = several || matches.len() > 1;
        for (rel, name) in matches {
            let path = if rel.is_empty() {
                context.to_path_buf()
            } else {
                context.join(&rel)
            };
            let meta = fs::symlink_metadata(&path).map_err(|e| io_error(&path, e))?;
            if meta.is_dir() {
                walk(context, &rel, &copy.destination, skip_dir, &mut files)?;
            } else {
                let destination = if into_dir {
                    join(&copy.destination, &name)
                } else {
                    copy.destination.clone()
                };
                files.push(entry(&rel, destination, &meta));
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path).then(a.destination.cmp(&b.destination)));
    files.dedup();
    Ok(files)
}

fn io_error(path: &Path, e: std::io::Error) -> EvalErrorKind {
    EvalErrorKind::Io {
        path: path.display().to_string(),
        source: SharedError::new(e),
    }
}

fn entry(rel: &str, destination: String, meta: &fs::Metadata) -> ContextFile {
    let kind = if meta.file_type().is_symlink() {
        FileKind::Symlink
    } else if meta.is_dir() {
        FileKind::Dir
    } else {
        FileKind::File
    };
    ContextFile {
        path: if rel.is_empty() {
            ".".to_string()
        } else {
            rel.to_string()
        },
        destination,
        kind,
        size: if kind == FileKind::File {
            meta.len()
        } else {
            0
        },
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The contents of directory `rel` go into `destination` (the directory itself is not recreated). Directories
/// `skip_dir` names are not entered (nor listed): nothing below them can be copied.
fn walk(
    context: &Path,
    rel: &str,
    destination: &str,
    skip_dir: Option<&dyn Fn(&str) -> bool>,
    out: &mut Vec<ContextFile>,
) -> Result<(), EvalErrorKind> {
    let dir = if rel.is_empty() {
        context.to_path_buf()
    } else {
        context.join(rel)
    };
    let context_rel = |e: &WalkEntry| join_rel(rel, &e.rel_string());
    let skipped = |e: &WalkEntry| {
        skip_dir.is_some_and(|skip| e.file_type().is_dir() && skip(&context_rel(e)))
    };
    for e in Walk::new(&dir).sorted().min_depth(1).skipping(skipped) {
        let e = e.map_err(|e| io_error(&e.path, e.source))?;
        let meta = e.metadata().map_err(|e| io_error(&e.path, e.source))?;
        out.push(entry(
            &context_rel(&e),
            join(destination, &e.rel_string()),
            &meta,
        ));
    }
    Ok(())
}

/// Splits a source into clean components relative to the context root; `None` when it climbs out.
fn clean_relative(source: &str) -> Option<Vec<String>> {
    let mut parts: Vec<String> = Vec::new();
    for part in source.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p.to_string()),
        }
    }
    Some(parts)
}

fn has_glob(part: &str) -> bool {
    part.contains(['*', '?', '['])
}

/// Context paths matching the source components (a component may be a pattern), each resolved inside the
/// context ([`resolve_in_context`]: a symlink matched or on the way is followed, inside the context only, as
/// buildah does) and paired with its name as matched (a file copied into a directory keeps the name of the
/// link that led to it); with the first symlink met that leads out of the context, to explain an empty result.
fn glob(context: &Path, parts: &[String]) -> Result<(Vec<Match>, Option<Link>), EvalErrorKind> {
    let mut escaping_link = None;
    let mut current = vec![(String::new(), String::new())];
    for part in parts {
        let mut next = Vec::new();
        for (base, _) in &current {
            let candidates = if has_glob(part) {
                let dir = if base.is_empty() {
                    context.to_path_buf()
                } else {
                    context.join(base)
                };
                // `base` was resolved: a directory here is a real one inside the context.
                if !fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                    continue;
                }
                let mut names = Vec::new();
                for e in Walk::children(&dir).sorted() {
                    let e = e.map_err(|e| io_error(&e.path, e.source))?;
                    let name = e.file_name().to_string_lossy();
                    if glob_match(part, &name) {
                        names.push(join_rel(base, &name));
                    }
                }
                names.sort();
                names
            } else {
                vec![join_rel(base, part)]
            };
            for candidate in candidates {
                let found =
                    resolve_in_context(context, &candidate).map_err(|e| EvalErrorKind::Io {
                        path: candidate.clone(),
                        source: SharedError::new(e),
                    })?;
                if found.metadata().is_some() {
                    let name = candidate.rsplit('/').next().unwrap_or_default().to_string();
                    next.push((found.rel, name));
                } else if escaping_link.is_none() {
                    escaping_link = found.escaping_link;
                }
            }
        }
        current = next;
    }
    Ok((current, escaping_link))
}

fn join_rel(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}/{name}")
    }
}

/// Shell-style matching of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!a]` / `[^a]`, `\x`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => class_at(&p[pi..], n[ni]),
            Some('\\') => (p.get(pi + 1) == Some(&n[ni])).then_some(2),
            Some(c) => (*c == n[ni]).then_some(1),
            None => None,
        };
        match step {
            Some(len) => {
                pi += len;
                ni += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the class starting at `p[0] == '['`; returns the class length when it matches.
fn class_at(p: &[char], c: char) -> Option<usize> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            break;
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|hi| *hi != ']') {
            let hi = p[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    (matched != negate).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_questions_and_classes() {
        assert!(glob_match("*.yaml", "a.yaml"));
        assert!(!glob_match("*.yaml", "a.yml"));
        assert!(glob_match("tool-?", "tool-1"));
        assert!(glob_match("[ab]*", "bin"));
        assert!(!glob_match("[!ab]*", "bin"));
        assert!(glob_match("v[0-9].*", "v1.x"));
        assert!(!glob_match("[", "["));
        assert!(glob_match("a\\*", "a*"));
    }

    use std::os::unix::fs::symlink;

    /// A context `ctx/` inside a sandbox that also holds `host/secret` and `host/dir/secret`, outside it.
    fn sandbox() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        fs::create_dir_all(ctx.join("sub/deeper")).unwrap();
        fs::write(ctx.join("sub/file"), "inside").unwrap();
        fs::create_dir_all(dir.path().join("host/dir")).unwrap();
        fs::write(dir.path().join("host/secret"), "host").unwrap();
        fs::write(dir.path().join("host/dir/secret"), "host").unwrap();
        (dir, ctx)
    }

    fn resolved(ctx: &Path, path: &str) -> (String, bool, Option<(String, String)>) {
        let r = resolve_in_context(ctx, path).unwrap();
        let exists = r.metadata().is_some();
        (r.rel, exists, r.escaping_link)
    }

    #[test]
    fn symlinks_inside_the_context_are_followed_inside_it() {
        let (_dir, ctx) = sandbox();
        symlink("sub", ctx.join("rel")).unwrap();
        symlink("/sub", ctx.join("abs")).unwrap();
        symlink("rel/deeper/../file", ctx.join("chain")).unwrap();
        symlink("chain", ctx.join("chain2")).unwrap();
        assert_eq!(resolved(&ctx, "rel/file"), ("sub/file".into(), true, None));
        assert_eq!(resolved(&ctx, "chain2"), ("sub/file".into(), true, None));
        // An absolute target starts at the context root: allowed, but remembered.
        assert_eq!(
            resolved(&ctx, "abs/file"),
            ("sub/file".into(), true, Some(("abs".into(), "/sub".into())))
        );
    }

    #[test]
    fn symlinks_leading_out_of_the_context_stay_inside_it() {
        let (dir, ctx) = sandbox();
        let host = dir.path().join("host");
        symlink(&host, ctx.join("abs")).unwrap();
        symlink("../host", ctx.join("up")).unwrap();
        symlink("sub/deeper/../../../../host/dir", ctx.join("deep")).unwrap();
        symlink("up", ctx.join("hop")).unwrap();
        for (path, link, target) in [
            ("abs/secret", "abs", host.display().to_string()),
            ("up/secret", "up", "../host".to_string()),
            (
                "deep/secret",
                "deep",
                "sub/deeper/../../../../host/dir".to_string(),
            ),
            ("hop/secret", "up", "../host".to_string()),
        ] {
            let r = resolve_in_context(&ctx, path).unwrap();
            assert!(r.path.starts_with(&ctx), "{path}: {r:?}");
            assert!(r.metadata().is_none(), "{path} was found: {r:?}");
            assert_eq!(r.escaping_link, Some((link.to_string(), target)), "{path}");
            assert!(
                r.outside_error(path)
                    .unwrap()
                    .to_string()
                    .starts_with(&format!(
                        "`{path}` is not in the build context: `{link}` is a symlink"
                    )),
                "{path}"
            );
        }
        // `..` of the path itself above the root is refused outright.
        assert!(matches!(
            resolve_in_context(&ctx, "sub/../../host/secret"),
            Err(ContextPathError::Outside { .. })
        ));
    }

    #[test]
    fn a_symlink_loop_is_an_error_not_a_hang() {
        let (_dir, ctx) = sandbox();
        symlink("b", ctx.join("a")).unwrap();
        symlink("a", ctx.join("b")).unwrap();
        assert!(matches!(
            resolve_in_context(&ctx, "a/x"),
            Err(ContextPathError::Loop { .. })
        ));
        // A missing component ends resolution: the rest is kept as written.
        assert_eq!(resolved(&ctx, "nothing/../sub"), ("sub".into(), true, None));
    }

    #[test]
    fn a_symlinked_kubefile_is_read_inside_the_context_only() {
        let (dir, ctx) = sandbox();
        symlink(dir.path().join("host/secret"), ctx.join("Kubefile")).unwrap();
        let err = locate_kubefile(&ctx, None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`Kubefile` is not in the build context: `Kubefile` is a symlink to"),
            "{err}"
        );
        let given = ctx.join("Kubefile");
        let err = locate_kubefile(&ctx, Some(&given)).unwrap_err();
        assert!(
            matches!(err, ContextPathError::SymlinkOutside { .. }),
            "{err}"
        );
        // Through a symlinked directory of the context, too.
        symlink(dir.path().join("host"), ctx.join("d")).unwrap();
        let given = ctx.join("sub/../d/secret");
        assert!(locate_kubefile(&ctx, Some(&given)).is_err());
        // Inside: the resolved file; outside the context: as given.
        fs::write(ctx.join("sub/Kubefile.real"), "FROM scratch\n").unwrap();
        symlink("sub/Kubefile.real", ctx.join("Dockerfile")).unwrap();
        fs::remove_file(ctx.join("Kubefile")).unwrap();
        assert_eq!(
            locate_kubefile(&ctx, None).unwrap(),
            Some(ctx.join("sub/Kubefile.real"))
        );
        let outside = dir.path().join("host/secret");
        assert_eq!(
            locate_kubefile(&ctx, Some(&outside)).unwrap(),
            Some(outside)
        );
    }

    #[test]
    fn sources_climbing_out_of_the_context_are_refused() {
        assert_eq!(clean_relative("../etc"), None);
        assert_eq!(clean_relative("a/../../b"), None);
        assert_eq!(
            clean_relative("/abs/./x/"),
            Some(vec!["abs".to_string(), "x".to_string()])
        );
    }

    #[test]
    fn source_rules_exclude_paths_and_keep_the_lock_only_in_sealos_contexts() {
        let (_dir, ctx) = sandbox();
        fs::write(ctx.join(IMAGES_LOCK), "lock").unwrap();
        fs::write(ctx.join("secret.txt"), "password").unwrap();
        let kubefile = crate::kubefile::parse("FROM scratch\nCOPY . /app/\n").unwrap();
        let options = crate::kubefile::EvalOptions::default();
        let files = |rules: &SourceRules<'_>| {
            let mut plan = crate::kubefile::evaluate(&kubefile, &options).unwrap();
            resolve_sources(&mut plan, &ctx, "Kubefile", rules).unwrap();
            let copy = plan.stages[0].steps[0].copy.take().unwrap();
            copy.files.into_iter().map(|f| f.path).collect::<Vec<_>>()
        };
        assert_eq!(
            files(&SourceRules::default()),
            [IMAGES_LOCK, "secret.txt", "sub", "sub/deeper", "sub/file"]
        );
        let secret = |rel: &str| rel == "secret.txt";
        let rules = SourceRules {
            images: Some(SavedImages::Embedded),
            excluded: Some(&secret),
            skip_dir: None,
        };
        assert_eq!(files(&rules), ["sub", "sub/deeper", "sub/file"]);
    }

    #[test]
    fn skipped_directories_are_not_walked() {
        let (_dir, ctx) = sandbox();
        fs::create_dir_all(ctx.join("sub/deeper/deepest")).unwrap();
        fs::write(ctx.join("sub/deeper/deepest/x"), "x").unwrap();
        let kubefile = crate::kubefile::parse("FROM scratch\nCOPY . /app/\n").unwrap();
        let mut plan =
            crate::kubefile::evaluate(&kubefile, &crate::kubefile::EvalOptions::default()).unwrap();
        let asked = std::cell::RefCell::new(Vec::new());
        let excluded = |rel: &str| rel == "sub/deeper" || rel.starts_with("sub/deeper/");
        let skip_dir = |rel: &str| {
            asked.borrow_mut().push(rel.to_string());
            rel == "sub/deeper"
        };
        let rules = SourceRules {
            images: None,
            excluded: Some(&excluded),
            skip_dir: Some(&skip_dir),
        };
        resolve_sources(&mut plan, &ctx, "Kubefile", &rules).unwrap();
        let copy = plan.stages[0].steps[0].copy.take().unwrap();
        let files: Vec<_> = copy
            .files
            .into_iter()
            .map(|f| (f.path, f.destination))
            .collect();
        assert_eq!(
            files,
            [
                ("sub".to_string(), "/app/sub".to_string()),
                ("sub/file".to_string(), "/app/sub/file".to_string())
            ]
        );
        // Only directories are asked about, and nothing below the skipped one.
        assert_eq!(*asked.borrow(), ["sub", "sub/deeper"]);
    }
}
