//! `sealos registry fsck` and `sealos registry gc`: offline maintenance of a registry's storage, a directory in
//! the Docker Distribution layout or an S3 bucket (`--config`, the file `registry serve s3` takes); see
//! `docs/registry-maintenance.md`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use formats::distribution::DistributionPaths;
use registry::storage::fsck::{FsckReport, fsck, fsck_store};
use registry::storage::gc::{GcOptions, GcReport, gc, gc_store};
use registry::storage::{S3Config, S3Storage};

use super::images::{human_size, plural};
use super::registry::read_s3_config;
use crate::output::{Format, out, outln};

/// `sealos registry fsck DIR | --config FILE`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sealos registry fsck /var/lib/registry
  sealos registry fsck ./cluster/registry --format json
  sealos registry fsck --config s3.toml")]
pub struct FsckArgs {
    /// The directory that holds `docker/registry/v2`.
    #[arg(required_unless_present = "config", conflicts_with = "config")]
    pub dir: Option<PathBuf>,
    /// Check the bucket an S3 config file names instead of a directory (the TOML file `registry serve s3
    /// --config` takes: `bucket`, `endpoint`, `region`, `prefix`, credentials or the AWS_* variables).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `sealos registry gc DIR | --config FILE`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sealos registry gc /var/lib/registry --dry-run
  sealos registry gc /var/lib/registry --delete-untagged --grace-period 0s
  sealos registry gc --config s3.toml --dry-run")]
pub struct GcArgs {
    /// The directory that holds `docker/registry/v2`.
    #[arg(required_unless_present = "config", conflicts_with = "config")]
    pub dir: Option<PathBuf>,
    /// Collect in the bucket an S3 config file names instead of a directory (the TOML file `registry serve s3
    /// --config` takes: `bucket`, `endpoint`, `region`, `prefix`, credentials or the AWS_* variables).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Show what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove manifests no tag points to (children of kept indexes and referrers of kept manifests stay).
    #[arg(long)]
    pub delete_untagged: bool,
    /// Never remove blobs written, or upload sessions active, within this long (`90s`, `30m`, `1h`, `2d`,
    /// `1h30m`; `0s` removes everything unreferenced).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub grace_period: Duration,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// The storage a maintenance command works on.
enum Target {
    /// A directory holding `docker/registry/v2`.
    Dir(PathBuf),
    /// A bucket, from a config file.
    S3(S3Config),
}

impl Target {
    fn new(dir: Option<&PathBuf>, config: Option<&PathBuf>) -> anyhow::Result<Target> {
        match (dir, config) {
            (_, Some(file)) => Ok(Target::S3(read_s3_config(file)?)),
            (Some(dir), None) => Ok(Target::Dir(dir.clone())),
            (None, None) => bail!("name a registry directory, or an S3 config file with --config"),
        }
    }

    /// `registry directory `DIR`` or `bucket `NAME``, for messages.
    fn describe(&self) -> String {
        match self {
            Target::Dir(dir) => format!("registry directory `{}`", dir.display()),
            Target::S3(s3) if s3.prefix.is_empty() => format!("bucket `{}`", s3.bucket),
            Target::S3(s3) => format!("bucket `{}` (prefix `{}`)", s3.bucket, s3.prefix),
        }
    }

    fn store(s3: &S3Config) -> anyhow::Result<S3Storage> {
        S3Storage::new(s3).with_context(|| format!("cannot use bucket `{}`", s3.bucket))
    }

    async fn fsck(&self) -> anyhow::Result<FsckReport> {
        Ok(match self {
            Target::Dir(dir) => fsck(dir).await?,
            Target::S3(s3) => {
                // Problems name objects as `s3://BUCKET/PREFIX/docker/registry/v2/...`.
                let mut at = format!("s3://{}", s3.bucket);
                if !s3.prefix.is_empty() {
                    at = format!("{at}/{}", s3.prefix.trim_matches('/'));
                }
                fsck_store(&Target::store(s3)?, &DistributionPaths::new(at)).await?
            }
        })
    }

