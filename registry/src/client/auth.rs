//! Registry credentials and authentication challenges: reading credentials the way docker and podman store
//! them (`~/.docker/config.json`, containers `auth.json`, `docker-credential-*` helpers), writing them for
//! `login`/`logout`, and parsing `WWW-Authenticate` challenges and token-server answers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use super::{ClientError, normalize_host};

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The user name docker uses for an identity (OAuth refresh) token instead of a password.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

impl Credentials {
    /// The identity (OAuth refresh) token, when these credentials are one rather than a password.
    pub fn identity_token(&self) -> Option<&str> {
        (self.username == IDENTITY_TOKEN_USER).then_some(self.password.as_str())
    }

    /// The value of an `Authorization: Basic ...` header for these credentials.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            BASE64.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// Where credentials are looked up, in order; the first file with an entry for the registry wins.
#[derive(Debug, Clone, Default)]
pub struct CredentialFiles {
    /// Candidate files (missing files are skipped).
    pub files: Vec<PathBuf>,
}

impl CredentialFiles {
    /// The standard search order: `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
    /// `~/.config/containers/auth.json`, then docker's `config.json` (`$DOCKER_CONFIG` or `~/.docker`).
    pub fn from_env() -> Self {
        let mut files = Vec::new();
        if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
            files.push(PathBuf::from(f));
        }
        if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            files.push(PathBuf::from(d).join("containers/auth.json"));
        }
        let home = std::env::var_os("HOME").map(PathBuf::from);
        if let Some(h) = &home {
            files.push(h.join(".config/containers/auth.json"));
        }
        match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
            Some(d) => files.push(PathBuf::from(d).join("config.json")),
            None => {
                if let Some(h) = &home {
                    files.push(h.join(".docker/config.json"));
                }
            }
        }
        CredentialFiles { files }
    }

    /// The credentials for `repository` on `host` (repository-specific entries win over host entries), or
    /// `None` for anonymous access. Runs credential helpers when a file names one; call off the async threads.
    pub fn lookup(&self, host: &str, repository: &str) -> Result<Option<Credentials>, ClientError> {
        let host = normalize_host(host);
        for file in &self.files {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(ClientError::Config {
                        path: file.clone(),
                        message: format!("cannot read credentials file: {e}"),
                    });
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            let json: Value = serde_json::from_str(&text).map_err(|e| ClientError::Config {
                path: file.clone(),
                message: format!("not valid JSON: {e}; fix or remove the file"),
            })?;
            if let Some(found) = lookup_in(&json, file, &host, repository)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// Looks `host`/`repository` up in one parsed credentials file.
fn lookup_in(
    json: &Value,
    file: &Path,
    host: &str,
    repository: &str,
) -> Result<Option<Credentials>, ClientError> {
    if let Some(helpers) = json.get("credHelpers").and_then(Value::as_object) {
        for (key, helper) in helpers {
            if normalize_key(key) == host
                && let Some(helper) = helper.as_str()
            {
                return run_helper(helper, host);
            }
        }
    }
    if let Some(auths) = json.get("auths").and_then(Value::as_object) {
        // Most specific first: host/a/b/c, host/a/b, host/a, host.
        let mut candidates = vec![];
        let parts: Vec<&str> = repository.split('/').filter(|p| !p.is_empty()).collect();
        for n in (1..=parts.len()).rev() {
            candidates.push(format!("{host}/{}", parts[..n].join("/")));
        }
        candidates.push(host.to_string());
        for want in &candidates {
            for (key, entry) in auths {
                if &normalize_key(key) == want
                    && let Some(c) = decode_entry(entry, file, key)?
                {
                    return Ok(Some(c));
                }
            }
        }
    }
    if let Some(store) = json.get("credsStore").and_then(Value::as_str)
        && !store.is_empty()
    {
        return run_helper(store, host);
    }
    Ok(None)
}

/// `https://index.docker.io/v1/` -> `docker.io`; `host:5000/ns/repo` stays; schemes and `/v1/`, `/v2/` go.
fn normalize_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let k = k
        .strip_suffix("/v1")
        .or_else(|| k.strip_suffix("/v2"))
        .unwrap_or(k);
    match k.split_once('/') {
        Some((h, rest)) => format!("{}/{rest}", normalize_host(h)),
        None => normalize_host(k),
    }
}

fn decode_entry(entry: &Value, file: &Path, key: &str) -> Result<Option<Credentials>, ClientError> {
    if let Some(token) = entry
        .get("identitytoken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(Credentials {
            username: IDENTITY_TOKEN_USER.to_string(),
            password: token.to_string(),
        }));
    }
    if let Some(auth) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let bad = |why: &str| ClientError::Config {
            path: file.to_path_buf(),
            message: format!("the `auth` of `{key}` {why}; log in again to rewrite it"),
        };
        let raw = BASE64
            .decode(auth.trim())
            .map_err(|_| bad("is not base64"))?;
        let text = String::from_utf8(raw).map_err(|_| bad("is not UTF-8"))?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| bad("is not `user:password`"))?;
        return Ok(Some(Credentials {
            username: user.to_string(),
            password: pass.to_string(),
        }));
    }
    let user = entry.get("username").and_then(Value::as_str);
    let pass = entry.get("password").and_then(Value::as_str);
    if let (Some(u), Some(p)) = (user, pass) {
        return Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    Ok(None)
}

