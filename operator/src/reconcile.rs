//! One reconcile of an `AppDeployment`: check its Secrets and `config`, apply the migration Job
//! for its image, apply every child (the Deployments with the newest migrated image), delete
//! the children whose spec block is gone, and write the status derived from what the children
//! report. Everything is server-side applied by one field manager, forced, so drift on a field
//! the operator owns is put back on the next reconcile (a change to a child triggers one).

use std::{sync::Arc, time::Duration};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        batch::v1::Job,
        core::v1::{Secret, Service},
        networking::v1::{Ingress, NetworkPolicy},
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType},
    },
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use crate::{
    Context,
    children::{self, Component},
    crd::{AppDeployment, AppDeploymentStatus, ComponentStatus},
    error::Error,
};

/// The field manager of everything the operator applies.
pub const MANAGER: &str = "basalt-operator";

/// How soon a healthy resource is looked at again with nothing happening (children's changes
/// trigger a reconcile anyway).
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a resource that is still rolling out or migrating is looked at again.
const WHILE_PROGRESSING: Duration = Duration::from_secs(10);

/// Where the migration for the spec's image stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Migration {
    Succeeded,
    Running,
    Failed(String),
}

pub async fn reconcile(app: Arc<AppDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile_inner(&app, &ctx).await;
    ctx.metrics
        .reconciled(started.elapsed(), result.as_ref().err());
    if let Err(e) = &result {
        // Said on the resource itself, where `kubectl describe` shows it; the error policy
        // requeues with backoff.
        let status = degraded_status(&app, e);
        if let Err(write) = write_status(&ctx, &app, &status).await {
            tracing::warn!(error = %write, "cannot write the Degraded status");
        }
        publish(&ctx, &app, EventType::Warning, e.reason(), &e.to_string()).await;
    }
    result
}

async fn reconcile_inner(app: &AppDeployment, ctx: &Context) -> Result<Action, Error> {
    let ns = app.namespace().ok_or(Error::NotNamespaced)?;
    let owner = app.controller_owner_ref(&()).ok_or(Error::NotNamespaced)?;
    check_config(app)?;
    check_secrets(ctx, &ns, app).await?;

    // The migration Job for the spec's image; the Deployments run the newest image whose Job
    // succeeded (the one they run now until then).
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job = children::migration_job(app, &app.spec.image, &owner);
    let job = apply(&jobs, &job).await?;
    let migration = migration_state(&job);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let image = match migration {
        Migration::Succeeded => Some(app.spec.image.clone()),
        // Until then, whatever the API Deployment runs (nothing yet, for a new resource).
        _ => match deployments.get_opt(&Component::Api.name(app)).await? {
            Some(d) => container_image(&d),
            None => None,
        },
    };

    // Everything but the Deployments does not depend on the migration; none of these depends
    // on another, so they are applied (or deleted) at once.
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let ingresses: Api<Ingress> = Api::namespaced(ctx.client.clone(), &ns);
    let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), &ns);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
    let [api, worker] = Component::ALL;
    let (api_name, worker_name) = (api.name(app), worker.name(app));
    let service = children::service(app, &owner);
    futures_util::try_join!(
        async { apply(&services, &service).await.map(drop) },
        apply_or_delete(&ingresses, &api_name, children::ingress(app, &owner)),
        apply_or_delete(
            &policies,
            children::app_name(app),
            children::network_policy(app, &owner),
        ),
        apply_or_delete(&hpas, &api_name, children::autoscaler(app, api, &owner)),
        apply_or_delete(
            &hpas,
            &worker_name,
            children::autoscaler(app, worker, &owner)
        ),
        apply_or_delete(
            &pdbs,
            &api_name,
            children::disruption_budget(app, api, &owner)
        ),
        apply_or_delete(
            &pdbs,
            &worker_name,
            children::disruption_budget(app, worker, &owner)
        ),
    )?;
    let applied = match &image {
        Some(image) => {
            let (api_deployment, worker_deployment) = (
                children::deployment(app, api, image, &owner),
                children::deployment(app, worker, image, &owner),
            );
            let (a, w) = futures_util::try_join!(
                apply(&deployments, &api_deployment),
                apply(&deployments, &worker_deployment),
            )?;
            vec![a, w]
        }
        None => Vec::new(),
    };

    let status = observed_status(app, &migration, image.as_deref(), &applied);
    let ready = is_true(&status, "Ready");
    let was_ready = app.status.as_ref().is_some_and(|s| is_true(s, "Ready"));
    let previous_image = app.status.as_ref().and_then(|s| s.current_image.clone());
    write_status(ctx, app, &status).await?;
    // Events for what changed, not for every pass (a resync applies the same again).
    if let Migration::Failed(why) = &migration {
        publish(ctx, app, EventType::Warning, "MigrationFailed", why).await;
    }
    if image.is_some() && image != previous_image {
        let note = format!(
            "migrated and applied the Deployments with {}",
            image.as_deref().unwrap_or_default()
        );
        publish(ctx, app, EventType::Normal, "Applied", &note).await;
    }
    if ready && !was_ready {
        publish(
            ctx,
            app,
            EventType::Normal,
            "Ready",
            "every Deployment is available",
        )
        .await;
    }
    Ok(Action::requeue(if ready {
        RESYNC
    } else {
        WHILE_PROGRESSING
    }))
}

