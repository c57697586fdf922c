//! The error a chart render fails with, worded as Helm prints it after `Error: `.

use std::fmt;

/// A chart that cannot be loaded, has bad values, or fails to render; displays as `helm template` prints the
/// error after `Error: ` (naming the chart, template file, line and column where Helm does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    /// Helm adds a hint to errors found after the release was built (rendering, manifests, kubeVersion).
    debug_hint: bool,
}

impl Error {
    /// An error with this message (loading, values: helm prints it alone).
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            debug_hint: false,
        }
    }

    /// An error found while rendering: helm follows it with its `--debug` hint.
    pub fn rendering(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            debug_hint: true,
        }
    }

    /// The message, as Helm words it, without the `--debug` hint.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if self.debug_hint {
            f.write_str("\n\nUse --debug flag to render out invalid YAML")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
