//! Hostile layers and careless directories, through the real `sealos` binary: decompression bombs stop at
//! the `--max-layer-expansion` / `--max-layer-size` bound, data hidden after a compressed stream is
//! refused, and `create --dir` replaces only what `create` made.

#[path = "store_fixture.rs"]
mod fixture;

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use fixture::{Env, make_image, tar_header, tar_member};
use formats::digest::{Algorithm, Digest, DigestWriter};
use formats::layer::Compression;
use formats::manifest::{Descriptor, ImageManifest, Platform, RawManifest};
use formats::media_type;
use formats::oci_layout::OciLayout;

const MIB: usize = 1 << 20;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut w = Compression::Gzip { level: 9 }
        .compressing_writer(Vec::new())
        .unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

/// A gzip layer of one file of `mib` MiB of zeros, about 1000 times smaller than its tar (one gzip member
/// per MiB, as pigz writes them), and its diff_id.
fn zeros_layer(mib: usize) -> (Vec<u8>, Digest) {
    let header = tar_header("zeros", (mib * MIB) as u64);
    let chunk = vec![0u8; MIB];
    let end = [0u8; 1024];
    let mut tar = DigestWriter::new(io::sink(), Algorithm::Sha256);
    tar.write_all(&header).unwrap();
    let member = gzip(&chunk);
    let mut blob = gzip(&header);
    for _ in 0..mib {
        tar.write_all(&chunk).unwrap();
        blob.extend_from_slice(&member);
    }
    tar.write_all(&end).unwrap();
    blob.extend(gzip(&end));
    (blob, tar.finish().1)
}

fn config_json(diff_id: &Digest) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": Platform::host().architecture,
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]}
    }))
    .unwrap()
}

/// The members of a `docker save`-shaped archive whose one layer is `layer.tar.gz`, without the end blocks.
fn docker_archive_members(layer: &[u8], diff_id: &Digest) -> Vec<u8> {
    let manifest =
        br#"[{"Config":"config.json","RepoTags":["bomb:v1"],"Layers":["layer.tar.gz"]}]"#;
    let mut tar = tar_member("manifest.json", manifest);
    tar.extend(tar_member("config.json", &config_json(diff_id)));
    tar.extend(tar_member("layer.tar.gz", layer));
    tar
}

/// A `docker save`-shaped archive whose one layer is `layer.tar.gz`.
fn docker_archive(path: &Path, layer: &[u8], diff_id: &Digest) {
    let mut tar = docker_archive_members(layer, diff_id);
    tar.extend([0u8; 1024]);
    fs::write(path, tar).unwrap();
}

/// [`docker_archive`] gzipped as a whole (`docker save | gzip`), with a last member `pad` of `pad_mib` MiB
/// of zeros when `pad_mib` is not 0 (one gzip member per MiB, so it stays about 1000 times smaller).
fn gzipped_docker_archive(path: &Path, layer: &[u8], diff_id: &Digest, pad_mib: usize) {
    let mut members = docker_archive_members(layer, diff_id);
    if pad_mib > 0 {
        members.extend(tar_header("pad", (pad_mib * MIB) as u64));
    }
    let mut out = gzip(&members);
    let chunk = gzip(&vec![0u8; MIB]);
    for _ in 0..pad_mib {
        out.extend_from_slice(&chunk);
    }
    out.extend(gzip(&[0u8; 1024]));
    fs::write(path, out).unwrap();
}

/// Stores an image `name` whose one gzip layer is `blob` (decompressing to a tar hashing to `diff_id`),
/// with `size` as the layer size its manifest claims.
fn store_image(store: &Path, name: &str, blob: &[u8], diff_id: &Digest, size: u64) {
    let layout = OciLayout::create(store).unwrap();
    let (digest, _) = layout.write_blob_bytes(blob).unwrap();
    let (config_digest, config_size) = layout.write_blob_bytes(&config_json(diff_id)).unwrap();
    let manifest = ImageManifest::new(
        Descriptor::new(media_type::OCI_CONFIG, config_digest, config_size),
        vec![Descriptor::new(
            format!("{}+gzip", media_type::OCI_LAYER_TAR),
            digest,
            size,
        )],
    );
    let raw = RawManifest::from_created(&manifest, media_type::OCI_MANIFEST).unwrap();
    let desc = layout.write_manifest(&raw).unwrap();
    layout.set_tag(name, desc).unwrap();
}

