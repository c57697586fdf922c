//! Authentication for `sealos registry serve --htpasswd`: the bcrypt htpasswd file, the built-in token
//! endpoint (`GET /token`) issuing short-lived HMAC-SHA256 bearer tokens scoped per repository and action,
//! and the axum layer that checks every `/v2/` request and answers with the challenge clients expect.
//!
//! # Policy
//!
//! - Every user in the htpasswd file may do everything (pull, push, delete, catalog); the file has no ACLs.
//! - Without credentials nothing is allowed, except pulls (`GET`/`HEAD` of blobs, manifests, tags and
//!   referrers) when [`AuthConfig::anonymous_pull`] is set. `GET /v2/` itself always wants an identity (a
//!   password, or any valid token, even an anonymous one) so clients learn about the token flow from it.
//! - A request may carry `Authorization: Basic` (checked against the file; verified passwords are cached
//!   for the token lifetime, keyed by an HMAC so no password is kept) or `Authorization: Bearer` with a
//!   token from `/token`. A token only grants what it lists: `repository:NAME:pull|push|delete` and
//!   `registry:catalog:*`.
//! - Missing or invalid credentials: 401 UNAUTHORIZED with `WWW-Authenticate: Bearer
//!   realm="<scheme>://<host>/token",service="<service>",scope="<needed scope>"`. A valid token that does not
//!   cover the request: also 401 UNAUTHORIZED, with the challenge naming the needed scope and
//!   `error="insufficient_scope"` (RFC 6750 section 3.1), as CNCF distribution answers: clients (docker,
//!   containerd, skopeo, ours) then fetch a token for that scope and retry, where a 403 would end the request.
//! - A cross-repository mount (`POST ...?mount=D&from=R`) whose caller may not pull `R` becomes a plain
//!   upload (202 with a session), as the spec allows, rather than an error.
//! - The decision is made on the request parsed once ([`super::V2Request`]: percent-decoded path and query), the
//!   same value the handler then serves, so what is authorised is what is done.
//! - `/metrics` wants a logged-in user (a password, or a token issued to a user).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD as B64URL};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::uploads::Principal;
use super::{Route, Target, V2Request, query_pairs};

/// How long an issued token is valid.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// The `service` named in challenges and tokens unless configured otherwise.
pub const DEFAULT_SERVICE: &str = "sealos-registry";
/// The shortest accepted `--token-key-file` content, in bytes.
pub const MIN_TOKEN_KEY_LEN: usize = 32;
/// Most cached password verifications (the cache is emptied when it grows past this).
const BASIC_CACHE_LIMIT: usize = 4096;

/// Why authentication could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of the htpasswd file is not a bcrypt entry.
    #[error("{}:{line}: {message}", path.display())]
    Htpasswd {
        /// The htpasswd file.
        path: PathBuf,
        /// 1-based line number (0 for the file as a whole).
        line: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The token signing key file is unusable.
    #[error("token key file `{}`: {message}", path.display())]
    TokenKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The system random generator failed.
    #[error("cannot generate a random token key: the system random generator failed")]
    Random,
    /// A user name that cannot go into an htpasswd file.
    #[error("invalid user name `{0}`: it must be non-empty, without `:` or line breaks")]
    BadUser(String),
    /// bcrypt refused (a cost outside 4..=31).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Users and their bcrypt password hashes, from an Apache-style htpasswd file (`user:$2y$...`).
#[derive(Clone)]
pub struct Htpasswd {
    /// Shared so handing a copy to a blocking bcrypt task is cheap.
    users: Arc<HashMap<String, String>>,
}

impl fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.users.keys().collect();
        names.sort();
        f.debug_struct("Htpasswd").field("users", &names).finish()
    }
}