/// Runs `docker-credential-<helper> get` with the server URL on stdin.
fn run_helper(helper: &str, host: &str) -> Result<Option<Credentials>, ClientError> {
    run_helper_program(
        std::ffi::OsStr::new(&format!("docker-credential-{helper}")),
        helper,
        host,
    )
}

/// Runs credential helper `program` (named `helper` in errors) the way docker does.
fn run_helper_program(
    program: &std::ffi::OsStr,
    helper: &str,
    host: &str,
) -> Result<Option<Credentials>, ClientError> {
    let err = |message: String| ClientError::CredentialHelper {
        helper: helper.to_string(),
        host: host.to_string(),
        message,
    };
    // Docker stores Hub credentials under the v1 index URL; helpers are asked with that key.
    let server = if formats::reference::is_docker_hub(host) {
        "https://index.docker.io/v1/".to_string()
    } else {
        host.to_string()
    };
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            err(format!(
                "cannot run it ({e}); install it or remove it from the docker config"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| err(format!("writing its input: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("waiting for it: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let said = format!(
            "{}{}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        if said.to_ascii_lowercase().contains("not found") {
            return Ok(None);
        }
        return Err(err(format!("failed ({}): {said}", out.status)));
    }
    let json: Value = serde_json::from_str(&stdout)
        .map_err(|e| err(format!("printed something that is not JSON: {e}")))?;
    let user = json.get("Username").and_then(Value::as_str).unwrap_or("");
    let secret = json.get("Secret").and_then(Value::as_str).unwrap_or("");
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: user.to_string(),
        password: secret.to_string(),
    }))
}

/// The file `login` writes to by default: `$REGISTRY_AUTH_FILE`, else
/// `$XDG_RUNTIME_DIR/containers/auth.json`, else `~/.config/containers/auth.json`.
pub fn default_auth_file() -> Option<PathBuf> {
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(f));
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d).join("containers/auth.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/containers/auth.json"))
}

fn read_auth_file(file: &Path) -> Result<Map<String, Value>, ClientError> {
    match std::fs::read_to_string(file) {
        Ok(t) if t.trim().is_empty() => Ok(Map::new()),
        Ok(t) => match serde_json::from_str::<Value>(&t) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) | Err(_) => Err(ClientError::Config {
                path: file.to_path_buf(),
                message: "not a JSON object; fix or remove the file".to_string(),
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(ClientError::Config {
            path: file.to_path_buf(),
            message: format!("cannot read: {e}"),
        }),
    }
}

fn write_auth_file(file: &Path, json: Map<String, Value>) -> Result<(), ClientError> {
    let text =
        serde_json::to_vec_pretty(&Value::Object(json)).map_err(|e| ClientError::Config {
            path: file.to_path_buf(),
            message: format!("cannot encode: {e}"),
        })?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ClientError::Config {
            path: dir.to_path_buf(),
            message: format!("cannot create directory: {e}"),
        })?;
    }
    formats::fsutil::atomic_write(file, &text)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        ClientError::Config {
            path: file.to_path_buf(),
            message: format!("cannot make it private (mode 0600): {e}"),
        }
    })
}

/// Stores `username`/`password` for `host` in the containers `auth.json` format at `file` (other entries
/// and keys are kept; the file is written atomically with mode 0600).
pub fn store_credentials(
    host: &str,
    username: &str,
    password: &str,
    file: &Path,
) -> Result<(), ClientError> {
    let host = normalize_host(host);
    let mut json = read_auth_file(file)?;
    let auths = json
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(auths) = auths else {
        return Err(ClientError::Config {
            path: file.to_path_buf(),
            message: "`auths` is not an object; fix or remove the file".to_string(),
        });
    };
    // One entry per registry: drop aliases (`https://index.docker.io/v1/`) of the same host.
    auths.retain(|k, _| normalize_key(k) != host);
    let mut entry = Map::new();
    entry.insert(
        "auth".to_string(),
        Value::String(BASE64.encode(format!("{username}:{password}"))),
    );
    auths.insert(host, Value::Object(entry));
    write_auth_file(file, json)
}

/// Which credentials [`remove_credentials`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logout<'a> {
    /// Those of one registry host.
    Host(&'a str),
    /// All of them.
    All,
}

