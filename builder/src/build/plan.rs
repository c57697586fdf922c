//! Planning a build for one platform: the one function both `sealos build` and `sealos build --dry-run`
//! call, so the plan printed is the plan executed. It evaluates the Kubefile with the build's options and
//! the base images' ENV ([`super::evaluate_with_base_env`]) and lists every context COPY/ADD's files with
//! the sealos rules (`registry`, `images.lock`) and the context's `.dockerignore`.

use std::path::Path;

use formats::kubefile::{BuildPlan, Kubefile, SavedImages, SourceRules, resolve_sources};
use formats::manifest::Platform;

use super::ignore::IgnoreRules;
use super::{BaseEnvLookup, BuildError, BuildOptions, eval_options, evaluate_with_base_env};

/// The plan `opts` give for `platform`: `kubefile` (read from the file named `file`) evaluated with the
/// build args, labels, ENV and annotations of `opts` and the ENV of its base images (`lookup`, see
/// [`evaluate_with_base_env`]), then every COPY/ADD from `context` resolved to the files it takes, with
/// `opts.embed.save_image` deciding a `registry` source and `ignore` (the context's `.dockerignore`) leaving
/// paths out. Errors name `file` and the line.
pub fn plan_platform(
    opts: &BuildOptions,
    kubefile: &Kubefile,
    file: &str,
    context: &Path,
    platform: &Platform,
    ignore: &IgnoreRules,
    lookup: &mut BaseEnvLookup<'_>,
) -> Result<BuildPlan, BuildError> {
    let mut plan = evaluate_with_base_env(kubefile, eval_options(opts, file, platform), lookup)?;
    let excluded = |rel: &str| ignore.is_excluded(rel);
    let skip_dir = |rel: &str| ignore.excludes_all_below(rel);
    let rules = SourceRules {
        images: Some(if opts.embed.save_image {
            SavedImages::Embedded
        } else {
            SavedImages::Skipped
        }),
        excluded: (!ignore.is_empty()).then_some(&excluded as &dyn Fn(&str) -> bool),
        skip_dir: (!ignore.is_empty()).then_some(&skip_dir as &dyn Fn(&str) -> bool),
    };
    resolve_sources(&mut plan, context, file, &rules)?;
    Ok(plan)
}
