//! An S3-compatible server for tests and benchmarks: moto (`python3 -m moto.server`, installed by `.ci/run`) on a free port of
//! 127.0.0.1, killed when dropped. moto accepts any credentials and needs no signature to create a bucket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// A running moto server.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto and waits (up to 30 s) until it answers; panics saying how to install it when it cannot.
    pub fn start() -> Moto {
        Moto::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Moto::start`] for callers that report errors instead of panicking (the benchmarks).
    pub fn try_start() -> Result<Moto, String> {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start python3 ({e}): python3 with moto is needed (`pip install 'moto[server]'`; \
                     .ci/run installs it)"
                )
            })?;
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while moto.request("GET", "/", b"").is_none() {
            if Instant::now() >= deadline {
                return Err(
                    "moto did not start within 30 s: install it with `pip install 'moto[server]'`"
                        .to_string(),
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(moto)
    }

    /// The endpoint URL (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket; panics when moto refuses.
    pub fn create_bucket(&self, name: &str) {
        self.try_create_bucket(name)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`Moto::create_bucket`] for callers that report errors instead of panicking.
    pub fn try_create_bucket(&self, name: &str) -> Result<(), String> {
        match self.request("PUT", &format!("/{name}"), b"") {
            Some(a) if a.starts_with("HTTP/1.1 200") => Ok(()),
            answer => Err(format!(
                "moto did not create bucket `{name}`: {}",
                answer
                    .as_deref()
                    .map_or("no answer", |a| a.lines().next().unwrap_or_default())
            )),
        }
    }

    /// Writes an object as is, behind the back of whatever store uses the bucket (to damage it in a test).
    pub fn put_object(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let answer = self.request("PUT", &format!("/{bucket}/{key}"), bytes);
        assert!(
            answer
                .as_deref()
                .is_some_and(|a| a.starts_with("HTTP/1.1 200")),
            "put `{bucket}/{key}`: {answer:?}"
        );
    }

    /// One HTTP/1.1 request; the whole answer, or `None` when moto does not answer (yet). It carries a
    /// signature moto does not check: without one moto stores an object's body empty, or refuses it.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=00\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n\
             x-amz-date: 20260101T000000Z\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .ok()?;
        s.write_all(body).ok()?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).ok()?;
        Some(String::from_utf8_lossy(&answer).into_owned())
    }
}
