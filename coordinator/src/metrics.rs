//! Prometheus metrics and the `/metrics` endpoint (OpenMetrics text).
//!
//! The endpoint is a minimal HTTP/1.1 responder on its own TCP port: it
//! reads one request head (at most [`MAX_REQUEST_HEAD`] bytes), answers
//! `GET /metrics` and closes; anything else gets a 404.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Largest request head the endpoint reads.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// A label with one string value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Label {
    /// The phase, reason or kind.
    pub name: String,
}

fn label(name: &str) -> Label {
    Label {
        name: name.to_string(),
    }
}

/// Everything the coordinator counts.
pub struct Metrics {
    registry: Registry,
    /// Rounds settled.
    pub rounds: Counter,
    /// Attempts that failed and were retried.
    pub failed_attempts: Counter,
    /// Seconds per round phase.
    pub phase_seconds: Family<Label, Histogram>,
    /// Clients connected and admitted now.
    pub clients: Gauge,
    /// Join outcomes (`admitted`, or the refusal reason).
    pub joins: Family<Label, Counter>,
    /// Bytes of control frames received from clients.
    pub bytes_received: Counter,
    /// Bytes of control frames and models sent to clients.
    pub bytes_sent: Counter,
    /// Messages refused, by reason.
    pub rejected_messages: Family<Label, Counter>,
    /// Aggregator inputs rejected as outliers.
    pub rejected_inputs: Counter,
    /// Connection attempts by what became of them before the join
    /// (`retried`, `refused_unadmitted_cap`, `accepted`, `handshake_failed`,
    /// `handshake_timeout`).
    pub incoming: Family<Label, Counter>,
    /// Connections not admitted yet (handshake or join in progress) now.
    pub unadmitted: Gauge,
    /// The most connections ever not admitted yet at once.
    pub unadmitted_peak: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fedstake");
        let rounds = Counter::default();
        let failed_attempts = Counter::default();
        let phase_seconds = Family::<Label, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 16))
        });
        let clients = Gauge::default();
        let joins = Family::default();
        let bytes_received = Counter::default();
        let bytes_sent = Counter::default();
        let rejected_messages = Family::default();
        let rejected_inputs = Counter::default();
        let incoming = Family::default();
        let unadmitted = Gauge::default();
        let unadmitted_peak = Gauge::default();
        registry.register("rounds", "Rounds settled", rounds.clone());
        registry.register(
            "failed_attempts",
            "Round attempts that failed and were retried",
            failed_attempts.clone(),
        );
        registry.register(
            "phase_seconds",
            "Duration of round phases",
            phase_seconds.clone(),
        );
        registry.register("clients", "Clients connected and admitted", clients.clone());
        registry.register("joins", "Join attempts by outcome", joins.clone());
        registry.register(
            "received_bytes",
            "Control-stream bytes received from clients",
            bytes_received.clone(),
        );
        registry.register(
            "sent_bytes",
            "Control-stream and model bytes sent to clients",
            bytes_sent.clone(),
        );
        registry.register(
            "rejected_messages",
            "Client messages refused, by reason",
            rejected_messages.clone(),
        );
        registry.register(
            "rejected_inputs",
            "Aggregator inputs rejected as outliers",
            rejected_inputs.clone(),
        );
        registry.register(
            "incoming_connections",
            "Connection attempts by what became of them before the join",
            incoming.clone(),
        );
        registry.register(
            "unadmitted_connections",
            "Connections in their handshake or join",
            unadmitted.clone(),
        );
        registry.register(
            "unadmitted_connections_peak",
            "Most connections ever in their handshake or join at once",
            unadmitted_peak.clone(),
        );
        Self {
            registry,
            rounds,
            failed_attempts,
            phase_seconds,
            clients,
            joins,
            bytes_received,
            bytes_sent,
            rejected_messages,
            rejected_inputs,
            incoming,
            unadmitted,
            unadmitted_peak,
        }
    }

    /// Records a phase's duration.
    pub fn phase(&self, phase: &str, seconds: f64) {
        self.phase_seconds
            .get_or_create(&label(phase))
            .observe(seconds);
    }

    /// Counts a join outcome.
    pub fn join(&self, outcome: &str) {
        self.joins.get_or_create(&label(outcome)).inc();
    }

    /// Counts what became of a connection attempt.
    pub fn incoming(&self, outcome: &str) {
        self.incoming.get_or_create(&label(outcome)).inc();
    }

    /// Counts a refused message.
    pub fn reject(&self, reason: &str) {
        self.rejected_messages.get_or_create(&label(reason)).inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buffer = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buffer[..n]),
                }
            }
            let response = if head.starts_with(b"GET /metrics ") {
                let body = metrics.encode();
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_string()
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Binds the metrics endpoint.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}
