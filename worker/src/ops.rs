//! `worker jobs …`: operators' views of the queue and dead-letter replay. Each command returns
//! the text to print, so tests check exactly what an operator sees.

use std::{collections::BTreeMap, time::Duration};

use shared::{db::Db, db::DbError, repo::jobs};
use uuid::Uuid;

/// `worker jobs stats`: per kind, due jobs, the oldest one's wait, running, scheduled, completed
/// in the last five minutes (the flow), dead.
pub async fn stats(db: &Db) -> Result<String, DbError> {
    let stats = jobs::stats(db).await?;
    let done = jobs::completed_since(db, Duration::from_secs(300)).await?;
    // Every kind with work waiting or done recently, in name order.
    let mut rows: BTreeMap<String, (Option<jobs::KindStats>, i64)> = BTreeMap::new();
    for s in stats {
        let kind = s.kind.clone();
        rows.entry(kind).or_default().0 = Some(s);
    }
    for (kind, n) in done {
        rows.entry(kind).or_default().1 = n;
    }
    let mut out = format!(
        "{:<24} {:>8} {:>12} {:>8} {:>10} {:>8} {:>8}\n",
        "KIND", "DUE", "OLDEST_DUE", "RUNNING", "SCHEDULED", "DONE_5M", "DEAD"
    );
    for (kind, (s, done)) in rows {
        let s = s.unwrap_or(jobs::KindStats {
            kind: kind.clone(),
            due: 0,
            oldest_due_seconds: 0.0,
            running: 0,
            scheduled: 0,
            dead: 0,
        });
        out.push_str(&format!(
            "{:<24} {:>8} {:>11.1}s {:>8} {:>10} {:>8} {:>8}\n",
            kind, s.due, s.oldest_due_seconds, s.running, s.scheduled, done, s.dead
        ));
    }
    Ok(out)
}

/// `worker jobs list --state S [--kind K] [--limit N]`.
pub async fn list(db: &Db, state: &str, kind: Option<&str>, limit: i64) -> Result<String, DbError> {
    let rows = jobs::list(db, state, kind, limit).await?;
    let mut out = format!(
        "{:<36} {:<20} {:<10} {:>8} {}\n",
        "ID", "KIND", "STATE", "ATTEMPT", "LAST_ERROR"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<36} {:<20} {:<10} {:>8} {}\n",
            r.id,
            r.kind,
            r.state,
            format!("{}/{}", r.attempt, r.max_attempts),
            r.last_error.as_deref().unwrap_or("-").replace('\n', " ")
        ));
    }
    Ok(out)
}

/// `worker jobs retry ID`.
pub async fn retry(db: &Db, id: Uuid) -> Result<String, DbError> {
    Ok(if jobs::retry(db, id).await? {
        format!("{id}: due now\n")
    } else {
        format!("{id}: no dead, cancelled or retryable job with this id\n")
    })
}

/// `worker jobs retry --dead [--kind K]`.
pub async fn retry_dead(db: &Db, kind: Option<&str>) -> Result<String, DbError> {
    let n = jobs::retry_dead(db, kind).await?;
    Ok(format!("{n} dead job(s) due now\n"))
}

/// `worker jobs discard ID`.
pub async fn discard(db: &Db, id: Uuid) -> Result<String, DbError> {
    Ok(if jobs::discard(db, id).await? {
        format!("{id}: cancelled\n")
    } else {
        format!("{id}: no waiting or dead job with this id (running and finished jobs stay)\n")
    })
}
