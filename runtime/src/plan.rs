//! The ordered command plan of a `run`: the rootfs images' label scripts (check, the embedded registry,
//! init-registry, init-cri, init), then each image's own commands, each step with the hosts it runs on,
//! its working directory and its env.
//!
//! A step becomes a script only for a given host ([`Step::script`]): the step's env overridden by the
//! host's is exported with every value shell-quoted, and each variable reference in the command
//! (`$(VAR)`, `${VAR}`, `$VAR`) becomes the shell parameter `${VAR}`. An undefined variable is an error,
//! never command substitution, and a value such as `$(touch /tmp/pwned)` is never parsed as shell code:
//! the shell expands parameters once and does not run what they contain.

use std::fmt;
use std::path::Path;

use crate::env::{Env, ExpandError, expand, prepend_path_script, shell_quote};
use crate::image::{ClusterImage, ImageKind};

/// Label scripts run before the images' commands, in this order, with where they run.
pub const INIT_STEPS: [(&str, Target); 3] = [
    ("init-registry", Target::FirstMaster),
    ("init-cri", Target::AllHosts),
    ("init", Target::AllHosts),
];
/// The label script run first, on every host.
pub const CHECK_STEP: &str = "check";
/// Label scripts `reset` runs, in this order, with where they run.
pub const CLEAN_STEPS: [(&str, Target); 3] = [
    ("clean", Target::AllHosts),
    ("clean-registry", Target::FirstMaster),
    ("clean-cri", Target::AllHosts),
];
/// The step name of the embedded registry.
pub const REGISTRY_STEP: &str = "registry";
/// The step name of an image's own commands.
pub const CMD_STEP: &str = "cmd";

/// Which hosts a step runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every host, in parallel.
    AllHosts,
    /// The first master only.
    FirstMaster,
}

/// What a step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A command from an image (its CMD, `--cmd` or a label): variables are expanded.
    Image(String),
    /// A script of the runtime's own, run as written (no expansion).
    Builtin(String),
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The image the step belongs to.
    pub image: String,
    /// The step's name (`check`, `registry`, `init-registry`, `init-cri`, `init`, `cmd`, `clean`...).
    pub name: String,
    /// Where it runs.
    pub target: Target,
    /// The working directory on the host.
    pub workdir: String,
    /// What it runs.
    pub action: Action,
    /// The env of the image (image ENV overridden by `-e`), before per-host values.
    pub env: Env,
}

/// Why a step cannot become a script.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A command uses a variable nobody defined, or a `$(...)`/`${...}` that is not a variable reference (the
    /// message of [`ExpandError`] says which, with the fix).
    #[error("image `{image}`, step {step}: {undefined}")]
    Undefined {
        /// The image.
        image: String,
        /// The step.
        step: String,
        /// The variable and the command it appears in.
        undefined: ExpandError,
    },
    /// An env name cannot be exported by a shell.
    #[error(
        "env name `{name}` is not a valid shell variable name (letters, digits and `_`, not starting with a digit)"
    )]
    BadName {
        /// The name.
        name: String,
    },
}

