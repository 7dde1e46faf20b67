//! `/metrics` in Prometheus text format (prometheus-client): job outcomes per kind, how long
//! due jobs waited to be claimed, failed polls per worker, and, read from the table at each
//! scrape, the queue's depth and oldest due job's age per kind.

use std::sync::{Arc, atomic::AtomicU64};

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use shared::{db::Db, repo::jobs};

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // the label values as Prometheus shows them
pub enum Outcome {
    completed,
    /// A failed attempt that will be retried.
    retried,
    /// A failed last attempt: the job is dead.
    dead,
    /// Given back unfinished at shutdown.
    released,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabel {
    worker: String,
}

type Seconds = Gauge<f64, AtomicU64>;

/// The process's metrics. Cheap to clone; every clone records into the same registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    jobs: Family<JobLabels, Counter>,
    claim_wait: Family<KindLabel, Histogram, fn() -> Histogram>,
    poll_failures: Family<WorkerLabel, Counter>,
    depth: Family<KindLabel, Gauge>,
    oldest_wait: Family<KindLabel, Seconds>,
    running: Family<KindLabel, Gauge>,
    dead: Family<KindLabel, Gauge>,
    /// Where the queue gauges are read from at scrape time.
    db: Option<Db>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn claim_wait_histogram() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Metrics {
    /// Metrics whose queue gauges are read from `db` (none without it).
    pub fn new(db: Option<Db>) -> Self {
        let mut registry = Registry::with_prefix("basalt");
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs",
            "Jobs finished by this process, by kind and outcome",
            jobs.clone(),
        );
        let claim_wait = Family::new_with_constructor(claim_wait_histogram as fn() -> Histogram);
        registry.register(
            "job_claim_wait_seconds",
            "Time from a job being due to its claim",
            claim_wait.clone(),
        );
        let poll_failures = Family::<WorkerLabel, Counter>::default();
        registry.register(
            "worker_poll_failures",
            "Failed polls (the database unreachable, …), by worker",
            poll_failures.clone(),
        );
        let depth = Family::<KindLabel, Gauge>::default();
        registry.register(
            "jobs_due",
            "Jobs due and waiting for a worker",
            depth.clone(),
        );
        let oldest_wait = Family::<KindLabel, Seconds>::default();
        registry.register(
            "jobs_oldest_due_seconds",
            "How long the oldest due job has waited",
            oldest_wait.clone(),
        );
        let running = Family::<KindLabel, Gauge>::default();
        registry.register("jobs_running", "Jobs claimed and running", running.clone());
        let dead = Family::<KindLabel, Gauge>::default();
        registry.register("jobs_dead", "Jobs out of attempts", dead.clone());
        Self {
            registry: Arc::new(registry),
            jobs,
            claim_wait,
            poll_failures,
            depth,
            oldest_wait,
            running,
            dead,
            db,
        }
    }

    pub fn finished(&self, kind: &str, outcome: Outcome, n: u64) {
        self.jobs
            .get_or_create(&JobLabels {
                kind: kind.to_owned(),
                outcome,
            })
            .inc_by(n);
    }

    pub fn claimed(&self, kind: &str, waited_seconds: f64) {
        self.claim_wait
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .observe(waited_seconds.max(0.0));
    }

    pub fn poll_failed(&self, worker: &str) {
        self.poll_failures
            .get_or_create(&WorkerLabel {
                worker: worker.to_owned(),
            })
            .inc();
    }

    /// The text exposition, after reading the queue gauges. A failed read leaves them out and
    /// says so in a comment: the counters are still worth scraping.
    pub async fn render(&self) -> String {
        let mut note = String::new();
        if let Some(db) = &self.db {
            match jobs::stats(db).await {
                Ok(stats) => {
                    for family in [&self.depth, &self.running, &self.dead] {
                        family.clear();
                    }
                    self.oldest_wait.clear();
                    for s in stats {
                        let label = KindLabel { kind: s.kind };
                        self.depth.get_or_create(&label).set(s.due);
                        self.running.get_or_create(&label).set(s.running);
                        self.dead.get_or_create(&label).set(s.dead);
                        self.oldest_wait
                            .get_or_create(&label)
                            .set(s.oldest_due_seconds);
                    }
                }
                Err(e) => note = format!("# queue gauges unavailable: {}\n", e.op),
            }
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            return "# encoding failed\n".into();
        }
        note + &text
    }
}
