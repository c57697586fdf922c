//! Variable expansion in image commands (`$(VAR)`, `${VAR}`, `$VAR`, `$$`) and shell quoting of values.
//!
//! The runtime expands a command's variables itself, before any shell sees it, so the shell never decides
//! what an unknown name means:
//!
//! - `$(NAME)`, `${NAME}` and `$NAME` (NAME = `[A-Za-z_][A-Za-z0-9_]*`) are replaced by the value of NAME.
//!   A name nobody defined is an error naming it and the command ([`ExpandError`]); sealos instead left
//!   `$(NAME)` in place and the shell ran `NAME` as a command.
//! - `$$` is a literal `$`: write `$$f` to hand `$f` to the shell (a loop variable, say).
//! - `$(...)` or `${...}` around anything that is not a name (`$(touch /tmp/pwned)`, `${V:-x}`), or left
//!   unclosed, is an error with the hint to write `$$(` / `$${`: the text is never run as a command
//!   substitution and never guessed at.
//! - A `$` followed by anything else (`$1`, `$?`, `$@`, a space, the end) stays as written.
//! - Values are inserted verbatim and never expanded again: a value `$(touch /tmp/pwned)` stays that text.
//!
//! When values reach a shell they are quoted with [`shell_quote`] (single quotes, `'` written `'\''`), so
//! quotes, newlines, `$()` and backticks in a value are data, never code; [`export_script`] writes the whole
//! env as `export NAME='value'` lines.

pub use formats::cmdenv::{Env, ExpandError, expand, is_name};

/// An env entry whose name a shell cannot export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot export variable `{name}`: a name must be letters, digits and `_`, not starting with a digit \
     (rename it in the image ENV or the `-e` option)"
)]
pub struct ExportError {
    /// The offending name.
    pub name: String,
}

/// Quotes `value` for a POSIX shell so that it is passed literally.
///
/// The result is always single-quoted (`''` for the empty string); each `'` becomes `'\''`. Quotes,
/// newlines, `$()`, backticks and backslashes come out of the shell exactly as they went in.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Shell lines that prepend to the host's `PATH` each directory of `path` (an image's `PATH`) that the
/// host's `PATH` lacks, in `path`'s order, and export it: the host's own directories stay, in their order.
/// Empty for a `path` without directories.
pub fn prepend_path_script(path: &str) -> String {
    let dirs: Vec<String> = path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(shell_quote)
        .collect();
    if dirs.is_empty() {
        return String::new();
    }
    format!(
        "__sealos_path=\n\
         for __sealos_dir in {}; do\n\
         \x20 case \":$__sealos_path$PATH:\" in *\":$__sealos_dir:\"*) ;; \
         *) __sealos_path=\"$__sealos_path$__sealos_dir:\" ;; esac\n\
         done\n\
         if [ -n \"$PATH\" ]; then PATH=\"$__sealos_path$PATH\"; else PATH=\"${{__sealos_path%:}}\"; fi\n\
         export PATH\n\
         unset __sealos_path __sealos_dir\n",
        dirs.join(" ")
    )
}

