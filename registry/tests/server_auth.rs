//! `registry serve --htpasswd` over TCP on 127.0.0.1: Basic and token authentication with our client and
//! raw HTTP, the challenges, scopes, anonymous pull, expired and forged tokens, htpasswd errors, and TLS
//! read by our client, reqwest with the CA, and skopeo with `--cert-dir`.

mod auth_common;

use std::path::Path;
use std::time::Duration;

use auth_common::*;
use formats::digest::Digest;
use registry::client::{
    CertDirs, ClientError, ClientOptions, Credentials, DEFAULT_MANIFEST_ACCEPT, RegistryClient,
};
use registry::server::auth::{
    AuthConfig, Claims, Htpasswd, ResourceAccess, TokenAnswer, TokenKey, htpasswd_entry, sign_token,
};
use registry::server::tls;
use reqwest::StatusCode;

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// The spec error code of a response body.
async fn error_code(resp: reqwest::Response) -> String {
    let body: serde_json::Value = resp.json().await.expect("a JSON error body");
    body["errors"][0]["code"].as_str().unwrap_or("").to_string()
}

fn challenge(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// A token from the server's `/token` for `scopes`, as `alice` or anonymously.
async fn token(s: &AuthServer, user: bool, scopes: &[&str]) -> TokenAnswer {
    let mut rb = http()
        .get(s.url("/token"))
        .query(&[("service", "sealos-registry")]);
    for scope in scopes {
        rb = rb.query(&[("scope", scope)]);
    }
    if user {
        rb = rb.basic_auth(USER, Some(PASSWORD));
    }
    let resp = rb.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

fn is_unauthorized(e: &ClientError) -> bool {
    matches!(e, ClientError::Unauthorized { .. }) || e.status() == Some(401)
}

#[tokio::test(flavor = "multi_thread")]
async fn client_with_a_password_pushes_and_pulls_through_the_token_flow() {
    let s = start(Some(auth_config(false)), None).await;
    let resp = http().get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&resp),
        format!(
            "Bearer realm=\"http://{}/token\",service=\"sealos-registry\"",
            s.host
        )
    );
    assert_eq!(error_code(resp).await, "UNAUTHORIZED");

    let c = client(&s.host, Some((USER, PASSWORD)));
    c.ping(&s.host).await.unwrap();
    let image = TestImage::new("token flow");
    let digest = image.push(&c, &s.host, "team/app", "v1").await.unwrap();
    assert_eq!(digest, image.digest());
    let got = c
        .get_manifest(&s.host, "team/app", "v1", DEFAULT_MANIFEST_ACCEPT)
        .await
        .unwrap();
    assert_eq!(got.bytes.as_ref(), image.manifest.as_slice());
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("layer");
    let layer = Digest::sha256_of(&image.layer);
    c.fetch_blob(&s.host, "team/app", &layer, None, &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), image.layer);
    assert_eq!(c.catalog(&s.host).await.unwrap(), vec!["team/app"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_answer_has_token_access_token_expiry_and_issue_time() {
    let s = start(Some(auth_config(false)), None).await;
    let t = token(&s, true, &["repository:a:pull,push"]).await;
    assert!(!t.token.is_empty());
    assert_eq!(t.token, t.access_token);
    assert_eq!(t.expires_in, 300);
    assert!(
        t.issued_at.ends_with('Z') && t.issued_at.len() == 20,
        "{}",
        t.issued_at
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn preemptive_basic_credentials_are_accepted_on_v2() {
    let s = start(Some(auth_config(false)), None).await;
    let ok = http()
        .get(s.url("/v2/"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let blob = b"basic blob".to_vec();
    let digest = Digest::sha256_of(&blob);
    let put = http()
        .post(s.url(&format!("/v2/basic/blobs/uploads/?digest={digest}")))
        .basic_auth(USER, Some(PASSWORD))
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let get = http()
        .get(s.url(&format!("/v2/basic/blobs/{digest}")))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!(get.bytes().await.unwrap().as_ref(), blob.as_slice());
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_is_refused_with_401_by_registry_token_endpoint_and_client() {
    let s = start(Some(auth_config(false)), None).await;
    let resp = http()
        .get(s.url("/v2/"))
        .basic_auth(USER, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&resp).starts_with("Bearer realm="));
    assert_eq!(error_code(resp).await, "UNAUTHORIZED");
    let resp = http()
        .get(s.url("/token?scope=repository:a:pull"))
        .basic_auth(USER, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(resp).await, "UNAUTHORIZED");
    let resp = http()
        .get(s.url("/token"))
        .basic_auth("mallory", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let c = client(&s.host, Some((USER, "wrong")));
    let err = TestImage::new("wrong")
        .push(&c, &s.host, "a", "v1")
        .await
        .unwrap_err();
    assert!(is_unauthorized(&err), "{err}");
    assert!(s.storage.list_repositories().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_push_is_refused_with_401_and_nothing_is_stored() {
    let s = start(Some(auth_config(true)), None).await;
    let blob = b"anonymous blob".to_vec();
    let digest = Digest::sha256_of(&blob);
    let resp = http()
        .post(s.url(&format!("/v2/x/blobs/uploads/?digest={digest}")))
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&resp),
        format!(
            "Bearer realm=\"http://{}/token\",service=\"sealos-registry\",scope=\"repository:x:pull,push\"",
            s.host
        )
    );
    assert_eq!(error_code(resp).await, "UNAUTHORIZED");
    let image = TestImage::new("anon");
    let resp = http()
        .put(s.url("/v2/x/manifests/v1"))
        .header("content-type", OCI_MANIFEST)
        .body(image.manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = http()
        .delete(s.url(&format!("/v2/x/manifests/{}", image.digest())))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&resp).contains("scope=\"repository:x:delete\""));

    // Our client, anonymous, gets a token granting pull only and is refused too.
    let c = client(&s.host, None);
    let err = image.push(&c, &s.host, "x", "v1").await.unwrap_err();
    assert!(is_unauthorized(&err), "{err}");

    assert_eq!(s.storage.blob_size(&digest).await.unwrap(), None);
    assert_eq!(
        s.storage
            .blob_size(&Digest::sha256_of(&image.layer))
            .await
            .unwrap(),
        None
    );
    assert!(s.storage.list_repositories().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_pull_allows_reads_but_not_writes_or_the_catalog() {
    let s = start(Some(auth_config(true)), None).await;
    let image = TestImage::new("public");
    let owner = client(&s.host, Some((USER, PASSWORD)));
    image.push(&owner, &s.host, "pub/app", "v1").await.unwrap();

    let anon = client(&s.host, None);
    let got = anon
        .get_manifest(&s.host, "pub/app", "v1", DEFAULT_MANIFEST_ACCEPT)
        .await
        .unwrap();
    assert_eq!(got.digest, image.digest());
    assert_eq!(anon.tags(&s.host, "pub/app").await.unwrap(), vec!["v1"]);

    for path in [
        "/v2/pub/app/manifests/v1".to_string(),
        format!("/v2/pub/app/blobs/{}", Digest::sha256_of(&image.layer)),
        "/v2/pub/app/tags/list".to_string(),
        format!("/v2/pub/app/referrers/{}", image.digest()),
    ] {
        let r = http().get(s.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {path} without credentials");
        if path.contains("/manifests/") || path.contains("/blobs/") {
            let r = http().head(s.url(&path)).send().await.unwrap();
            assert_eq!(
                r.status(),
                StatusCode::OK,
                "HEAD {path} without credentials"
            );
        }
    }
    let r = http().get(s.url("/v2/_catalog")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("scope=\"registry:catalog:*\""));
    let r = http()
        .put(s.url("/v2/pub/app/manifests/v2"))
        .header("content-type", OCI_MANIFEST)
        .body(image.manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let err = TestImage::new("anon push")
        .push(&anon, &s.host, "pub/app", "v2")
        .await
        .unwrap_err();
    assert!(is_unauthorized(&err), "{err}");
    assert_eq!(
        s.storage.list_tags("pub/app").await.unwrap(),
        vec!["v1".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_anonymous_pull_reads_need_credentials() {
    let s = start(Some(auth_config(false)), None).await;
    let image = TestImage::new("private");
    let owner = client(&s.host, Some((USER, PASSWORD)));
    image.push(&owner, &s.host, "priv", "v1").await.unwrap();
    let r = http()
        .get(s.url("/v2/priv/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("scope=\"repository:priv:pull\""));
    // An anonymous token grants nothing here.
    let t = token(&s, false, &["repository:priv:pull"]).await;
    let r = http()
        .get(s.url("/v2/priv/manifests/v1"))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let anon = client(&s.host, None);
    let err = anon
        .get_manifest(&s.host, "priv", "v1", DEFAULT_MANIFEST_ACCEPT)
        .await
        .unwrap_err();
    assert!(is_unauthorized(&err), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn token_for_pulling_one_repository_cannot_push_it_nor_read_another() {
    let s = start(Some(auth_config(false)), None).await;
    let owner = client(&s.host, Some((USER, PASSWORD)));
    TestImage::new("a")
        .push(&owner, &s.host, "a", "v1")
        .await
        .unwrap();
    TestImage::new("b")
        .push(&owner, &s.host, "b", "v1")
        .await
        .unwrap();
    let t = token(&s, true, &["repository:a:pull"]).await;
    let get = |path: &str| {
        http()
            .get(s.url(path))
            .bearer_auth(&t.token)
            .header("accept", OCI_MANIFEST)
            .send()
    };
    assert_eq!(
        get("/v2/a/manifests/v1").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(get("/v2/").await.unwrap().status(), StatusCode::OK);
    let r = get("/v2/b/manifests/v1").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&r).contains("scope=\"repository:b:pull\",error=\"insufficient_scope\""),
        "{}",
        challenge(&r)
    );
    assert_eq!(error_code(r).await, "UNAUTHORIZED");
    let r = http()
        .post(s.url("/v2/a/blobs/uploads/"))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(r).await, "UNAUTHORIZED");
    let r = http()
        .delete(s.url("/v2/a/manifests/v1"))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = get("/v2/_catalog").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.storage.list_tags("a").await.unwrap(), vec!["v1"]);

    let t = token(&s, true, &["registry:catalog:*"]).await;
    let r = http()
        .get(s.url("/v2/_catalog"))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_and_forged_tokens_are_refused_and_a_shared_key_is_accepted_by_replicas() {
    let key = TokenKey::from_bytes(&[7u8; 32]);
    let short = AuthConfig {
        token_key: key.clone(),
        // Two seconds: token times have one-second resolution, so a one-second token issued just before a
        // second boundary could expire before the replica is asked.
        token_lifetime: Duration::from_secs(2),
        ..auth_config(false)
    };
    let s = start(Some(short), None).await;
    let replica = start(
        Some(AuthConfig {
            token_key: key,
            ..auth_config(false)
        }),
        None,
    )
    .await;
    let t = token(&s, true, &["repository:a:pull"]).await;
    assert_eq!(t.expires_in, 2);
    let r = http()
        .get(replica.url("/v2/a/tags/list"))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "the replica accepts it");

    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = http()
        .get(s.url("/v2/a/tags/list"))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("error=\"invalid_token\""));
    assert!(
        r.text().await.unwrap().contains("expired"),
        "the message says why"
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = sign_token(
        &TokenKey::random().unwrap(),
        &Claims {
            iss: "sealos-registry".into(),
            sub: USER.into(),
            aud: "sealos-registry".into(),
            exp: now + 300,
            nbf: now,
            iat: now,
            jti: "x".into(),
            access: vec![ResourceAccess {
                kind: "repository".into(),
                name: "a".into(),
                actions: vec!["pull".into(), "push".into()],
            }],
        },
    );
    let r = http()
        .post(s.url("/v2/a/blobs/uploads/"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A token edited to grant more fails its signature.
    let fresh = token(&s, true, &["repository:a:pull"]).await.token;
    let mut parts: Vec<&str> = fresh.split('.').collect();
    let forged_payload = base64_url(&format!(
        r#"{{"iss":"sealos-registry","sub":"alice","aud":"sealos-registry","exp":{},"nbf":{now},"iat":{now},"jti":"y","access":[{{"type":"repository","name":"a","actions":["push"]}}]}}"#,
        now + 300
    ));
    parts[1] = &forged_payload;
    let r = http()
        .post(s.url("/v2/a/blobs/uploads/"))
        .bearer_auth(parts.join("."))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(s.storage.list_repositories().await.unwrap().is_empty());
}

fn base64_url(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test(flavor = "multi_thread")]
async fn mount_from_a_repository_the_token_cannot_read_becomes_a_plain_upload() {
    let s = start(Some(auth_config(false)), None).await;
    let owner = client(&s.host, Some((USER, PASSWORD)));
    let image = TestImage::new("mount");
    image.push(&owner, &s.host, "secret", "v1").await.unwrap();
    let layer = Digest::sha256_of(&image.layer);
    let path = format!("/v2/mine/blobs/uploads/?mount={layer}&from=secret");
    let t = token(&s, true, &["repository:mine:pull,push"]).await;
    let r = http()
        .post(s.url(&path))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "no pull on `secret`");
    assert!(!s.storage.has_layer("mine", &layer).await.unwrap());
    let t = token(
        &s,
        true,
        &["repository:mine:pull,push", "repository:secret:pull"],
    )
    .await;
    let r = http()
        .post(s.url(&path))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(s.storage.has_layer("mine", &layer).await.unwrap());
}

#[test]
fn htpasswd_errors_name_the_file_and_line() {
    let good = htpasswd_entry("bob", "pw", 4).unwrap();
    let cases = [
        ("bob:$apr1$x$y\n", 1, "MD5"),
        ("# comment\n\nbob:{SHA}abc=\n", 3, "SHA-1"),
        ("bob:plain\n", 1, "plain-text"),
        ("bob:$6$salt$hash\n", 1, "SHA-crypt"),
        ("bob:$2y$10$tooshort\n", 1, "malformed bcrypt"),
        ("no colon here\n", 1, "user:bcrypt-hash"),
        (":$2y$\n", 1, "user name is empty"),
    ];
    let path = Path::new("/etc/registry/htpasswd");
    for (text, line, what) in cases {
        let e = Htpasswd::parse(text, path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("/etc/registry/htpasswd:{line}: ")),
            "{text:?}: {e}"
        );
        assert!(e.contains(what), "{text:?}: {e}");
    }
    let dup = format!("{good}\n{good}\n");
    let e = Htpasswd::parse(&dup, path).unwrap_err().to_string();
    assert!(e.contains(":2: ") && e.contains("twice"), "{e}");
    let e = Htpasswd::parse("\n# nobody\n", path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no users"), "{e}");
    let h = Htpasswd::parse(&format!("{good}\n"), path).unwrap();
    assert!(h.verify("bob", "pw"));
    assert!(!h.verify("bob", "wrong"));
    assert!(!h.verify("nobody", "pw"));
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let e = Htpasswd::load(&missing).unwrap_err().to_string();
    assert!(e.contains("missing"), "{e}");
    let key = dir.path().join("key");
    std::fs::write(&key, "short\n").unwrap();
    let e = TokenKey::load(&key).unwrap_err().to_string();
    assert!(
        e.contains("holds 5 bytes") && e.contains("openssl rand"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_registry_is_read_with_its_ca_by_reqwest_our_client_and_skopeo() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let config = tls::server_config(
        &dir.path().join("server.crt"),
        &dir.path().join("server.key"),
    )
    .unwrap();
    let s = start(Some(auth_config(false)), Some(config)).await;

    // Verified TLS with the CA: the challenge points at an https realm.
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("ca.crt")).unwrap()).unwrap();
    let verified = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let r = verified.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&r).starts_with(&format!("Bearer realm=\"https://{}/token\"", s.host)),
        "{}",
        challenge(&r)
    );
    // Without the CA, verification fails; plain HTTP to the TLS port gets a 400 that says to use https.
    assert!(http().get(s.url("/v2/")).send().await.is_err());
    let plain = http()
        .get(format!("http://{}/v2/", s.host))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
    assert!(plain.text().await.unwrap().contains("HTTPS server"));

    let c = client(&s.host, Some((USER, PASSWORD)));
    let image = TestImage::new("tls");
    image.push(&c, &s.host, "secure/app", "v1").await.unwrap();

    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(dir.path().join("ca.crt"), certs.join("ca.crt")).unwrap();

    // Our client, verifying: the CA from `--cert-dir`, or from a certs.d root's HOST:PORT directory.
    let verifying = |cert_dirs: CertDirs| {
        let mut opts = ClientOptions {
            cert_dirs,
            ..ClientOptions::default()
        };
        opts.credentials.insert(
            s.host.clone(),
            Credentials {
                username: USER.into(),
                password: PASSWORD.into(),
            },
        );
        RegistryClient::new(opts).unwrap()
    };
    let certs_d = dir.path().join("certs.d");
    std::fs::create_dir_all(certs_d.join(&s.host)).unwrap();
    std::fs::copy(
        dir.path().join("ca.crt"),
        certs_d.join(&s.host).join("ca.crt"),
    )
    .unwrap();
    for cert_dirs in [
        CertDirs {
            explicit: Some(certs.clone()),
            roots: Vec::new(),
        },
        CertDirs {
            explicit: None,
            roots: vec![dir.path().join("absent"), certs_d.clone()],
        },
    ] {
        let got = verifying(cert_dirs.clone())
            .get_manifest(&s.host, "secure/app", "v1", DEFAULT_MANIFEST_ACCEPT)
            .await
            .unwrap_or_else(|e| panic!("with {cert_dirs:?}: {e}"));
        assert_eq!(got.bytes.as_ref(), image.manifest.as_slice());
    }
    // Without the CA our client refuses the certificate and says where the CA goes.
    let e = verifying(CertDirs::default())
        .get_manifest(&s.host, "secure/app", "v1", DEFAULT_MANIFEST_ACCEPT)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("/etc/containers/certs.d/{}/ca.crt", s.host))
            && e.contains("--cert-dir"),
        "{e}"
    );
    let raw = run_ok(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--cert-dir",
            &certs.display().to_string(),
            "--creds",
            &format!("{USER}:{PASSWORD}"),
            &format!("docker://{}/secure/app:v1", s.host),
        ],
    )
    .await;
    assert_eq!(raw.as_bytes(), image.manifest.as_slice());
    let out = dir.path().join("out");
    run_ok(
        "skopeo",
        &[
            "copy",
            "--src-cert-dir",
            &certs.display().to_string(),
            "--src-creds",
            &format!("{USER}:{PASSWORD}"),
            &format!("docker://{}/secure/app:v1", s.host),
            &format!("oci:{}:v1", out.display()),
        ],
    )
    .await;
    assert!(out.join("index.json").is_file());
    // skopeo without the CA refuses the certificate unless told not to verify.
    let refused = run(
        "skopeo",
        vec![
            "inspect".into(),
            "--raw".into(),
            "--creds".into(),
            format!("{USER}:{PASSWORD}"),
            format!("docker://{}/secure/app:v1", s.host),
        ],
    )
    .await;
    assert!(!refused.status.success());
    run_ok(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &format!("{USER}:{PASSWORD}"),
            &format!("docker://{}/secure/app:v1", s.host),
        ],
    )
    .await;
}

#[test]
fn tls_files_that_do_not_fit_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    // The CA's key does not belong to the server certificate.
    let e = tls::server_config(&dir.path().join("server.crt"), &dir.path().join("ca.key"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("server.crt") && e.contains("ca.key"), "{e}");
    // A key where the certificate should be.
    let e = tls::server_config(
        &dir.path().join("server.key"),
        &dir.path().join("server.key"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("BEGIN CERTIFICATE"), "{e}");
    let e = tls::server_config(&dir.path().join("server.crt"), &dir.path().join("nope.key"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.key"), "{e}");
}

/// Sends `GET path` exactly as written with a bearer `token` and returns the whole answer.
async fn raw_get(host: &str, path: &str, token: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Pushes `blob` into `repo` as alice (monolithic POST with Basic) and returns its digest.
async fn push_blob_as_alice(s: &AuthServer, repo: &str, blob: &[u8]) -> Digest {
    let digest = Digest::sha256_of(blob);
    let r = http()
        .post(s.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
        .basic_auth(USER, Some(PASSWORD))
        .body(blob.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    digest
}

#[tokio::test(flavor = "multi_thread")]
async fn mount_with_percent_encoded_parameter_names_still_needs_pull_on_the_source() {
    let s = start(Some(auth_config(false)), None).await;
    let secret = push_blob_as_alice(&s, "victim/app", b"the victim's secret layer").await;
    let t = token(&s, true, &["repository:attacker/app:pull,push"]).await;
    for query in [
        format!("m%6Funt={secret}&fr%6Fm=victim/app"),
        format!("%6D%6F%75%6E%74={secret}&%66%72%6F%6D=victim%2Fapp"),
        format!("mount={secret}&fr%6fm=victim/app"),
        // Two sources: the first is the one both the check and the mount use.
        format!("mount={secret}&from=victim/app&from=attacker/app"),
    ] {
        let r = http()
            .post(s.url(&format!("/v2/attacker/app/blobs/uploads/?{query}")))
            .bearer_auth(&t.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "?{query} mounted");
        assert!(
            !s.storage.has_layer("attacker/app", &secret).await.unwrap(),
            "?{query}"
        );
        let r = http()
            .get(s.url(&format!("/v2/attacker/app/blobs/{secret}")))
            .bearer_auth(&t.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "?{query}");
    }
    // With pull on the source the encoded names mount, as the plain ones do.
    let t = token(
        &s,
        true,
        &[
            "repository:attacker/app:pull,push",
            "repository:victim/app:pull",
        ],
    )
    .await;
    let r = http()
        .post(s.url(&format!(
            "/v2/attacker/app/blobs/uploads/?m%6Funt={secret}&fr%6Fm=victim/app"
        )))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(s.storage.has_layer("attacker/app", &secret).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mount_without_from_is_a_plain_upload_even_for_a_blob_stored_elsewhere() {
    let s = start(Some(auth_config(false)), None).await;
    let secret = push_blob_as_alice(&s, "victim/app", b"stored in another repository").await;
    let t = token(&s, true, &["repository:attacker/app:pull,push"]).await;
    for path in [
        format!("/v2/attacker/app/blobs/uploads/?mount={secret}"),
        format!("/v2/attacker/app/blobs/uploads?mount={secret}&from="),
    ] {
        let r = http()
            .post(s.url(&path))
            .bearer_auth(&t.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{path}");
        assert!(r.headers().contains_key("location"), "{path}");
    }
    assert!(!s.storage.has_layer("attacker/app", &secret).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_that_decode_to_another_repository_need_that_repositorys_scope() {
    let s = start(Some(auth_config(false)), None).await;
    let owner = client(&s.host, Some((USER, PASSWORD)));
    let image = TestImage::new("other");
    image
        .push(&owner, &s.host, "team/other", "v1")
        .await
        .unwrap();
    let layer = Digest::sha256_of(&image.layer);
    let own = push_blob_as_alice(&s, "team/app", b"team/app's own blob").await;
    let t = token(&s, true, &["repository:team/app:pull,push"]).await;
    let send = |method: reqwest::Method, path: String| {
        http()
            .request(method, s.url(&path))
            .bearer_auth(&t.token)
            .header("accept", OCI_MANIFEST)
            .send()
    };
    use reqwest::Method;
    // Each names team/other once decoded: 401 asking for its scope, as the plain path does.
    for (method, path) in [
        (Method::GET, "/v2/team%2Fother/manifests/v1".to_string()),
        (Method::GET, "/v2/team%2fother/manifests/v1".to_string()),
        (Method::GET, "/v2//team/other/manifests/v1".to_string()),
        (Method::HEAD, "/v2/team/other/manifests/v1".to_string()),
        (Method::GET, format!("/v2/team/other/blobs/{layer}")),
        (Method::HEAD, format!("/v2/team%2Fother/blobs/{layer}")),
        (Method::GET, "/v2/team/other/tags/list".to_string()),
        (
            Method::GET,
            format!("/v2/team/other/referrers/{}", image.digest()),
        ),
        (Method::POST, "/v2/team/other/blobs/uploads".to_string()),
        (Method::POST, "/v2/team/other/blobs/uploads/".to_string()),
        (
            Method::POST,
            format!("/v2/team/other/blobs/uploads/?digest={own}"),
        ),
        (
            Method::POST,
            "/v2/team/other/blobs%2Fuploads%2F".to_string(),
        ),
        (Method::DELETE, "/v2/team/other/manifests/v1".to_string()),
    ] {
        let r = send(method.clone(), path.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        let c = challenge(&r);
        assert!(c.contains("repository:team/other:"), "{method} {path}: {c}");
    }
    // Names that are not repositories (dot segments, empty components, upper case) never reach storage. Sent
    // as written: an HTTP client would resolve the dot segments itself.
    for path in [
        "/v2/team/app/../other/manifests/v1",
        "/v2/team/app/..%2Fother/manifests/v1",
        "/v2/team/app/%2e%2e/other/manifests/v1",
        "/v2/team/app/%2E%2E%2Fother/manifests/v1",
        "/v2/team/other/./manifests/v1",
        "/v2/team//other/manifests/v1",
        "/v2/TEAM/OTHER/manifests/v1",
        "/v2/Team/App/manifests/v1",
    ] {
        let head = raw_get(&s.host, path, &t.token).await;
        assert!(head.starts_with("HTTP/1.1 400 "), "{path}: {head}");
        assert!(head.contains("NAME_INVALID"), "{path}: {head}");
    }
    // The catalog needs its own scope, however the path is written.
    for path in ["/v2/_catalog", "/v2/_catalog?n=10", "/v2/_c%61talog"] {
        let r = send(Method::GET, path.to_string()).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(challenge(&r).contains("registry:catalog:*"), "{path}");
    }
    // What the token does cover still works, however the path is written.
    let r = send(Method::HEAD, format!("/v2/team%2Fapp/blobs/{own}"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(s.storage.list_uploads().await.unwrap().is_empty());
    assert!(!s.storage.has_layer("team/other", &own).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_credentials_are_checked_on_every_spelling_of_a_path() {
    let s = start(Some(auth_config(true)), None).await;
    let own = push_blob_as_alice(&s, "pub/app", b"public blob").await;
    // Anonymous pull lets anyone read, never write, however the path or parameters are written.
    for path in [
        format!("/v2/pub%2Fapp/blobs/uploads/?digest={own}"),
        "/v2/pub/app/blobs/uploads".to_string(),
        format!("/v2/other/blobs/uploads/?m%6Funt={own}&fr%6Fm=pub/app"),
    ] {
        let r = http().post(s.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let r = http()
            .post(s.url(&path))
            .basic_auth(USER, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "{path} with a wrong password"
        );
    }
    let r = http()
        .get(s.url(&format!("/v2/pub%2Fapp/blobs/{own}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http().get(s.url("/v2/_c%61talog")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http()
        .get(s.url("/v2/_c%61talog"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!s.storage.has_layer("other", &own).await.unwrap());
    assert!(s.storage.list_uploads().await.unwrap().is_empty());
}
