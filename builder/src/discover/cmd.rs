//! The Kubefile's CMD read as `sealos run` will run it: each element's `$(VAR)`, `${VAR}` and `$VAR` are
//! expanded from the image's final ENV (and `--env`) by the runtime's own rule ([`formats::cmdenv::expand`]),
//! then split into shell commands. `helm install|upgrade|template` commands give the values a chart is
//! installed with; scripts the CMD runs (`bash install.sh`, `sh scripts/x.sh`, `./install.sh`) are followed
//! by [`super::scripts`]. What cannot be resolved statically is a warning naming where it is.

use std::collections::BTreeMap;
use std::path::Path;

use formats::cmdenv::{self, Env};
use formats::kubefile::BuildPlan;

use super::charts::{HelmInstall, helm_command, shell_words};
use super::{Collector, DiscoverError, DiscoverOptions, scripts};

/// Marks a reference that could not be resolved while text is split into words (never in real text).
pub(crate) const HELD: char = '\u{1}';

/// The final ENV of the image `plan` builds, as a map: what its base image sets, then the Kubefile's `ENV`
/// and `--env` (a later entry wins). The values of [`DiscoverOptions::env`].
pub fn plan_env(plan: &BuildPlan) -> BTreeMap<String, String> {
    let inherited = plan
        .final_stage()
        .map(|s| s.inherited_env.as_slice())
        .unwrap_or_default();
    inherited
        .iter()
        .chain(&plan.config.env)
        .filter_map(|entry| entry.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Text with its variables expanded, each reference that could not be expanded replaced by a held marker
/// (`HELD index HELD`) so that it stays one piece through word splitting; [`Expanded::restore`] puts the
/// reference back as written.
#[derive(Debug, Clone, Default)]
pub(crate) struct Expanded {
    /// The expanded text with markers.
    pub(crate) text: String,
    /// The references held, by index.
    pub(crate) held: Vec<String>,
}

impl Expanded {
    /// Text with `reference` held at the end.
    pub(crate) fn hold(&mut self, reference: &str) {
        let marker = self.marker(reference);
        self.text.push_str(&marker);
    }

    /// The marker for `reference`, recorded.
    pub(crate) fn marker(&mut self, reference: &str) -> String {
        self.held.push(reference.to_string());
        format!("{HELD}{}{HELD}", self.held.len() - 1)
    }

    /// `word` with every marker replaced by the reference it holds.
    pub(crate) fn restore(&self, word: &str) -> String {
        let mut out = String::new();
        let mut parts = word.split(HELD);
        out.push_str(parts.next().unwrap_or_default());
        while let Some(index) = parts.next() {
            match index.parse::<usize>().ok().and_then(|i| self.held.get(i)) {
                Some(reference) => out.push_str(reference),
                None => out.push_str(index),
            }
            out.push_str(parts.next().unwrap_or_default());
        }
        out
    }

    /// The references held in `word`, as written.
    pub(crate) fn held_in(&self, word: &str) -> Vec<String> {
        word.split(HELD)
            .skip(1)
            .step_by(2)
            .filter_map(|i| {
                i.parse::<usize>()
                    .ok()
                    .and_then(|i| self.held.get(i))
                    .cloned()
            })
            .collect()
    }
}

/// Expands `text` as `sealos run` does ([`formats::cmdenv::expand`]); each reference it would refuse or
/// could not resolve (a name not in `env`, `$(date)`) is held as written instead of failing.
pub(crate) fn expand_cmd(text: &str, env: &Env) -> Expanded {
    let mut out = Expanded::default();
    let mut rest = text.to_string();
    // Each round holds one reference; a text has fewer references than bytes.
    for _ in 0..=text.len() {
        match cmdenv::expand(&rest, env) {
            Ok(expanded) => {
                out.text = expanded;
                return out;
            }
            Err(e) => {
                let reference = if e.is_undefined_variable() {
                    reference_of(&rest, &e.variable)
                } else {
                    Some(e.variable.clone())
                };
                match reference.and_then(|r| rest.find(&r).map(|at| (at, r))) {
                    Some((at, reference)) => {
                        let marker = out.marker(&reference);
                        rest.replace_range(at..at + reference.len(), &marker);
                    }
                    None => break,
                }
            }
        }
    }
    // Nothing better to do than hold the whole text.
    out.text.clear();
    out.held.clear();
    out.hold(text);
    out
}

/// How `name` is referenced in `text`: `$(name)`, `${name}` or `$name` (not followed by a name character).
fn reference_of(text: &str, name: &str) -> Option<String> {
    for written in [format!("$({name})"), format!("${{{name}}}")] {
        if text.contains(&written) {
            return Some(written);
        }
    }
    let plain = format!("${name}");
    text.match_indices(&plain)
        .find(|(at, _)| {
            !text[at + plain.len()..]
                .chars()
                .next()
                .is_some_and(|c| c == '_' || c.is_ascii_alphanumeric())
        })
        .map(|_| plain)
}

/// Every helm install the CMD performs, directly or through the scripts it runs, with warnings for what
/// cannot be resolved.
pub(crate) fn helm_installs(
    context: &Path,
    opts: &DiscoverOptions,
    found: &mut Collector,
) -> Result<Vec<HelmInstall>, DiscoverError> {
    let mut installs = Vec::new();
    for element in &opts.cmd {
        let expanded = expand_cmd(element, &opts.env);
        let words = shell_words(&expanded.text);
        for command in commands(&words) {
            read_command(
                context,
                command,
                &expanded,
                "CMD",
                &opts.env,
                0,
                &mut Vec::new(),
                &mut installs,
                found,
            )?;
        }
    }
    Ok(installs)
}

/// `words` split into commands at `;`, `|`, `&` (so `&&` and `||` too).
pub(crate) fn commands(words: &[String]) -> impl Iterator<Item = &[String]> {
    words
        .split(|w| matches!(w.as_str(), ";" | "|" | "&"))
        .filter(|c| !c.is_empty())
}

/// Words that may come before a command without being it.
const PREFIX_WORDS: [&str; 9] = [
    "if", "then", "else", "elif", "do", "!", "exec", "time", "command",
];

/// Reads one shell command (words with held markers from `expanded`) found at `origin`: a helm install is
/// added to `installs`, a script is followed (one level below the CMD's scripts at most).
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_command(
    context: &Path,
    command: &[String],
    expanded: &Expanded,
    origin: &str,
    env: &Env,
    depth: usize,
    visited: &mut Vec<String>,
    installs: &mut Vec<HelmInstall>,
    found: &mut Collector,
) -> Result<(), DiscoverError> {
    // The command word, after any `VAR=value` assignments and `if`/`then`-style words.
    let Some(start) = command
        .iter()
        .position(|w| !w.contains('=') && !PREFIX_WORDS.contains(&w.as_str()))
    else {
        return Ok(());
    };
    let word = &command[start];
    if let Some(install) = helm_command(&command[start..]) {
        installs.push(resolved_install(install, expanded, origin, found));
        return Ok(());
    }
    let Some(at) = script_argument(&command[start..]) else {
        return Ok(());
    };
    let script = &command[start + at];
    // `$1`, `$2`, ... of the script: its arguments, when they are known.
    let args: Vec<Option<String>> = command[start + at + 1..]
        .iter()
        .map(|a| expanded.held_in(a).is_empty().then(|| a.clone()))
        .collect();
    let held = expanded.held_in(script);
    if !held.is_empty() {
        found.warn(
            origin,
            format!(
                "the script `{}` run by `{}` cannot be resolved statically ({} not known at build time); \
                 it was not read, so the charts it installs are read without its values",
                expanded.restore(script),
                expanded.restore(word),
                held.join(", ")
            ),
        );
        return Ok(());
    }
    let mut script_env = env.clone();
    script_env.retain(|k, _| !k.chars().all(|c| c.is_ascii_digit()));
    script_env.insert("0".to_string(), script.clone());
    for (i, arg) in args.into_iter().enumerate() {
        if let Some(arg) = arg {
            script_env.insert((i + 1).to_string(), arg);
        }
    }
    scripts::follow(
        context,
        script,
        origin,
        &script_env,
        depth,
        visited,
        installs,
        found,
    )
}

/// Where the script a command runs is among its words: `bash FILE`, `sh -e FILE`, `./FILE`, `FILE.sh`; not
/// `bash -c TEXT`.
fn script_argument(command: &[String]) -> Option<usize> {
    let word = command.first()?;
    let name = word.rsplit('/').next().unwrap_or(word);
    if matches!(name, "bash" | "sh" | "dash" | "zsh" | "ksh") {
        for (i, arg) in command.iter().enumerate().skip(1) {
            if arg == "-c" {
                return None;
            }
            if !arg.starts_with('-') {
                return Some(i);
            }
        }
        return None;
    }
    (word.starts_with("./") || word.ends_with(".sh")).then_some(0)
}

/// `install` with its held references restored; a values file, `--set` pair, namespace or chart that holds
/// an unresolved reference is a warning at `origin` (the pair or file is left out).
fn resolved_install(
    install: HelmInstall,
    expanded: &Expanded,
    origin: &str,
    found: &mut Collector,
) -> HelmInstall {
    let unresolved = |what: &str, word: &str, found: &mut Collector| {
        let held = expanded.held_in(word);
        if held.is_empty() {
            return false;
        }
        found.warn(
            origin,
            format!(
                "{what} `{}` of a helm command cannot be resolved statically ({} not known at build time: \
                 set it with ENV in the Kubefile or with --env); left out of discovery",
                expanded.restore(word),
                held.join(", ")
            ),
        );
        true
    };
    let positional: Vec<String> = install
        .positional
        .iter()
        .enumerate()
        .filter(|(i, p)| *i == 0 || !unresolved("argument", p, found))
        .map(|(_, p)| expanded.restore(p))
        .collect();
    let values = install
        .values
        .iter()
        .filter(|v| !unresolved("values file", v, found))
        .cloned()
        .collect();
    let sets = install
        .sets
        .iter()
        .filter(|(flag, pair)| !unresolved(flag, pair, found))
        .cloned()
        .collect();
    let namespace = install
        .namespace
        .filter(|n| !unresolved("namespace", n, found));
    HelmInstall {
        positional,
        values,
        sets,
        namespace,
        origin: origin.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cmd_variables_expand_as_sealos_run_expands_them() {
        let e = env(&[
            ("NAME", "ingress"),
            ("CHARTS", "./charts/ingress-nginx"),
            ("HELM_OPTS", "--set controller.image.tag=v1.14.0"),
        ]);
        let x = expand_cmd(
            "helm upgrade -i $(NAME) ${CHARTS} -n $NS $(HELM_OPTS) $$HOME",
            &e,
        );
        let words: Vec<String> = shell_words(&x.text).iter().map(|w| x.restore(w)).collect();
        assert_eq!(
            words,
            [
                "helm",
                "upgrade",
                "-i",
                "ingress",
                "./charts/ingress-nginx",
                "-n",
                "$NS",
                "--set",
                "controller.image.tag=v1.14.0",
                "$HOME"
            ]
        );
        assert_eq!(x.held, ["$NS"]);
    }

    #[test]
    fn command_substitution_is_held_as_one_word() {
        let x = expand_cmd(
            "helm install x charts/a --set stamp=$(date +%s) --set b=1",
            &Env::new(),
        );
        let words = shell_words(&x.text);
        assert_eq!(x.held, ["$(date +%s)"]);
        assert_eq!(x.held_in(&words[5]), ["$(date +%s)"]);
        assert_eq!(x.restore(&words[5]), "stamp=$(date +%s)");
        assert_eq!(words[7], "b=1");
    }

    #[test]
    fn scripts_are_recognised_by_how_they_are_run() {
        let at = |s: &str| script_argument(&shell_words(s));
        assert_eq!(at("bash -x install.sh a"), Some(2));
        assert_eq!(at("/bin/sh scripts/i.sh"), Some(1));
        assert_eq!(at("./install.sh"), Some(0));
        assert_eq!(at("run.sh"), Some(0));
        assert_eq!(at("bash -c 'helm install x y'"), None);
        assert_eq!(at("kubectl apply -f m/"), None);
    }

    fn installs_of(files: &[(&str, &[u8])], cmd: &str) -> (Vec<HelmInstall>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        for (path, bytes) in files {
            std::fs::write(dir.path().join(path), bytes).unwrap();
        }
        let opts = DiscoverOptions {
            cmd: vec![cmd.to_string()],
            ..DiscoverOptions::default()
        };
        let mut found = Collector::default();
        let installs = helm_installs(dir.path(), &opts, &mut found).unwrap();
        (
            installs,
            found.warnings.iter().map(ToString::to_string).collect(),
        )
    }

    #[test]
    fn a_program_run_as_dot_slash_is_not_read_as_a_script() {
        let (installs, warnings) = installs_of(
            &[("tool", &[0x7f, b'E', b'L', b'F', 0xff, 0xfe])],
            "./tool --x",
        );
        assert!(installs.is_empty());
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn scripts_are_followed_one_level_deeper_never_in_a_loop() {
        let (installs, warnings) = installs_of(
            &[
                ("a.sh", b"bash b.sh v\n"),
                (
                    "b.sh",
                    b"bash a.sh\nsh c.sh\nhelm install x charts/b --set k=v\n",
                ),
                ("c.sh", b"helm install y charts/c\n"),
            ],
            "bash a.sh",
        );
        assert_eq!(installs.len(), 1);
        assert_eq!(installs[0].origin, "b.sh:3");
        assert_eq!(installs[0].sets, [("--set".to_string(), "k=v".to_string())]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("b.sh:2: the script `c.sh` is run by a script run by a script"),
            "{warnings:?}"
        );
    }
}
