//! `sealos login`/`push`/`pull`/`logout` against `sealos registry serve inmem --htpasswd` started as a
//! process on 127.0.0.1, with a private HOME and REGISTRY_AUTH_FILE so the user's credentials are never read
//! or written; and the serve command's refusal of bad auth and TLS options.

#[path = "store_fixture.rs"]
mod fixture;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use fixture::{Env, make_image, run_tool, stderr};
use registry::server::auth::htpasswd_entry;

const USER: &str = "alice";
const PASSWORD: &str = "pa55-word";

/// A `sealos registry serve` process, killed when dropped.
struct Served {
    child: Child,
    host: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sealos` with HOME, REGISTRY_AUTH_FILE and DOCKER_CONFIG inside `env`, and no XDG_RUNTIME_DIR.
fn sealos(env: &Env, store: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealos"));
    cmd.arg("--root")
        .arg(store)
        .args(args)
        .env("HOME", env.path("home"))
        .env("REGISTRY_AUTH_FILE", auth_file(env))
        .env("DOCKER_CONFIG", env.path("docker"))
        .env_remove("XDG_RUNTIME_DIR");
    cmd
}

fn auth_file(env: &Env) -> PathBuf {
    env.path("auth.json")
}

fn output(env: &Env, store: &Path, args: &[&str]) -> Output {
    sealos(env, store, args).output().unwrap()
}

fn ok(env: &Env, store: &Path, args: &[&str]) -> String {
    let out = output(env, store, args);
    assert!(
        out.status.success(),
        "sealos {args:?} failed: {}",
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(env: &Env, store: &Path, args: &[&str]) -> String {
    let out = output(env, store, args);
    assert!(!out.status.success(), "sealos {args:?} should have failed");
    stderr(&out)
}

/// Starts `sealos registry serve inmem -p 0 --address 127.0.0.1 EXTRA` and waits for its address.
fn serve(env: &Env, extra: &[&str]) -> Served {
    let mut args = vec![
        "registry",
        "serve",
        "inmem",
        "-p",
        "0",
        "--address",
        "127.0.0.1",
        "--disable-logging",
    ];
    args.extend_from_slice(extra);
    let mut child = sealos(env, &env.store(), &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let host = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"))
        .to_string();
    Served { child, host }
}

/// Runs `sealos registry serve inmem -p 0 EXTRA`, which must fail at start; returns its stderr.
fn serve_fails(env: &Env, extra: &[&str]) -> String {
    let args = [&["registry", "serve", "inmem", "-p", "0"][..], extra].concat();
    fails(env, &env.store(), &args)
}

fn write_htpasswd(env: &Env) -> PathBuf {
    let file = env.path("htpasswd");
    let line = htpasswd_entry(USER, PASSWORD, 4).unwrap();
    std::fs::write(&file, format!("{line}\n")).unwrap();
    file
}

#[test]
fn login_push_pull_logout_against_a_server_with_htpasswd() {
    let env = Env::new();
    let htpasswd = write_htpasswd(&env);
    let server = serve(&env, &["--htpasswd", htpasswd.to_str().unwrap()]);
    let host = server.host.as_str();
    let store = env.store();
    let desc = make_image(&store, "app:v1", "pushed with a login");
    let dest = format!("{host}/team/app:v1");

    let err = fails(
        &env,
        &store,
        &["push", "app:v1", &dest, "--tls-verify=false"],
    );
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );

    let err = fails(
        &env,
        &store,
        &[
            "login",
            host,
            "-u",
            USER,
            "-p",
            "wrong",
            "--tls-verify=false",
        ],
    );
    assert!(err.contains("nothing was stored"), "{err}");
    assert!(!auth_file(&env).exists());

    let out = ok(
        &env,
        &store,
        &[
            "login",
            host,
            "-u",
            USER,
            "-p",
            PASSWORD,
            "--tls-verify=false",
        ],
    );
    assert!(out.contains("Login Succeeded"), "{out}");
    let stored = std::fs::read_to_string(auth_file(&env)).unwrap();
    assert!(stored.contains(host), "{stored}");

    ok(
        &env,
        &store,
        &["push", "app:v1", &dest, "--tls-verify=false"],
    );
    let other = env.path("other-store");
    ok(&env, &other, &["pull", &dest, "--tls-verify=false"]);
    let out = output(&env, &other, &["inspect", "--format", "json", &dest]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["digest"], desc.digest.to_string());

    ok(&env, &store, &["logout", host]);
    let stored = std::fs::read_to_string(auth_file(&env)).unwrap();
    assert!(!stored.contains(host), "{stored}");
    let third = env.path("third-store");
    let err = fails(&env, &third, &["pull", &dest, "--tls-verify=false"]);
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
}

#[test]
fn anonymous_pull_serves_pulls_without_a_login() {
    let env = Env::new();
    let htpasswd = write_htpasswd(&env);
    let server = serve(
        &env,
        &["--htpasswd", htpasswd.to_str().unwrap(), "--anonymous-pull"],
    );
    let host = server.host.as_str();
    let store = env.store();
    make_image(&store, "app:v1", "public");
    let dest = format!("{host}/pub/app:v1");
    ok(
        &env,
        &store,
        &[
            "login",
            host,
            "-u",
            USER,
            "-p",
            PASSWORD,
            "--tls-verify=false",
        ],
    );
    ok(
        &env,
        &store,
        &["push", "app:v1", &dest, "--tls-verify=false"],
    );
    ok(&env, &store, &["logout", host]);
    ok(
        &env,
        &env.path("anon"),
        &["pull", &dest, "--tls-verify=false"],
    );
    fails(
        &env,
        &store,
        &[
            "push",
            "app:v1",
            &format!("{host}/pub/app:v2"),
            "--tls-verify=false",
        ],
    );
}

#[test]
fn serve_refuses_bad_htpasswd_and_half_given_tls_options() {
    let env = Env::new();
    let bad = env.path("bad-htpasswd");
    std::fs::write(&bad, "bob:$apr1$salt$hash\n").unwrap();
    let err = serve_fails(&env, &["--htpasswd", bad.to_str().unwrap()]);
    assert!(
        err.contains(&format!("{}:1:", bad.display())) && err.contains("bcrypt"),
        "{err}"
    );
    let err = serve_fails(&env, &["--tls-cert", "cert.pem"]);
    assert!(err.contains("--tls-key"), "{err}");
    let err = serve_fails(&env, &["--anonymous-pull"]);
    assert!(err.contains("--htpasswd"), "{err}");
    let missing = env.path("missing.pem");
    let missing = missing.to_str().unwrap();
    let err = serve_fails(&env, &["--tls-cert", missing, "--tls-key", missing]);
    assert!(err.contains("missing.pem"), "{err}");
}

#[test]
fn login_and_push_over_tls_with_a_self_signed_certificate() {
    let env = Env::new();
    let htpasswd = write_htpasswd(&env);
    let (cert, key) = (env.path("tls.crt"), env.path("tls.key"));
    run_tool(
        "openssl",
        &[
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
            // A leaf certificate that is its own trust anchor (what `--cert-dir` holds below).
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
    let server = serve(
        &env,
        &[
            "--htpasswd",
            htpasswd.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let host = server.host.as_str();
    let store = env.store();
    make_image(&store, "app:v1", "over tls");
    // The certificate is self-signed: verification (asked for explicitly: a loopback registry is insecure
    // by default) fails unless turned off.
    let err = fails(
        &env,
        &store,
        &[
            "login",
            host,
            "-u",
            USER,
            "-p",
            PASSWORD,
            "--tls-verify=true",
        ],
    );
    assert!(err.contains("nothing was stored"), "{err}");
    assert!(
        err.contains(&format!("/etc/containers/certs.d/{host}/ca.crt"))
            && err.contains("--cert-dir"),
        "the error does not say where the CA goes: {err}"
    );
    // Trusted through --cert-dir, or through the user's certs.d directory for this host:port.
    let cert_dir = env.path("certs");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(&cert, cert_dir.join("ca.crt")).unwrap();
    let login = [
        "login",
        host,
        "-u",
        USER,
        "-p",
        PASSWORD,
        "--tls-verify=true",
    ];
    ok(
        &env,
        &store,
        &[&login[..], &["--cert-dir", cert_dir.to_str().unwrap()]].concat(),
    );
    let per_host = env
        .path("home")
        .join(".config/containers/certs.d")
        .join(host);
    std::fs::create_dir_all(&per_host).unwrap();
    std::fs::copy(&cert, per_host.join("ca.crt")).unwrap();
    ok(&env, &store, &login);
    let err = fails(
        &env,
        &store,
        &[&login[..], &["--cert-dir", "/nonexistent"]].concat(),
    );
    assert!(
        err.contains("--cert-dir /nonexistent: not a directory"),
        "{err}"
    );
    std::fs::remove_dir_all(&per_host).unwrap();
    ok(
        &env,
        &store,
        &[
            "login",
            host,
            "-u",
            USER,
            "-p",
            PASSWORD,
            "--tls-verify=false",
        ],
    );
    let dest = format!("{host}/secure/app:v1");
    ok(
        &env,
        &store,
        &["push", "app:v1", &dest, "--tls-verify=false"],
    );
    ok(
        &env,
        &env.path("other"),
        &["pull", &dest, "--tls-verify=false"],
    );
}

/// Runs openssl with `args` in `dir` (file names relative to it).
fn openssl_in(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("`openssl` is not installed ({e}); this test needs it"));
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
}

/// In `dir`: a CA (`ca.crt`), a server certificate for 127.0.0.1 (`server.crt`, `server.key`) and a client
/// certificate (`client.cert`, `client.key`), both signed by the CA.
fn make_mutual_tls_pki(dir: &Path) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    openssl_in(
        dir,
        &[
            &[
                "req",
                "-x509",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=mtls-ca",
            ][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.crt"],
        ]
        .concat(),
    );
    for (name, ext) in [("server", "crt"), ("client", "cert")] {
        openssl_in(
            dir,
            &[
                &["req", "-nodes", "-subj", &format!("/CN={name}")][..],
                &ec,
                &[
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                ],
            ]
            .concat(),
        );
        openssl_in(
            dir,
            &[
                "x509",
                "-req",
                "-days",
                "1",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.{ext}"),
            ],
        );
    }
}

#[test]
fn push_and_pull_over_mutual_tls_with_the_client_certificate_in_certs_d() {
    let env = Env::new();
    let pki = env.path("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_mutual_tls_pki(&pki);
    let file = |name: &str| pki.join(name).to_str().unwrap().to_string();
    let (cert, key) = (file("server.crt"), file("server.key"));
    let with_client_ca = |ca: &str| {
        [
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            ca,
        ]
        .map(String::from)
    };
    let server = serve(
        &env,
        &with_client_ca(&file("ca.crt"))
            .each_ref()
            .map(String::as_str),
    );
    let host = server.host.as_str();
    let store = env.store();
    make_image(&store, "app:v1", "over mutual tls");
    let dest = format!("{host}/mtls/app:v1");
    let per_host = env
        .path("home")
        .join(".config/containers/certs.d")
        .join(host);
    std::fs::create_dir_all(&per_host).unwrap();
    std::fs::copy(pki.join("ca.crt"), per_host.join("ca.crt")).unwrap();
    // The CA alone: the server asks for a client certificate and the error says where it goes.
    let err = fails(&env, &store, &["push", "app:v1", &dest]);
    assert!(
        err.contains("asks for a client certificate")
            && err.contains(&format!("certs.d/{host}/client.cert")),
        "{err}"
    );
    // A key without its certificate is a mistake named as one.
    std::fs::copy(pki.join("client.key"), per_host.join("client.key")).unwrap();
    let err = fails(&env, &store, &["push", "app:v1", &dest]);
    assert!(
        err.contains("client.key") && err.contains("no certificate"),
        "{err}"
    );
    std::fs::copy(pki.join("client.cert"), per_host.join("client.cert")).unwrap();
    ok(&env, &store, &["push", "app:v1", &dest]);
    ok(&env, &env.path("other"), &["pull", &dest]);
    // A CA file that holds no certificate is refused when the server starts.
    let err = serve_fails(&env, &with_client_ca(&key).each_ref().map(String::as_str));
    assert!(
        err.contains("server.key") && err.contains("BEGIN CERTIFICATE"),
        "{err}"
    );
}
