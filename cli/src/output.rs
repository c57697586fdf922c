//! How the CLI prints: output formats for scripts and the one way errors are reported.

/// Output format for commands whose output scripts may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text or table.
    Text,
    /// Stable JSON.
    Json,
}

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
