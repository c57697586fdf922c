//! The local machine as a host: scripts run with `bash -c`, no SSH.

use std::process::Command;

use super::{ExecError, Host};

/// The machine `sealos` runs on.
#[derive(Debug, Clone, Default)]
pub struct LocalHost;

impl Host for LocalHost {
    fn name(&self) -> &str {
        "localhost"
    }

    fn command(&self, script: &str) -> Result<Command, ExecError> {
        let mut command = Command::new("bash");
        command.arg("-c").arg(script);
        Ok(command)
    }
}
