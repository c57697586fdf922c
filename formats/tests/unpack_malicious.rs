//! Malicious layer tars, built from raw 512-byte headers so `..`, absolute names and links really reach the
//! unpacker: each must be refused (or, for a leading `/`, land inside the target) and write nothing outside.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use formats::layer::{UnpackError, UnpackOptions, UnpackReport, unpack};

/// One raw tar entry: name, type flag, link name and content.
struct Raw {
    name: Vec<u8>,
    kind: u8,
    link: Vec<u8>,
    data: Vec<u8>,
}

fn file(name: impl AsRef<[u8]>, data: &[u8]) -> Raw {
    Raw {
        name: name.as_ref().to_vec(),
        kind: b'0',
        link: Vec::new(),
        data: data.to_vec(),
    }
}

fn dir(name: impl AsRef<[u8]>) -> Raw {
    Raw {
        name: name.as_ref().to_vec(),
        kind: b'5',
        link: Vec::new(),
        data: Vec::new(),
    }
}

fn link(kind: u8, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Raw {
    Raw {
        name: name.as_ref().to_vec(),
        kind,
        link: target.as_ref().to_vec(),
        data: Vec::new(),
    }
}

fn symlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Raw {
    link(b'2', name, target)
}

fn hardlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Raw {
    link(b'1', name, target)
}

fn special(kind: u8, name: &str) -> Raw {
    Raw {
        name: name.as_bytes().to_vec(),
        kind,
        link: Vec::new(),
        data: Vec::new(),
    }
}

fn octal(field: &mut [u8], value: u64) {
    let text = format!("{value:0width$o}\0", width = field.len() - 1);
    field.copy_from_slice(text.as_bytes());
}

/// A ustar header written byte by byte: nothing sanitises the name.
fn header(name: &[u8], kind: u8, link: &[u8], size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0);
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    h
}

fn push_data(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn archive(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        if e.name.len() > 100 {
            // GNU long name: a `././@LongLink` entry of type `L` holding the full name.
            let mut long = e.name.clone();
            long.push(0);
            out.extend_from_slice(&header(b"././@LongLink", b'L', b"", long.len() as u64));
            push_data(&mut out, &long);
        }
        let short = &e.name[..e.name.len().min(100)];
        out.extend_from_slice(&header(short, e.kind, &e.link, e.data.len() as u64));
        push_data(&mut out, &e.data);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A tempdir holding `target/` (where layers go) and `outside` (a file an attack would like to reach).
struct Sandbox {
    tmp: tempfile::TempDir,
    target: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("target")).unwrap();
        fs::write(tmp.path().join("outside"), b"precious").unwrap();
        let target = tmp.path().join("target");
        Sandbox { tmp, target }
    }

    fn target(&self) -> &Path {
        &self.target
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    fn unpack(&self, entries: &[Raw]) -> Result<UnpackReport, UnpackError> {
        unpack(
            &archive(entries)[..],
            &self.target,
            &UnpackOptions::default(),
        )
    }

    /// Nothing beside `target` changed: only `target` and the untouched `outside` exist.
    fn assert_nothing_escaped(&self) {
        let names: BTreeSet<_> = fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["outside".to_string(), "target".to_string()])
        );
        assert_eq!(fs::read(self.path().join("outside")).unwrap(), b"precious");
        let outside = fs::metadata(self.path().join("outside")).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::nlink(&outside),
            1,
            "`outside` was hardlinked"
        );
        assert!(
            fs::symlink_metadata(self.path().join("target"))
                .unwrap()
                .is_dir()
        );
    }
}

/// Asserts an `Unsafe` refusal naming `entry`.
fn assert_unsafe(result: Result<UnpackReport, UnpackError>, entry: &str) {
    match result {
        Err(err @ UnpackError::Unsafe { .. }) => {
            let UnpackError::Unsafe { entry: got, .. } = &err else {
                unreachable!()
            };
            assert_eq!(got, entry);
            assert!(
                err.to_string().contains(entry),
                "message does not name the entry: {err}"
            );
        }
        other => panic!("expected Unsafe refusal of `{entry}`, got {other:?}"),
    }
}

#[test]
fn dot_dot_at_the_start_is_refused() {
    let s = Sandbox::new();
    assert_unsafe(s.unpack(&[file("../evil", b"x")]), "../evil");
    s.assert_nothing_escaped();
}