/// Whether `name` can be a shell variable.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Step {
    /// The command after expansion: every `$(VAR)`, `${VAR}`, `$VAR` defined by the step's env (overridden
    /// by `host_env`) becomes `${VAR}`; `$$` becomes `$`; an undefined variable is an error.
    pub fn command(&self, host_env: &Env) -> Result<String, PlanError> {
        match &self.action {
            Action::Builtin(script) => Ok(script.clone()),
            Action::Image(command) => {
                // Each reference becomes a shell parameter expansion of the exported (quoted) variable:
                // the shell splits words as text substitution would, but never parses a value as code.
                let references: Env = self
                    .merged_env(host_env)
                    .into_keys()
                    .map(|k| {
                        let reference = format!("${{{k}}}");
                        (k, reference)
                    })
                    .collect();
                expand(command, &references).map_err(|undefined| PlanError::Undefined {
                    image: self.image.clone(),
                    step: self.name.clone(),
                    undefined,
                })
            }
        }
    }

    fn merged_env(&self, host_env: &Env) -> Env {
        let mut env = self.env.clone();
        env.extend(host_env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    /// The whole bash script for a host: the env exported (quoted), `cd` to the working directory, the
    /// command.
    pub fn script(&self, host_env: &Env) -> Result<String, PlanError> {
        let command = self.command(host_env)?;
        let mut script = String::new();
        if let Action::Image(_) = self.action {
            let mut path = None;
            for (k, v) in self.merged_env(host_env) {
                if !is_env_name(&k) {
                    return Err(PlanError::BadName { name: k });
                }
                if k == "PATH" {
                    path = Some(v);
                    continue;
                }
                script.push_str(&format!("export {k}={}\n", shell_quote(&v)));
            }
            // The host's PATH stays in force: the image's directories it lacks go in front.
            if let Some(path) = path {
                script.push_str(&prepend_path_script(&path));
            }
        }
        script.push_str(&format!("cd {} || exit 1\n", shell_quote(&self.workdir)));
        script.push_str(&command);
        script.push('\n');
        Ok(script)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match self.target {
            Target::AllHosts => "all hosts",
            Target::FirstMaster => "first master",
        };
        match &self.action {
            Action::Image(command) => write!(
                f,
                "[{}] {} on {target} in {}: {command}",
                self.name, self.image, self.workdir
            ),
            // A built-in step runs no command, so it has no working directory to name.
            Action::Builtin(_) => {
                write!(f, "[{}] {} on {target} (built-in)", self.name, self.image)
            }
        }
    }
}

/// An image as the plan sees it: where it was unpacked here and where it lives on the hosts.
#[derive(Debug, Clone)]
pub struct PlannedImage {
    /// The image.
    pub image: ClusterImage,
    /// Its unpacked (and rendered) tree on this machine.
    pub local_dir: std::path::PathBuf,
    /// Its directory on the hosts: the rootfs, or its own application directory.
    pub host_dir: String,
    /// Its env: image ENV overridden by `-e`.
    pub env: Env,
    /// Its commands (ENTRYPOINT + CMD, or `--cmd`).
    pub commands: Vec<String>,
}

/// The command a label step runs for `image` (unpacked at `local_dir`): `bash <label value>` when the
/// label is set, `bash <step>.sh` when `scripts/<step>.sh` exists, else nothing.
pub fn label_command(image: &ClusterImage, local_dir: &Path, step: &str) -> Option<String> {
    match image.labels.get(step) {
        Some(value) if !value.trim().is_empty() => Some(format!("bash {}", value.trim())),
        Some(_) => None,
        None => local_dir
            .join("scripts")
            .join(format!("{step}.sh"))
            .is_file()
            .then(|| format!("bash {step}.sh")),
    }
}

/// The steps for `images` (in the order given): rootfs label scripts, then `registry` (when
/// `serve_registry` is given), then each image's commands.
pub fn build(images: &[PlannedImage], serve_registry: Option<Step>) -> Vec<Step> {
    let rootfs: Vec<&PlannedImage> = images
        .iter()
        .filter(|i| i.image.kind == ImageKind::Rootfs)
        .collect();
    let label_steps = |name: &str, target: Target| -> Vec<Step> {
        rootfs
            .iter()
            .filter_map(|i| {
                label_command(&i.image, &i.local_dir, name).map(|command| Step {
                    image: i.image.name.clone(),
                    name: name.to_string(),
                    target,
                    workdir: format!("{}/scripts", i.host_dir),
                    action: Action::Image(command),
                    env: i.env.clone(),
                })
            })
            .collect()
    };
    let mut steps = label_steps(CHECK_STEP, Target::AllHosts);
    steps.extend(serve_registry);
    for (name, target) in INIT_STEPS {
        steps.extend(label_steps(name, target));
    }
    for i in images {
        let target = match i.image.kind {
            ImageKind::Patch => Target::AllHosts,
            ImageKind::Rootfs | ImageKind::Application => Target::FirstMaster,
        };
        steps.extend(i.commands.iter().map(|c| Step {
            image: i.image.name.clone(),
            name: CMD_STEP.to_string(),
            target,
            workdir: i.host_dir.clone(),
            action: Action::Image(c.clone()),
            env: i.env.clone(),
        }));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn step(command: &str, env: &[(&str, &str)]) -> Step {
        Step {
            image: "app".into(),
            name: CMD_STEP.into(),
            target: Target::FirstMaster,
            workdir: "/data/it's here".into(),
            action: Action::Image(command.into()),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_script_exports_every_value_quoted_and_enters_the_workdir() {
        let s = step("echo hi", &[("A", "$(touch /tmp/pwned)"), ("B", "it's")]);
        let script = s.script(&BTreeMap::new()).unwrap();
        assert!(script.contains(&format!(
            "export A={}\n",
            shell_quote("$(touch /tmp/pwned)")
        )));
        assert!(script.contains(&format!("export B={}\n", shell_quote("it's"))));
        assert!(script.contains(&format!(
            "cd {} || exit 1\n",
            shell_quote("/data/it's here")
        )));
        assert!(script.ends_with("echo hi\n"));
    }

    #[test]
    fn an_image_path_is_prepended_to_the_host_path_not_exported_as_is() {
        let s = step("true", &[("PATH", "/opt/bin")]);
        let script = s.script(&BTreeMap::new()).unwrap();
        assert!(!script.contains("export PATH="), "{script}");
        assert!(
            script.contains(&prepend_path_script("/opt/bin")),
            "{script}"
        );
    }

    #[test]
    fn host_env_overrides_the_step_env() {
        let s = step("true", &[("A", "image")]);
        let host = BTreeMap::from([("A".to_string(), "host".to_string())]);
        let script = s.script(&host).unwrap();
        assert!(script.contains(&format!("export A={}", shell_quote("host"))));
        assert!(!script.contains(&shell_quote("image")));
    }

    #[test]
    fn an_env_name_a_shell_cannot_export_is_refused() {
        let s = step("true", &[("A-B", "x")]);
        let err = s.script(&BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("`A-B`"), "{err}");
    }

    #[test]
    fn builtin_steps_are_not_expanded_and_export_nothing() {
        let mut s = step("", &[("A", "x")]);
        s.action = Action::Builtin("echo $HOME".into());
        let script = s.script(&BTreeMap::new()).unwrap();
        assert!(script.ends_with("echo $HOME\n"));
        assert!(!script.contains("export"));
    }

    #[test]
    fn every_reference_form_becomes_a_shell_parameter_and_a_double_dollar_a_dollar() {
        let s = step(
            "echo $(A) ${B} $C $$HOME",
            &[("A", "1"), ("B", "2"), ("C", "3")],
        );
        assert_eq!(
            s.command(&BTreeMap::new()).unwrap(),
            "echo ${A} ${B} ${C} $HOME"
        );
    }

    #[test]
    fn an_undefined_variable_names_itself_its_command_and_the_fix() {
        let s = step("helm install $(NAME)", &[]);
        let message = s.command(&BTreeMap::new()).unwrap_err().to_string();
        assert!(message.contains("`NAME`"), "{message}");
        assert!(message.contains("helm install $(NAME)"), "{message}");
        assert!(message.contains("-e NAME=VALUE"), "{message}");
    }

    #[test]
    fn command_substitution_in_a_command_is_refused_as_such_never_as_a_variable_to_define() {
        let s = step("echo $(touch /tmp/pwned)", &[]);
        let message = s.command(&BTreeMap::new()).unwrap_err().to_string();
        assert!(
            message.starts_with(
                "image `app`, step cmd: `$(touch /tmp/pwned)` in `echo $(touch /tmp/pwned)` is shell command \
                 substitution, not a variable, and is not run: write `$$(touch /tmp/pwned)`"
            ),
            "{message}"
        );
        assert!(!message.contains("-e $("), "{message}");
    }

    #[test]
    fn an_escaped_command_substitution_is_handed_to_the_shell_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = step("printf %s $$(echo ran) > out", &[]);
        s.workdir = dir.path().to_string_lossy().into_owned();
        assert_eq!(
            s.command(&BTreeMap::new()).unwrap(),
            "printf %s $(echo ran) > out"
        );
        let script = s.script(&BTreeMap::new()).unwrap();
        let status = std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out")).unwrap(),
            "ran"
        );
    }

    #[test]
    fn a_value_with_command_substitution_reaches_bash_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let pwned = dir.path().join("pwned");
        let value = format!("$(touch {}) `touch {}`", pwned.display(), pwned.display());
        let mut s = step("printf %s \"$(V)\" > out", &[("V", value.as_str())]);
        s.workdir = dir.path().to_string_lossy().into_owned();
        let script = s.script(&BTreeMap::new()).unwrap();
        let status = std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out")).unwrap(),
            value
        );
        assert!(!pwned.exists(), "the value was run as a command");
    }
}
