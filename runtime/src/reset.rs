//! `sealos reset`: run the applied rootfs images' clean scripts (`clean`, `clean-registry`, `clean-cri`)
//! on their hosts, stop the embedded registry, remove `<data-dir>/<cluster>` from every host and forget
//! the cluster (its Clusterfile directory).

use std::fs;

use crate::clusterfile::{Clusterfile, pairs_to_env};
use crate::env::shell_quote;
use crate::image::ImageKind;
use crate::plan::{Action, CLEAN_STEPS, Step, Target};
use crate::run::{ClusterPaths, Reporter, RunError, SshLogin, hosts_of, stop_registry_step};

/// Everything `sealos reset` is told.
#[derive(Debug, Clone)]
pub struct ResetOptions {
    /// The cluster; `data_dir` is used only when the Clusterfile does not record one (a different one given
    /// is an error, see [`ClusterPaths::with_recorded_data_dir`]).
    pub paths: ClusterPaths,
    /// SSH login overrides (`-p`, `-i`, `--user`, `--port`).
    pub ssh: SshLogin,
    /// Go on removing files when a clean script fails.
    pub force: bool,
}

/// What a reset did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetReport {
    /// The hosts cleaned.
    pub hosts: Vec<String>,
    /// Clean steps run.
    pub steps: usize,
    /// Clean steps that failed but were passed over (`--force`).
    pub failed: Vec<String>,
}

/// Resets the cluster; see the module docs.
pub fn reset(opts: &ResetOptions, reporter: &Reporter<'_>) -> Result<ResetReport, RunError> {
    let path = opts.paths.clusterfile();
    let Some(file) = Clusterfile::load(&path)? else {
        return Err(RunError::Usage(format!(
            "cluster `{}` not found: no `{}`",
            opts.paths.cluster,
            path.display()
        )));
    };
    let paths = opts.paths.with_recorded_data_dir(&file)?;
    let hosts = hosts_of(&file, &paths, &opts.ssh)?;
    let mut report = ResetReport {
        hosts: hosts.names(),
        ..ResetReport::default()
    };
    let rootfs_images: Vec<_> = file
        .status
        .images
        .iter()
        .rev()
        .filter(|i| i.kind == ImageKind::Rootfs)
        .collect();
    let mut steps = Vec::new();
    for (name, target) in CLEAN_STEPS {
        for image in &rootfs_images {
            if let Some(command) = image.clean.get(name) {
                steps.push(Step {
                    image: image.name.clone(),
                    name: name.to_string(),
                    target,
                    workdir: format!("{}/scripts", image.directory),
                    action: Action::Image(command.clone()),
                    env: pairs_to_env(&image.env),
                });
            }
        }
    }
    for step in &steps {
        match hosts.run_step(step, reporter) {
            Ok(()) => report.steps += 1,
            Err(e) if opts.force => report.failed.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    hosts.run_step(&stop_registry_step(&paths), reporter)?;
    let data = paths.cluster_data();
    let remove = Step {
        // Named with its directory: the step's own `in /` is only where its command starts.
        image: format!("cluster data {}", data.display()),
        name: "remove".into(),
        target: Target::AllHosts,
        workdir: "/".into(),
        action: Action::Builtin(format!("rm -rf {}", shell_quote(&data.to_string_lossy()))),
        env: Default::default(),
    };
    hosts.run_step(&remove, reporter)?;
    let staging = paths.staging();
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|source| RunError::Io {
            op: "remove staging directory",
            path: staging.clone(),
            source,
        })?;
    }
    let dir = paths.cluster_dir();
    fs::remove_dir_all(&dir).map_err(|source| RunError::Io {
        op: "remove cluster directory",
        path: dir.clone(),
        source,
    })?;
    Ok(report)
}
