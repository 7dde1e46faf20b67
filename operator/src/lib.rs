//! The `AppDeployment` operator: one custom resource (`basalt.dev/v1alpha1`) reconciled into
//! the API's and the worker's Deployments and what surrounds them.
//!
//! # Layout
//!
//! - [`crd`]: the resource's types, from which the CRD is generated (`operator crd`).
//! - [`children`]: pure functions from the resource to each child object.
//! - [`reconcile`]: one reconcile (apply, delete, status) and the error policy's backoff.
//! - [`error`]: why a reconcile failed (the `Degraded` reasons).
//! - [`metrics`]: Prometheus metrics; [`health`]: `/health`, `/ready`, `/metrics`.
//! - [`rbac`]: the operator's least-privilege RBAC (`operator rbac`).
//!
//! [`run`] is what `main` runs (leader election, then the controller until the signal); tests
//! call it directly.

// kube's derives name `::schemars`, and this crate's schemars (1, for the CRD) is renamed in
// the workspace because the API's OpenAPI generator (aide) needs schemars 0.9.
extern crate schemars1 as schemars;

pub mod children;
pub mod crd;
pub mod error;
pub mod health;
pub mod metrics;
pub mod rbac;
pub mod reconcile;

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::{
    apps::v1::Deployment,
    autoscaling::v2::HorizontalPodAutoscaler,
    batch::v1::Job,
    core::v1::Service,
    networking::v1::{Ingress, NetworkPolicy},
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Client, CustomResourceExt, ResourceExt,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        events::{Recorder, Reporter},
        predicates, reflector,
        utils::Backoff,
        watcher,
    },
};
use kube_lease_manager::LeaseManagerBuilder;
use shared::config::OperatorSettings;

use crate::{crd::AppDeployment, error::Error, metrics::Metrics};

/// The CRD as YAML: what `operator crd` prints and `helm/crds/` holds.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(&AppDeployment::crd())
}

/// The RBAC objects for `namespace` as one multi-document YAML.
pub fn rbac_yaml(namespace: &str) -> Result<String, serde_saphyr::SerializeError> {
    rbac::objects(namespace)
        .iter()
        .map(|o| serde_saphyr::to_string(o).map(|y| format!("---\n{y}")))
        .collect()
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// Consecutive failures per resource (by uid), for the error policy's backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, metrics: Metrics, instance: &str) -> Self {
        let reporter = Reporter {
            controller: reconcile::MANAGER.to_owned(),
            instance: Some(instance.to_owned()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            failures: Mutex::default(),
        }
    }

    fn failed(&self, uid: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(uid.to_owned()).or_insert(0);
        *n += 1;
        *n
    }

    fn succeeded(&self, uid: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(uid);
    }
}

/// The wait after the `n`-th consecutive failure of one resource: 1 s doubling to 30 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

fn error_policy(app: Arc<AppDeployment>, error: &Error, ctx: Arc<Context>) -> Action {
    let n = ctx.failed(&app.uid().unwrap_or_default());
    let wait = backoff(n);
    tracing::warn!(
        app = %app.name_any(), namespace = app.namespace().unwrap_or_default(),
        reason = error.reason(), error = %error, retry_in = ?wait, "reconcile failed"
    );
    Action::requeue(wait)
}

/// The label the operator's children carry, so its watches see only them.
const CHILDREN: &str = "app.kubernetes.io/managed-by=basalt-operator";

/// `K`s in `namespace`, or in every namespace.
fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A watch that lists again at once when its resource version has expired (410 Gone: after an
/// API server restart the new server's watch cache begins later than where the watch stood),
/// as client-go's reflector does, and backs off on its own on every other error (800 ms
/// doubling to 30 s), so one failing watch holds up neither itself nor the others for long.
fn resilient<K: kube::Resource<DynamicType = ()> + Send>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send {
    events
        .filter(|event| {
            let expired =
                matches!(event, Err(watcher::Error::WatchError(status)) if status.code == 410);
            if expired {
                tracing::info!(kind = %K::kind(&()), "a watch expired (410 Gone): listing again");
            }
            std::future::ready(!expired)
        })
        .default_backoff()
}

/// The controller's own backoff on its merged triggers: none, as each watch backs off by itself
/// ([`resilient`]); the default would pause every watch whenever any of them failed, and
/// after an API server restart (one failure per watch) for minutes.
struct NoBackoff;

impl Iterator for NoBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl Backoff for NoBackoff {
    fn reset(&mut self) {}
}

/// Changes to the `K`s the operator labels as its children (metadata only).
fn children<K>(
    client: &Client,
    namespace: Option<&str>,
) -> impl Stream<Item = Result<kube::core::PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let config = watcher::Config::default().labels(CHILDREN);
    let api: Api<kube::core::PartialObjectMeta<K>> = api(client, namespace);
    resilient(watcher(api, config)).filter_map(|event| {
        std::future::ready(match event {
            // The operator's own apply, echoed back: it triggers nothing (the reconcile that
            // wrote it is still running or just ended). Anyone else's change does.
            Ok(watcher::Event::Apply(child)) if written_last_by_operator(&child) => None,
            Ok(
                watcher::Event::Apply(child)
                | watcher::Event::InitApply(child)
                | watcher::Event::Delete(child),
            ) => Some(Ok(child)),
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(e) => Some(Err(e)),
        })
    })
}

