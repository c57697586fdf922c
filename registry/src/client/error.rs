//! Errors of the registry client: each says what failed, where (host, URL or file) and, when there is one,
//! what to do about it.

use std::io;
use std::path::PathBuf;

use formats::digest::DigestError;
use formats::fsutil::StageError;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `registries.conf` marks the registry as blocked.
    #[error(
        "registry `{registry}` is blocked by `{conf}`; remove `blocked = true` there to use it"
    )]
    Blocked {
        /// The blocked registry prefix as written in the configuration.
        registry: String,
        /// The configuration file that blocks it.
        conf: String,
    },
    /// The request could not be sent or the response could not be read (connection, TLS, timeout).
    #[error("{}{hint}", describe_transport(method, url, source))]
    Transport {
        /// The HTTP method.
        method: String,
        /// The URL requested.
        url: String,
        /// The underlying error.
        source: reqwest::Error,
        /// A hint for the user (empty when there is none).
        hint: String,
    },
    /// The registry answered with an error status; every error its body lists is in `message`.
    #[error("{method} {url}: {status}{}", describe_registry_error(code, message))]
    Registry {
        /// The HTTP method.
        method: String,
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The first OCI error code in the body (`BLOB_UNKNOWN`, `DENIED`...), when any.
        code: Option<String>,
        /// Every error of the body (`CODE: message (detail)`, `; `-separated), or the start of a body that
        /// is not an OCI error.
        message: String,
    },
    /// The registry demanded credentials we do not have (`credentials_sent` false: not logged in), or
    /// rejected the ones we sent.
    #[error("{}", describe_unauthorized(host, url, detail, *credentials_sent))]
    Unauthorized {
        /// The registry host.
        host: String,
        /// The URL requested.
        url: String,
        /// What the registry or the token server said (may be empty).
        detail: String,
        /// Whether we sent credentials (user name and password or identity token).
        credentials_sent: bool,
    },
    /// Content did not match its digest or size; nothing was kept.
    #[error("{what}: {source}; nothing was kept")]
    Verification {
        /// What was being fetched (URL or description).
        what: String,
        /// The mismatch.
        source: DigestError,
    },
    /// The registry sent something that is not a valid answer (bad header, bad JSON, too large).
    #[error("{url}: invalid response: {message}")]
    InvalidResponse {
        /// The URL requested.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The registry sent a `Location` or `Link` that cannot be resolved to a URL.
    #[error("{url}: invalid response: {source}")]
    BadLink {
        /// The URL requested.
        url: String,
        /// What is wrong with the link.
        #[source]
        source: super::manifests::ResolveError,
    },
    /// A configuration or credentials file could not be read or parsed.
    #[error("`{path}`: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A `docker-credential-*` helper failed.
    #[error("credential helper `docker-credential-{helper}` for `{host}`: {message}")]
    CredentialHelper {
        /// The helper name (without the `docker-credential-` prefix).
        helper: String,
        /// The registry host asked about.
        host: String,
        /// What went wrong.
        message: String,
    },
    /// Writing a downloaded blob to disk failed, or verifying it did.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// Reading a blob to upload, or writing one to a sink, failed.
    #[error("{op} `{what}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path or blob involved.
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The caller passed something the client cannot use.
    #[error("{0}")]
    InvalidInput(String),
}

/// An error and its causes, `: `-separated (reqwest's own message omits the cause that matters).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cause = c.source();
    }
    text
}

/// A transport failure in a few words when it is a common one (refused: `host:port` alone; unresolvable),
/// else the request and the error's chain.
fn describe_transport(method: &str, url: &str, e: &reqwest::Error) -> String {
    let chain = error_chain(e);
    if super::transport::is_refused(e) {
        let target = reqwest::Url::parse(url).map_or_else(|_| url.to_string(), |u| host_port(&u));
        return format!("cannot connect to {target}: connection refused");
    }
    if super::transport::is_dns_failure(e) {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        // hyper's text after "dns error: " is the resolver's reason.
        let reason = chain
            .split("dns error: ")
            .nth(1)
            .unwrap_or("name not found")
            .to_string();
        return format!(
            "{method} {url}: cannot resolve host `{host}`: {reason}; when this machine reaches `{host}` only \
             through a mirror, name it in a registries.conf (`[[registry.mirror]]`) and pass \
             `--registries-conf FILE`"
        );
    }
    if super::transport::is_tls_mismatch(e) {
        // rustls's "received corrupt message of type InvalidContentType" and hyper's wrapping say nothing
        // a user can act on; the hint that follows says what to do.
        return format!("{method} {url}: TLS handshake failed, the server answered in plain text");
    }
    format!("{method} {url}: {chain}")
}

/// `host:port` of a URL, with the scheme's default port when it has none.
fn host_port(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

fn describe_registry_error(code: &Option<String>, message: &str) -> String {
    match (code, message.is_empty()) {
        // The message lists every error with its code.
        (Some(_), false) => format!(" {message}"),
        (Some(c), true) => format!(" {c}"),
        (None, false) => format!(": {message}"),
        (None, true) => String::new(),
    }
}

fn describe_unauthorized(host: &str, url: &str, detail: &str, credentials_sent: bool) -> String {
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    };
    if credentials_sent {
        format!(
            "`{host}` rejected our credentials (401 Unauthorized{detail}) at {url}; check the user name and password and log in again with `sealos login {host}`"
        )
    } else {
        format!(
            "not logged in to `{host}`: {url} answered 401 Unauthorized, it wants credentials and none are stored{detail}; log in with `sealos login {host}`"
        )
    }
}

impl ClientError {
    /// True when the registry said the manifest, blob or repository does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Registry { status: 404, .. })
    }

    /// The HTTP status the registry answered with, when the error is an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Registry { status, .. } => Some(*status),
            _ => None,
        }
    }
}
