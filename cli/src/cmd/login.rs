//! `sealos login`: check credentials against a registry (`GET /v2/`) and store them in auth.json.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context as _, bail};
use registry::client::{
    ClientError, Credentials, RegistryClient, default_auth_file, normalize_host, store_credentials,
};

use super::mirror::{ClientArgs, runtime};
use crate::output::outln;

/// Arguments of `sealos login`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  sealos login registry.example.com -u alice            (asks for the password)
  echo \"$TOKEN\" | sealos login registry.example.com -u alice --password-stdin
  sealos login 127.0.0.1:5000 -u alice -p secret --authfile ./auth.json
Credentials go to $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json.")]
pub struct LoginArgs {
    /// The registry (`host[:port]`).
    pub registry: String,
    /// User name.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password (visible in the process list; prefer --password-stdin).
    #[arg(short = 'p', long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry access.
    #[command(flatten)]
    pub client: ClientArgs,
}

fn read_line(what: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("{what}: ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Verifies the credentials with a `/v2/` request, then stores them.
pub fn run(args: &LoginArgs) -> anyhow::Result<()> {
    let host = normalize_host(&args.registry);
    let username = match &args.username {
        Some(u) => u.clone(),
        None => read_line("username")?,
    };
    let password = match (&args.password, args.password_stdin) {
        (Some(p), _) => p.clone(),
        _ => read_line("password")?,
    };
    if username.is_empty() || password.is_empty() {
        bail!(
            "a user name and a password are needed to log in to `{host}` (-u USER and -p PASS or --password-stdin)"
        );
    }
    let mut opts = args.client.options()?;
    opts.credentials.insert(
        host.clone(),
        Credentials {
            username: username.clone(),
            password: password.clone(),
        },
    );
    let client = RegistryClient::new(opts)?;
    if let Err(e) = runtime()?.block_on(client.ping(&host)) {
        // One line: what went wrong, and that nothing changed.
        match e {
            ClientError::Unauthorized {
                credentials_sent: true,
                ..
            } => bail!(
                "login to `{host}` failed: wrong user name or password (the registry rejected `{username}`); nothing was stored"
            ),
            e => bail!("login to `{host}` failed: {e}; nothing was stored"),
        }
    }
    let file = match &args.client.authfile {
        Some(f) => f.clone(),
        None => default_auth_file().context(
            "no place to store credentials: set REGISTRY_AUTH_FILE or HOME, or pass --authfile",
        )?,
    };
    store_credentials(&host, &username, &password, &file)?;
    outln!(
        "Login Succeeded! (credentials stored in {})",
        file.display()
    )?;
    Ok(())
}
