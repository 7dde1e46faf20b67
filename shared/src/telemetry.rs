//! Tracing set up in one place: JSON lines in deployments, pretty output locally, `RUST_LOG`
//! honoured (default `info`). Request lines and the request span come from `http::app`.
//!
//! JSON lines are written by `json-subscriber`, a drop-in for tracing-subscriber's JSON
//! format (same keys, same nesting) that keeps each span's fields ready to write instead of
//! re-parsing them from a string for every line (the request span and line are among the
//! costlier parts of the chain: `scripts/bench`, variant `quiet`).

use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter, prelude::*};

use crate::config::LogFormat;

pub use tracing_appender::non_blocking::WorkerGuard;

/// Installs the global subscriber writing to stdout, on the calling thread. For Lambda, whose
/// sandbox may freeze as soon as a response is sent: a line must be written by then.
pub fn init(format: LogFormat) {
    init_with_writer(format, std::io::stdout);
}

/// For long-running processes: lines are handed to a writer thread that buffers them (8 KiB)
/// and flushes to stdout whenever its queue runs empty, so a burst of lines costs a few
/// `write`s instead of one each and request threads never block on the log pipe. Nothing is
/// dropped when the queue is full (the caller waits instead). Keep the guard until exit:
/// dropping it flushes what is queued.
pub fn init_non_blocking(format: LogFormat) -> WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stdout()));
    init_with_writer(format, writer);
    guard
}

/// Like [`init`], writing wherever `writer` says. Safe to call more than once (later calls are
/// no-ops), which matters for tests that build several apps in one process.
pub fn init_with_writer<W>(format: LogFormat, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // Err means a subscriber is already installed: keep it.
    let _ = subscriber(format, writer).try_init();
}

/// The subscriber [`init`] installs, for tests that capture the production format with
/// `tracing::subscriber::set_default`.
pub fn subscriber<W>(format: LogFormat, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        // Each line carries the fields of the current span (the request's) under `span`, so a
        // log pipeline can filter by request_id without joining lines.
        LogFormat::Json => Box::new(
            registry.with(
                json_subscriber::fmt::layer()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            ),
        ),
        LogFormat::Pretty => Box::new(registry.with(fmt::layer().compact().with_writer(writer))),
    }
}
