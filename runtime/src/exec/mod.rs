//! Executing on hosts: a [`Host`] turns a shell script into a process that runs it there (locally or over
//! SSH); on top of that this module streams output line by line with the host's name, copies directory
//! trees and files as a `tar` stream, and runs one script on many hosts in parallel.

pub mod local;
pub mod ssh;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub use local::LocalHost;
pub use ssh::{SshHost, SshOptions};

use crate::env::shell_quote;

/// Which stream of a remote command a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of output of a command on a host.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// The host's name.
    pub host: &'a str,
    /// The stream.
    pub stream: Stream,
    /// The line, without its newline (invalid UTF-8 replaced).
    pub text: &'a str,
}

/// Where output lines go (the CLI prints them with a `[host]` prefix).
pub type Output<'a> = &'a (dyn Fn(&Line<'_>) + Sync);

/// Why a command could not be run on a host (a non-zero exit is not an error here: see [`run_script`]).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The process could not be started or waited for.
    #[error("host {host}: cannot run `{program}`: {source}")]
    Spawn {
        /// The host.
        host: String,
        /// The program started locally (`bash`, `ssh`, `tar`...).
        program: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A tool this needs is not installed.
    #[error("`{tool}` is not installed: {hint}")]
    MissingTool {
        /// The tool.
        tool: String,
        /// How to get it.
        hint: String,
    },
    /// A copy to the host failed.
    #[error("host {host}: copying `{source_path}` to `{dest}` failed: {reason}")]
    Copy {
        /// The host.
        host: String,
        /// The local path.
        source_path: PathBuf,
        /// The path on the host.
        dest: String,
        /// What failed.
        reason: String,
    },
    /// A local operation of a copy to the host failed.
    #[error("host {host}: copying `{source_path}` to `{dest}` failed: {doing}{source}")]
    CopyIo {
        /// The host.
        host: String,
        /// The local path.
        source_path: PathBuf,
        /// The path on the host.
        dest: String,
        /// What was being done, as a prefix of the error (`cannot start tar: `), or empty.
        doing: &'static str,
        /// The I/O error.
        source: io::Error,
    },
}

/// A machine scripts run on.
pub trait Host: Send + Sync {
    /// The name output lines and errors carry (`localhost`, `10.0.0.2:22`).
    fn name(&self) -> &str;
    /// A process that runs `script` with bash on the host; its stdin, stdout and stderr are the host's.
    fn command(&self, script: &str) -> Result<Command, ExecError>;
}

fn spawn_err(host: &dyn Host, program: &str) -> impl FnOnce(io::Error) -> ExecError {
    let host = host.name().to_string();
    let program = program.to_string();
    move |source| ExecError::Spawn {
        host,
        program,
        source,
    }
}

/// Runs `script` on `host`, streaming its output to `output`; returns its exit code (-1 when killed by a
/// signal).
pub fn run_script(host: &dyn Host, script: &str, output: Output<'_>) -> Result<i32, ExecError> {
    let mut command = host.command(script)?;
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err(host, &program))?;
    stream_and_wait(host, &mut child, &program, output)
}

fn stream_and_wait(
    host: &dyn Host,
    child: &mut Child,
    program: &str,
    output: Output<'_>,
) -> Result<i32, ExecError> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let name = host.name();
    std::thread::scope(|scope| {
        if let Some(out) = stdout {
            scope.spawn(move || forward_lines(out, name, Stream::Stdout, output));
        }
        if let Some(err) = stderr {
            scope.spawn(move || forward_lines(err, name, Stream::Stderr, output));
        }
    });
    let status = child.wait().map_err(spawn_err(host, program))?;
    Ok(status.code().unwrap_or(-1))
}

fn forward_lines(reader: impl Read, host: &str, stream: Stream, output: Output<'_>) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let text = text.trim_end_matches(['\n', '\r']);
                output(&Line { host, stream, text });
            }
        }
    }
}