impl Htpasswd {
    /// Reads and parses the htpasswd file at `path` (see [`Htpasswd::parse`]).
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses htpasswd `text` (`path` names it in errors). Blank lines and `#` comments are skipped; every
    /// other line must be `user:<bcrypt hash>` (`$2y$`, `$2b$` or `$2a$`); any other hash type, a malformed
    /// line, a duplicate user or a file without users is an error naming `path:line`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, AuthError> {
        let err = |line: usize, message: String| AuthError::Htpasswd {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut users = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let entry = raw.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = entry.split_once(':') else {
                return Err(err(
                    line,
                    "expected `user:bcrypt-hash`; create entries with `htpasswd -B FILE USER`"
                        .into(),
                ));
            };
            if user.is_empty() {
                return Err(err(line, "the user name is empty".into()));
            }
            if !is_bcrypt_prefix(hash) {
                return Err(err(
                    line,
                    format!(
                        "user `{user}` has {} hash; only bcrypt (`$2y$`) is supported: recreate it with `htpasswd -B FILE {user}`",
                        hash_kind(hash)
                    ),
                ));
            }
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(err(
                    line,
                    format!(
                        "user `{user}` has a malformed bcrypt hash (expected 60 characters like `$2y$10$...`); recreate it with `htpasswd -B FILE {user}`"
                    ),
                ));
            }
            if users.insert(user.to_string(), hash.to_string()).is_some() {
                return Err(err(
                    line,
                    format!("user `{user}` appears twice; keep one entry"),
                ));
            }
        }
        if users.is_empty() {
            return Err(err(
                0,
                "no users: nobody could log in; add one with `htpasswd -B FILE USER`".into(),
            ));
        }
        Ok(Htpasswd {
            users: Arc::new(users),
        })
    }

    /// Whether `password` is `user`'s. Runs bcrypt (tens of milliseconds): call off the async threads. An
    /// unknown user costs the same as a known one.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => {
                let _same_cost = bcrypt::verify(password, dummy_hash());
                false
            }
        }
    }

    /// How many users the file holds.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file holds no users (never true for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// One htpasswd line (`user:$2y$...`) for `user` with `password`, bcrypt at `cost` (4..=31; 10 is a
/// sensible default); what `htpasswd -nbB -C COST USER PASSWORD` prints.
pub fn htpasswd_entry(user: &str, password: &str, cost: u32) -> Result<String, AuthError> {
    if user.is_empty() || user.contains(':') || user.contains('\n') {
        return Err(AuthError::BadUser(user.to_string()));
    }
    let hash = bcrypt::hash_with_result(password, cost)
        .map_err(|e| AuthError::Hash(e.to_string()))?
        .format_for_version(bcrypt::Version::TwoY);
    Ok(format!("{user}:{hash}"))
}

fn is_bcrypt_prefix(hash: &str) -> bool {
    ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p))
}

fn hash_kind(hash: &str) -> &'static str {
    if hash.starts_with("$apr1$") {
        "an MD5 (`$apr1$`)"
    } else if hash.starts_with("{SHA}") {
        "a SHA-1 (`{SHA}`)"
    } else if hash.starts_with("$5$") || hash.starts_with("$6$") {
        "a SHA-crypt (`$5$`/`$6$`)"
    } else if hash.starts_with("$2x$") {
        "a buggy-bcrypt (`$2x$`)"
    } else if hash.is_empty() {
        "an empty"
    } else {
        "a plain-text or crypt(3)"
    }
}

/// A bcrypt hash to check unknown users' passwords against, so they take as long as known ones.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| bcrypt::hash("sealos-registry-unknown-user", 10).unwrap_or_default())
}

/// The key that signs and verifies bearer tokens (HMAC-SHA256).
#[derive(Clone)]
pub struct TokenKey {
    key: hmac::Key,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

impl TokenKey {
    /// A fresh random key: tokens are valid only on this process.
    pub fn random() -> Result<Self, AuthError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| AuthError::Random)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A key from secret bytes (at least [`MIN_TOKEN_KEY_LEN`] of them to be of any use).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        TokenKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// The key in `path` (`--token-key-file`), so replicas behind one name accept each other's tokens. The
    /// file's content minus surrounding whitespace is the key; it must be at least [`MIN_TOKEN_KEY_LEN`]
    /// bytes (`openssl rand -hex 32 > FILE` makes a good one).
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let bytes = std::fs::read(path).map_err(|source| AuthError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let secret = bytes.trim_ascii();
        if secret.len() < MIN_TOKEN_KEY_LEN {
            return Err(AuthError::TokenKey {
                path: path.to_path_buf(),
                message: format!(
                    "holds {} bytes; at least {MIN_TOKEN_KEY_LEN} are needed (make one with `openssl rand -hex 32 > {}`)",
                    secret.len(),
                    path.display()
                ),
            });
        }
        Ok(Self::from_bytes(secret))
    }

