//! What users see when talking to registries, through the real binary against real local servers
//! (Debian's `docker-registry` and `sealos registry serve`): short errors with one right hint ("not logged
//! in" vs "rejected our credentials", a wrong password, a refused connection), `--debug` request logs, TLS
//! choices (loopback registries insecure by default, `--tls-verify=false` trying HTTPS first,
//! `--src-tls-verify`/`--dest-tls-verify`), `push --insecure`, `--format json` and the examples in `--help`.
//! Needs `docker-registry` and `openssl`; fails naming them.

mod upstream;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use testsupport::{Backend, DockerAuth, DockerRegistry, DockerTls, SealosRegistry, free_port};
use upstream::push_image;

const USER: &str = "alice";
const PASS: &str = "s3cret-pass";

/// A scratch directory with an empty registries.conf, a store and an auth file.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(env.conf(), "").unwrap();
        env
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn conf(&self) -> PathBuf {
        self.path("registries.conf")
    }

    /// `sealos ARGS` with this environment's store, auth file and registries.conf (for commands that take
    /// client flags).
    fn sealos(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if !matches!(args.first(), Some(&"logout") | Some(&"--help")) && !args.contains(&"--help") {
            all.push("--registries-conf".into());
            all.push(self.conf().display().to_string());
        }
        let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
            .args(&all)
            .env("SEALOS_ROOT", self.path("store"))
            .env("REGISTRY_AUTH_FILE", self.path("auth.json"))
            .env("HOME", self.path("home"))
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::null())
            .output()
            .expect("run sealos");
        eprintln!(
            "sealos {}\n--- stdout\n{}--- stderr\n{}",
            all.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs `sealos ARGS`, which must fail; returns its stderr's non-empty lines.
    fn fails(&self, args: &[&str]) -> Vec<String> {
        let out = self.sealos(args);
        assert!(!out.status.success(), "sealos {args:?} succeeded");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Runs `sealos ARGS`, which must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.sealos(args);
        assert!(
            out.status.success(),
            "sealos {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An htpasswd file with `alice`'s bcrypt entry.
    fn htpasswd(&self) -> PathBuf {
        let file = self.path("htpasswd");
        let hash = bcrypt::hash(PASS, 4).unwrap();
        std::fs::write(&file, format!("{USER}:{hash}\n")).unwrap();
        file
    }

    /// Stores `user:password` for `host` in the auth file, as `sealos login` would.
    fn store_credentials(&self, host: &str, password: &str) {
        registry::client::store_credentials(host, USER, password, &self.path("auth.json")).unwrap();
    }

    /// A self-signed certificate for 127.0.0.1 and its key.
    fn certificate(&self) -> (PathBuf, PathBuf) {
        let (cert, key) = (self.path("tls.crt"), self.path("tls.key"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap_or_else(|e| panic!("`openssl` is not installed ({e}); this test needs it"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (cert, key)
    }
}

/// docker-registry (Basic auth) and our server (bearer tokens), both requiring `alice`.
fn servers_with_auth(env: &Env) -> (DockerRegistry, SealosRegistry) {
    let htpasswd = env.htpasswd();
    let docker = DockerRegistry::start_with_auth(DockerAuth::Htpasswd {
        realm: "basic-realm",
        path: &htpasswd,
    });
    let ours = SealosRegistry::start_with(
        Path::new(env!("CARGO_BIN_EXE_sealos")),
        Backend::InMemory,
        &["--htpasswd", htpasswd.to_str().unwrap()],
        false,
    );
    (docker, ours)
}

#[test]
fn a_401_without_credentials_says_not_logged_in_with_a_login_hint() {
    let env = Env::new();
    let (docker, ours) = servers_with_auth(&env);
    for host in [docker.host(), ours.host().to_string()] {
        let lines = env.fails(&["pull", &format!("{host}/team/app:v1")]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("not logged in"), "{lines:?}");
        assert!(
            lines[0].contains(&format!("sealos login {host}")),
            "{lines:?}"
        );
        assert!(!lines[0].contains("rejected"), "{lines:?}");
    }
}

#[test]
fn stored_credentials_that_are_refused_are_rejected_not_missing() {
    let env = Env::new();
    let (docker, ours) = servers_with_auth(&env);
    for host in [docker.host(), ours.host().to_string()] {
        env.store_credentials(&host, "not-the-password");
        let lines = env.fails(&["pull", &format!("{host}/team/app:v1")]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("rejected our credentials"), "{lines:?}");
        assert!(!lines[0].contains("not logged in"), "{lines:?}");
        assert!(!lines[0].contains('{'), "raw JSON: {lines:?}");
    }
}

#[test]
fn a_wrong_password_at_login_says_so_in_one_line_without_json() {
    let env = Env::new();
    let (docker, ours) = servers_with_auth(&env);
    for host in [docker.host(), ours.host().to_string()] {
        let lines = env.fails(&["login", &host, "-u", USER, "-p", "wrong"]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("wrong user name or password") && lines[0].contains(&host),
            "{lines:?}"
        );
        assert!(
            !lines[0].contains('{') && !lines[0].contains('}'),
            "raw JSON: {lines:?}"
        );
        let stored = std::fs::read_to_string(env.path("auth.json")).unwrap_or_default();
        assert!(
            !stored.contains(&host),
            "a failed login stored something: {stored}"
        );
        // The right password logs in.
        let out = env.ok(&["login", &host, "-u", USER, "-p", PASS]);
        assert!(out.contains("Login Succeeded"), "{out}");
    }
}

#[test]
fn a_refused_connection_is_one_short_line_with_host_port_and_a_hint() {
    let env = Env::new();
    let port = free_port();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let lines = env.fails(&["pull", &format!("{host}/x:1")]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(
            line.contains(&format!(":{port}: connection refused"))
                && line.contains("is the registry running"),
            "{line}"
        );
        assert!(line.len() < 200, "too long ({} chars): {line}", line.len());
        assert!(!line.contains("tcp connect error"), "{line}");
    }
}

#[test]
fn debug_logs_each_request_and_its_status_without_credentials() {
    let env = Env::new();
    let (docker, _ours) = servers_with_auth(&env);
    let host = docker.host();
    env.store_credentials(&host, PASS);
    let c = registry::client::RegistryClient::new(registry::client::ClientOptions {
        tls_verify: false,
        credentials: [(
            host.clone(),
            registry::client::Credentials {
                username: USER.into(),
                password: PASS.into(),
            },
        )]
        .into(),
        ..registry::client::ClientOptions::default()
    })
    .unwrap();
    upstream::push_image_layers(
        &c,
        &host,
        "team/app",
        Some("v1"),
        "amd64",
        &[b"x".repeat(10)],
    );
    let out = env.sealos(&["--debug", "pull", &format!("{host}/team/app:v1")]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("GET http://{host}/v2/team/app/manifests/v1")),
        "{err}"
    );
    assert!(err.contains("-> 401 Unauthorized"), "{err}");
    assert!(err.contains("-> 200 OK"), "{err}");
    assert!(!err.contains(PASS) && !err.contains("\u{1b}["), "{err}");
    // Without --debug, nothing of that.
    let quiet = env.sealos(&["pull", &format!("{host}/team/app:v1")]);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("GET http"));
}

#[test]
fn loopback_registries_speaking_plain_http_need_no_flag() {
    let env = Env::new();
    let reg = DockerRegistry::start_fresh();
    let (digest, _) = push_image(&reg.host(), "app", Some("v1"), "amd64", "loopback ");
    let port = reg.host().rsplit(':').next().unwrap().to_string();
    for host in [reg.host(), format!("localhost:{port}")] {
        let out = env.ok(&["pull", &format!("{host}/app:v1"), "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["digest"], digest.to_string(), "{v}");
    }
    // Asked explicitly to verify, a plain-HTTP registry is refused with the plain-HTTP hint.
    let lines = env.fails(&[
        "pull",
        &format!("{}/app:v1", reg.host()),
        "--tls-verify=true",
    ]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("--tls-verify=false"), "{lines:?}");
}

#[test]
fn insecure_registries_are_tried_over_https_first_accepting_any_certificate() {
    let env = Env::new();
    let (cert, key) = env.certificate();
    let reg = DockerRegistry::start_with_tls(DockerTls {
        certificate: &cert,
        key: &key,
        client_ca: None,
    });
    let host = reg.host();
    let image = format!("{host}/app:v1");
    // The upstream helper's client is insecure too: it reaches the HTTPS-only server.
    let (digest, _) = push_image(&host, "app", Some("v1"), "amd64", "over https ");
    for flags in [&["--tls-verify=false"][..], &[][..]] {
        let out = env.ok(&[&["pull", image.as_str(), "--format", "json"][..], flags].concat());
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["digest"], digest.to_string(), "{v}");
    }
    // Verified, the self-signed certificate is refused, saying where a CA goes.
    let lines = env.fails(&["pull", &image, "--tls-verify=true"]);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("certs.d/{host}/ca.crt"))),
        "{lines:?}"
    );
}

#[test]
fn src_and_dest_tls_verify_apply_to_their_side_only() {
    let env = Env::new();
    let (cert, key) = env.certificate();
    let src = DockerRegistry::start_with_tls(DockerTls {
        certificate: &cert,
        key: &key,
        client_ca: None,
    });
    let dst = DockerRegistry::start_fresh();
    let (digest, _) = push_image(&src.host(), "app", Some("v1"), "amd64", "two sides ");
    let image = format!("{}/app:v1", src.host());
    let dest = dst.host();
    // --tls-verify=true for both: the source's certificate is refused.
    let lines = env.fails(&["registry", "copy", &image, &dest, "--tls-verify=true"]);
    assert!(lines.iter().any(|l| l.contains(&src.host())), "{lines:?}");
    // The source unverified, the plain-HTTP destination still verified: refused there.
    let lines = env.fails(&[
        "registry",
        "copy",
        &image,
        &dest,
        "--tls-verify=true",
        "--src-tls-verify=false",
    ]);
    let text = lines.join("\n");
    assert!(
        text.contains(&dest) && text.contains("--tls-verify=false"),
        "{text}"
    );
    // Both sides set: copied, and --format json says what.
    let out = env.ok(&[
        "registry",
        "copy",
        &image,
        &dest,
        "--tls-verify=true",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["digest"], digest.to_string(), "{v}");
    assert_eq!(v["status"], "copied", "{v}");
    assert_eq!(v["source"], image, "{v}");
    assert_eq!(v["reference"], format!("{dest}/app:v1"), "{v}");
    assert_eq!(upstream::remote_digest(&dest, "app", "v1"), Some(digest));
}

#[test]
fn push_insecure_and_json_output_of_push_pull_save_and_copy() {
    let env = Env::new();
    let src = DockerRegistry::start_fresh();
    let dst = DockerRegistry::start_fresh();
    let (digest, _) = push_image(&src.host(), "app", Some("v1"), "amd64", "json ");
    let image = format!("{}/app:v1", src.host());
    let pulled: serde_json::Value =
        serde_json::from_str(&env.ok(&["pull", &image, "--format", "json"])).unwrap();
    assert_eq!(pulled["reference"], image, "{pulled}");
    assert_eq!(pulled["digest"], digest.to_string(), "{pulled}");
    assert!(pulled["bytes"].as_u64().unwrap() > 0, "{pulled}");
    // `--insecure` is `--tls-verify=false`; it cannot be combined with --tls-verify.
    let dest = format!("{}/copies/app:v2", dst.host());
    let pushed: serde_json::Value =
        serde_json::from_str(&env.ok(&["push", &image, &dest, "--insecure", "--format", "json"]))
            .unwrap();
    assert_eq!(pushed["reference"], dest, "{pushed}");
    assert_eq!(pushed["digest"], digest.to_string(), "{pushed}");
    assert_eq!(pushed["source"], image, "{pushed}");
    assert_eq!(pushed["status"], "copied", "{pushed}");
    let lines = env.fails(&["push", &image, &dest, "--insecure", "--tls-verify=true"]);
    assert!(
        lines.iter().any(|l| l.contains("cannot be used with")),
        "{lines:?}"
    );
    // save: one JSON document with the totals and one entry per image.
    let dir = env.path("saved");
    let saved: serde_json::Value = serde_json::from_str(&env.ok(&[
        "registry",
        "save",
        "--images",
        &image,
        "--registry-dir",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(saved["copied"], 1, "{saved}");
    assert_eq!(saved["failed"], 0, "{saved}");
    let entry = &saved["images"][0];
    assert_eq!(entry["source"], image, "{saved}");
    assert_eq!(entry["digest"], digest.to_string(), "{saved}");
    assert_eq!(entry["status"], "copied", "{saved}");
    assert!(
        entry["destination"].as_str().unwrap().ends_with("app:v1"),
        "{saved}"
    );
}

#[test]
fn network_commands_show_examples_in_their_help() {
    let env = Env::new();
    for cmd in [
        &["push"][..],
        &["pull"],
        &["login"],
        &["logout"],
        &["registry", "save"],
        &["registry", "sync"],
        &["registry", "copy"],
        &["registry", "serve"],
    ] {
        let out = env.ok(&[cmd, &["--help"][..]].concat());
        assert!(out.contains("Examples:\n  sealos "), "{cmd:?}:\n{out}");
    }
    let push = env.ok(&["push", "--help"]);
    assert!(push.contains("--insecure"), "{push}");
    let copy = env.ok(&["registry", "copy", "--help"]);
    assert!(
        copy.contains("--src-tls-verify") && copy.contains("--dest-tls-verify"),
        "{copy}"
    );
}