/// One `export NAME='value'` line per entry (sorted by name, each ending in a newline), for a shell script
/// that runs a command with `env`. Fails on a name a shell cannot export.
pub fn export_script(env: &Env) -> Result<String, ExportError> {
    let mut script = String::new();
    for (name, value) in env {
        if !is_name(name) {
            return Err(ExportError { name: name.clone() });
        }
        script.push_str("export ");
        script.push_str(name);
        script.push('=');
        script.push_str(&shell_quote(value));
        script.push('\n');
    }
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sh(script: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run `sh` (needed by this test): {e}"));
        assert!(out.status.success(), "sh failed: {out:?}");
        String::from_utf8(out.stdout).expect("sh printed UTF-8")
    }

    #[test]
    fn all_three_reference_forms_expand() {
        let e = env(&[("NAME", "calico"), ("NS", "tigera")]);
        assert_eq!(
            expand("helm -i $(NAME) -n ${NS} x$NAME/y", &e).unwrap(),
            "helm -i calico -n tigera xcalico/y"
        );
    }

    #[test]
    fn bare_reference_takes_the_longest_name() {
        let e = env(&[("A", "1"), ("AB", "2")]);
        assert_eq!(
            expand("$AB-$A.$A_", &env(&[("AB", "2"), ("A", "1"), ("A_", "3")])).unwrap(),
            "2-1.3"
        );
        assert_eq!(expand("$A", &e).unwrap(), "1");
    }

    #[test]
    fn double_dollar_is_a_literal_dollar() {
        let e = env(&[("X", "1")]);
        assert_eq!(
            expand("$$X $$(X) $${X} $$$X", &e).unwrap(),
            "$X $(X) ${X} $1"
        );
    }

    #[test]
    fn dollar_not_followed_by_a_name_stays() {
        let e = Env::new();
        assert_eq!(
            expand("awk '{print $1}'; echo $? $@ $ end$", &e).unwrap(),
            "awk '{print $1}'; echo $? $@ $ end$"
        );
    }

    #[test]
    fn undefined_variable_is_an_error_naming_it_and_the_command() {
        let err = expand("helm --set hostname=$(hostname)", &Env::new()).unwrap_err();
        assert_eq!(err.variable, "hostname");
        assert_eq!(err.text, "helm --set hostname=$(hostname)");
        assert!(err.is_undefined_variable());
        let message = err.to_string();
        assert!(
            message.contains("undefined variable `hostname`"),
            "{message}"
        );
        assert!(
            message.contains("helm --set hostname=$(hostname)"),
            "{message}"
        );
        for text in ["${MISSING}", "$MISSING"] {
            assert_eq!(expand(text, &Env::new()).unwrap_err().variable, "MISSING");
        }
    }

    #[test]
    fn command_substitution_is_refused_saying_what_it_is_and_how_to_escape_it() {
        let err = expand("echo $(touch /tmp/pwned) done", &Env::new()).unwrap_err();
        assert_eq!(err.variable, "$(touch /tmp/pwned)");
        assert!(!err.is_undefined_variable());
        assert_eq!(
            err.to_string(),
            "`$(touch /tmp/pwned)` in `echo $(touch /tmp/pwned) done` is shell command substitution, not a \
             variable, and is not run: write `$$(touch /tmp/pwned)` to hand `$(touch /tmp/pwned)` to the shell \
             as written (the shell then runs it), or `$(NAME)` for a variable NAME set in the image ENV or \
             with `-e NAME=VALUE`"
        );
        // The escape the message names is the one `expand` honours; a backslash is no escape.
        assert_eq!(
            expand("echo $$(touch /tmp/pwned) done", &Env::new()).unwrap(),
            "echo $(touch /tmp/pwned) done"
        );
        assert_eq!(
            expand("echo \\$(touch /tmp/pwned)", &Env::new())
                .unwrap_err()
                .variable,
            "$(touch /tmp/pwned)"
        );
        // Defining a variable with that "name" changes nothing.
        let e = env(&[("touch /tmp/pwned", "x")]);
        assert!(expand("$(touch /tmp/pwned)", &e).is_err());
    }

    #[test]
    fn shell_parameter_expansion_and_unclosed_references_are_refused() {
        let e = env(&[("V", "1")]);
        assert_eq!(expand("${V:-x}", &e).unwrap_err().variable, "${V:-x}");
        assert_eq!(expand("a $(V b", &e).unwrap_err().variable, "$(V b");
        assert_eq!(expand("${V", &e).unwrap_err().variable, "${V");
        assert_eq!(expand("$(", &e).unwrap_err().variable, "$(");
        assert!(
            expand("${V:-x}", &e)
                .unwrap_err()
                .to_string()
                .contains("$${")
        );
    }

    #[test]
    fn values_are_never_expanded_again() {
        let e = env(&[("A", "$(B) ${B} $B $$"), ("B", "nope")]);
        assert_eq!(expand("[$(A)]", &e).unwrap(), "[$(B) ${B} $B $$]");
    }

    #[test]
    fn non_ascii_text_passes_through() {
        let e = env(&[("N", "wörld")]);
        assert_eq!(expand("héllo $N €$", &e).unwrap(), "héllo wörld €$");
    }

    #[test]
    fn shell_quoted_values_come_out_of_sh_unchanged() {
        let values = [
            "",
            "plain",
            "it's",
            "'",
            "''\\'",
            "two\nlines\n",
            "$(touch /tmp/pwned-by-quote-test)",
            "`touch /tmp/pwned-by-quote-test`",
            "${HOME} $HOME $$ \\$ \"dq\" * ? [a] ~ ; | & < > # !",
            "tab\there",
        ];
        for value in values {
            let printed = sh(&format!("printf '%s' {}", shell_quote(value)));
            assert_eq!(printed, value, "value {value:?}");
        }
        assert!(!std::path::Path::new("/tmp/pwned-by-quote-test").exists());
    }

    fn path_after(host_path: &str, image_path: &str) -> String {
        let script = format!(
            "PATH={}\n{}printf %s \"$PATH\"",
            shell_quote(host_path),
            prepend_path_script(image_path)
        );
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn image_path_entries_the_host_lacks_are_prepended_and_the_host_path_stays() {
        assert_eq!(
            path_after(
                "/usr/bin:/bin:/host/bin",
                "/opt/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin"
            ),
            "/opt/bin:/usr/local/bin:/usr/bin:/bin:/host/bin"
        );
        assert_eq!(path_after("/usr/bin:/bin", "/usr/bin"), "/usr/bin:/bin");
        assert_eq!(
            path_after("", "/opt/it's:/a"),
            "/opt/it's:/a",
            "no empty entry (the cwd) is added"
        );
        assert_eq!(
            path_after("/bin", "$(touch /tmp/pwned)"),
            "$(touch /tmp/pwned):/bin"
        );
        assert_eq!(prepend_path_script("::"), "");
    }

    #[test]
    fn export_script_exports_values_literally() {
        let e = env(&[
            ("A", "it's $(touch /tmp/pwned-by-export-test)"),
            ("B_2", "x\ny"),
        ]);
        let script = export_script(&e).unwrap();
        assert_eq!(
            script,
            "export A='it'\\''s $(touch /tmp/pwned-by-export-test)'\nexport B_2='x\ny'\n"
        );
        let printed = sh(&format!("{script}printf '%s|%s' \"$A\" \"$B_2\""));
        assert_eq!(printed, "it's $(touch /tmp/pwned-by-export-test)|x\ny");
        assert!(!std::path::Path::new("/tmp/pwned-by-export-test").exists());
    }

    #[test]
    fn export_script_rejects_names_a_shell_cannot_export() {
        for name in ["A-B", "1A", "", "A B", "$(x)"] {
            let err = export_script(&env(&[(name, "v")])).unwrap_err();
            assert_eq!(err.name, name);
        }
    }

    proptest::proptest! {
        #[test]
        fn expand_never_panics(text in "\\PC*", value in "\\PC*") {
            let _ = expand(&text, &env(&[("V", &value), ("A", "a")]));
        }

        #[test]
        fn text_without_dollars_is_unchanged(text in "[^$]*") {
            proptest::prop_assert_eq!(expand(&text, &Env::new()).unwrap(), text);
        }

        #[test]
        fn any_value_survives_quoting_through_expansion(value in "[^\\x00]*") {
            // The value inserted by expansion is exactly the value.
            let e = env(&[("V", &value)]);
            proptest::prop_assert_eq!(expand("$(V)", &e).unwrap(), value.clone());
            let quoted = shell_quote(&value);
            proptest::prop_assert!(quoted.starts_with('\'') && quoted.ends_with('\''));
        }
    }
}
