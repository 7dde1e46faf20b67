//! The database layer: one pool, one retrying entry point, slow-operation warnings.
//!
//! Every query in the workspace goes through [`Db::read`] or [`Db::write`] ([`Db::migrate`]
//! aside, which holds a session lock across its statements); both run on
//! [`Db::retrying`], the single place that checks out connections, retries transient failures
//! and times operations. The split exists because retrying is only safe when we know the work
//! did not commit:
//!
//! * `read` runs a closure on a pooled connection. Use it for reads and for writes that are
//!   harmless to repeat; every transient failure is retried.
//! * `write` runs a closure inside a transaction that `Db` commits. A failure before `COMMIT`
//!   is sent means nothing committed, so the whole transaction is retried. A connection lost
//!   *during* `COMMIT` leaves the outcome unknown and is never retried; a serialization failure
//!   (40001) or deadlock (40P01) reported by `COMMIT` means the server rolled back, so that is
//!   retried.
//!
//! Every [`DbError`] names the operation it failed in, including a row that does not decode
//! (repositories use `Row::try_get`, so a renamed column is an error, not a panic).

use std::{future::Future, pin::Pin, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use tokio::time::Instant;
use tokio_postgres::error::SqlState;

use crate::{config::DatabaseSettings, migrations::MigrationError};

pub use deadpool_postgres::Transaction;
pub use tokio_postgres::{Error as PgError, Row, types::ToSql};

/// The future a [`Db::write`] closure returns: it borrows the transaction.
pub type TxFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T, PgError>> + Send + 't>>;

/// A database failure, after retries, naming the operation that failed (`users.find`, …).
#[derive(Debug)]
pub struct DbError {
    pub op: &'static str,
    pub failure: DbFailure,
    /// How many attempts were made (1 when the failure was not worth repeating).
    pub attempts: u32,
}

/// The operation, the failure and its whole cause chain on one line, with the server's own
/// error as `SEVERITY SQLSTATE: message` only. tokio-postgres prints a server error with its
/// `DETAIL` and `HINT`, which quote row values (a unique violation's detail names the
/// conflicting email), and this text is what gets logged (`ApiError` logs `{source:#}`).
impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.op, self.failure.describe())
    }
}

impl std::error::Error for DbError {
    // No source: the chain is already in this message, without the server's detail. A source
    // would hand every `{:#}` or error-chain walker tokio-postgres's own Display of it.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        None
    }
}

/// What went wrong in one attempt.
#[derive(Debug, thiserror::Error)]
pub enum DbFailure {
    #[error("could not get a database connection: {0}")]
    Pool(#[from] PoolError),
    #[error("database error: {source}")]
    Query {
        #[source]
        source: PgError,
        /// The failure hit `COMMIT` itself: the transaction may or may not have committed.
        during_commit: bool,
    },
    #[error("invalid database configuration: {0}")]
    Config(String),
}

impl DbError {
    /// The SQLSTATE the server reported, if any (e.g. to turn a unique violation into a 409).
    pub fn code(&self) -> Option<&SqlState> {
        match &self.failure {
            DbFailure::Query { source, .. } => source.code(),
            _ => None,
        }
    }

    pub fn is_unique_violation(&self) -> bool {
        self.code() == Some(&SqlState::UNIQUE_VIOLATION)
    }

