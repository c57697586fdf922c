//! Row B6 (`push-embedded-vs-buildah`): pushing a cluster image that embeds 20 images (B3's context: the
//! images generated once into a local `docker-registry`, `--size` bytes in all) to a fresh local
//! `docker-registry` (started untimed before each run, so every blob is sent).
//!
//! Ours builds the image once (`sealos build`, default settings: embedded images are one uncompressed layer each,
//! their blobs inside already compressed) and times `sealos push`, which sends the stored blobs as they are:
//! nothing is compressed again. The peer is what sealos does today: `skopeo sync` into the context's
//! `registry/`, `buildah bud` once, and `buildah push` timed, which gzips the layer of already-compressed blobs.
//! The bytes each push sent (config and layers of the pushed manifest) go to stderr after every run.
//! `SEALOS_BENCH_EMBED_IMAGES` changes the image count (default 20).

use std::fs;
use std::path::Path;

use builder::build::BuildOptions;
use builder::embed::EmbedOptions;
use formats::layer::Compression;

use super::Context;
use super::build::push_to_fresh_registry;
use super::embed::build;
use super::registry::{ServerKind, sealos_binary};
use crate::harness::{Job, Pair, quote, shell};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &["push-embedded-vs-buildah"];

const KUBEFILE: &str = "FROM scratch\nCOPY . .\nCMD [\"kubectl apply -f manifests/\"]\n";
const TAG: &str = "bench/embed:latest";

/// Generates the images, builds the cluster image with both tools once and returns the row.
pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>> {
    let count: usize = std::env::var("SEALOS_BENCH_EMBED_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(1);
    let work = ctx.work.join("push-embedded");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    let ours_ctx = work.join("ours-ctx");
    let peer_ctx = work.join("peer-ctx");
    for c in [&ours_ctx, &peer_ctx] {
        fs::create_dir_all(c.join("manifests"))?;
        fs::write(c.join("Kubefile"), KUBEFILE)?;
        fs::write(c.join("manifests/app.yaml"), "kind: Pod\n")?;
    }
    fs::create_dir_all(peer_ctx.join("registry"))?;
    let (upstream, client, repos) =
        super::embed::upstream_with_images(ctx, &work, &ours_ctx, count, "push-embedded")?;

    let store = work.join("store");
    build(
        &BuildOptions {
            tags: vec![TAG.into()],
            client: Some(client),
            embed: EmbedOptions::default(),
            compression: Compression::default(),
            ..super::build::options(&ours_ctx, &store)
        },
        &mut |_| {},
    )?;

    // The peer's context: the same images synced into the `registry/` directory a docker-registry serves.
    let peer_registry =
        ServerKind::DockerRegistry.start_fs(&work, Some(&peer_ctx.join("registry")))?;
    let mut yaml = format!("{}:\n  tls-verify: false\n  images:\n", upstream.host);
    for repo in &repos {
        yaml.push_str(&format!("    {repo}: [\"v1\"]\n"));
    }
    let yaml_path = work.join("sync.yaml");
    fs::write(&yaml_path, yaml)?;
    let q = |p: &Path| quote(&p.to_string_lossy());
    shell(&format!(
        "skopeo sync --src yaml --dest docker --dest-tls-verify=false {} {}",
        q(&yaml_path),
        peer_registry.host
    ))()?;
    drop(peer_registry);
    let root = work.join("buildah");
    let buildah = format!(
        "buildah --storage-driver vfs --root {r} --runroot {r}/run",
        r = q(&root)
    );
    shell(&format!(
        "{buildah} bud --quiet -f {} -t x {}",
        q(&peer_ctx.join("Kubefile")),
        q(&peer_ctx)
    ))()?;

    let sealos = sealos_binary()?;
    let scratch = work.clone();
    let ours = Box::new(move || {
        push_to_fresh_registry(&scratch, "push-embedded: ours", "b6/ours", |dest| {
            shell(&format!(
                "{} --root {} push {TAG} {dest} --insecure",
                quote(&sealos.to_string_lossy()),
                q(&store)
            ))()
        })
    }) as Job;
    let scratch = work.clone();
    let peer = Box::new(move || {
        push_to_fresh_registry(&scratch, "push-embedded: buildah", "b6/buildah", |dest| {
            shell(&format!(
                "{buildah} push --quiet --tls-verify=false x docker://{dest}"
            ))()
        })
    }) as Job;
    drop(upstream);
    Ok(vec![Pair {
        id: ROWS[0].into(),
        ours,
        peer_name: "buildah push (vfs, image built by buildah)".into(),
        peer,
    }])
}
