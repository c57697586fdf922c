//! `sealos merge -t NAME:TAG IMAGE...`: one image made of several images of the local store.

use super::images::{explain, open_store};
use crate::GlobalArgs;
use crate::output::{Format, outln};

/// Arguments of `sealos merge`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = MERGE_RULES)]
#[command(after_help = "Examples:
  sealos merge -t my/cluster:v1 labring/kubernetes:v1.27.7 labring/calico:v3.26.1
(--help tells how images are merged)")]
pub struct MergeArgs {
    /// Name of the merged image (`name[:tag]`); repeat to give it several names.
    #[arg(short, long = "tag", required = true, value_name = "NAME:TAG")]
    pub tags: Vec<String>,
    /// The images to merge (names or digests in the local store), in the order they apply.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Output format of the report.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

const MERGE_RULES: &str = "\
How images are merged (in the order given):
  layers    every image's layers in order; a layer already taken from an earlier image (same
            uncompressed digest) is left out. Blobs are shared, nothing is copied.
  labels    merged, the last image's value of a key wins.
  env       merged, the last image's value of a name wins.
  command   each image's ENTRYPOINT then CMD (without literal `/bin/sh` and `-c`) become the
            merged CMD, so `sealos run` runs every image's commands in order.
  type      rootfs if any image is a rootfs image, else patch if any is a patch, else application
            (labels sealos.io.type / apps.sealos.io/type are set to it). A patch cannot be merged
            with an application image without a rootfs, nor a patch with a command with a rootfs:
            apply those one after the other with `sealos run`.
  platform  single-platform images must share it; with a multi-platform image the result is an
            index of every platform all images have.
Merging the same images again gives the same digest.

Examples:
  sealos merge -t my/cluster:v1 labring/kubernetes:v1.27.7 labring/calico:v3.26.1
  sealos merge -t my/apps:v1 --format json example/web:v1 example/db:v1";

/// Merges the images and prints the result.
pub fn run(global: &GlobalArgs, args: &MergeArgs) -> anyhow::Result<()> {
    let store = open_store(global)?;
    let images: Vec<&str> = args.images.iter().map(String::as_str).collect();
    let tags: Vec<&str> = args.tags.iter().map(String::as_str).collect();
    let report = store.merge(&images, &tags).map_err(explain)?;
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        Format::Text => {
            outln!(
                "merged {} images into a {} image: {} layers ({} duplicate layers left out), {}",
                report.sources.len(),
                report.kind.as_str(),
                report.layers,
                report.duplicate_layers,
                report.platforms.join(", ")
            )?;
            for name in &report.names {
                outln!("tagged: {name}")?;
            }
            outln!("{}", report.digest)?;
        }
    }
    Ok(())
}