    fn sign(&self, data: &[u8]) -> hmac::Tag {
        hmac::sign(&self.key, data)
    }
}

/// Authentication settings of a server (`--htpasswd`, `--anonymous-pull`, `--token-key-file`).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Who may log in.
    pub htpasswd: Htpasswd,
    /// Allow pulls without credentials.
    pub anonymous_pull: bool,
    /// Signs the tokens.
    pub token_key: TokenKey,
    /// The `service` of challenges and tokens.
    pub service: String,
    /// How long issued tokens are valid.
    pub token_lifetime: Duration,
}

impl AuthConfig {
    /// Settings with a random token key, the default service and token lifetime.
    pub fn new(htpasswd: Htpasswd, anonymous_pull: bool) -> Result<Self, AuthError> {
        Ok(AuthConfig {
            htpasswd,
            anonymous_pull,
            token_key: TokenKey::random()?,
            service: DEFAULT_SERVICE.to_string(),
            token_lifetime: TOKEN_LIFETIME,
        })
    }
}

/// One resource and the actions on it, as in a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAccess {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name, or `catalog`.
    pub name: String,
    /// `pull`, `push`, `delete`, or `*`.
    pub actions: Vec<String>,
}

impl ResourceAccess {
    fn allows(&self, need: &Need) -> bool {
        self.kind == need.kind
            && self.name == need.name
            && self.actions.iter().any(|a| a == need.action || a == "*")
    }
}

/// What a token says (a JWT payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// The user; empty for an anonymous token.
    pub sub: String,
    /// The service the token is for.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not valid before, seconds since the epoch.
    pub nbf: u64,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// A unique id.
    pub jti: String,
    /// What the token grants.
    pub access: Vec<ResourceAccess>,
}

const JWT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
const ISSUER: &str = "sealos-registry";

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with a JSON payload, or not HS256.
    #[error("the token is malformed")]
    Malformed,
    /// The signature does not match our key.
    #[error(
        "the token's signature is not ours (forged, or signed by another server: share --token-key-file)"
    )]
    BadSignature,
    /// Past its expiry.
    #[error("the token has expired; get a new one")]
    Expired,
    /// Not valid yet.
    #[error("the token is not valid yet (check the clocks)")]
    NotYetValid,
    /// For another service.
    #[error("the token is for service `{0}`, not this registry")]
    WrongService(String),
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs `claims` into a compact JWT (HS256).
pub fn sign_token(key: &TokenKey, claims: &Claims) -> String {
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let signing_input = format!("{}.{}", B64URL.encode(JWT_HEADER), B64URL.encode(payload));
    let tag = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64URL.encode(tag.as_ref()))
}

/// Checks a token's signature, expiry and service, and returns its claims.
pub fn verify_token(
    key: &TokenKey,
    token: &str,
    service: &str,
    now: u64,
) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(head), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let sig = B64URL.decode(sig).map_err(|_| TokenError::Malformed)?;
    let signing_input = &token[..head.len() + 1 + payload.len()];
    hmac::verify(&key.key, signing_input.as_bytes(), &sig).map_err(|_| TokenError::BadSignature)?;
    let head = B64URL.decode(head).map_err(|_| TokenError::Malformed)?;
    let head: serde_json::Value =
        serde_json::from_slice(&head).map_err(|_| TokenError::Malformed)?;
    if head.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(TokenError::Malformed);
    }
    let payload = B64URL.decode(payload).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    // A little slack for replicas whose clocks differ.
    if claims.nbf > now + 30 {
        return Err(TokenError::NotYetValid);
    }
    if claims.aud != service {
        return Err(TokenError::WrongService(claims.aud));
    }
    Ok(claims)
}

/// One action on one resource that a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Need {
    kind: &'static str,
    name: String,
    action: &'static str,
}

impl Need {
    fn repository(name: &str, action: &'static str) -> Self {
        Need {
            kind: "repository",
            name: name.to_string(),
            action,
        }
    }