#[test]
fn dot_dot_in_the_middle_is_refused() {
    let s = Sandbox::new();
    assert_unsafe(s.unpack(&[file("a/../../evil", b"x")]), "a/../../evil");
    assert!(!s.path().join("evil").exists());
    s.assert_nothing_escaped();
}

#[test]
fn absolute_names_land_inside_the_target() {
    let s = Sandbox::new();
    let before = fs::read("/etc/passwd").ok();
    // An absolute path naming the sandbox itself: followed literally it would create `escaped` beside the target.
    let aimed = format!("{}/escaped", s.path().display());
    s.unpack(&[
        file("/etc/passwd", b"root::0:0::/:/bin/sh\n"),
        file(&aimed, b"x"),
    ])
    .unwrap();
    assert_eq!(
        fs::read(s.target().join("etc/passwd")).unwrap(),
        b"root::0:0::/:/bin/sh\n"
    );
    assert_eq!(
        fs::read(s.target().join(aimed.trim_start_matches('/'))).unwrap(),
        b"x"
    );
    assert_eq!(fs::read("/etc/passwd").ok(), before);
    s.assert_nothing_escaped();
}

#[test]
fn symlink_to_root_then_entry_through_it_is_refused() {
    let s = Sandbox::new();
    let through = format!("link{}/evil", s.path().display());
    assert_unsafe(
        s.unpack(&[symlink("link", "/"), file(&through, b"x")]),
        &through,
    );
    assert!(!s.path().join("evil").exists());
    s.assert_nothing_escaped();
}

#[test]
fn symlink_to_dot_dot_then_entry_through_it_is_refused() {
    let s = Sandbox::new();
    let tmp_name = s.path().file_name().unwrap().to_str().unwrap().to_string();
    let through = format!("link/{tmp_name}/x");
    assert_unsafe(
        s.unpack(&[symlink("link", "../.."), file(&through, b"x")]),
        &through,
    );
    assert!(!s.path().join("x").exists());
    s.assert_nothing_escaped();
}

#[test]
fn symlink_chain_leading_out_is_refused() {
    let s = Sandbox::new();
    let result = s.unpack(&[
        symlink("a", "b"),
        symlink("b", "c"),
        symlink("c", ".."),
        file("a/evil", b"x"),
    ]);
    assert_unsafe(result, "a/evil");
    assert!(!s.path().join("evil").exists());
    s.assert_nothing_escaped();
}

#[test]
fn hardlink_to_an_absolute_host_file_is_refused() {
    let s = Sandbox::new();
    assert_unsafe(s.unpack(&[hardlink("passwd", "/etc/passwd")]), "passwd");
    assert!(fs::symlink_metadata(s.target().join("passwd")).is_err());
    s.assert_nothing_escaped();
}

#[test]
fn hardlink_to_a_file_outside_is_refused() {
    let s = Sandbox::new();
    assert_unsafe(s.unpack(&[hardlink("stolen", "../outside")]), "stolen");
    assert!(fs::symlink_metadata(s.target().join("stolen")).is_err());
    s.assert_nothing_escaped();
}

#[test]
fn hardlink_through_a_symlink_is_refused() {
    let s = Sandbox::new();
    assert_unsafe(
        s.unpack(&[symlink("up", ".."), hardlink("stolen", "up/outside")]),
        "stolen",
    );
    s.assert_nothing_escaped();
}

#[test]
fn character_device_is_refused() {
    let s = Sandbox::new();
    assert_unsafe(s.unpack(&[special(b'3', "dev/mem")]), "dev/mem");
    assert!(fs::symlink_metadata(s.target().join("dev/mem")).is_err());
    s.assert_nothing_escaped();
}

#[test]
fn block_device_is_refused() {
    let s = Sandbox::new();
    assert_unsafe(s.unpack(&[special(b'4', "dev/sda")]), "dev/sda");
    s.assert_nothing_escaped();
}

#[test]
fn fifo_is_refused_by_default_and_skipped_when_allowed() {
    let s = Sandbox::new();
    assert_unsafe(s.unpack(&[special(b'6', "run/pipe")]), "run/pipe");
    let opts = UnpackOptions {
        allow_devices: true,
        ..UnpackOptions::default()
    };
    let report = unpack(
        &archive(&[special(b'6', "run/pipe")])[..],
        s.target(),
        &opts,
    )
    .unwrap();
    assert_eq!(report.skipped, ["run/pipe"]);
    assert!(fs::symlink_metadata(s.target().join("run/pipe")).is_err());
    s.assert_nothing_escaped();
}

