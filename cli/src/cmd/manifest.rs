//! `sealos manifest create|add|inspect|push`: build a multi-arch manifest list (an OCI index in the local
//! store, tagged with the list's full reference) from per-arch images, and push it with its images.

use anyhow::{Context as _, anyhow, bail};
use builder::store::Store;
use formats::manifest::{
    Descriptor, ImageConfig, ImageIndex, ParsedManifest, Platform, RawManifest,
};
use formats::media_type;
use formats::reference::Reference;

use super::mirror::ClientArgs;
use crate::output::outln;

/// Arguments of `sealos manifest`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  sealos manifest create example/app:v1
  sealos manifest add example/app:v1 example/app:v1-amd64
  sealos manifest add example/app:v1 example/app:v1-arm64
  sealos manifest inspect example/app:v1
  sealos manifest push example/app:v1 registry.example.com/team/app:v1")]
pub struct ManifestArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ManifestCommand,
}

/// The `sealos manifest` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ManifestCommand {
    /// Create an empty manifest list.
    #[command(after_help = "\
Examples:
  sealos manifest create example/app:v1
  sealos manifest create registry.example.com/team/app:v1")]
    Create {
        /// The list's name.
        list: String,
    },
    /// Add an image of the local store to a list (its platform read from its config unless given).
    #[command(after_help = "\
Examples:
  sealos manifest add example/app:v1 example/app:v1-amd64
  sealos manifest add example/app:v1 example/app:v1-armv7 --arch arm --variant v7")]
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
    #[command(after_help = "\
Examples:
  sealos manifest inspect example/app:v1")]
    Inspect {
        /// The list.
        list: String,
    },
    /// Push a list and every image it names.
    #[command(after_help = "\
Examples:
  sealos manifest push example/app:v1 registry.example.com/team/app:v1
  sealos manifest push --all example/app:v1 docker://127.0.0.1:5000/team/app:v1 --tls-verify=false")]
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

fn read_list(store: &Store, list: &str) -> anyhow::Result<(String, ImageIndex)> {
    let layout = store.layout();
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

/// Stores the list and tags it, through the store's writer guard.
fn write_list(store: &Store, tag: &str, index: &ImageIndex) -> anyhow::Result<RawManifest> {
    let raw = RawManifest::from_created(index, media_type::OCI_INDEX)?;
    store.put_manifest(tag, &raw)?;
    Ok(raw)
}

/// Runs a `sealos manifest` subcommand against the store at `store`.
pub fn run(args: &ManifestArgs, store: &std::path::Path) -> anyhow::Result<()> {
    let open = || {
        Store::open_or_create(store)
            .with_context(|| format!("cannot open the local store {}", store.display()))
    };
    match &args.command {
        ManifestCommand::Create { list } => {
            let local = open()?;
            let tag = full_name(list)?;
            if local.layout().resolve(&tag)?.is_some() {
                bail!(
                    "`{tag}` already exists in the local store; remove it first or use another name"
                );
            }
            let raw = write_list(&local, &tag, &ImageIndex::new(Vec::new()))?;
            outln!("{}", raw.digest)?;
        }
        ManifestCommand::Add {
            list,
            image,
            arch,
            os,
            variant,
        } => {
            let local = open()?;
            // Held from reading the image to tagging the list, so no collection takes the image meanwhile.
            let _guard = local.write_guard()?;
            let layout = local.layout();
            let (tag, mut index) = read_list(&local, list)?;
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
            let out = write_list(&local, &tag, &index)?;
            outln!("{}", out.digest)?;
        }
        ManifestCommand::Inspect { list } => {
            let local = open()?;
            let layout = local.layout();
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
