//! `sealos registry import` and `sealos registry pack`: bring a delivery (a delta written by `registry save
//! --inventory`, or a whole one) into a site's registry, verified and resumable, and cut a delivery into
//! volumes for removable media.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use registry::delta::{import, volumes};
use registry::mirror::{Location, MirrorOptions};

use super::images::plural;
use super::mirror::{ClientArgs, Progress, S3Args, human_bytes, report_json, runtime};
use crate::output::{Format, outln};

/// Arguments of `sealos registry import`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  sealos registry import ./delivery 127.0.0.1:5000
      check that the registry holds what the delivery relies on, then copy the delivery in
  sealos registry import /media/usb/delivery.volumes.json registry.local:5000 --tls-verify=false
  sealos registry import /media/usb/delivery /var/lib/registry --format json
      (a PREFIX whose PREFIX.volumes.json exists is a volume set; a directory is written into directly)")]
pub struct ImportArgs {
    /// The delivery: a directory with `delivery.json` (what `registry save --inventory` writes; without it,
    /// every tag of the directory, relying on nothing), or a volume set (`PREFIX` or `PREFIX.volumes.json`,
    /// what `registry pack` writes).
    pub delivery: PathBuf,
    /// Destination: a registry `host[:port][/prefix]`, a directory (Distribution layout) or a bucket
    /// `s3://BUCKET[/PREFIX]`.
    pub dest: String,
    /// S3 settings.
    #[command(flatten)]
    pub s3: S3Args,
    /// Images copied at once.
    #[arg(long, default_value_t = 5)]
    pub max_procs: usize,
    /// Where a volume set is unpacked (removed afterwards) [default: beside a directory destination, else
    /// the system's temporary directory].
    #[arg(long, value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,
    /// Output: `text` (a summary line on stderr) or `json` (one JSON document on stdout: `added`,
    /// `alreadyThere` and `relied` as `{blobs, bytes}`, and one entry per image).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Registry access.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `sealos registry pack`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  sealos registry pack ./delivery --split 4G -o /media/usb/delivery
      writes /media/usb/delivery.vol001, .vol002, ... (each at most 4 GiB) and delivery.volumes.json
  sealos registry import /media/usb/delivery 127.0.0.1:5000")]
pub struct PackArgs {
    /// The delivery directory (or any Distribution-layout directory `registry save` wrote).
    pub delivery: PathBuf,
    /// The largest size of one volume: bytes or a number with K, M, G or T (binary: `4G` is 4 GiB).
    #[arg(long, value_name = "SIZE", value_parser = crate::parse_size)]
    pub split: u64,
    /// The volumes' path prefix: `PREFIX.vol001`, ... and `PREFIX.volumes.json`.
    #[arg(short = 'o', long, value_name = "PREFIX")]
    pub output: PathBuf,
    /// Output: `text` (one line per volume on stderr) or `json` (the volume set description on stdout).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Runs `sealos registry pack`.
pub fn run_pack(args: &PackArgs) -> anyhow::Result<()> {
    if !args.delivery.join("docker/registry/v2").is_dir() {
        bail!(
            "{} is not a delivery: it has no docker/registry/v2 (give the directory `registry save` wrote)",
            args.delivery.display()
        );
    }
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    // Volumes written inside the delivery would be packed into themselves.
    let delivery = std::fs::canonicalize(&args.delivery)
        .with_context(|| format!("cannot read {}", args.delivery.display()))?;
    let out_dir = args
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if std::fs::canonicalize(out_dir).is_ok_and(|d| d.starts_with(&delivery)) {
        bail!(
            "-o {} is inside the delivery {}: write the volumes elsewhere (removable media, say)",
            args.output.display(),
            args.delivery.display()
        );
    }
    let set = volumes::pack(&args.delivery, &args.output, args.split)?;
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&set)?)?,
        Format::Text => {
            for v in &set.volumes {
                eprintln!("{}  {}  {}", v.name, human_bytes(v.size), v.sha256);
            }
            eprintln!(
                "packed {} into {} ({}), described by {}",
                args.delivery.display(),
                plural(set.volumes.len(), "volume"),
                human_bytes(set.size),
                volumes::description_path(&args.output).display()
            );
        }
    }
    Ok(())
}

/// Runs `sealos registry import`.
pub fn run_import(args: &ImportArgs) -> anyhow::Result<()> {
    let progress = Arc::new(Progress::new());
    let client = args.client.client(&progress)?;
    let dest = args.s3.location(&args.dest, &client)?;
    // A volume set is checked whole before anything is unpacked, then unpacked into a scratch directory.
    let mut scratch = None;
    let dir = match volumes::find_description(&args.delivery) {
        Some(description) => {
            let set = volumes::load(&description)?;
            volumes::verify(&description, &set)?;
            let parent = scratch_parent(args, &dest);
            std::fs::create_dir_all(&parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
            let tmp = tempfile::Builder::new()
                .prefix(".sealos-import-")
                .tempdir_in(&parent)
                .with_context(|| {
                    format!("cannot create a scratch directory in {}", parent.display())
                })?;
            volumes::unpack(&description, &set, tmp.path())?;
            let dir = tmp.path().to_path_buf();
            scratch = Some(tmp);
            dir
        }
        None if args.delivery.is_dir() => args.delivery.clone(),
        None => bail!(
            "{} is neither a delivery directory nor a volume set (no {} beside it)",
            args.delivery.display(),
            volumes::description_path(&args.delivery).display()
        ),
    };
    let rt = runtime()?;
    let dest_name = dest.describe();
    let options = MirrorOptions {
        max_images: args.max_procs.max(1),
        on_image: Some(progress.image_callback()),
        ..MirrorOptions::default()
    };
    let result = rt.block_on(import::import(&dir, dest, options));
    if let Some(tmp) = scratch {
        let path = tmp.path().to_path_buf();
        tmp.close()
            .with_context(|| format!("cannot remove the scratch directory {}", path.display()))?;
    }
    let report = result?;
    let (blobs, bytes) = report.added();
    let present = &report.preflight.blobs_present;
    let relied = &report.preflight.relied_present;
    let summary = registry::mirror::Summary::of(&report.images);
    match args.format {
        Format::Json => {
            let totals = |m: &std::collections::BTreeMap<formats::digest::Digest, u64>| serde_json::json!({ "blobs": m.len(), "bytes": m.values().sum::<u64>() });
            outln!(
                "{}",
                serde_json::json!({
                    "added": totals(&report.preflight.blobs_to_add),
                    "alreadyThere": totals(present),
                    "relied": totals(relied),
                    "images": report.images.iter().map(report_json).collect::<Vec<_>>(),
                })
            )?
        }
        Format::Text => eprintln!(
            "imported {} ({} already there) into {dest_name}: {} added ({}), {} already there, {} relied on \
             found there ({})",
            plural(summary.copied, "image"),
            summary.skipped,
            plural(blobs, "blob"),
            human_bytes(bytes),
            plural(present.len(), "blob"),
            relied.len(),
            human_bytes(relied.values().sum()),
        ),
    }
    Ok(())
}

/// Where a volume set is unpacked: `--scratch-dir`, else beside a directory destination (same file system),
/// else the system's temporary directory.
fn scratch_parent(args: &ImportArgs, dest: &Location) -> PathBuf {
    if let Some(dir) = &args.scratch_dir {
        return dir.clone();
    }
    match dest.store().and_then(|s| s.root()) {
        Some(root) => root
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        None => std::env::temp_dir(),
    }
}
