//! A remote machine as a host, reached with the system OpenSSH client.
//!
//! Every connection uses `-o StrictHostKeyChecking=accept-new` with a private known-hosts file (the first
//! connection records the host key; a changed key is refused), and `-o BatchMode=yes` with a key so a
//! missing key fails instead of prompting. A password (`-p`) goes through `sshpass -e`, which reads it from
//! the environment, never from the command line.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use super::{ExecError, Host, on_path};
use crate::env::shell_quote;

/// How to log in to every host of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    /// The user (`root` by default).
    pub user: String,
    /// The private key file (`-i`); with neither key nor password, ssh's own defaults apply.
    pub key: Option<PathBuf>,
    /// The password (`-p`), used through `sshpass`.
    pub password: Option<String>,
    /// The known-hosts file for this cluster.
    pub known_hosts: PathBuf,
}

/// One host reached over SSH.
#[derive(Debug, Clone)]
pub struct SshHost {
    name: String,
    address: String,
    port: u16,
    options: Arc<SshOptions>,
}

impl SshHost {
    /// A host at `address` (an IP or name) and `port`.
    pub fn new(address: &str, port: u16, options: Arc<SshOptions>) -> Self {
        SshHost {
            name: format!("{address}:{port}"),
            address: address.to_string(),
            port,
            options,
        }
    }

    /// The address without the port.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Host for SshHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn command(&self, script: &str) -> Result<Command, ExecError> {
        if !on_path("ssh") {
            return Err(ExecError::MissingTool {
                tool: "ssh".into(),
                hint: "install the OpenSSH client (apt-get install openssh-client)".into(),
            });
        }
        let opts = &self.options;
        let mut command = match &opts.password {
            Some(password) => {
                if !on_path("sshpass") {
                    return Err(ExecError::MissingTool {
                        tool: "sshpass".into(),
                        hint: "a password login (-p) needs it: apt-get install sshpass, or log in \
                               with a key (-i KEYFILE)"
                            .into(),
                    });
                }
                let mut c = Command::new("sshpass");
                c.env("SSHPASS", password).arg("-e").arg("ssh");
                c.args(["-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1"]);
                c
            }
            None => {
                let mut c = Command::new("ssh");
                c.args(["-o", "BatchMode=yes"]);
                c
            }
        };
        command
            .args(["-o", "StrictHostKeyChecking=accept-new"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                opts.known_hosts.to_string_lossy()
            ))
            .args(["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-l")
            .arg(&opts.user);
        if let Some(key) = &opts.key {
            command
                .arg("-i")
                .arg(key)
                .args(["-o", "IdentitiesOnly=yes"]);
        }
        // ssh joins its arguments with spaces for the remote login shell, so the script is quoted once.
        command
            .arg(&self.address)
            .arg("--")
            .arg(format!("bash -c {}", shell_quote(script)));
        Ok(command)
    }
}