    /// The scope to name in a challenge (push asks for `pull,push`, as docker does).
    fn scope(&self) -> String {
        match (self.kind, self.action) {
            ("registry", _) => format!("registry:{}:*", self.name),
            (_, "push") => format!("repository:{}:pull,push", self.name),
            (kind, action) => format!("{kind}:{}:{action}", self.name),
        }
    }
}

/// What a `/v2/...` request needs.
#[derive(Debug, PartialEq, Eq)]
enum Requirement {
    /// Any identity: a password or a valid token (the `/v2/` ping).
    Identity,
    /// A logged-in user (paths that name no valid repository).
    User,
    /// An action on a resource, and, for a cross-repository mount, pull on the source (optional: the mount
    /// becomes a plain upload without it).
    Access(Need, Option<Need>),
}

/// The requirement of `method` on `request`: exactly what the handler will do with the same parsed request.
fn requirement(method: &Method, request: &V2Request) -> Requirement {
    let route = match &request.target {
        Target::Base => return Requirement::Identity,
        Target::Unknown => return Requirement::User,
        Target::Endpoint(route) => route,
    };
    let read = matches!(*method, Method::GET | Method::HEAD);
    let (name, action) = match route {
        Route::Catalog => {
            return Requirement::Access(
                Need {
                    kind: "registry",
                    name: "catalog".into(),
                    action: "*",
                },
                None,
            );
        }
        Route::Tags(n) | Route::Referrers(n, _) => (n, if read { "pull" } else { "push" }),
        Route::Blob(n, _) | Route::Manifest(n, _) => match *method {
            Method::GET | Method::HEAD => (n, "pull"),
            Method::DELETE => (n, "delete"),
            _ => (n, "push"),
        },
        Route::UploadStart(n) | Route::Upload(n, _) => (n, "push"),
    };
    if !formats::reference::Repository::is_valid(name) {
        return Requirement::User;
    }
    let mount_from = match route {
        Route::UploadStart(_) if *method == Method::POST => request
            .mount()
            .map(|(_, from)| Need::repository(from, "pull")),
        _ => None,
    };
    Requirement::Access(Need::repository(name, action), mount_from)
}

/// Who is asking.
#[derive(Debug)]
pub(crate) enum Caller {
    /// No `Authorization` header.
    Nobody,
    /// A verified htpasswd user (Basic).
    User(String),
    /// A valid token.
    Token(Claims),
}

impl Caller {
    /// The logged-in user: a Basic user or a token's subject.
    pub(crate) fn user(&self) -> Option<&str> {
        match self {
            Caller::Nobody => None,
            Caller::User(u) => Some(u),
            Caller::Token(c) => Some(c.sub.as_str()).filter(|s| !s.is_empty()),
        }
    }

    fn is_user(&self) -> bool {
        self.user().is_some()
    }
}

/// The credential a request carried.
enum Presented {
    None,
    Basic(String, String),
    Bearer(String),
    Unusable,
}

fn presented(headers: &HeaderMap) -> Presented {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Presented::None;
    };
    let Ok(value) = value.to_str() else {
        return Presented::Unusable;
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = BASE64
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        match decoded.as_deref().and_then(|d| d.split_once(':')) {
            Some((u, p)) => Presented::Basic(u.to_string(), p.to_string()),
            None => Presented::Unusable,
        }
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Presented::Bearer(rest.to_string())
    } else {
        Presented::Unusable
    }
}

/// The request's `Host` header when it is a plausible host name (`name`, `name:port`, `[v6]:port`), for URLs
/// the server writes back (the token realm, the hub's command lines).
pub(crate) fn request_host(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c))
        })
}

/// Checks credentials and access for the server; shared by the layer, the token endpoint and the hub's pages.
pub struct Authenticator {
    config: AuthConfig,
    https: bool,
    /// HMAC of `user:password` -> when the successful verification stops being trusted.
    verified: Mutex<HashMap<Vec<u8>, Instant>>,
    /// Bounds concurrent bcrypt runs to the CPU count, so a flood of wrong passwords cannot take every
    /// blocking thread.
    bcrypt_slots: tokio::sync::Semaphore,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("config", &self.config)
            .field("https", &self.https)
            .finish_non_exhaustive()
    }
}