/// Removes stored credentials from `file`; returns how many entries were removed (0 = was not logged in).
pub fn remove_credentials(which: Logout<'_>, file: &Path) -> Result<usize, ClientError> {
    let mut json = read_auth_file(file)?;
    let Some(Value::Object(auths)) = json.get_mut("auths") else {
        return Ok(0);
    };
    let before = auths.len();
    match which {
        Logout::All => auths.clear(),
        Logout::Host(h) => {
            let host = normalize_host(h);
            auths.retain(|k, _| {
                let key = normalize_key(k);
                key != host && !key.starts_with(&format!("{host}/"))
            });
        }
    }
    let removed = before - auths.len();
    if removed > 0 {
        write_auth_file(file, json)?;
    }
    Ok(removed)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=...`: send the credentials with every request.
    Basic,
    /// `Bearer realm=...,service=...,scope=...`: get a token from `realm`.
    Bearer {
        /// The token server URL.
        realm: String,
        /// The `service` parameter to pass to it.
        service: Option<String>,
        /// The scope the registry asked for, when it said.
        scope: Option<String>,
    },
}

/// Parses one `WWW-Authenticate` header value; `None` for schemes we do not speak.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

/// `a="x, y",b=z` -> [(a, "x, y"), (b, z)], honouring quotes and backslash escapes.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((name.trim().to_string(), value.trim().to_string()));
    }
    out
}

/// A bearer token and how long it may be used.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token to send as `Authorization: Bearer <token>`.
    pub token: String,
    /// How long it is valid from when it was received.
    pub lifetime: Duration,
}

/// Parses a token server answer (`token` or `access_token`, `expires_in` seconds, default 60).
pub fn parse_token_response(body: &[u8]) -> Option<Token> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let token = json
        .get("token")
        .or_else(|| json.get("access_token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())?;
    let secs = json
        .get("expires_in")
        .and_then(Value::as_u64)
        .filter(|s| *s > 0)
        .unwrap_or(60);
    Some(Token {
        token: token.to_string(),
        lifetime: Duration::from_secs(secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_is_parsed_with_quoted_commas() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn docker_config_auths_helpers_and_aliases_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("config.json");
        std::fs::write(
            &docker,
            format!(
                r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}},
                    "r.example:5000": {{"username": "u2", "password": "p2"}},
                    "r.example:5000/team/app": {{"auth": "{}"}}}}}}"#,
                BASE64.encode("hub:secret"),
                BASE64.encode("team:tp")
            ),
        )
        .unwrap();
        let files = CredentialFiles {
            files: vec![dir.path().join("missing.json"), docker],
        };
        let hub = files
            .lookup("registry-1.docker.io", "library/x")
            .unwrap()
            .unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hub", "secret")
        );
        let r = files.lookup("r.example:5000", "other/x").unwrap().unwrap();
        assert_eq!(r.username, "u2");
        let team = files.lookup("r.example:5000", "team/app").unwrap().unwrap();
        assert_eq!(team.username, "team");
        assert!(files.lookup("nobody.example", "x").unwrap().is_none());
    }

    #[test]
    fn missing_credential_helper_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.json");
        std::fs::write(
            &f,
            r#"{"credHelpers": {"r.example": "no-such-helper-xyz"}}"#,
        )
        .unwrap();
        let err = CredentialFiles { files: vec![f] }
            .lookup("r.example", "a")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("docker-credential-no-such-helper-xyz")
        );
    }

    #[test]
    fn credential_helper_gets_the_host_on_stdin_and_its_answer_is_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-fake");
        std::fs::write(
            &helper,
            "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread host\ncase \"$host\" in\n  r.example) echo '{\"ServerURL\":\"r.example\",\"Username\":\"bot\",\"Secret\":\"pw\"}' ;;\n  https://index.docker.io/v1/) echo '{\"Username\":\"<token>\",\"Secret\":\"refresh\"}' ;;\n  *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n",
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let run = |host: &str| run_helper_program(helper.as_os_str(), "fake", host).unwrap();
        let c = run("r.example").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("bot", "pw"));
        assert_eq!(run("docker.io").unwrap().identity_token(), Some("refresh"));
        assert!(run("other.example").is_none());
    }

    #[test]
    fn stored_credentials_are_read_back_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/auth.json");
        store_credentials("index.docker.io", "me", "pw:with:colons", &f).unwrap();
        store_credentials("r.example", "u", "p", &f).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let files = CredentialFiles {
            files: vec![f.clone()],
        };
        let hub = files.lookup("docker.io", "library/x").unwrap().unwrap();
        assert_eq!(hub.password, "pw:with:colons");
        assert_eq!(
            remove_credentials(Logout::Host("docker.io"), &f).unwrap(),
            1
        );
        assert!(files.lookup("docker.io", "x").unwrap().is_none());
        assert!(files.lookup("r.example", "x").unwrap().is_some());
        assert_eq!(remove_credentials(Logout::All, &f).unwrap(), 1);
        assert!(files.lookup("r.example", "x").unwrap().is_none());
    }

    #[test]
    fn token_response_defaults_to_sixty_seconds() {
        let t = parse_token_response(br#"{"access_token":"abc"}"#).unwrap();
        assert_eq!((t.token.as_str(), t.lifetime.as_secs()), ("abc", 60));
        assert!(parse_token_response(b"{}").is_none());
    }
}
