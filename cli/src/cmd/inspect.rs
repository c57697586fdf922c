//! `sealos inspect IMAGE`: an image's config, layers, platforms and annotations, from the local store, a
//! transport (`oci:DIR[:REF]`, `oci-archive:FILE[:REF]`, `docker-archive:FILE[:NAME:TAG]`) or a registry
//! (`docker://NAME`, read without pulling: only manifests and configs are fetched, never layers).

use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use builder::store::{ImageDetails, ImageSource};
use formats::manifest::{ParsedManifest, RawManifest};
use formats::media_type;
use formats::oci_layout::OciLayout;
use formats::reference::Reference;
use futures_util::future::try_join_all;
use registry::client::RegistryClient;
use registry::mirror::{Location, MirrorError};

use super::images::{explain, human_size, known_time, open_store};
use crate::GlobalArgs;
use crate::output::{Format, out, outln};

/// Arguments of `sealos inspect`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sealos inspect myapp:v1                       an image of the local store
  sealos inspect --format json myapp:v1         the same as JSON
  sealos inspect oci-archive:app.tar            an archive, without loading it
  sealos inspect docker://quay.io/org/app:v1    a registry's image, without pulling layers
  sealos inspect --raw docker://nginx:1.27      the manifest exactly as the registry serves it")]
pub struct InspectArgs {
    /// The image: a name or digest in the local store, or `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`,
    /// `docker-archive:FILE[:NAME:TAG]`.
    pub image: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// For `docker://NAME`: print the manifest (or index) exactly as the registry serves it (a newline is
    /// added after it only on a terminal).
    #[arg(long)]
    pub raw: bool,
    /// Registry access (for `docker://NAME`).
    #[command(flatten)]
    pub client: super::mirror::ClientArgs,
}

/// Prints the image's details.
pub fn run(global: &GlobalArgs, args: &InspectArgs) -> anyhow::Result<()> {
    let source = ImageSource::parse(&args.image).map_err(explain)?;
    if let ImageSource::Registry(name) = &source {
        return remote(global, name, args);
    }
    if args.raw {
        anyhow::bail!(
            "--raw reads a registry's manifest: use `sealos inspect --raw docker://{}`",
            args.image
        );
    }
    let details = match &source {
        ImageSource::Local(_) => open_store(global)?.inspect_source(&source),
        _ => builder::store::inspect_transport(&source, global.expansion_limit()),
    }
    .map_err(explain)?;
    print_details(&details, args.format)
}

fn print_details(details: &ImageDetails, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(details)?)?,
        Format::Text => out!("{}", render(details))?,
    }
    Ok(())
}

/// Inspects `docker://NAME`: the manifest (or index), its platform manifests and their configs are read
/// into a scratch OCI layout (no layer is fetched) and described the way local images are.
fn remote(global: &GlobalArgs, name: &str, args: &InspectArgs) -> anyhow::Result<()> {
    let r = Reference::parse(name)
        .map_err(|e| anyhow!("`docker://{name}`: not a valid image reference: {e}"))?;
    let client = RegistryClient::new(args.client.options()?)?;
    let src = Location::registry(&client, r.registry());
    let repo = r.repository().to_string();
    let reference = match r.digest() {
        Some(d) => d.to_string(),
        None => r.reference_str(),
    };
    let rt = super::mirror::runtime()?;
    if args.raw {
        let m = rt
            .block_on(src.get_manifest(&repo, &reference))
            .with_context(|| format!("cannot read the manifest of `{r}`"))?;
        crate::output::write_stdout(&m.bytes)?;
        // Byte-exact into a pipe or file (`| sha256sum` gives the digest); on a terminal a newline after it,
        // so the prompt does not land on the JSON line.
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) && !m.bytes.ends_with(b"\n") {
            crate::output::write_stdout(b"\n")?;
        }
        return Ok(());
    }
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    let layout = OciLayout::create(scratch.path())
        .with_context(|| format!("cannot create {}", scratch.path().display()))?;
    let dest = Location::Oci(Arc::new(layout));
    let tag = r.to_string();
    rt.block_on(fetch_metadata(&src, &repo, &reference, &dest, &tag))
        .with_context(|| format!("cannot read `{r}` from its registry"))?;
    let details = builder::store::inspect_transport(
        &ImageSource::OciDir {
            path: scratch.path().to_path_buf(),
            reference: Some(tag),
        },
        global.expansion_limit(),
    )
    .map_err(explain)?;
    print_details(&details, args.format)
}

