//! `sealos save -o FILE [--format oci-archive|docker-archive|oci-dir] IMAGE...`: exports images from the
//! local store.

use std::path::PathBuf;

use builder::store::ArchiveFormat;

use super::images::{explain, human_size, open_store};
use crate::GlobalArgs;

/// Archive formats on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SaveFormat {
    /// A tar of an OCI image layout (what `buildah pull oci-archive:FILE` reads).
    OciArchive,
    /// The `docker save` format (what `docker load` reads); one platform per image.
    DockerArchive,
    /// An OCI image layout directory.
    OciDir,
}

/// Arguments of `sealos save`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sealos save -o app.tar myapp:v1                          an OCI archive
  sealos save -o app.tar --format docker-archive myapp:v1  for `docker load`
  sealos save -o ./layout --format oci-dir a:v1 b:v2       an OCI layout directory of two images")]
pub struct SaveArgs {
    /// Where to write the archive (a directory for oci-dir).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// The archive format.
    #[arg(long, value_enum, default_value_t = SaveFormat::OciArchive)]
    pub format: SaveFormat,
    /// The images to save.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Writes the archive.
pub fn run(global: &GlobalArgs, args: &SaveArgs) -> anyhow::Result<()> {
    let store = open_store(global)?;
    let format = match args.format {
        SaveFormat::OciArchive => ArchiveFormat::OciArchive,
        SaveFormat::DockerArchive => ArchiveFormat::DockerArchive,
        SaveFormat::OciDir => ArchiveFormat::OciDir,
    };
    let names: Vec<&str> = args.images.iter().map(String::as_str).collect();
    let report = store.save(&names, format, &args.output).map_err(explain)?;
    eprintln!(
        "saved {} as {format} to `{}` ({} files, {})",
        super::images::plural(report.images.len(), "image"),
        args.output.display(),
        report.blobs,
        human_size(report.bytes)
    );
    Ok(())
}