/// Every `config` name must be one the components read (and not one the operator sets).
fn check_config(app: &AppDeployment) -> Result<(), Error> {
    let unknown: Vec<&str> = app
        .spec
        .config
        .keys()
        .map(String::as_str)
        .filter(|k| !shared::config::operator::is_deployable(k))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidConfig(unknown.join(", ")))
    }
}

/// Each referenced Secret exists and holds its key.
async fn check_secrets(ctx: &Context, ns: &str, app: &AppDeployment) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let refs = &app.spec.secrets;
    let wanted = [
        ("DATABASE_URL", Some(&refs.database_url)),
        ("JWT_SECRET", Some(&refs.jwt_secret)),
        ("WEBHOOK_ENCRYPTION_KEY", Some(&refs.webhook_encryption_key)),
        ("REDIS_URL", refs.redis_url.as_ref()),
    ];
    // Each Secret once, however many keys it holds.
    let mut fetched: std::collections::HashMap<&str, Option<Secret>> = Default::default();
    for (setting, key) in wanted {
        let Some(key) = key else { continue };
        if !fetched.contains_key(key.name.as_str()) {
            fetched.insert(&key.name, secrets.get_opt(&key.name).await?);
        }
        let secret = &fetched[key.name.as_str()];
        let has_key = secret.as_ref().is_some_and(|s| {
            s.data.as_ref().is_some_and(|d| d.contains_key(&key.key))
                || s.string_data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(&key.key))
        });
        if !has_key {
            return Err(Error::SecretMissing {
                setting,
                secret: key.name.clone(),
                key: key.key.clone(),
                exists: secret.is_some(),
            });
        }
    }
    Ok(())
}

/// Server-side applies `object` (forced: the operator owns these fields) and returns what the
/// server stored.
async fn apply<K>(api: &Api<K>, object: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let params = PatchParams::apply(MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(object))
        .await
        .map_err(|source| Error::Apply {
            kind: K::kind(&()).into_owned(),
            name,
            source,
        })
}

/// Applies `object`, or deletes the child called `name` when the spec no longer asks for one.
async fn apply_or_delete<K>(api: &Api<K>, name: &str, object: Option<K>) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    match object {
        Some(object) => apply(api, &object).await.map(drop),
        None => match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(source) => Err(Error::Delete {
                kind: K::kind(&()).into_owned(),
                name: name.to_owned(),
                source,
            }),
        },
    }
}

fn migration_state(job: &Job) -> Migration {
    let status = job.status.as_ref();
    if status.and_then(|s| s.succeeded).unwrap_or(0) > 0 {
        return Migration::Succeeded;
    }
    let failed = status.and_then(|s| s.conditions.as_ref()).and_then(|cs| {
        cs.iter()
            .find(|c| c.type_ == "Failed" && c.status == "True")
    });
    match failed {
        Some(c) => Migration::Failed(format!(
            "the migration Job {} failed: {}",
            job.name_any(),
            c.message
                .as_deref()
                .or(c.reason.as_deref())
                .unwrap_or("no reason given")
        )),
        None => Migration::Running,
    }
}

fn container_image(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
}

