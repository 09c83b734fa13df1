//! Logging and (with the `otlp` cargo feature) OpenTelemetry trace export.
//!
//! Logs always go to stderr through `tracing-subscriber`, as text or JSON.
//! With the `otlp` feature and an endpoint, every span is also exported over
//! OTLP/gRPC, and each call's `rpc` span takes the caller's W3C
//! `traceparent` as its parent ([`adopt_remote_parent`]), so a call shows up
//! inside the caller's trace.

use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Keeps the exporter alive; dropping it flushes the spans not yet sent.
#[must_use = "dropping the guard stops the trace exporter"]
pub struct TelemetryGuard {
    #[cfg(feature = "otlp")]
    otlp: Option<otlp::Exporter>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(exporter) = self.otlp.take() {
            exporter.shutdown();
        }
    }
}

/// Installs the global subscriber: stderr logs filtered by `RUST_LOG`
/// (default `info`), plus the OTLP exporter when `otlp_endpoint` is given
/// (it is ignored, with a warning, in builds without the `otlp` feature).
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<TelemetryGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(fmt);

    #[cfg(feature = "otlp")]
    {
        let exporter = otlp_endpoint.map(otlp::Exporter::start).transpose()?;
        let layer = exporter.as_ref().map(|e| e.layer());
        registry.with(layer).try_init()?;
        if let Some(endpoint) = otlp_endpoint {
            tracing::info!(endpoint, "exporting traces over OTLP");
        }
        Ok(TelemetryGuard { otlp: exporter })
    }
    #[cfg(not(feature = "otlp"))]
    {
        registry.try_init()?;
        if otlp_endpoint.is_some() {
            tracing::warn!(
                "an OTLP endpoint is set but this build has no `otlp` feature: traces are not exported"
            );
        }
        Ok(TelemetryGuard {})
    }
}

/// Makes `span` a child of the caller's trace, from the W3C `traceparent`
/// (and `tracestate`) in `headers` (gRPC metadata or HTTP headers alike).
/// Without the `otlp` feature there is no
/// exporter to parent anything in, and this does nothing.
pub fn adopt_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    #[cfg(feature = "otlp")]
    otlp::adopt_remote_parent(span, headers);
    #[cfg(not(feature = "otlp"))]
    let _ = (span, headers);
}

/// The trace id (32 hex digits) of a W3C `traceparent` header, if the
/// header is well formed.
pub fn trace_id(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('-').nth(1))
        .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry::propagation::{Extractor, TextMapPropagator};
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    /// The tracer provider and the small runtime its gRPC channel lives on.
    pub(super) struct Exporter {
        provider: SdkTracerProvider,
        runtime: tokio::runtime::Runtime,
    }

    impl Exporter {
        pub(super) fn start(endpoint: &str) -> anyhow::Result<Self> {
            // The tonic channel needs a runtime of its own: the batch
            // processor exports from a background thread, and commands that
            // are not `serve` have no runtime at all.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("otlp")
                .enable_all()
                .build()?;
            let _entered = runtime.enter();
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(Resource::builder().with_service_name("khulasa").build())
                .build();
            Ok(Self { provider, runtime })
        }

        pub(super) fn layer<S>(&self) -> impl tracing_subscriber::Layer<S> + use<S>
        where
            S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
        {
            tracing_opentelemetry::layer().with_tracer(self.provider.tracer("khulasa"))
        }

        pub(super) fn shutdown(self) {
            let _entered = self.runtime.enter();
            if let Err(e) = self.provider.shutdown() {
                eprintln!("warning: flushing traces: {e}");
            }
        }
    }

    struct Headers<'a>(&'a http::HeaderMap);

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }

    pub(super) fn adopt_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
        if headers.get("traceparent").is_none() {
            return;
        }
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        // Fails only when no OpenTelemetry layer is installed (no endpoint).
        let _ = span.set_parent(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_reads_a_well_formed_traceparent_only() {
        let mut m = http::HeaderMap::new();
        assert_eq!(trace_id(&m), None);
        m.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        assert_eq!(trace_id(&m), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        m.insert(
            "traceparent",
            "00-nothex-00f067aa0ba902b7-01".parse().unwrap(),
        );
        assert_eq!(trace_id(&m), None);
    }
}