/// Copies the manifest `reference` of `repo`, its platform manifests and their configs (not the layers)
/// from `src` into `dest`, tagging the top one `tag`.
async fn fetch_metadata(
    src: &Location,
    repo: &str,
    reference: &str,
    dest: &Location,
    tag: &str,
) -> Result<RawManifest, MirrorError> {
    let top = src.get_manifest(repo, reference).await?;
    let images = match &top.parsed {
        ParsedManifest::Image(_) => vec![top.clone()],
        ParsedManifest::Index(index) => {
            let children = index
                .manifests
                .iter()
                .filter(|d| media_type::is_manifest(&d.media_type))
                .map(|d| async move {
                    let m = src.get_manifest(repo, &d.digest.to_string()).await?;
                    dest.put_manifest(repo, &m, None).await?;
                    Ok::<RawManifest, MirrorError>(m)
                });
            try_join_all(children).await?
        }
    };
    let configs = images.iter().filter_map(|m| match &m.parsed {
        ParsedManifest::Image(im) => Some(&im.config),
        ParsedManifest::Index(_) => None,
    });
    try_join_all(configs.map(|c| async move {
        let origin = src.blob_origin(repo, &c.digest);
        dest.put_blob(repo, c, &origin, None).await
    }))
    .await?;
    dest.put_manifest(repo, &top, Some(tag)).await?;
    Ok(top)
}

fn list(out: &mut String, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    out.push_str(&format!("  {title}:\n"));
    for i in items {
        out.push_str(&format!("    {i}\n"));
    }
}

/// The text form of `inspect`.
pub fn render(d: &ImageDetails) -> String {
    let mut out = String::new();
    if let Some(name) = &d.name {
        out.push_str(&format!("Name:        {name}\n"));
    }
    out.push_str(&format!("Digest:      {}\n", d.digest));
    out.push_str(&format!("Media type:  {}\n", d.media_type));
    out.push_str(&format!(
        "Size:        {} ({} bytes)\n",
        human_size(d.size),
        d.size
    ));
    if !d.annotations.is_empty() {
        out.push_str("Annotations:\n");
        for (k, v) in &d.annotations {
            out.push_str(&format!("  {k}={v}\n"));
        }
    }
    for i in &d.images {
        let platform = i
            .platform
            .as_ref()
            .map_or_else(|| "unknown platform".to_string(), ToString::to_string);
        out.push_str(&format!("\nPlatform {platform}\n"));
        out.push_str(&format!("  Manifest:    {}\n", i.digest));
        out.push_str(&format!(
            "  Config:      {} ({})\n",
            i.config_digest, i.config_media_type
        ));
        if let Some(c) = &i.created {
            if known_time(Some(c)).is_some() {
                out.push_str(&format!("  Created:     {c}\n"));
            } else {
                out.push_str(&format!(
                    "  Created:     unknown (the image records {c}, as reproducible builds do)\n"
                ));
            }
        }
        if let Some(a) = &i.author {
            out.push_str(&format!("  Author:      {a}\n"));
        }
        if !i.entrypoint.is_empty() {
            out.push_str(&format!(
                "  Entrypoint:  {}\n",
                serde_json::Value::from(i.entrypoint.clone())
            ));
        }
        if !i.cmd.is_empty() {
            out.push_str(&format!(
                "  Cmd:         {}\n",
                serde_json::Value::from(i.cmd.clone())
            ));
        }
        if let Some(w) = &i.working_dir {
            out.push_str(&format!("  WorkingDir:  {w}\n"));
        }
        if let Some(u) = &i.user {
            out.push_str(&format!("  User:        {u}\n"));
        }
        list(&mut out, "Env", &i.env);
        let labels: Vec<String> = i.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        list(&mut out, "Labels", &labels);
        let annotations: Vec<String> = i
            .annotations
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        list(&mut out, "Annotations", &annotations);
        let layers: Vec<String> = i
            .layers
            .iter()
            .map(|l| {
                let line = format!("{}  {:>8}  {}", l.digest, human_size(l.size), l.media_type);
                match embedded_note(&l.annotations) {
                    Some(note) => format!("{line}  ({note})"),
                    None => line,
                }
            })
            .collect();
        list(&mut out, "Layers", &layers);
    }
    out
}

/// What a layer of a cluster image's embedded registry holds, from its annotations: `embedded image REF@DIGEST`,
/// or `blobs shared by the embedded images` for the shared layer.
fn embedded_note(annotations: &std::collections::BTreeMap<String, String>) -> Option<String> {
    use formats::cluster_image::{EMBEDDED_IMAGE_ANNOTATION, SHARED_BLOBS_ANNOTATION};
    if let Some(image) = annotations.get(EMBEDDED_IMAGE_ANNOTATION) {
        return Some(format!("embedded image {image}"));
    }
    annotations
        .contains_key(SHARED_BLOBS_ANNOTATION)
        .then(|| "blobs shared by the embedded images".to_string())
}
