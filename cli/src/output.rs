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
    eprint!("{}", error_report(err, debug));
    if debug {
        let backtrace = err.backtrace();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            eprintln!("backtrace:\n{backtrace}");
        }
    }
}

/// The text [`report_error`] prints, one line per entry.
///
/// Library errors keep their sources and repeat the source's message inside their own one-line message
/// (`cannot read X: No such file or directory`). By default the chain is followed while each cause adds
/// something (the CLI's context lines, `caused by:`) and stops at the first cause whose text is already in
/// the line above: what lies beneath it was said there. With `debug` every cause of the chain is shown, each
/// on its own line.
pub fn error_report(err: &anyhow::Error, debug: bool) -> String {
    use std::fmt::Write;
    let mut text = format!("error: {err}\n");
    let mut above = err.to_string();
    let mut said = false;
    for cause in err.chain().skip(1) {
        if let Some(hint) = cause.downcast_ref::<Hint>() {
            let _ = writeln!(text, "hint: {}", hint.0);
            continue;
        }
        let message = cause.to_string();
        said = said || above.contains(&message);
        if debug || !said {
            let _ = writeln!(text, "  caused by: {message}");
            above = message;
        }
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A library-style error: its one-line message repeats its source's, and the source is kept.
    #[derive(Debug)]
    struct ReadFailed {
        source: std::io::Error,
    }

    impl std::fmt::Display for ReadFailed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot read `x.txt`: {}", self.source)
        }
    }

    impl std::error::Error for ReadFailed {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    /// A library-style error whose message summarises its source instead of repeating it.
    #[derive(Debug)]
    struct Summary(ReadFailed);

    impl std::fmt::Display for Summary {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the list is missing: no such file")
        }
    }

    impl std::error::Error for Summary {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn failure() -> anyhow::Error {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        anyhow::Error::new(ReadFailed { source: io }).context("loading the list")
    }

    #[test]
    fn by_default_the_chain_stops_where_a_message_repeats_its_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(Summary(ReadFailed { source: io }))
            .context("reading the catalog")
            .context("cannot start");
        assert_eq!(
            error_report(&err, false),
            "error: cannot start\n  caused by: reading the catalog\n  caused by: the list is missing: no such file\n  caused by: cannot read `x.txt`: no such file\n"
        );
    }

    #[test]
    fn by_default_a_cause_already_in_the_line_above_is_not_repeated() {
        assert_eq!(
            error_report(&failure(), false),
            "error: loading the list\n  caused by: cannot read `x.txt`: no such file\n"
        );
    }

    #[test]
    fn with_debug_every_source_of_the_chain_is_shown() {
        assert_eq!(
            error_report(&failure(), true),
            "error: loading the list\n  caused by: cannot read `x.txt`: no such file\n  caused by: no such file\n"
        );
    }

    #[test]
    fn hints_are_printed_as_hints() {
        let err = anyhow::Error::new(Hint("run `sealos pull`".into())).context("not found");
        assert_eq!(
            error_report(&err, false),
            "error: not found\nhint: run `sealos pull`\n"
        );
    }
}
