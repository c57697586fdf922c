//! `sealos create IMAGE`: unpack an image into a working directory, render its templates and print the
//! commands `run` would execute, without executing anything.

use std::path::PathBuf;

use super::images::open_store;
use super::run::parse_env;
use crate::GlobalArgs;
use crate::output::{Format, outln};

/// Arguments of `sealos create`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sealos create labring/kubernetes:v1.29.0          unpack and print the commands `run` would execute
  sealos create myapp:v1 -e NS=prod --dir /tmp/app  render the templates with NS=prod into /tmp/app
  sealos create oci-archive:app.tar --short         print only the directory
  sealos create myapp:v1 --format json              the directory, rendered files and commands as JSON")]
pub struct CreateArgs {
    /// The image (a store name, `oci-archive:FILE` or `docker-archive:FILE`).
    pub image: String,
    /// `KEY=VALUE` for templates and commands (overrides image ENV); repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Replaces the image's CMD; repeatable.
    #[arg(long = "cmd", value_name = "CMD")]
    pub cmd: Vec<String>,
    /// Print only the directory.
    #[arg(long, conflicts_with = "format")]
    pub short: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The working directory (created afresh). Default: `<data-dir>/create/<image>`. A directory that is
    /// not empty and was not made by `create` is refused unless `--force`.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Replace `--dir` even when it holds files `create` did not make.
    #[arg(short, long)]
    pub force: bool,
    /// Base of the default working directory.
    #[arg(long, value_name = "DIR", default_value = runtime::run::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// Creates the working directory.
pub fn run(global: &GlobalArgs, args: &CreateArgs) -> anyhow::Result<()> {
    let store = open_store(global)?;
    let env = parse_env(&args.env)?;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            let image = runtime::image::open(&store, &args.image)?;
            args.data_dir.join("create").join(image.dir_name())
        }
    };
    let cmd = (!args.cmd.is_empty()).then_some(args.cmd.as_slice());
    let report = runtime::create::create(&store, &args.image, &env, cmd, &dir, args.force)?;
    if args.short {
        outln!("{}", report.dir.display())?;
        return Ok(());
    }
    if args.format == Format::Json {
        let commands: Vec<_> = report
            .commands
            .iter()
            .map(|c| {
                serde_json::json!({
                    "step": c.step,
                    "allHosts": c.all_hosts,
                    "workdir": c.workdir,
                    "command": c.command,
                })
            })
            .collect();
        let images = super::run::image_check_json(&report.image_check);
        let json = serde_json::json!({
            "images": images,
            "imageWarnings": report.image_check.warnings,
            "image": report.image,
            "kind": report.kind,
            "digest": report.digest,
            "dir": report.dir,
            "rendered": report.rendered,
            "commands": commands,
        });
        return outln!("{}", serde_json::to_string_pretty(&json)?);
    }
    outln!("{} ({}, {})", report.image, report.kind, report.digest)?;
    outln!("unpacked into {}", report.dir.display())?;
    for file in &report.rendered {
        outln!("rendered {}", file.display())?;
    }
    for c in &report.commands {
        let hosts = if c.all_hosts {
            "all hosts"
        } else {
            "first master"
        };
        outln!(
            "[{}] ({hosts}) cd {} && {}",
            c.step,
            runtime::env::shell_quote(&c.workdir.to_string_lossy()),
            c.command
        )?;
    }
    let check = &report.image_check;
    outln!(
        "images the install pulls: {} ({} not embedded; `sealos run` refuses those unless \
         --skip-image-check)",
        check.images.len(),
        check.missing().len()
    )?;
    for image in &check.images {
        outln!(
            "  {} {}: {}",
            if image.availability.is_embedded() {
                "ok"
            } else {
                "MISSING"
            },
            image.reference,
            image.availability
        )?;
        for source in &image.sources {
            outln!("      needed by {source}")?;
        }
    }
    for warning in &check.warnings {
        eprintln!("warning: image check: {warning}");
    }
    Ok(())
}