/// Copies the directory tree `src` (or only its `members`, when given) into `dest` on `host`, leaving out
/// `exclude` (paths relative to `src`, like `registry`). Streams one `tar` from here to `tar -x` there.
pub fn copy_tree(
    host: &dyn Host,
    src: &Path,
    members: &[&str],
    exclude: &[&str],
    dest: &str,
    output: Output<'_>,
) -> Result<(), ExecError> {
    let copy_err = |reason: String| ExecError::Copy {
        host: host.name().to_string(),
        source_path: src.to_path_buf(),
        dest: dest.to_string(),
        reason,
    };
    let io_err = |doing: &'static str, source: io::Error| ExecError::CopyIo {
        host: host.name().to_string(),
        source_path: src.to_path_buf(),
        dest: dest.to_string(),
        doing,
        source,
    };
    let mut tar = Command::new("tar");
    tar.arg("-C").arg(src).arg("-cf").arg("-");
    for e in exclude {
        tar.arg(format!("--exclude=./{e}"));
    }
    if members.is_empty() {
        tar.arg(".");
    } else {
        tar.args(members.iter().map(|m| format!("./{m}")));
    }
    let mut packer = tar
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                copy_err("`tar` is not installed here (apt-get install tar)".into())
            } else {
                io_err("cannot start tar: ", e)
            }
        })?;
    let Some(packed) = packer.stdout.take() else {
        return Err(copy_err("tar gave no output stream".into()));
    };
    let q = shell_quote(dest);
    let script = format!("mkdir -p {q} && tar -C {q} --no-same-owner -xf -");
    let code = pipe_into(host, &script, Stdio::from(packed), output)?;
    let packed_status = packer.wait().map_err(|e| io_err("", e))?;
    if !packed_status.success() {
        let mut msg = String::new();
        if let Some(mut err) = packer.stderr.take() {
            let _partial = err.read_to_string(&mut msg);
        }
        return Err(copy_err(format!("local tar failed: {}", msg.trim())));
    }
    if code != 0 {
        return Err(copy_err(format!("tar on the host exited with {code}")));
    }
    Ok(())
}

/// Copies the local file `src` to `dest` on `host` with mode `mode` (written beside it, then renamed).
pub fn copy_file(
    host: &dyn Host,
    src: &Path,
    dest: &str,
    mode: u32,
    output: Output<'_>,
) -> Result<(), ExecError> {
    let copy_err = |reason: String| ExecError::Copy {
        host: host.name().to_string(),
        source_path: src.to_path_buf(),
        dest: dest.to_string(),
        reason,
    };
    let file = File::open(src).map_err(|e| ExecError::CopyIo {
        host: host.name().to_string(),
        source_path: src.to_path_buf(),
        dest: dest.to_string(),
        doing: "",
        source: e,
    })?;
    let tmp = shell_quote(&format!("{dest}.tmp"));
    let q = shell_quote(dest);
    let parent = shell_quote(
        Path::new(dest)
            .parent()
            .map_or("/", |p| p.to_str().unwrap_or("/")),
    );
    let script =
        format!("mkdir -p {parent} && cat > {tmp} && chmod {mode:o} {tmp} && mv -f {tmp} {q}");
    let code = pipe_into(host, &script, Stdio::from(file), output)?;
    if code != 0 {
        return Err(copy_err(format!("writing on the host exited with {code}")));
    }
    Ok(())
}

fn pipe_into(
    host: &dyn Host,
    script: &str,
    stdin: Stdio,
    output: Output<'_>,
) -> Result<i32, ExecError> {
    let mut command = host.command(script)?;
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err(host, &program))?;
    stream_and_wait(host, &mut child, &program, output)
}

/// A host's outcome when a script ran on several hosts: its exit code, or why it could not run.
pub type HostOutcome = Result<i32, ExecError>;

/// Runs a script on every host of `hosts` in parallel (`script_for` gives each host's script, or an error
/// that stops that host before it starts) and returns each host's outcome, in the order of `hosts`.
pub fn run_parallel<E: Send>(
    hosts: &[&dyn Host],
    script_for: impl Fn(&dyn Host) -> Result<String, E> + Sync,
    output: Output<'_>,
) -> Vec<Result<HostOutcome, E>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|host| {
                let script_for = &script_for;
                scope.spawn(move || {
                    script_for(*host).map(|script| run_script(*host, &script, output))
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(hosts)
            .map(|(h, host)| {
                h.join().unwrap_or_else(|_| {
                    Ok(Err(ExecError::Spawn {
                        host: host.name().to_string(),
                        program: "worker thread".into(),
                        source: io::Error::other("the worker thread panicked"),
                    }))
                })
            })
            .collect()
    })
}

/// Whether `program` is an executable file in a `PATH` directory.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let candidate = dir.join(program);
            std::fs::metadata(&candidate).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}
