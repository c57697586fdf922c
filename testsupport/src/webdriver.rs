//! A real browser for tests: Debian's `chromium`, headless, driven through `chromedriver` with the W3C
//! WebDriver protocol (JSON over HTTP on 127.0.0.1). Only what page tests need: open a URL, run a script, type
//! into a field, wait for a condition, take a screenshot. Each [`Browser`] has its own fresh profile.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// A headless chromium session, ended (browser and driver stopped) when dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `chromedriver` and a headless `chromium` (window 1200x800) with a fresh profile. Fails naming
    /// the Debian packages when they are missing.
    pub fn start() -> Browser {
        let [driver_path, chromium] = [("chromedriver", "chromium-driver"), ("chromium", "chromium")].map(
            |(tool, package)| {
                crate::find_tool(tool).unwrap_or_else(|| {
                    panic!(
                        "`{tool}` is not installed, and browser tests need it: apt-get install -y {package} \
                         (.ci/run installs chromium and chromium-driver)"
                    )
                })
            },
        );
        let port = crate::free_port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start chromedriver (apt-get install chromium-driver): {e}")
            });
        let profile = tempfile::tempdir().expect("a temporary browser profile");
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while request(port, "GET", "/status", None).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on port {port} within 20s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1200,800",
            &format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let answer = browser.call("POST", "/session", Some(caps));
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver made no session: {answer}"))
            .to_string();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let answer = request(self.port, method, path, body.as_ref())
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        if let Some(error) = answer["value"].get("error") {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                answer["value"]["message"]
            );
        }
        answer["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url` and waits until it has loaded.
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({"url": url})));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns what it returns.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The `innerText` of the first element matching the CSS `selector`, or `None` when there is none.
    pub fn text(&self, selector: &str) -> Option<String> {
        self.execute(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
            json!([selector]),
        )
        .as_str()
        .map(str::to_string)
    }

    /// Waits up to 10 seconds until `ready` holds, then returns its last value; fails with `what` and the
    /// page's text.
    pub fn wait_until<T>(&self, what: &str, ready: impl Fn(&Browser) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = ready(self) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "the page never showed {what}; it shows:\n{}",
                    self.text("body").unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types `text` into the first element matching `selector` (keyboard events, as a user would).
    pub fn type_into(&self, selector: &str, text: &str) {
        let found = self.session_call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": selector})),
        );
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element `{selector}`: {found}"))
            .to_string();
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Saves a screenshot as `DIR/NAME` when the environment variable `SCREENSHOT_DIR` names a directory (how
    /// documentation screenshots are made from tests); does nothing otherwise.
    pub fn save_screenshot_if_asked(&self, name: &str) {
        if let Some(dir) = std::env::var_os("SCREENSHOT_DIR") {
            let path = std::path::Path::new(&dir).join(name);
            std::fs::write(&path, self.screenshot())
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
    }

    /// A PNG screenshot of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self.session_call("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("a base64 screenshot"))
            .expect("a base64 screenshot")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One HTTP/1.1 request to chromedriver on 127.0.0.1:`port` (`Connection: close`) and its JSON answer.
fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut length = None;
    reader.read_line(&mut line)?;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut text = Vec::new();
    match length {
        Some(n) => {
            text.resize(n, 0);
            reader.read_exact(&mut text)?;
        }
        None => {
            reader.read_to_end(&mut text)?;
        }
    }
    serde_json::from_slice(&text).map_err(std::io::Error::other)
}