#[test]
fn load_stops_a_gzip_bomb_at_the_default_bound_and_the_flags_set_the_bound() {
    let env = Env::new();
    // 128 MiB of tar from about 130 KiB of gzip: far past 200 times, so refused once 64 MiB are out.
    let (layer, diff_id) = zeros_layer(128);
    assert!(layer.len() < 256 * 1024, "{}", layer.len());
    let archive = env.path("bomb.tar");
    docker_archive(&archive, &layer, &diff_id);
    let input = archive.to_str().unwrap();

    let err = env.fails(&["load", "-i", input]);
    assert!(
        err.contains("layer `layer.tar.gz`")
            && err.contains(&diff_id.to_string())
            && err.contains("more than 67108864 bytes, over 200 times")
            && err.contains("--max-layer-expansion"),
        "{err}"
    );
    assert_eq!(env.ok(&["images", "-q"]), "", "nothing was loaded");

    // An absolute cap holds whatever the ratio, and the global flags go after the command too.
    let err = env.fails(&[
        "load",
        "-i",
        input,
        "--max-layer-expansion",
        "0",
        "--max-layer-size",
        "1M",
    ]);
    assert!(
        err.contains("more than 1048576 bytes") && err.contains("--max-layer-size"),
        "{err}"
    );

    // Trusted, the same layer loads once the bound is raised: its gzip members are read through.
    let out = env.ok(&["--max-layer-expansion", "2000", "load", "-i", input]);
    assert!(
        out.contains("Loaded image: docker.io/library/bomb:v1"),
        "{out}"
    );
}

#[test]
fn inspect_and_registry_save_read_a_compressed_archive_within_the_global_flags() {
    let env = Env::new();
    let (layer, diff_id) = zeros_layer(1);
    // 80 MiB of zeros after the image's members, from about 80 KiB of gzip: past 200 times and 64 MiB.
    let bomb = env.path("bomb.tar.gz");
    gzipped_docker_archive(&bomb, &layer, &diff_id, 80);
    let bomb = format!("docker-archive:{}", bomb.display());
    let err = env.fails(&["inspect", &bomb]);
    assert!(
        err.contains("more than 67108864 bytes, over 200 times")
            && err.contains("--max-layer-expansion"),
        "{err}"
    );
    let out = env.ok(&["--max-layer-expansion", "2000", "inspect", &bomb]);
    assert!(out.contains("Name:        bomb:v1"), "{out}");

    // A normal compressed archive passes by default and is refused under a smaller absolute cap.
    let small = env.path("small.tar.gz");
    gzipped_docker_archive(&small, &layer, &diff_id, 0);
    let small = format!("docker-archive:{}", small.display());
    env.ok(&["inspect", &small]);
    let err = env.fails(&["inspect", &small, "--max-layer-size", "1K"]);
    assert!(
        err.contains("more than 1024 bytes") && err.contains("--max-layer-size"),
        "{err}"
    );

    // `registry save --tars` reads (inspects, then loads) the archive within the same flags.
    let dir = env.path("registry");
    let tars = format!("{bomb}@library/bomb:v1");
    let save = [
        "registry",
        "save",
        "--tars",
        &tars,
        "--registry-dir",
        dir.to_str().unwrap(),
    ];
    let err = env.fails(&save);
    assert!(
        err.contains("more than 67108864 bytes, over 200 times"),
        "{err}"
    );
    let raised = [&["--max-layer-expansion", "2000"][..], &save[..]].concat();
    env.ok(&raised);
    let saved = formats::distribution::DistributionLayout::new(&dir)
        .resolve_tag("library/bomb", "v1")
        .unwrap();
    assert!(saved.is_some(), "the archive's image was not saved");
}

