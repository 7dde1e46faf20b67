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

#[cfg(test)]
mod tests {
    use tokio_postgres::NoTls;

    use super::*;
    use crate::auth::email::canonical;

    /// A database that had users before V3: SQL gives ASCII addresses exactly the form Rust
    /// computes, and leaves the ones it cannot fold (non-ASCII) to the application.
    #[tokio::test]
    async fn v3_canonicalises_existing_ascii_addresses_exactly_as_the_application_does() {
        let url = crate::testing::create_database().await;
        let (mut client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(conn);
        embedded::migrations::runner()
            .set_target(refinery::Target::Version(2))
            .run_async(&mut client)
            .await
            .unwrap();
        let ascii = [
            "Ann.Smith+Tag@Example.COM",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ@abcdefghijklmnopqrstuvwxyz.example",
            "o'brien_{x}~1@example.org",
        ];
        let other = ["JÖRG@example.de", "zero\u{200b}width@example.com"];
        for email in ascii.iter().chain(&other) {
            client
                .execute(
                    "INSERT INTO users (id, email, password_hash) VALUES (gen_random_uuid(), $1, 'x')",
                    &[email],
                )
                .await
                .unwrap();
        }
        run(&mut client).await.unwrap();
        for email in ascii {
            let stored: Option<String> = client
                .query_one(
                    "SELECT email_canonical FROM users WHERE email = $1",
                    &[&email],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(stored, Some(canonical(email)), "{email}");
        }
        for email in other {
            let stored: Option<String> = client
                .query_one(
                    "SELECT email_canonical FROM users WHERE email = $1",
                    &[&email],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(stored, None, "{email}");
        }
    }
}
