//! Prometheus counters of requests and bytes (`/metrics`) and the per-request log line.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Request and byte counters exported at `/metrics`. Every label set is bounded: methods outside HTTP's own
/// are counted as `other`, and statuses are the ones the server answers with.
#[derive(Default)]
pub struct Metrics {
    requests: std::sync::Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Request body bytes received (shared with the upload bodies' streams, which count them).
    pub(super) bytes_in: Arc<AtomicU64>,
    bytes_out: AtomicU64,
}

/// The `method` label of a request: its method when HTTP defines it, else `other` (made-up methods would
/// otherwise each add a series).
fn method_label(method: &Method) -> &'static str {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ]
    .iter()
    .find(|m| *m == method)
    .map_or("other", |m| m.as_str())
}

impl Metrics {
    fn render(&self, upload_sessions: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP registry_http_requests_total HTTP requests by method and status.\n");
        out.push_str("# TYPE registry_http_requests_total counter\n");
        let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((method, status), n) in map.iter() {
            out.push_str(&format!(
                "registry_http_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP registry_bytes_received_total Request body bytes received.\n");
        out.push_str("# TYPE registry_bytes_received_total counter\n");
        out.push_str(&format!(
            "registry_bytes_received_total {}\n",
            self.bytes_in.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP registry_bytes_sent_total Response body bytes sent.\n");
        out.push_str("# TYPE registry_bytes_sent_total counter\n");
        out.push_str(&format!(
            "registry_bytes_sent_total {}\n",
            self.bytes_out.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP registry_upload_sessions_open Upload sessions open now.\n");
        out.push_str("# TYPE registry_upload_sessions_open gauge\n");
        out.push_str(&format!(
            "registry_upload_sessions_open {upload_sessions}\n"
        ));
        out
    }
}

pub(super) async fn observe(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    if method != Method::HEAD
        && let Some(len) = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    {
        app.metrics.bytes_out.fetch_add(len, Ordering::Relaxed);
    }
    {
        let mut map = app
            .metrics
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *map.entry((method_label(&method), status)).or_default() += 1;
    }
    if app.config.log_requests {
        tracing::info!(
            method = %method,
            path = %path,
            status,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
    resp
}

pub(super) async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(app.uploads.open()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_metrics_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "other");
    }
}
