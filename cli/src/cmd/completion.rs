//! `sealos completion bash|zsh|fish`: shell completion scripts.

use clap::CommandFactory;
use clap_complete::Shell;

/// Arguments of `sealos completion`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sealos completion bash > /etc/bash_completion.d/sealos
  sealos completion zsh > \"${fpath[1]}/_sealos\"
  sealos completion fish > ~/.config/fish/completions/sealos.fish")]
pub struct CompletionArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// Shells we generate completions for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// Writes the completion script to stdout.
pub fn run(args: &CompletionArgs) -> anyhow::Result<()> {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut cmd = crate::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "sealos", &mut script);
    crate::output::write_stdout(&script)
}
