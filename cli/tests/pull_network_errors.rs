//! `sealos pull` from a registry that cannot be reached for a reason that will not go away (a closed port,
//! a name that does not resolve) fails at once with one error line instead of retrying.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testsupport::free_port;

/// Runs `sealos pull REFERENCE` with an empty store and registries.conf; returns its output and run time.
fn pull(reference: &str) -> (Output, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("registries.conf");
    std::fs::write(&conf, "").unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(["pull", reference, "--registries-conf"])
        .arg(&conf)
        .env("SEALOS_ROOT", dir.path().join("store"))
        .env(
            "REGISTRY_AUTH_FILE",
            Path::new(dir.path()).join("auth.json"),
        )
        .stdin(Stdio::null())
        .output()
        .expect("run sealos");
    let elapsed = started.elapsed();
    eprintln!(
        "sealos pull {reference} ({elapsed:?})\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out, elapsed)
}

/// The non-empty lines of the command's stderr.
fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn pull_from_a_closed_port_fails_at_once_with_one_error_line() {
    let (out, elapsed) = pull(&format!("127.0.0.1:{}/x:1", free_port()));
    assert!(!out.status.success());
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
}

#[test]
fn pull_from_an_unresolvable_host_fails_at_once_without_a_plain_http_hint() {
    let (out, elapsed) = pull("unresolvable.invalid/x:1");
    assert!(!out.status.success());
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(!lines[0].contains("plain-HTTP"), "{lines:?}");
}