/// Whether the newest write to `child` was the operator's alone: its `managedFields` entry is
/// the most recent and no other manager's is as recent (they have one-second resolution, so a
/// tie counts as someone else's change too).
fn written_last_by_operator<K: kube::Resource>(child: &K) -> bool {
    let Some(fields) = child.meta().managed_fields.as_ref() else {
        return false;
    };
    let newest = fields.iter().filter_map(|f| f.time.as_ref()).max();
    let Some(newest) = newest else {
        return false;
    };
    fields
        .iter()
        .filter(|f| f.time.as_ref() == Some(newest))
        .all(|f| f.manager.as_deref() == Some(reconcile::MANAGER))
}

/// Runs the controller until `shutdown` resolves: every AppDeployment in `namespace` (every
/// namespace when `None`), a reconcile on each spec change (generation) and on each change to
/// a child it owns that the operator did not make itself, at most `concurrency` at once.
pub async fn run_controller(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let apps: Api<AppDeployment> = api(&client, namespace);
    let (reader, writer) = reflector::store();
    // Status writes do not change the generation: filtered out here, they trigger nothing.
    let trigger = resilient(watcher(apps, watcher::Config::default()))
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    Controller::for_stream(trigger, reader)
        .with_config(kube::runtime::Config::default().concurrency(concurrency))
        .trigger_backoff(NoBackoff)
        .owns_stream(children::<Deployment>(&client, namespace))
        .owns_stream(children::<Service>(&client, namespace))
        .owns_stream(children::<Job>(&client, namespace))
        .owns_stream(children::<HorizontalPodAutoscaler>(&client, namespace))
        .owns_stream(children::<PodDisruptionBudget>(&client, namespace))
        .owns_stream(children::<NetworkPolicy>(&client, namespace))
        .owns_stream(children::<Ingress>(&client, namespace))
        .graceful_shutdown_on(shutdown)
        .run(
            |app, ctx: Arc<Context>| async move {
                let uid = app.uid().unwrap_or_default();
                let result = reconcile::reconcile(app, ctx.clone()).await;
                if result.is_ok() {
                    ctx.succeeded(&uid);
                }
                result
            },
            error_policy,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    #[error("cannot serve health probes on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The operator process: health server, leader election through the Lease
/// `basalt-operator` in `settings.namespace`, then the controller while this process leads,
/// until `shutdown` resolves (the Lease is released then, so a standby takes over at once).
/// `identity` names this process in the Lease (the pod's name).
pub async fn run(
    client: Client,
    settings: &OperatorSettings,
    identity: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let metrics = Metrics::default();
    let leading = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(settings.health_addr)
        .await
        .map_err(|source| RunError::Bind {
            addr: settings.health_addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| RunError::Bind {
        addr: settings.health_addr,
        source,
    })?;
    tracing::info!(%addr, "health probes listening");
    let server = tokio::spawn(health::serve(listener, metrics.clone(), leading.clone()));

    let lease_seconds = settings.lease.as_secs();
    let manager = LeaseManagerBuilder::new(client.clone(), "basalt-operator")
        .with_namespace(&settings.namespace)
        .with_identity(identity)
        .with_duration(lease_seconds)
        .with_grace((lease_seconds / 3).max(1))
        .with_field_manager(reconcile::MANAGER)
        .build()
        .await?;
    let (mut is_leader, lease_task) = manager.watch().await;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    tokio::spawn(shutdown);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // Standby until this process holds the Lease; lead until the signal or until the Lease is
    // lost (an API outage longer than the lease, say), then stand by again.
    loop {
        let leader = loop {
            if *is_leader.borrow_and_update() {
                break true;
            }
            tokio::select! {
                changed = is_leader.changed() => if changed.is_err() { break false },
                () = stopped(stop_rx.clone()) => break false,
            }
        };
        if !leader {
            break;
        }
        tracing::info!(identity, "leading: reconciling AppDeployments");
        leading.store(true, Ordering::Relaxed);
        let ctx = Arc::new(Context::new(client.clone(), metrics.clone(), identity));
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
        let mut watch_lease = is_leader.clone();
        let leading_flag = leading.clone();
        let lease_watch = tokio::spawn(async move {
            while watch_lease.changed().await.is_ok() {
                if !*watch_lease.borrow() {
                    // Said at once: another replica may lead already.
                    leading_flag.store(false, Ordering::Relaxed);
                    let _ = lost_tx.send(());
                    return;
                }
            }
        });
        let lost = Arc::new(AtomicBool::new(false));
        let lost_flag = lost.clone();
        let stop = stopped(stop_rx.clone());
        let end = async move {
            tokio::select! {
                () = stop => {}
                _ = lost_rx => lost_flag.store(true, Ordering::Relaxed),
            }
        };
        run_controller(
            ctx,
            settings.watch_namespace.as_deref(),
            settings.concurrency,
            end,
        )
        .await;
        lease_watch.abort();
        leading.store(false, Ordering::Relaxed);
        if !lost.load(Ordering::Relaxed) {
            break;
        }
        tracing::warn!(identity, "lost the leader Lease: standing by");
    }
    // Closing the channel ends the lease task, which hands the manager back to release.
    drop(is_leader);
    if let Ok(Ok(manager)) = lease_task.await
        && let Err(e) = manager.release().await
    {
        tracing::warn!(error = %e, "cannot release the leader Lease");
    }
    server.abort();
    Ok(())
}