    /// What an operator needs to know about an unreachable database, without the server's
    /// detail or any address or credential: for `/ready`'s answer.
    pub fn unavailable_cause(&self) -> String {
        if let DbFailure::Pool(PoolError::Timeout(_)) = &self.failure {
            return "no connection within the pool's timeout (5 s)".into();
        }
        let Some(pg) = self.failure.pg_error() else {
            return "no connection available".into();
        };
        if let Some(code) = pg.code() {
            let what = match code.code() {
                "28P01" | "28000" => "the database refused the credentials",
                "3D000" => "the database does not exist",
                "57P03" => "the database is starting up or shutting down",
                "53300" => "the database has no connection slots left",
                c if c.starts_with("08") => "the connection failed",
                _ => "the database refused the connection",
            };
            return format!("{what} (SQLSTATE {})", code.code());
        }
        if is_tls_refusal(pg) {
            return "the TLS handshake failed (see the server log for the certificate check)"
                .into();
        }
        let io_kind = std::iter::successors(
            std::error::Error::source(pg),
            |e: &&(dyn std::error::Error + 'static)| e.source(),
        )
        .find_map(|e| e.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
        match io_kind {
            Some(kind) => format!("cannot connect: {kind}"),
            None if pg.is_closed() => "the connection was closed".into(),
            None => "cannot connect".into(),
        }
    }

    /// The write may or may not have committed: the connection was lost, or the server ended
    /// the session (class 08, 57P01–03), while `COMMIT` was in flight, and nothing reported a
    /// rollback. Never retried, and callers must not invite a blind retry either. An error the
    /// server *reported* for `COMMIT` (a serialization failure, a deferred constraint) means it
    /// rolled back: the outcome is known.
    pub fn outcome_unknown(&self) -> bool {
        match &self.failure {
            DbFailure::Query {
                source,
                during_commit: true,
            } => {
                let code = source.code().map(SqlState::code);
                !matches!(code, Some("40001" | "40P01"))
                    && classify(code, is_connection_loss(source)) == Transience::Transient
            }
            _ => false,
        }
    }

    /// The database could not be reached (as opposed to a query that failed): a 503.
    pub fn is_unavailable(&self) -> bool {
        match &self.failure {
            DbFailure::Pool(_) => true,
            DbFailure::Query { source, .. } => {
                classify(
                    source.code().map(SqlState::code),
                    is_connection_loss(source),
                ) == Transience::Transient
            }
            DbFailure::Config(_) => false,
        }
    }
}

impl DbFailure {
    /// The failure and its whole cause chain on one line, the server's own error as
    /// `SEVERITY SQLSTATE: message` only (no DETAIL or HINT: they quote row values).
    fn describe(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            let part = match e.downcast_ref::<tokio_postgres::error::DbError>() {
                Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
                None => e.to_string(),
            };
            // Wrappers print their cause inside their own text ("database error: db error"):
            // say each thing once.
            if !text.contains(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            cause = e.source();
        }
        text
    }

    /// The driver error behind this failure, if any: a statement's, or the one that kept a
    /// new connection from opening.
    fn pg_error(&self) -> Option<&PgError> {
        match self {
            Self::Query { source, .. } => Some(source),
            Self::Pool(PoolError::Backend(source)) => Some(source),
            _ => None,
        }
    }

    fn query(source: PgError) -> Self {
        Self::Query {
            source,
            during_commit: false,
        }
    }

    fn is_retryable(&self) -> bool {
        match self {
            // Nothing was sent: a connection that could not be opened, or a stale one the
            // pool could not recycle in time. A wait timeout means the pool is saturated;
            // queueing again would only add load, so that one is final.
            Self::Pool(PoolError::Timeout(t)) => !matches!(t, deadpool_postgres::TimeoutType::Wait),
            // A connection that could not be opened, judged like a statement's failure: a
            // refused or reset socket may work next time; a wrong password (28P01), a missing
            // database (3D000) or a refused certificate will not, and retrying them only
            // triples the cost of every request.
            Self::Pool(PoolError::Backend(source)) => {
                classify(
                    source.code().map(SqlState::code),
                    is_connection_loss(source),
                ) == Transience::Transient
            }
            Self::Pool(_) => false,
            Self::Query {
                source,
                during_commit,
            } => {
                let code = source.code().map(SqlState::code);
                if *during_commit {
                    // Only errors that prove a rollback are safe to repeat after COMMIT.
                    matches!(code, Some("40001" | "40P01"))
                } else {
                    classify(code, is_connection_loss(source)) == Transience::Transient
                }
            }
            Self::Config(_) => false,
        }
    }
}

/// Whether a failed attempt may succeed when repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transience {
    Transient,
    Permanent,
}

/// Classifies a failure by SQLSTATE, or by a lost connection where the server sent none.
///
/// Transient: class 08 (connection exception), 40001 (serialization failure), 40P01
/// (deadlock), 57P01–57P03 (admin/crash shutdown, cannot connect now). Everything else —
/// constraint violations, syntax errors, permissions — would fail the same way again.
pub fn classify(sqlstate: Option<&str>, connection_lost: bool) -> Transience {
    let transient = match sqlstate {
        Some(code) => {
            code.starts_with("08")
                || matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
        }
        None => connection_lost,
    };
    if transient {
        Transience::Transient
    } else {
        Transience::Permanent
    }
}

fn is_connection_loss(e: &PgError) -> bool {
    if e.is_closed() {
        return true;
    }
    if is_tls_refusal(e) {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// The TLS handshake failed on the certificate or the protocol (rustls's verdict, carried
/// inside an `io::Error`): the same server will fail the same way again.
fn is_tls_refusal(e: &PgError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<rustls::Error>() {
            return true;
        }
        // `io::Error::source` skips the error it wraps; look at that one too.
        if let Some(inner) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && inner.is::<rustls::Error>()
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// Attempts and backoff for transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No retry starts after this long since the first attempt: a black-holed host costs one
    /// connect timeout (5 s), not three.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
            deadline: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `retry` (1-based): exponential, capped, with "equal jitter"
    /// (a random point in the upper half) so that many clients failing together spread out
    /// without ever retrying immediately.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let ceiling = exp.min(self.max_delay);
        ceiling.div_f64(2.0) + ceiling.div_f64(2.0).mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// The pool plus the policies every operation runs under. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    slow: Duration,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("status", &self.pool.status())
            .field("slow", &self.slow)
            .finish()
    }
}

impl Db {
    /// Builds the pool without connecting: the first query opens the first connection, so a
    /// Lambda cold start never waits for the database before it is needed.
    pub fn new(settings: &DatabaseSettings) -> Result<Self, DbError> {
        Self::connect_lazy(settings.url(), settings.pool_max, settings.slow_query)
    }

    /// Like [`Db::new`], with `-c name=value` session settings for every connection in front
    /// of any the URL's `options` carries. The worker's sessions use it for
    /// `synchronous_commit=off` (see `worker::serve`).
    pub fn with_session_settings(
        settings: &DatabaseSettings,
        session: &str,
    ) -> Result<Self, DbError> {
        Self::connect(
            settings.url(),
            settings.pool_max,
            settings.slow_query,
            Some(session),
        )
    }

    /// Like [`Db::new`], from a connection string (`sslmode`/`sslrootcert` honoured as libpq
    /// does, see `crate::tls`).
    pub fn connect_lazy(url: &str, max_size: usize, slow: Duration) -> Result<Self, DbError> {
        Self::connect(url, max_size, slow, None)
    }

    fn connect(
        url: &str,
        max_size: usize,
        slow: Duration,
        session: Option<&str>,
    ) -> Result<Self, DbError> {
        let config_error = |reason: String| DbError {
            op: "db.connect",
            failure: DbFailure::Config(reason),
            attempts: 0,
        };
        // The TLS connector reads `sslrootcert` now (a bad file stops start-up) but builds its
        // rustls configuration only on the first TLS handshake.
        let (mut pg, tls) =
            crate::tls::postgres(url).map_err(|e| config_error(format!("DATABASE_URL: {e}")))?;
        if pg.get_application_name().is_none() {
            pg.application_name("basalt");
        }
        if let Some(session) = session {
            let options = match pg.get_options() {
                Some(theirs) => format!("{session} {theirs}"),
                None => session.to_owned(),
            };
            pg.options(options);
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(5));
        }
        let manager = Manager::from_config(
            pg,
            tls,
            ManagerConfig {
                // `Fast` checks only that the connection task is alive; a connection that died
                // unnoticed (e.g. while a Lambda container was frozen) fails its first use with
                // a closed-connection error, which `retrying` treats as transient.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| config_error(e.to_string()))?;
        Ok(Self {
            pool,
            slow,
            retry: RetryPolicy::default(),
        })
    }

    /// Pool statistics (size, available), for readiness output and tests.
    pub fn status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }

    /// Runs `f` on a pooled connection, retrying transient failures. Only for reads and
    /// statements that are safe to repeat.
    pub async fn read<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, DbError>
    where
        F: Fn(Object) -> Fut,
        Fut: Future<Output = Result<T, PgError>>,
    {
        self.retrying(op, || async {
            let conn = self.pool.get().await?;
            f(conn).await.map_err(DbFailure::query)
        })
        .await
    }

    /// Runs `f` inside a transaction and commits it; the whole transaction is retried on
    /// transient failures that happen before `COMMIT` (see the module docs).
    pub async fn write<T, F>(&self, op: &'static str, f: F) -> Result<T, DbError>
    where
        F: for<'t> Fn(&'t Transaction<'t>) -> TxFuture<'t, T>,
    {
        self.retrying(op, || async {
            let mut conn = self.pool.get().await?;
            let tx = conn.transaction().await.map_err(DbFailure::query)?;
            let value = f(&tx).await.map_err(DbFailure::query)?;
            tx.commit().await.map_err(|source| DbFailure::Query {
                source,
                during_commit: true,
            })?;
            Ok(value)
        })
        .await
    }

    /// Runs one statement that is its own transaction (PostgreSQL commits a statement sent
    /// outside `BEGIN` when it completes) and decodes its one row: one round trip where
    /// [`Db::write`] spends three (`BEGIN`, the statement, `COMMIT`). For a write that is a
    /// single statement — several tables at once through data-modifying CTEs included.
    ///
    /// The retry rules are [`Db::write`]'s, with the statement in `COMMIT`'s place: retried
    /// when nothing can have been committed (no connection, a failed prepare) or when the
    /// server reported an error that proves a rollback (40001, 40P01); a connection lost while
    /// the statement ran is [`DbError::outcome_unknown`], never repeated.
    pub async fn write_statement<T>(
        &self,
        op: &'static str,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        decode: impl Fn(&Row) -> Result<T, PgError>,
    ) -> Result<T, DbError> {
        self.retrying(op, || async {
            let conn = self.pool.get().await?;
            let stmt = conn.prepare_cached(sql).await.map_err(DbFailure::query)?;
            let committed = |source| DbFailure::Query {
                source,
                during_commit: true,
            };
            let row = conn.query_one(&stmt, params).await.map_err(committed)?;
            decode(&row).map_err(committed)
        })
        .await
    }

    /// The single retry/timing loop behind every operation.
    async fn retrying<T, A, Fut>(&self, op: &'static str, attempt: A) -> Result<T, DbError>
    where
        A: Fn() -> Fut,
        Fut: Future<Output = Result<T, DbFailure>>,
    {
        let started = Instant::now();
        let mut tries = 0;
        let result = loop {
            tries += 1;
            match attempt().await {
                Err(e) if tries < self.retry.attempts && e.is_retryable() => {
                    let delay = self.retry.backoff(tries, rand::random::<f64>());
                    if started.elapsed() + delay >= self.retry.deadline {
                        break Err(e);
                    }
                    tracing::warn!(
                        op,
                        attempt = tries,
                        delay_ms = delay.as_millis() as u64,
                        error = %e.describe(),
                        "transient database failure, retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
                other => break other,
            }
        };
        let elapsed = started.elapsed();
        if elapsed >= self.slow {
            tracing::warn!(
                op,
                elapsed_ms = elapsed.as_millis() as u64,
                attempts = tries,
                threshold_ms = self.slow.as_millis() as u64,
                "slow database operation"
            );
        }
        if let Err(e) = &result {
            tracing::debug!(op, attempts = tries, error = %e.describe(), "database operation failed");
        }
        result.map_err(|failure| DbError {
            op,
            failure,
            attempts: tries,
        })
    }

    /// Applies the embedded migrations (see `crate::migrations`). The one operation that does
    /// not go through [`Db::retrying`]: it holds a session lock across statements, and
    /// repeating it is the migrator's (or the restarted job's) decision.
    pub async fn migrate(&self) -> Result<usize, MigrationError> {
        let mut conn = self.pool.get().await?;
        let client: &mut tokio_postgres::Client = &mut conn;
        crate::migrations::run(client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_sqlstates_are_retried_and_others_are_not() {
        for code in [
            "08000", "08003", "08006", "40001", "40P01", "57P01", "57P02", "57P03",
        ] {
            assert_eq!(classify(Some(code), false), Transience::Transient, "{code}");
        }
        for code in [
            "23505", "23503", "42601", "42P01", "22P02", "57014", "53300", "XX000",
        ] {
            assert_eq!(classify(Some(code), false), Transience::Permanent, "{code}");
        }
        // No SQLSTATE: only a lost connection is transient.
        assert_eq!(classify(None, true), Transience::Transient);
        assert_eq!(classify(None, false), Transience::Permanent);
    }

    #[test]
    fn backoff_grows_exponentially_is_capped_and_jittered_within_bounds() {
        let p = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            deadline: Duration::from_secs(5),
        };
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(50));
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 0.0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 1.0), Duration::from_millis(200));
        // Capped at max_delay.
        assert_eq!(p.backoff(3, 1.0), Duration::from_millis(300));
        assert_eq!(p.backoff(30, 1.0), Duration::from_millis(300));
        for i in 0..100 {
            let d = p.backoff(2, f64::from(i) / 100.0);
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
        }
    }

    #[test]
    fn pool_wait_timeouts_are_final_but_connect_failures_are_retried() {
        use deadpool_postgres::TimeoutType;
        assert!(!DbFailure::Pool(PoolError::Timeout(TimeoutType::Wait)).is_retryable());
        assert!(DbFailure::Pool(PoolError::Timeout(TimeoutType::Create)).is_retryable());
        assert!(!DbFailure::Pool(PoolError::Closed).is_retryable());
    }

    // --- Against a real PostgreSQL (scripts/test starts one) -----------------------------

    use std::sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    };

    async fn test_db(max: usize, slow: Duration) -> Db {
        let url = crate::testing::create_database().await;
        let db = Db::connect_lazy(&url, max, slow).unwrap();
        db.migrate().await.unwrap();
        db
    }

    #[tokio::test]
    async fn a_read_whose_connection_is_terminated_mid_operation_is_retried() {
        let db = test_db(1, Duration::from_secs(5)).await;
        let attempts = AtomicU32::new(0);
        let pids = Mutex::new(Vec::new());
        let value: i32 = db
            .read("test.read_retry", |c| {
                let attempts = &attempts;
                let pids = &pids;
                async move {
                    let n = attempts.fetch_add(1, Ordering::SeqCst);
                    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
                    pids.lock().unwrap().push(pid);
                    if n == 0 {
                        // The server ends this very session: SQLSTATE 57P01 mid-operation.
                        c.execute("SELECT pg_terminate_backend(pg_backend_pid())", &[])
                            .await?;
                    }
                    Ok(c.query_one("SELECT 42", &[]).await?.get(0))
                }
            })
            .await
            .unwrap();
        assert_eq!(value, 42);
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        let pids = pids.into_inner().unwrap();
        assert_ne!(pids[0], pids[1], "the retry ran on a fresh connection");
    }

    #[tokio::test]
    async fn a_transaction_interrupted_before_commit_is_retried_and_commits_once() {
        let db = test_db(2, Duration::from_secs(5)).await;
        let attempts = Arc::new(AtomicU32::new(0));
        let a = attempts.clone();
        db.write("test.write_retry", move |tx| {
            let a = a.clone();
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO users (id, email, password_hash) VALUES ($1, 'retry@example.com', 'x')",
                    &[&uuid::Uuid::now_v7()],
                )
                .await?;
                if a.fetch_add(1, Ordering::SeqCst) == 0 {
                    tx.execute("SELECT pg_terminate_backend(pg_backend_pid())", &[])
                        .await?;
                }
                Ok(())
            })
        })
        .await
        .unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        let rows: i64 = db
            .read("test.count", |c| async move {
                Ok(c.query_one("SELECT count(*) FROM users", &[]).await?.get(0))
            })
            .await
            .unwrap();
        assert_eq!(
            rows, 1,
            "the interrupted attempt rolled back; the retry committed once"
        );
    }

