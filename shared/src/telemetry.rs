//! Tracing set up in one place: JSON lines in deployments, pretty output locally, `RUST_LOG`
//! honoured (default `info`). Request lines and the request span come from `http::app`.
//!
//! One exception to `RUST_LOG`: tokio-postgres logs every statement *with its parameter values*
//! (emails, password hashes, key hashes) at debug level, so [`filter`] keeps `tokio_postgres`
//! at `info` unless the directives name it themselves — `RUST_LOG=debug` for our own code must
//! not put parameters in the logs, while someone who writes `tokio_postgres=debug` asked for them.
//!
//! JSON lines are written by `json-subscriber`, a drop-in for tracing-subscriber's JSON
//! format (same keys, same nesting) that keeps each span's fields ready to write instead of
//! re-parsing them from a string for every line (the request span and line are among the
//! costlier parts of the chain: `scripts/bench`, variant `quiet`).

use tracing::{Subscriber, level_filters::LevelFilter};
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
    subscriber_with_filter(
        format,
        writer,
        filter(std::env::var("RUST_LOG").ok().as_deref()),
    )
}

/// The filter for `RUST_LOG`'s value (unset or invalid: `info`). When it lets anything through
/// at debug or trace and does not mention `tokio_postgres`, `tokio_postgres=info` is appended
/// (see the module docs); at `info` or quieter there is nothing to hold back.
pub fn filter(rust_log: Option<&str>) -> EnvFilter {
    let directives = rust_log
        .map(str::trim)
        .filter(|d| !d.is_empty() && EnvFilter::try_new(d).is_ok())
        .unwrap_or("info");
    let filter = EnvFilter::new(directives);
    let verbose = filter
        .max_level_hint()
        .is_none_or(|max| max > LevelFilter::INFO);
    if verbose && !directives.contains("tokio_postgres") {
        EnvFilter::new(format!("{directives},tokio_postgres=info"))
    } else {
        filter
    }
}

/// [`subscriber`] with an explicit filter, for tests that must not depend on the environment.
pub fn subscriber_with_filter<W>(
    format: LogFormat,
    writer: W,
    filter: EnvFilter,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{db::Db, testing::CapturedLogs};

    #[test]
    fn verbose_filters_hold_tokio_postgres_at_info_unless_they_name_it() {
        let shown = |rust_log: Option<&str>| filter(rust_log).to_string();
        for verbose in ["debug", "trace", "info,shared=debug"] {
            assert!(
                shown(Some(verbose)).contains("tokio_postgres=info"),
                "{verbose}: {}",
                shown(Some(verbose))
            );
        }
        for quiet in [
            None,
            Some(""),
            Some("info"),
            Some("warn"),
            Some("not a=filter="),
        ] {
            assert!(!shown(quiet).contains("tokio_postgres"), "{quiet:?}");
        }
        // Named explicitly: the operator asked for parameters.
        assert!(!shown(Some("debug,tokio_postgres=debug")).contains("tokio_postgres=info"));
    }

    /// Runs one parameterised query under `filter`, with tokio-postgres's `log` records
    /// bridged into tracing as the production subscriber does, and returns what was logged.
    async fn logs_of_a_query(filter: EnvFilter, param: &str) -> String {
        // What `try_init` installs in production; here by hand, since the test subscriber is a
        // scoped one. Every level passes the bridge; the filter alone decides.
        let _ = tracing_log::LogTracer::init();
        assert_eq!(
            tracing_log::log::max_level(),
            tracing_log::log::LevelFilter::Trace
        );
        let captured = CapturedLogs::default();
        let writer = captured.clone();
        let subscriber = subscriber_with_filter(LogFormat::Json, move || writer.clone(), filter);
        let _guard = tracing::subscriber::set_default(subscriber);
        let url = crate::testing::create_database().await;
        let db = Db::connect_lazy(&url, 1, Duration::from_secs(5)).unwrap();
        let param = param.to_owned();
        db.read("test.parameters", |c| {
            let param = param.clone();
            async move { c.query_one("SELECT $1::text", &[&param]).await }
        })
        .await
        .unwrap();
        tracing::debug!("our own debug line");
        captured.text()
    }

    #[tokio::test]
    async fn rust_log_debug_logs_no_statement_parameters() {
        let secret = "param-7f3a@example.com";
        let logs = logs_of_a_query(filter(Some("debug")), secret).await;
        assert!(logs.contains("our own debug line"), "{logs}");
        assert!(
            !logs.contains(secret),
            "a parameter reached the logs:\n{logs}"
        );

        // The control: the capture does see tokio-postgres's parameter lines when asked for.
        let logs = logs_of_a_query(filter(Some("debug,tokio_postgres=debug")), secret).await;
        assert!(logs.contains(secret), "{logs}");
    }
}