/// The outcome of looking at a request's credentials.
enum Checked {
    Caller(Caller),
    /// Why, and the challenge's `error` (`invalid_token` for a bad token; none for a bad password).
    Refused(String, Option<&'static str>),
}

impl Authenticator {
    /// An authenticator for `config`; `https` makes the challenge's realm an `https://` URL.
    pub fn new(config: AuthConfig, https: bool) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Authenticator {
            config,
            https,
            verified: Mutex::new(HashMap::new()),
            bcrypt_slots: tokio::sync::Semaphore::new(cpus),
        }
    }

    /// Whether `user` (None = anonymous) may do `need` under the server's policy.
    fn policy_allows(&self, user: Option<&str>, need: &Need) -> bool {
        user.is_some()
            || (self.config.anonymous_pull && need.kind == "repository" && need.action == "pull")
    }

    fn allows(&self, caller: &Caller, need: &Need) -> bool {
        match caller {
            Caller::Nobody => self.policy_allows(None, need),
            Caller::User(u) => self.policy_allows(Some(u), need),
            Caller::Token(claims) => claims.access.iter().any(|a| a.allows(need)),
        }
    }

    /// Verifies a Basic password, off the async threads, remembering successes for the token lifetime.
    async fn check_password(&self, user: &str, password: &str) -> bool {
        let mut input = Vec::with_capacity(user.len() + password.len() + 8);
        input.extend_from_slice(b"basic\0");
        input.extend_from_slice(user.as_bytes());
        input.push(0);
        input.extend_from_slice(password.as_bytes());
        let fingerprint = self.config.token_key.sign(&input).as_ref().to_vec();
        {
            let cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if cache
                .get(&fingerprint)
                .is_some_and(|until| Instant::now() < *until)
            {
                return true;
            }
        }
        let Ok(_slot) = self.bcrypt_slots.acquire().await else {
            return false;
        };
        let htpasswd = self.config.htpasswd.clone();
        let (u, p) = (user.to_string(), password.to_string());
        let ok = tokio::task::spawn_blocking(move || htpasswd.verify(&u, &p))
            .await
            .unwrap_or(false);
        if ok {
            let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= BASIC_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(fingerprint, Instant::now() + self.config.token_lifetime);
        }
        ok
    }

    async fn check(&self, headers: &HeaderMap) -> Checked {
        match presented(headers) {
            Presented::None => Checked::Caller(Caller::Nobody),
            Presented::Basic(user, password) => {
                if self.check_password(&user, &password).await {
                    Checked::Caller(Caller::User(user))
                } else {
                    Checked::Refused(format!("invalid user name or password for `{user}`"), None)
                }
            }
            Presented::Bearer(token) => match verify_token(
                &self.config.token_key,
                &token,
                &self.config.service,
                now_secs(),
            ) {
                Ok(claims) => Checked::Caller(Caller::Token(claims)),
                Err(e) => Checked::Refused(e.to_string(), Some("invalid_token")),
            },
            Presented::Unusable => Checked::Refused(
                "unsupported or malformed Authorization header; use Basic or a Bearer token from /token"
                    .into(),
                None,
            ),
        }
    }

    fn realm(&self, headers: &HeaderMap) -> String {
        let host = request_host(headers).unwrap_or("localhost");
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{host}/token")
    }

