//! The process's one `LISTEN` connection: a `NOTIFY` on `shared::repo::jobs::CHANNEL` (sent by
//! `enqueue` when its transaction commits, the payload being the job's kind) wakes that kind's
//! idle worker at once instead of after its poll interval.
//!
//! A dedicated session outside `Db`'s pool (a pooled connection cannot keep a `LISTEN`
//! between checkouts). When it drops, the listener reconnects with backoff, and after every
//! (re)subscription wakes every worker: jobs enqueued while it was away sent notifications
//! nobody heard. Polling still runs underneath, so a lost notification costs latency, never a
//! job.

use std::{collections::HashMap, time::Duration};

use shared::repo::jobs::CHANNEL;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use crate::runner::Wake;

/// Listens until the process ends; `wakes` maps a job kind to its worker's [`Wake`].
pub async fn run(url: String, wakes: HashMap<String, Wake>) {
    let mut failures = 0u32;
    loop {
        match listen_once(&url, &wakes).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, failures, "LISTEN connection failed");
            }
        }
        // 100 ms doubling to 10 s: back soon after a restart, gentle during an outage.
        let delay = Duration::from_millis(100)
            .saturating_mul(1u32 << failures.min(7))
            .min(Duration::from_secs(10));
        tokio::time::sleep(delay).await;
    }
}

/// One session: connect, `LISTEN`, forward notifications until the connection ends. `Ok`
/// when it had subscribed (the failure count starts over).
async fn listen_once(url: &str, wakes: &HashMap<String, Wake>) -> Result<(), String> {
    let (config, tls) = shared::tls::postgres(url)?;
    let (client, mut connection) = config.connect(tls).await.map_err(|e| e.to_string())?;
    // The connection delivers notifications only while polled; a task polls it and forwards
    // them, so that the client below can run `LISTEN` meanwhile.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Ok(()),
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(channel = CHANNEL, "listening for new jobs");
    for wake in wakes.values() {
        wake.wake();
    }
    while let Some(kind) = rx.recv().await {
        if let Some(wake) = wakes.get(&kind) {
            wake.wake();
        }
    }
    drop(client);
    match driver.await {
        Ok(Ok(())) => {
            tracing::warn!("LISTEN connection closed");
            Ok(())
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "LISTEN connection lost");
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}
