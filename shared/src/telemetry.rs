//! Tracing set up in one place: JSON lines in deployments, pretty output locally, `RUST_LOG`
//! honoured (default `info`). Request lines and the request span come from `http::app`.

use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter, prelude::*};

use crate::config::LogFormat;

/// Installs the global subscriber writing to stdout. Safe to call more than once (later calls
/// are no-ops), which matters for tests that build several apps in one process.
pub fn init(format: LogFormat) {
    init_with_writer(format, std::io::stdout);
}

/// Like [`init`], writing wherever `writer` says: tests capture the production format this way.
pub fn init_with_writer<W>(format: LogFormat, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        // Each line carries the fields of the current span (the request's), flattened, so a
        // log pipeline can filter by request_id without joining lines.
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().compact().with_writer(writer))
            .try_init(),
    };
    // Err means a subscriber is already installed: keep it.
    let _ = result;
}
