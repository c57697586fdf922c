//! `sealos manifest create|add|inspect|push`: build a multi-arch manifest list (an OCI index in the local
//! store, tagged with the list's full reference) from per-arch images, and push it with its images.

use anyhow::{Context as _, anyhow, bail};
use formats::manifest::{
    Descriptor, ImageConfig, ImageIndex, ParsedManifest, Platform, RawManifest,
};
use formats::media_type;
use formats::oci_layout::OciLayout;
use formats::reference::Reference;

use super::mirror::ClientArgs;
use crate::output::outln;

/// Arguments of `sealos manifest`.
#[derive(Debug, clap::Args)]
pub struct ManifestArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ManifestCommand,
}

/// The `sealos manifest` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ManifestCommand {
    /// Create an empty manifest list.
    Create {
        /// The list's name.
        list: String,
    },
    /// Add an image of the local store to a list (its platform read from its config unless given).
    Add {
        /// The list.
        list: String,
        /// The image.
        image: String,
        /// Override the architecture.
        #[arg(long)]
        arch: Option<String>,
        /// Override the OS.
        #[arg(long)]
        os: Option<String>,
        /// Override the variant.
        #[arg(long)]
        variant: Option<String>,
    },
    /// Print a list.
    Inspect {
        /// The list.
        list: String,
    },
    /// Push a list and every image it names.
    Push {
        /// Push the images too (always done; accepted for compatibility).
        #[arg(long)]
        all: bool,
        /// The list.
        list: String,
        /// Where to push it (`[docker://]registry/repo:tag`).
        dest: String,
        /// Registry access.
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn full_name(name: &str) -> anyhow::Result<String> {
    Ok(Reference::parse(name)
        .map_err(|e| anyhow!("`{name}` is not a valid image name: {e}"))?
        .to_string())
}

fn read_list(layout: &OciLayout, list: &str) -> anyhow::Result<(String, ImageIndex)> {
    let tag = full_name(list)?;
    let desc = layout.resolve(&tag)?.ok_or_else(|| {
        anyhow!(
            "manifest list `{tag}` does not exist; create it with `sealos manifest create {list}`"
        )
    })?;
    let raw = layout.read_manifest(&desc)?;
    match raw.parsed {
        ParsedManifest::Index(i) => Ok((tag, i)),
        ParsedManifest::Image(_) => bail!("`{tag}` is an image, not a manifest list"),
    }
}

fn write_list(layout: &OciLayout, tag: &str, index: &ImageIndex) -> anyhow::Result<RawManifest> {
    let raw = RawManifest::from_created(index, media_type::OCI_INDEX)?;
    let desc = layout.write_manifest(&raw)?;
    layout.set_tag(tag, desc)?;
    Ok(raw)
}

/// Runs a `sealos manifest` subcommand against the store at `store`.
pub fn run(args: &ManifestArgs, store: &std::path::Path) -> anyhow::Result<()> {
    let open = || {
        OciLayout::create(store)
            .with_context(|| format!("cannot open the local store {}", store.display()))
    };
    match &args.command {
        ManifestCommand::Create { list } => {
            let layout = open()?;
            let tag = full_name(list)?;
            if layout.resolve(&tag)?.is_some() {
                bail!(
                    "`{tag}` already exists in the local store; remove it first or use another name"
                );
            }
            let raw = write_list(&layout, &tag, &ImageIndex::new(Vec::new()))?;
            outln!("{}", raw.digest)?;
        }
        ManifestCommand::Add {
            list,
            image,
            arch,
            os,
            variant,
        } => {
            let layout = open()?;
            let (tag, mut index) = read_list(&layout, list)?;
            let image_tag = full_name(image)?;
            let desc = layout.resolve(&image_tag)?.ok_or_else(|| {
                anyhow!("image `{image_tag}` is not in the local store; pull or build it first")
            })?;
            let raw = layout.read_manifest(&desc)?;
            let ParsedManifest::Image(m) = &raw.parsed else {
                bail!("`{image_tag}` is itself a manifest list; add its images one by one");
            };
            let config_bytes = layout.read_blob_bytes(&m.config.digest)?;
            let config: ImageConfig = serde_json::from_slice(&config_bytes)
                .with_context(|| format!("the config of `{image_tag}` is not an image config"))?;
            let mut platform = Platform::new(
                os.clone().unwrap_or(config.os),
                arch.clone().unwrap_or(config.architecture),
            );
            platform.variant = variant.clone().or(config.variant);
            let mut entry = Descriptor::new(
                raw.media_type.clone(),
                raw.digest.clone(),
                raw.bytes.len() as u64,
            );
            entry.platform = Some(platform);
            index.manifests.retain(|d| d.digest != raw.digest);
            index.manifests.push(entry);
            let out = write_list(&layout, &tag, &index)?;
            outln!("{}", out.digest)?;
        }
        ManifestCommand::Inspect { list } => {
            let layout = open()?;
            let tag = full_name(list)?;
            let desc = layout
                .resolve(&tag)?
                .ok_or_else(|| anyhow!("manifest list `{tag}` does not exist"))?;
            let bytes = layout.read_blob_bytes(&desc.digest)?;
            let value: serde_json::Value = serde_json::from_slice(&bytes)?;
            outln!("{}", serde_json::to_string_pretty(&value)?)?;
        }
        ManifestCommand::Push {
            list, dest, client, ..
        } => {
            let dest = dest.strip_prefix("docker://").unwrap_or(dest);
            super::push::push_from_store(store, list, dest, client)?;
        }
    }
    Ok(())
}
