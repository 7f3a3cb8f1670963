//! OpenTelemetry spans of a test's remote calls, written where the test can
//! read them: with `TEST_SPANS_FILE=<file>` in its environment, the test
//! worker installs a `tracing` subscriber whose OpenTelemetry layer exports
//! every finished span at once (a simple processor) as one JSON line of
//! that file: `{"name", "trace_id", "span_id", "parent_span_id"}` (hex).
//! This is what a user's remote program does to see its spans in the
//! caller's trace: install an exporter, then dispatch `hype-run`.

use std::io::Write as _;
use std::sync::Mutex;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt as _;

/// The variable naming the file spans are written to.
pub const TEST_SPANS_FILE: &str = "TEST_SPANS_FILE";

/// One exported span, as written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExportedSpan {
    /// The span's name.
    pub name: String,
    /// Its trace ID (32 hex digits).
    pub trace_id: String,
    /// Its span ID (16 hex digits).
    pub span_id: String,
    /// Its parent's span ID (16 hex digits; all zeros for a root).
    pub parent_span_id: String,
}

/// Appends finished spans to a file, one JSON line each.
#[derive(Debug)]
struct FileExporter(Mutex<std::fs::File>);

impl SpanExporter for FileExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut file = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for span in batch {
            let line = ExportedSpan {
                name: span.name.to_string(),
                trace_id: span.span_context.trace_id().to_string(),
                span_id: span.span_context.span_id().to_string(),
                parent_span_id: span.parent_span_id.to_string(),
            };
            let json = serde_json::to_string(&line).unwrap_or_default();
            let _ = writeln!(file, "{json}");
        }
        Ok(())
    }
}

/// Installs the exporter as this process's global subscriber when
/// `TEST_SPANS_FILE` names a file; returns the provider to keep alive.
pub fn install_if_asked() -> Option<SdkTracerProvider> {
    let path = std::env::var_os(TEST_SPANS_FILE)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .ok()?;
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(FileExporter(Mutex::new(file)))
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("hype-test-worker"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).ok()?;
    Some(provider)
}

/// The spans written to `path` so far.
pub fn read(path: &std::path::Path) -> Vec<ExportedSpan> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}