    fn challenge(&self, headers: &HeaderMap, scope: Option<&str>, error: Option<&str>) -> String {
        let mut c = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            self.realm(headers),
            self.config.service
        );
        if let Some(s) = scope {
            c.push_str(&format!(",scope=\"{s}\""));
        }
        if let Some(e) = error {
            c.push_str(&format!(",error=\"{e}\""));
        }
        c
    }

    fn unauthorized(
        &self,
        headers: &HeaderMap,
        scope: Option<&str>,
        error: Option<&str>,
        message: String,
    ) -> Response {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
            .with_header(
                header::WWW_AUTHENTICATE,
                self.challenge(headers, scope, error),
            )
            .into_response()
    }

    /// The caller `headers` name, checked as for a `/v2/` request; `Err` is the 401 answer to bad credentials.
    /// For the hub's pages ([`super::ui`]), which then ask [`Authenticator::may_pull`] per repository.
    pub(crate) async fn caller(&self, headers: &HeaderMap) -> Result<Caller, Response> {
        match self.check(headers).await {
            Checked::Caller(c) => Ok(c),
            Checked::Refused(why, error) => Err(self.unauthorized(headers, None, error, why)),
        }
    }

    /// Whether `caller` may pull `repository`: the check a `/v2/` read of its manifests, blobs or tags gets.
    pub(crate) fn may_pull(&self, caller: &Caller, repository: &str) -> bool {
        formats::reference::Repository::is_valid(repository)
            && self.allows(caller, &Need::repository(repository, "pull"))
    }

    /// Whether callers without credentials may pull (`--anonymous-pull`).
    pub(crate) fn anonymous_pull(&self) -> bool {
        self.config.anonymous_pull
    }

    /// A 401 UNAUTHORIZED saying `message`, with the challenge `/v2/` sends (no scope).
    pub(crate) fn unauthorized_response(&self, headers: &HeaderMap, message: String) -> Response {
        self.unauthorized(headers, None, None, message)
    }

    /// Decides one request: `Ok` with the request to run, its parsed form in its extensions for the handler (a
    /// mount the caller may not do turned into a plain upload, the user recorded), or the 401 answer.
    async fn admit(&self, mut req: Request) -> Result<Request, Response> {
        let method = req.method().clone();
        let need = requirement(&method, V2Request::of(&mut req));
        let headers = req.headers();
        let caller = match self.check(headers).await {
            Checked::Caller(c) => c,
            Checked::Refused(why, error) => {
                let scope = match &need {
                    Requirement::Access(n, _) => Some(n.scope()),
                    _ => None,
                };
                return Err(self.unauthorized(headers, scope.as_deref(), error, why));
            }
        };
        let (need, mount_from) = match need {
            Requirement::Identity if matches!(caller, Caller::Nobody) => {
                return Err(self.unauthorized(
                    headers,
                    None,
                    None,
                    "authentication required: log in (`sealos login`) or get a token from the realm".into(),
                ));
            }
            Requirement::Identity => return Ok(with_principal(req, &caller)),
            Requirement::User if caller.is_user() => return Ok(with_principal(req, &caller)),
            Requirement::User => {
                return Err(self.unauthorized(
                    headers,
                    None,
                    None,
                    "authentication required".into(),
                ));
            }
            Requirement::Access(need, from) => (need, from),
        };
        if !self.allows(&caller, &need) {
            let scope = need.scope();
            let what = format!("{} on {} `{}`", need.action, need.kind, need.name);
            if caller.is_user() {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    format!("the token does not grant {what}; ask /token for scope `{scope}`"),
                )
                .with_header(
                    header::WWW_AUTHENTICATE,
                    self.challenge(headers, Some(&scope), Some("insufficient_scope")),
                )
                .into_response());
            }
            return Err(self.unauthorized(
                headers,
                Some(&scope),
                None,
                format!("authentication required for {what}"),
            ));
        }
        if let Some(from) = mount_from
            && !self.allows(&caller, &from)
        {
            V2Request::of(&mut req).drop_mount();
        }
        Ok(with_principal(req, &caller))
    }

    /// Grants what `caller` may have of `requested`; unknown resource types and bad names are dropped.
    fn grant(&self, user: Option<&str>, requested: &[ResourceAccess]) -> Vec<ResourceAccess> {
        let mut out: Vec<ResourceAccess> = Vec::new();
        for r in requested {
            let (kind, allowed): (&'static str, &[&'static str]) = match r.kind.as_str() {
                "repository" if formats::reference::Repository::is_valid(&r.name) => {
                    ("repository", &["pull", "push", "delete"])
                }
                "registry" if r.name == "catalog" => ("registry", &["*"]),
                _ => continue,
            };
            let mut actions: Vec<String> = Vec::new();
            for action in allowed {
                let asked = r.actions.iter().any(|a| a == action || a == "*");
                let need = Need {
                    kind,
                    name: r.name.clone(),
                    action,
                };
                if asked && self.policy_allows(user, &need) && !actions.iter().any(|a| a == action)
                {
                    actions.push((*action).to_string());
                }
            }
            if actions.is_empty() {
                continue;
            }
            match out.iter_mut().find(|o| o.kind == kind && o.name == r.name) {
                Some(existing) => {
                    for a in actions {
                        if !existing.actions.contains(&a) {
                            existing.actions.push(a);
                        }
                    }
                }
                None => out.push(ResourceAccess {
                    kind: kind.to_string(),
                    name: r.name.clone(),
                    actions,
                }),
            }
        }
        out
    }

    /// Issues a token to `user` (None = anonymous) for `requested`, valid from `now`.
    fn issue(&self, user: Option<&str>, requested: &[ResourceAccess], now: u64) -> TokenAnswer {
        let lifetime = self.config.token_lifetime.as_secs().max(1);
        let claims = Claims {
            iss: ISSUER.to_string(),
            sub: user.unwrap_or("").to_string(),
            aud: self.config.service.clone(),
            exp: now + lifetime,
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            access: self.grant(user, requested),
        };
        let token = sign_token(&self.config.token_key, &claims);
        TokenAnswer {
            access_token: token.clone(),
            token,
            expires_in: lifetime,
            issued_at: formats::time::rfc3339(now),
        }
    }
}