/// Whether a Deployment has rolled out its current spec: the controller saw this generation
/// and every wanted replica is updated and available.
fn rolled_out(d: &Deployment) -> (bool, ComponentStatus) {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(s) = d.status.as_ref() else {
        return (false, ComponentStatus::default());
    };
    let seen = s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    let updated = s.updated_replicas.unwrap_or(0);
    let available = s.available_replicas.unwrap_or(0);
    let status = ComponentStatus {
        replicas: s.replicas.unwrap_or(0),
        ready_replicas: s.ready_replicas.unwrap_or(0),
    };
    (seen && updated >= want && available >= want, status)
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time: Time(Timestamp::now()),
    }
}

fn observed_status(
    app: &AppDeployment,
    migration: &Migration,
    image: Option<&str>,
    deployments: &[Deployment],
) -> AppDeploymentStatus {
    let generation = app.metadata.generation;
    let mut status = AppDeploymentStatus {
        observed_generation: generation,
        current_image: image.map(str::to_owned),
        ..AppDeploymentStatus::default()
    };
    let mut all_rolled_out = deployments.len() == Component::ALL.len();
    for (component, d) in Component::ALL.iter().zip(deployments) {
        let (done, observed) = rolled_out(d);
        all_rolled_out &= done;
        match component {
            Component::Api => status.api = observed,
            Component::Worker => status.worker = observed,
        }
    }
    let on_spec_image = image == Some(app.spec.image.as_str());
    let (ready, progressing, degraded) = match migration {
        Migration::Failed(why) => (
            condition("Ready", false, "MigrationFailed", why, generation),
            condition(
                "Progressing",
                false,
                "MigrationFailed",
                "the previous image keeps running",
                generation,
            ),
            condition("Degraded", true, "MigrationFailed", why, generation),
        ),
        Migration::Running => {
            let msg = format!("waiting for the migration Job for {}", app.spec.image);
            (
                condition("Ready", false, "Migrating", &msg, generation),
                condition("Progressing", true, "Migrating", &msg, generation),
                condition("Degraded", false, "AsExpected", "", generation),
            )
        }
        Migration::Succeeded if all_rolled_out && on_spec_image => (
            condition(
                "Ready",
                true,
                "RolledOut",
                "every Deployment is available",
                generation,
            ),
            condition("Progressing", false, "RolledOut", "", generation),
            condition("Degraded", false, "AsExpected", "", generation),
        ),
        Migration::Succeeded => {
            let msg = "waiting for the Deployments to become available";
            (
                condition("Ready", false, "RollingOut", msg, generation),
                condition("Progressing", true, "RollingOut", msg, generation),
                condition("Degraded", false, "AsExpected", "", generation),
            )
        }
    };
    status.conditions = vec![ready, progressing, degraded];
    status
}

fn degraded_status(app: &AppDeployment, e: &Error) -> AppDeploymentStatus {
    let generation = app.metadata.generation;
    let message = e.to_string();
    let previous = app.status.clone().unwrap_or_default();
    AppDeploymentStatus {
        observed_generation: generation,
        conditions: vec![
            condition("Ready", false, e.reason(), &message, generation),
            condition("Progressing", false, e.reason(), &message, generation),
            condition("Degraded", true, e.reason(), &message, generation),
        ],
        ..previous
    }
}

fn is_true(status: &AppDeploymentStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Writes the status subresource, keeping each condition's transition time when its status
/// did not change (so `lastTransitionTime` means what it says).
async fn write_status(
    ctx: &Context,
    app: &AppDeployment,
    status: &AppDeploymentStatus,
) -> Result<(), Error> {
    let mut status = status.clone();
    if let Some(previous) = &app.status {
        for c in &mut status.conditions {
            if let Some(old) = previous.conditions.iter().find(|o| o.type_ == c.type_)
                && old.status == c.status
            {
                c.last_transition_time = old.last_transition_time.clone();
            }
        }
    }
    if app.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let ns = app.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<AppDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = json!({
        "apiVersion": AppDeployment::api_version(&()),
        "kind": AppDeployment::kind(&()),
        "status": status,
    });
    api.patch_status(
        &app.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Status)?;
    Ok(())
}

async fn publish(ctx: &Context, app: &AppDeployment, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1024).collect()),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &app.object_ref(&())).await {
        tracing::debug!(error = %e, "cannot publish an event");
    }
}