#[test]
fn build_reads_the_archives_of_tar_txt_within_the_global_flags() {
    let env = Env::new();
    let (layer, diff_id) = zeros_layer(1);
    let ctx = env.path("ctx");
    fs::create_dir_all(ctx.join("images/skopeo")).unwrap();
    fs::write(ctx.join("Kubefile"), "FROM scratch\nCMD [\"true\"]\n").unwrap();
    gzipped_docker_archive(&ctx.join("images/skopeo/bomb.tar.gz"), &layer, &diff_id, 80);
    fs::write(
        ctx.join("images/skopeo/tar.txt"),
        "docker-archive:bomb.tar.gz@library/bomb:v1\n",
    )
    .unwrap();
    let build = ["build", "-t", "app:v1", ctx.to_str().unwrap()];
    let err = env.fails(&build);
    assert!(
        err.contains("more than 67108864 bytes, over 200 times") && err.contains("tar.txt:1"),
        "{err}"
    );
    let raised = [&["--max-layer-expansion", "2000"][..], &build[..]].concat();
    env.ok(&raised);
    assert!(
        env.ok(&["images"]).contains("app"),
        "the build stored no image"
    );
}

#[test]
fn create_refuses_a_layer_with_data_after_its_gzip_stream_and_a_blob_larger_than_its_manifest_says()
{
    let env = Env::new();
    let tar = [tar_member("hello.txt", b"hi\n"), vec![0u8; 1024]].concat();
    let diff_id = Digest::sha256_of(&tar);
    let clean = gzip(&tar);
    let hidden = [clean.clone(), b"#!/bin/sh hidden payload".to_vec()].concat();
    store_image(
        &env.store(),
        "clean:v1",
        &clean,
        &diff_id,
        clean.len() as u64,
    );
    store_image(
        &env.store(),
        "hidden:v1",
        &hidden,
        &diff_id,
        hidden.len() as u64,
    );
    let short = clean.len() as u64 - 1;
    store_image(&env.store(), "short:v1", &clean, &diff_id, short);

    let dir = env.path("clean");
    env.ok(&["create", "clean:v1", "--dir", dir.to_str().unwrap()]);
    assert_eq!(fs::read(dir.join("hello.txt")).unwrap(), b"hi\n");

    let dir = env.path("hidden");
    let err = env.fails(&["create", "hidden:v1", "--dir", dir.to_str().unwrap()]);
    assert!(
        err.contains("data after the end of its gzip stream"),
        "{err}"
    );
    assert!(!dir.exists(), "a refused image leaves nothing behind");

    let dir = env.path("short");
    let err = env.fails(&["create", "short:v1", "--dir", dir.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "the stored blob is {} bytes but the manifest says {short}",
            clean.len()
        )),
        "{err}"
    );
}

#[test]
fn create_refuses_a_directory_with_user_files_unless_forced_and_reuses_its_own() {
    let env = Env::new();
    make_image(&env.store(), "app:v1", "hello");
    let dir = env.path("project");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    let d = dir.to_str().unwrap();

    let err = env.fails(&["create", "app:v1", "--dir", d]);
    assert!(
        err.contains(&format!("`{d}`")) && err.contains("--force"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");

    env.ok(&["create", "app:v1", "--dir", d, "--force"]);
    assert!(
        !dir.join("notes.txt").exists(),
        "--force replaces the directory"
    );
    assert_eq!(fs::read_to_string(dir.join("hello.txt")).unwrap(), "hello");

    // A directory create made is its own to replace, without --force.
    fs::write(dir.join("hello.txt"), "edited").unwrap();
    env.ok(&["create", "app:v1", "--dir", d]);
    assert_eq!(fs::read_to_string(dir.join("hello.txt")).unwrap(), "hello");

    // An empty directory is fine; a file in the way is not.
    let empty = env.path("empty");
    fs::create_dir(&empty).unwrap();
    env.ok(&["create", "app:v1", "--dir", empty.to_str().unwrap()]);
    let file = env.path("file");
    fs::write(&file, "data").unwrap();
    let err = env.fails(&["create", "app:v1", "--dir", file.to_str().unwrap()]);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "data");
}