#[test]
fn whiteout_naming_dot_dot_is_refused() {
    let s = Sandbox::new();
    fs::create_dir(s.target().join("a")).unwrap();
    assert_unsafe(s.unpack(&[file("a/.wh..", b"")]), "a/.wh..");
    assert_unsafe(s.unpack(&[file(".wh..", b"")]), ".wh..");
    assert!(s.target().join("a").is_dir());
    s.assert_nothing_escaped();
}

#[test]
fn whiteout_through_a_symlink_is_refused() {
    let s = Sandbox::new();
    assert_unsafe(
        s.unpack(&[symlink("up", ".."), file("up/.wh.outside", b"")]),
        "up/.wh.outside",
    );
    s.assert_nothing_escaped();
}

#[test]
fn symlink_replacing_a_directory_cannot_be_written_through() {
    let s = Sandbox::new();
    let outside_dir = s.path().display().to_string();
    let result = s.unpack(&[
        dir("d/"),
        file("d/f", b"inside"),
        symlink("d", &outside_dir),
        file("d/evil", b"x"),
    ]);
    assert_unsafe(result, "d/evil");
    assert!(!s.path().join("evil").exists());
    assert!(
        fs::symlink_metadata(s.target().join("d"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    s.assert_nothing_escaped();
}

#[test]
fn very_long_dot_dot_paths_are_refused() {
    let s = Sandbox::new();
    let up = format!("{}evil", "../".repeat(100));
    assert_unsafe(s.unpack(&[file(&up, b"x")]), &up);
    let down_then_up = format!("{}{}evil", "a/".repeat(60), "../".repeat(61));
    assert_unsafe(s.unpack(&[file(&down_then_up, b"x")]), &down_then_up);
    assert!(!s.path().join("evil").exists());
    s.assert_nothing_escaped();
}

#[test]
fn a_harmless_layer_with_whiteouts_unpacks_onto_a_lower_one() {
    let s = Sandbox::new();
    s.unpack(&[
        dir("etc/"),
        file("etc/keep", b"lower"),
        file("etc/gone", b"lower"),
        dir("opaque/"),
        file("opaque/old", b"lower"),
        file("becomes-dir", b"lower"),
    ])
    .unwrap();
    let report = s
        .unpack(&[
            file("etc/.wh.gone", b""),
            dir("opaque/"),
            file("opaque/new", b"upper"),
            file("opaque/.wh..wh..opq", b""),
            dir("becomes-dir/"),
            file("becomes-dir/x", b"upper"),
        ])
        .unwrap();
    assert_eq!(report.whiteouts, 2);
    let t = s.target();
    assert_eq!(fs::read(t.join("etc/keep")).unwrap(), b"lower");
    assert!(!t.join("etc/gone").exists());
    assert!(!t.join("opaque/old").exists());
    assert_eq!(fs::read(t.join("opaque/new")).unwrap(), b"upper");
    assert_eq!(fs::read(t.join("becomes-dir/x")).unwrap(), b"upper");
    assert!(!t.join("etc/.wh.gone").exists());
    s.assert_nothing_escaped();
}

#[test]
fn setuid_bits_are_dropped_and_modes_and_mtimes_applied() {
    let s = Sandbox::new();
    let mut tar = archive(&[dir("bin/"), file("bin/su", b"elf")]);
    // Patch the second header (bin/su) to mode 4755 and mtime 1000, then fix its checksum.
    let h = &mut tar[512..1024];
    octal(&mut h[100..108], 0o4755);
    octal(&mut h[136..148], 1000);
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    unpack(&tar[..], s.target(), &UnpackOptions::default()).unwrap();
    let m = fs::metadata(s.target().join("bin/su")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        m.modified().unwrap(),
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000)
    );
    s.assert_nothing_escaped();
}

#[test]
fn a_file_entry_replaces_a_lower_directory_and_a_symlink_never_gets_written_through() {
    let s = Sandbox::new();
    let outside = s.path().join("outside").display().to_string();
    s.unpack(&[dir("d/"), file("d/child", b"lower"), symlink("f", &outside)])
        .unwrap();
    s.unpack(&[file("d", b"now a file"), file("f", b"replaced the link")])
        .unwrap();
    assert_eq!(fs::read(s.target().join("d")).unwrap(), b"now a file");
    assert!(
        fs::symlink_metadata(s.target().join("f"))
            .unwrap()
            .is_file()
    );
    s.assert_nothing_escaped();
}