    #[tokio::test]
    async fn a_single_statement_write_commits_alone_and_a_lost_one_is_never_repeated() {
        let db = test_db(2, Duration::from_secs(5)).await;
        const INSERT: &str = "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'x') \
                              RETURNING id";
        let id = uuid::Uuid::now_v7();
        let email = "one@example.com";
        let got: uuid::Uuid = db
            .write_statement("test.statement", INSERT, &[&id, &email], |row| {
                row.try_get(0)
            })
            .await
            .unwrap();
        assert_eq!(got, id);
        // Committed without BEGIN/COMMIT: another connection sees it at once.
        let count = |db: &Db| {
            let db = db.clone();
            async move {
                db.read("test.count", |c| async move {
                    Ok(c.query_one("SELECT count(*) FROM users", &[])
                        .await?
                        .get::<_, i64>(0))
                })
                .await
                .unwrap()
            }
        };
        assert_eq!(count(&db).await, 1);
        // An error the server reports proves a rollback: known outcome, not repeated.
        let err = db
            .write_statement(
                "test.statement",
                INSERT,
                &[&uuid::Uuid::now_v7(), &email],
                |row| row.try_get::<_, uuid::Uuid>(0),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
        assert!(!err.outcome_unknown());
        assert_eq!(err.attempts, 1);
        // The connection lost while the statement ran: it may have committed, so it is not
        // repeated and the caller is told the outcome is unknown.
        const LOST: &str = "WITH u AS (INSERT INTO users (id, email, password_hash) \
                            VALUES ($1, 'lost@example.com', 'x') RETURNING id) \
                            SELECT id, pg_terminate_backend(pg_backend_pid()) FROM u";
        let err = db
            .write_statement("test.statement", LOST, &[&uuid::Uuid::now_v7()], |row| {
                row.try_get::<_, uuid::Uuid>(0)
            })
            .await
            .unwrap_err();
        assert!(err.outcome_unknown(), "{err}");
        assert_eq!(err.attempts, 1, "never repeated");
        assert_eq!(count(&db).await, 1);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried_and_keep_their_sqlstate() {
        let db = test_db(1, Duration::from_secs(5)).await;
        let attempts = AtomicU32::new(0);
        let err = db
            .read("test.permanent", |c| {
                let attempts = &attempts;
                async move {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    c.execute("SELECT * FROM no_such_table", &[]).await
                }
            })
            .await
            .unwrap_err();
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
        assert!(!err.is_unavailable());
    }

    #[tokio::test]
    async fn a_row_that_does_not_decode_is_an_error_naming_the_operation() {
        let db = test_db(1, Duration::from_secs(5)).await;
        let attempts = AtomicU32::new(0);
        let err = db
            .read("test.decode", |c| {
                let attempts = &attempts;
                async move {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let row = c.query_one("SELECT 1::int4 AS n", &[]).await?;
                    row.try_get::<_, String>("renamed_column")
                }
            })
            .await
            .unwrap_err();
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            1,
            "a decoding error is permanent"
        );
        assert_eq!(err.op, "test.decode");
        assert!(err.to_string().starts_with("test.decode: "), "{err}");
        assert!(err.to_string().contains("renamed_column"), "{err}");
        assert!(!err.is_unavailable());
    }

    #[tokio::test]
    async fn a_missing_database_is_not_retried_and_its_cause_is_named() {
        let admin = crate::testing::admin_url();
        let (base, _) = admin.rsplit_once('/').unwrap();
        let db = Db::connect_lazy(
            &format!("{base}/no_such_database"),
            1,
            Duration::from_secs(5),
        )
        .unwrap();
        let err = db
            .read("test.missing_db", |c| async move {
                c.execute("SELECT 1", &[]).await
            })
            .await
            .unwrap_err();
        assert_eq!(
            err.attempts, 1,
            "3D000 fails the same way every time: {err}"
        );
        assert!(err.is_unavailable(), "{err}");
        assert_eq!(
            err.unavailable_cause(),
            "the database does not exist (SQLSTATE 3D000)"
        );
    }

    #[tokio::test]
    async fn a_certificate_refusal_is_not_retried() {
        let params = format!(
            "sslmode=verify-full&sslrootcert={}",
            crate::testing::other_ca()
        );
        let url = crate::testing::tls_url(&crate::testing::admin_url(), "localhost", &params);
        let db = Db::connect_lazy(&url, 1, Duration::from_secs(5)).unwrap();
        let err = db
            .read("test.bad_cert", |c| async move {
                c.execute("SELECT 1", &[]).await
            })
            .await
            .unwrap_err();
        assert_eq!(err.attempts, 1, "{err}");
        assert!(
            err.unavailable_cause().contains("TLS handshake failed"),
            "{err}"
        );
    }

    /// A host that accepts connections and never answers (a black hole, a hung server): the
    /// retry loop's deadline makes that one connect timeout per operation, not three.
    #[tokio::test]
    async fn a_black_holed_database_costs_one_connect_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let db = Db::connect_lazy(
            &format!("postgres://nobody@127.0.0.1:{port}/none"),
            1,
            Duration::from_secs(30),
        )
        .unwrap();
        let started = std::time::Instant::now();
        let err = db
            .read("test.black_hole", |c| async move {
                c.execute("SELECT 1", &[]).await
            })
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        held.abort();
        assert!(err.is_unavailable(), "{err}");
        assert_eq!(err.attempts, 1, "{err}");
        assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    }

    #[tokio::test]
    async fn an_unreachable_database_is_unavailable_after_bounded_retries() {
        // Port 1 on loopback: connection refused at once.
        let db = Db::connect_lazy(
            "postgres://nobody@127.0.0.1:1/none",
            1,
            Duration::from_secs(5),
        )
        .unwrap();
        let started = std::time::Instant::now();
        let err = db
            .read("test.unreachable", |c| async move {
                c.execute("SELECT 1", &[]).await
            })
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn slow_operations_are_logged_with_their_name() {
        let captured = crate::testing::CapturedLogs::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let db = test_db(1, Duration::from_millis(30)).await;
        db.read(
            "test.fast",
            |c| async move { c.execute("SELECT 1", &[]).await },
        )
        .await
        .unwrap();
        db.read("test.sleepy", |c| async move {
            c.execute("SELECT pg_sleep(0.05)", &[]).await
        })
        .await
        .unwrap();
        let logs = captured.text();
        let slow: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("slow database operation"))
            .collect();
        assert_eq!(slow.len(), 1, "{logs}");
        assert!(
            slow[0].contains("WARN") && slow[0].contains("op=\"test.sleepy\""),
            "{logs}"
        );
    }
}
