//! `sealos inspect IMAGE`: an image's config, layers, platforms and annotations, from the local store or a
//! transport (`oci:DIR[:REF]`, `oci-archive:FILE[:REF]`, `docker-archive:FILE[:NAME:TAG]`).

use builder::store::{ImageDetails, ImageSource};

use super::images::{explain, human_size, open_store};
use crate::GlobalArgs;
use crate::output::Format;

/// Arguments of `sealos inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The image: a name or digest in the local store, or `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`,
    /// `docker-archive:FILE[:NAME:TAG]`.
    pub image: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Prints the image's details.
pub fn run(global: &GlobalArgs, args: &InspectArgs) -> anyhow::Result<()> {
    let source = ImageSource::parse(&args.image).map_err(explain)?;
    let details = match &source {
        ImageSource::Local(_) => open_store(global)?.inspect_source(&source),
        _ => builder::store::inspect_transport(&source),
    }
    .map_err(explain)?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&details)?),
        Format::Text => print!("{}", render(&details)),
    }
    Ok(())
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
            out.push_str(&format!("  Created:     {c}\n"));
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
            .map(|l| format!("{}  {:>8}  {}", l.digest, human_size(l.size), l.media_type))
            .collect();
        list(&mut out, "Layers", &layers);
    }
    out
}
