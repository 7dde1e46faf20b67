//! The SQL migrations in `migrations/`, embedded at compile time and applied by refinery.

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Arbitrary but fixed key for the session advisory lock that serialises migrators.
const MIGRATION_LOCK_KEY: i64 = 0x6261_7361_6c74; // "basalt"

/// Why migrations could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("could not get a database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("could not take or release the migration lock: {0}")]
    Lock(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Refinery(#[from] refinery::Error),
}

/// Applies pending migrations; returns how many ran.
///
/// Refinery itself does not lock, so several replicas starting at once could race on the
/// schema-history table; a session advisory lock makes them take turns.
pub async fn run(client: &mut tokio_postgres::Client) -> Result<usize, MigrationError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let result = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(client)
        .await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let report = result?;
    for m in report.applied_migrations() {
        tracing::info!(version = m.version(), name = m.name(), "applied migration");
    }
    Ok(report.applied_migrations().len())
}
