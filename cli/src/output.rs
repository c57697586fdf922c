//! How the CLI prints: output formats for scripts and the one way errors are reported.

/// Output format for commands whose output scripts may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text or table.
    Text,
    /// Stable JSON.
    Json,
}

/// A write to stdout found the reader gone (`sealos images | head -1`): the command stops and the process
/// exits 0 without a message, as other Unix tools do.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// True when `err` (or one of its causes) is [`StdoutClosed`].
pub fn is_stdout_closed(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<StdoutClosed>())
}

/// Writes `bytes` to stdout and flushes; a closed pipe is [`StdoutClosed`], any other failure an error.
pub fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => anyhow::Error::new(StdoutClosed),
            _ => anyhow::Error::new(e).context("cannot write to stdout"),
        })
}

/// `println!` for command output: writes through [`write_stdout`] and returns its result, for `?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}
pub(crate) use outln;

/// `print!` for command output: writes through [`write_stdout`] and returns its result, for `?`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format!($($arg)*).as_bytes())
    };
}
pub(crate) use out;

/// Prints `err` to stderr as `error: ...`, with its causes, and a `hint:` line when one is attached.
pub fn report_error(err: &anyhow::Error, debug: bool) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        if let Some(hint) = cause.downcast_ref::<Hint>() {
            eprintln!("hint: {}", hint.0);
        } else {
            eprintln!("  caused by: {cause}");
        }
    }
    if debug {
        eprintln!("{err:?}");
    }
}

/// A suggestion for the user, attached to an error with `anyhow::Context`-style wrapping.
#[derive(Debug)]
pub struct Hint(pub String);

impl std::fmt::Display for Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hint: {}", self.0)
    }
}

impl std::error::Error for Hint {}