/// The token endpoint's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenAnswer {
    /// The bearer token.
    pub token: String,
    /// The same token (OAuth2 name).
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// When it was issued (RFC 3339).
    pub issued_at: String,
}

/// Parses token-request scopes (`repository:a/b:pull,push`, several per parameter separated by spaces);
/// a resource type with a class (`repository(plugin)`) counts as the plain type. Malformed ones are skipped.
pub fn parse_scopes<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<ResourceAccess> {
    let mut out = Vec::new();
    for value in values {
        for scope in value.split(' ').filter(|s| !s.is_empty()) {
            let Some((kind, rest)) = scope.split_once(':') else {
                continue;
            };
            let Some((name, actions)) = rest.rsplit_once(':') else {
                continue;
            };
            let kind = kind.split('(').next().unwrap_or(kind);
            out.push(ResourceAccess {
                kind: kind.to_string(),
                name: name.to_string(),
                actions: actions
                    .split(',')
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect(),
            });
        }
    }
    out
}

/// `req` with the caller's user name in its extensions (upload sessions are counted per user).
fn with_principal(mut req: Request, caller: &Caller) -> Request {
    if let Some(user) = caller.user() {
        req.extensions_mut().insert(Principal(user.to_string()));
    }
    req
}

/// The axum middleware in front of `/v2/`: admits the request or answers 401. The outer request layer drains a
/// refused request's body first (within bounds, see [`super::limits::drain`]), so a client still sending it,
/// such as one whose token expired mid-upload, reads the 401 instead of a cut connection.
pub async fn require_auth(
    State(auth): State<Arc<Authenticator>>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    match auth
        .admit(Request::from_parts(parts, axum::body::Body::empty()))
        .await
    {
        Ok(req) => {
            let (parts, _) = req.into_parts();
            next.run(Request::from_parts(parts, body)).await
        }
        Err(resp) => {
            drop(body);
            resp
        }
    }
}