    async fn gc(&self, options: &GcOptions) -> anyhow::Result<GcReport> {
        Ok(match self {
            Target::Dir(dir) => gc(dir, options).await?,
            Target::S3(s3) => gc_store(&Target::store(s3)?, options).await?,
        })
    }
}

/// Parses `1h30m`, `90s`, `2d`, `15m`: numbers each followed by `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad =
        || format!("invalid duration `{text}`: use a number with s, m, h or d (e.g. 30m, 1h30m)");
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || text.trim().is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Runs `sealos registry fsck`: prints the report; fails (exit 1) when anything is wrong.
pub fn run_fsck(args: &FsckArgs) -> anyhow::Result<()> {
    let target = Target::new(args.dir.as_ref(), args.config.as_ref())?;
    let report = crate::runtime::runtime()?
        .block_on(target.fsck())
        .with_context(|| format!("checking {}", target.describe()))?;
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        Format::Text => {
            for problem in &report.problems {
                outln!("{problem}")?;
            }
            outln!(
                "checked {} ({}), {}, {}, {} ({} keep only some platforms); {}, {} of interrupted \
                 writes (gc removes them); {}",
                plural(report.blobs as usize, "blob"),
                human_size(report.bytes),
                match report.repositories {
                    1 => "1 repository".to_string(),
                    n => format!("{n} repositories"),
                },
                plural(report.links as usize, "link"),
                plural(report.manifests as usize, "manifest"),
                match report.partial_indexes {
                    1 => "1 index".to_string(),
                    n => format!("{n} indexes"),
                },
                plural(report.uploads as usize, "upload session"),
                plural(report.leftovers.len(), "leftover"),
                plural(report.problems.len(), "problem")
            )?;
        }
    }
    if !report.is_clean() {
        bail!(
            "{} in {}",
            plural(report.problems.len(), "problem"),
            target.describe()
        );
    }
    Ok(())
}

/// Runs `sealos registry gc`.
pub fn run_gc(args: &GcArgs) -> anyhow::Result<()> {
    let options = GcOptions {
        dry_run: args.dry_run,
        delete_untagged: args.delete_untagged,
        grace_period: args.grace_period,
    };
    let target = Target::new(args.dir.as_ref(), args.config.as_ref())?;
    let report = crate::runtime::runtime()?
        .block_on(target.gc(&options))
        .with_context(|| format!("collecting garbage in {}", target.describe()))?;
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        Format::Text => out!("{}", render_gc(&report))?,
    }
    Ok(())
}

fn render_gc(report: &GcReport) -> String {
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut out = String::new();
    for r in &report.revisions_removed {
        out.push_str(&format!("{verb} manifest {}@{}\n", r.repository, r.digest));
    }
    for b in &report.blobs_removed {
        out.push_str(&format!("{verb} blob {} ({} bytes)\n", b.digest, b.size));
    }
    for u in &report.uploads_removed {
        out.push_str(&format!(
            "{verb} upload {} in {} (idle {}s)\n",
            u.id, u.repository, u.idle_secs
        ));
    }
    for b in &report.young_blobs_kept {
        out.push_str(&format!(
            "kept unreferenced blob {} (written within the grace period)\n",
            b.digest
        ));
    }
    for dir in &report.leftovers_removed {
        out.push_str(&format!("{verb} leftover {}\n", dir.display()));
    }
    for w in &report.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out.push_str(&format!(
        "{verb} {} ({}), {}, {}, {}; kept {}\n",
        plural(report.blobs_removed.len(), "blob"),
        human_size(report.bytes_freed),
        plural(report.layer_links_removed.len(), "layer link"),
        plural(report.revisions_removed.len(), "manifest"),
        plural(report.uploads_removed.len(), "upload session"),
        plural(report.blobs_kept as usize, "blob")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_combinations() {
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "10", "h", "1x", "1h-", "99999999999999999999d"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
    }
}