/// `GET /token?service=...&scope=...`: a bearer token for the requested scopes, to the Basic-authenticated
/// user or to anonymous callers (who get only what `--anonymous-pull` allows, possibly nothing). Wrong
/// credentials: 401 UNAUTHORIZED.
pub async fn token_endpoint(
    State(auth): State<Arc<Authenticator>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "the token endpoint takes GET with Basic credentials (no OAuth2 POST flow)",
        )
        .into_response();
    }
    let q = query_pairs(uri.query());
    let scopes = parse_scopes(
        q.iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    );
    let user = match presented(&headers) {
        Presented::None => None,
        Presented::Basic(user, password) => {
            if !auth.check_password(&user, &password).await {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    format!("invalid user name or password for `{user}`"),
                )
                .with_header(
                    header::WWW_AUTHENTICATE,
                    format!("Basic realm=\"{}\"", auth.config.service),
                )
                .into_response();
            }
            Some(user)
        }
        Presented::Bearer(_) | Presented::Unusable => {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "the token endpoint takes Basic credentials or none",
            )
            .with_header(
                header::WWW_AUTHENTICATE,
                format!("Basic realm=\"{}\"", auth.config.service),
            )
            .into_response();
        }
    };
    let answer = auth.issue(user.as_deref(), &scopes, now_secs());
    let body = serde_json::to_string(&answer).unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator(anonymous_pull: bool) -> Authenticator {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let htpasswd = Htpasswd::parse(&format!("alice:{hash}\n"), Path::new("h")).unwrap();
        Authenticator::new(AuthConfig::new(htpasswd, anonymous_pull).unwrap(), false)
    }

    #[test]
    fn tokens_round_trip_and_tampering_is_detected() {
        let auth = authenticator(false);
        let scopes = parse_scopes(["repository:a/b:pull,push registry:catalog:*"]);
        let answer = auth.issue(Some("alice"), &scopes, 1000);
        let claims = verify_token(&auth.config.token_key, &answer.token, DEFAULT_SERVICE, 1001)
            .expect("valid token");
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.access.len(), 2);
        assert_eq!(
            verify_token(&auth.config.token_key, &answer.token, DEFAULT_SERVICE, 1300),
            Err(TokenError::Expired)
        );
        let other = TokenKey::random().unwrap();
        assert_eq!(
            verify_token(&other, &answer.token, DEFAULT_SERVICE, 1001),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify_token(&auth.config.token_key, "a.b", DEFAULT_SERVICE, 1001),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn anonymous_callers_are_granted_only_pull_and_only_with_anonymous_pull() {
        let scopes = parse_scopes(["repository:a:pull,push,delete", "registry:catalog:*"]);
        let open = authenticator(true);
        assert_eq!(
            open.grant(None, &scopes),
            vec![ResourceAccess {
                kind: "repository".into(),
                name: "a".into(),
                actions: vec!["pull".into()],
            }]
        );
        assert!(authenticator(false).grant(None, &scopes).is_empty());
        assert_eq!(open.grant(Some("alice"), &scopes).len(), 2);
    }

    #[test]
    fn requirements_follow_the_route_and_method() {
        let need = |m: Method, uri: &str| requirement(&m, &V2Request::parse(&uri.parse().unwrap()));
        assert_eq!(need(Method::GET, "/v2/"), Requirement::Identity);
        assert_eq!(
            need(Method::GET, "/v2/a/b/manifests/v1"),
            Requirement::Access(Need::repository("a/b", "pull"), None)
        );
        assert_eq!(
            need(Method::DELETE, "/v2/a/blobs/sha256:00"),
            Requirement::Access(Need::repository("a", "delete"), None)
        );
        assert_eq!(
            need(Method::POST, "/v2/a/blobs/uploads/?mount=sha256:00&from=b"),
            Requirement::Access(
                Need::repository("a", "push"),
                Some(Need::repository("b", "pull"))
            )
        );
        // Parameter names are decoded once, for this decision and for the handler alike.
        assert_eq!(
            need(
                Method::POST,
                "/v2/a/blobs/uploads/?m%6Funt=sha256:00&fr%6Fm=b"
            ),
            Requirement::Access(
                Need::repository("a", "push"),
                Some(Need::repository("b", "pull"))
            )
        );
        // Without `from` there is no mount, only an upload.
        assert_eq!(
            need(Method::POST, "/v2/a/blobs/uploads?mount=sha256:00"),
            Requirement::Access(Need::repository("a", "push"), None)
        );
        // An encoded slash is decoded before routing, as the handler does.
        assert_eq!(
            need(Method::PUT, "/v2/a%2Fb/manifests/v1"),
            Requirement::Access(Need::repository("a/b", "push"), None)
        );
        assert_eq!(need(Method::GET, "/v2/../x/tags/list"), Requirement::User);
        assert_eq!(
            need(Method::GET, "/v2/%2e%2e/x/tags/list"),
            Requirement::User
        );
        assert_eq!(need(Method::GET, "/metrics"), Requirement::User);
    }

    #[test]
    fn non_bcrypt_entries_are_errors_naming_the_line() {
        let e = Htpasswd::parse("# users\n\nbob:$apr1$abc$def\n", Path::new("/x/htpasswd"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/x/htpasswd:3: "), "{e}");
        assert!(e.contains("MD5"), "{e}");
    }
}
