//! The operator against a real control plane: kube-apiserver, etcd and kube-controller-manager
//! (garbage collector) that `scripts/k8s-testenv` builds and `scripts/test` starts on loopback,
//! named by `BASALT_TEST_KUBECONFIG`. No deployment or job controller runs there, so the tests
//! play them: they set the migration Job's and the Deployments' status themselves.
//!
//! Each test gets its own namespace and its own operator process or task watching only it
//! (`OPERATOR_WATCH_NAMESPACE`), with its leader Lease there too, so tests run in parallel
//! (but for the one that restarts the API server). Operator processes log at
//! `BASALT_TEST_OPERATOR_LOG` (a `RUST_LOG` filter; `info` unless set).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::{
    collections::BTreeMap,
    future::Future,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        batch::v1::Job,
        core::v1::{Namespace, Secret, Service, ServiceAccount},
        networking::v1::{Ingress, NetworkPolicy},
        policy::v1::PodDisruptionBudget,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, CustomResourceExt, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use operator::crd::{AppDeployment, AppDeploymentSpec};
use serde_json::{Value, json};
use shared::config::OperatorSettings;

const TEST_MANAGER: &str = "operator-tests";

fn kubeconfig_path() -> String {
    std::env::var("BASALT_TEST_KUBECONFIG").unwrap_or_else(|_| {
        panic!(
            "BASALT_TEST_KUBECONFIG is not set: run scripts/test, which starts a control plane \
             (or `scripts/k8s-testenv run -- cargo test -p operator`)"
        )
    })
}

async fn admin() -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// Polls `check` every 100 ms until it returns `Some`, or panics naming `what` after `within`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const WAIT: Duration = Duration::from_secs(30);

/// The control plane is shared by the tests, which run in parallel; the one that restarts the
/// API server takes it alone.
static CONTROL_PLANE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Installs the CRD (server-side apply, so every test may) and waits until it serves.
async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "appdeployments.basalt.dev",
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(AppDeployment::crd()),
    )
    .await
    .unwrap();
    // Established comes a moment before the resource can be listed: wait for the list.
    let apps: Api<AppDeployment> = Api::all(client.clone());
    eventually("the CRD to serve", WAIT, || {
        let apps = apps.clone();
        async move { apps.list(&ListParams::default().limit(1)).await.ok() }
    })
    .await;
}

/// A fresh namespace with the CRD installed and the app's Secret in it.
async fn namespace(client: &Client) -> String {
    install_crd(client).await;
    let name = format!("t-{}", &uuid_like()[..12]);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
    name
}

fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let a = h.finish();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(a);
    format!("{a:016x}{:016x}", h.finish())
}

async fn create_secret(client: &Client, ns: &str) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "basalt-secrets"},
                "stringData": {
                    "database-url": "postgres://basalt@db.internal:5432/basalt",
                    "jwt-secret": "a-test-secret-a-test-secret-a-test-secret",
                    "webhook-encryption-key": "dGVzdC13ZWJob29rLWtleS10ZXN0LXdlYmhvb2sta2U=",
                },
            }))
            .unwrap(),
        )
        .await
        .unwrap();
}

fn spec(image: &str) -> Value {
    json!({
        "image": image,
        "api": {
            "replicas": 2,
            "pdb": {"minAvailable": 1},
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
        },
        "worker": {
            "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 75},
            "pdb": {"maxUnavailable": 1},
        },
        "secrets": {
            "databaseUrl": {"name": "basalt-secrets", "key": "database-url"},
            "jwtSecret": {"name": "basalt-secrets", "key": "jwt-secret"},
            "webhookEncryptionKey": {"name": "basalt-secrets", "key": "webhook-encryption-key"},
        },
        "config": {"JWT_TTL_SECONDS": "600"},
        "networkPolicy": {
            "database": [{"cidr": "10.20.0.0/16", "port": 5432}],
            "apiIngressFrom": [{"namespaceSelector": {"matchLabels": {"team": "edge"}}}],
        },
        "ingress": {"className": "nginx", "host": "api.example.test", "tlsSecretName": "api-tls"},
    })
}

async fn apply_app(client: &Client, ns: &str, name: &str, spec: Value) -> AppDeployment {
    let apps: Api<AppDeployment> = Api::namespaced(client.clone(), ns);
    apps.patch(
        name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(json!({
            "apiVersion": "basalt.dev/v1alpha1",
            "kind": "AppDeployment",
            "metadata": {"name": name},
            "spec": spec,
        })),
    )
    .await
    .unwrap()
}

/// The operator in this process, watching only `ns`, until the returned guard drops.
struct Running(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
    }
}

fn settings(ns: &str, lease_seconds: u64) -> OperatorSettings {
    OperatorSettings {
        health_addr: "127.0.0.1:0".parse().unwrap(),
        namespace: ns.to_owned(),
        lease: Duration::from_secs(lease_seconds),
        watch_namespace: Some(ns.to_owned()),
        concurrency: 16,
    }
}

fn start_operator(client: &Client, ns: &str) -> Running {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let client = client.clone();
    let settings = settings(ns, 15);
    tokio::spawn(async move {
        let stop = async move {
            let _ = rx.await;
        };
        operator::run(client, &settings, "in-process", stop)
            .await
            .unwrap();
    });
    Running(Some(tx))
}

async fn get<K>(client: &Client, ns: &str, name: &str) -> Option<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

async fn app(client: &Client, ns: &str, name: &str) -> AppDeployment {
    get::<AppDeployment>(client, ns, name).await.unwrap()
}

fn condition<'a>(
    app: &'a AppDeployment,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    app.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn is(app: &AppDeployment, type_: &str, status: &str) -> bool {
    condition(app, type_).is_some_and(|c| c.status == status)
}

async fn wait_for_condition(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    status: &str,
) -> AppDeployment {
    eventually(&format!("{type_}={status}"), WAIT, || async {
        let a = app(client, ns, name).await;
        let current =
            a.metadata.generation == a.status.as_ref().and_then(|s| s.observed_generation);
        (current && is(&a, type_, status)).then_some(a)
    })
    .await
}

/// Plays the job controller: the migration Job succeeded (or failed).
async fn finish_job(client: &Client, ns: &str, name: &str, succeeded: bool) {
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let now = "2026-12-01T00:00:00Z";
    let status = if succeeded {
        json!({
            "startTime": now, "completionTime": now, "succeeded": 1,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
                {"type": "Complete", "status": "True", "lastTransitionTime": now},
            ],
        })
    } else {
        json!({
            "startTime": now, "failed": 4,
            "conditions": [
                {"type": "FailureTarget", "status": "True", "lastTransitionTime": now,
                 "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"},
                {"type": "Failed", "status": "True", "lastTransitionTime": now,
                 "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"},
            ],
        })
    };
    jobs.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .unwrap();
}

/// Plays the deployment controller: every replica updated and available,
/// once the operator has created the Deployment (it applies the API's and the
/// worker's one after the other, so one can exist before the other).
async fn roll_out(client: &Client, ns: &str, name: &str) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d: Deployment = eventually(name, WAIT, || get(client, ns, name)).await;
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    deployments
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "observedGeneration": d.metadata.generation,
                "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": replicas, "availableReplicas": replicas,
            }})),
        )
        .await
        .unwrap();
}

/// The first container's image of a pod template.
fn template_image(t: &k8s_openapi::api::core::v1::PodTemplateSpec) -> &str {
    t.spec.as_ref().unwrap().containers[0]
        .image
        .as_deref()
        .unwrap()
}

fn image_of(d: &Deployment) -> String {
    template_image(&d.spec.as_ref().unwrap().template).to_owned()
}

/// The migration Job for `image`, once the operator made it.
async fn migration_job(client: &Client, ns: &str, image: &str) -> Job {
    eventually(&format!("the migration Job for {image}"), WAIT, || async {
        let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
        let list = jobs.list(&ListParams::default()).await.unwrap();
        list.items
            .into_iter()
            .find(|j| template_image(&j.spec.as_ref().unwrap().template) == image)
    })
    .await
}

#[tokio::test]
async fn the_api_server_rejects_invalid_specs_by_the_crds_cel_rules() {
    let _plane = CONTROL_PLANE.read().await;
    let client = admin().await;
    let ns = namespace(&client).await;
    let apps: Api<AppDeployment> = Api::namespaced(client.clone(), &ns);
    let mut cases = Vec::new();
    let mut bad = spec("");
    cases.push(("image must not be empty", bad.clone()));
    bad = spec("img:1");
    bad["worker"]["autoscaling"] = json!({"minReplicas": 5, "maxReplicas": 2});
    cases.push(("minReplicas must not exceed maxReplicas", bad));
    let mut bad = spec("img:1");
    bad["api"]["pdb"] = json!({"minAvailable": 1, "maxUnavailable": 1});
    cases.push(("set exactly one of minAvailable and maxUnavailable", bad));
    let mut bad = spec("img:1");
    bad["api"]["pdb"] = json!({});
    cases.push(("set exactly one of minAvailable and maxUnavailable", bad));
    let mut bad = spec("img:1");
    bad["networkPolicy"]["database"] = json!([{"cidr": "10.0.0.0/8", "port": 70000}]);
    cases.push(("port must be 1 to 65535", bad));
    for (message, spec) in cases {
        let err = apps
            .patch(
                "bad",
                &PatchParams::apply(TEST_MANAGER).force(),
                &Patch::Apply(json!({
                    "apiVersion": "basalt.dev/v1alpha1", "kind": "AppDeployment",
                    "metadata": {"name": "bad"}, "spec": spec,
                })),
            )
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains(message), "expected {message:?}, got {text}");
    }
    // The checked-in example is valid.
    let example: Value =
        serde_saphyr::from_str(include_str!("../examples/appdeployment.yaml")).unwrap();
    apps.patch(
        "basalt",
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(example),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_resource_becomes_its_children_rolls_out_and_follows_its_spec() {
    let _plane = CONTROL_PLANE.read().await;
    let client = admin().await;
    let ns = namespace(&client).await;
    create_secret(&client, &ns).await;
    let _operator = start_operator(&client, &ns);
    let created = apply_app(&client, &ns, "shop", spec("registry.test/basalt:1")).await;
    let uid = created.uid().unwrap();

    // Before its migration: everything but the Deployments, and Progressing.
    let job = migration_job(&client, &ns, "registry.test/basalt:1").await;
    let container = &job
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert_eq!(container.args.as_ref().unwrap(), &["host", "migrate"]);
    assert_eq!(container.image.as_deref(), Some("registry.test/basalt:1"));
    let owned = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        let refs = meta.owner_references.as_ref().expect("an owner reference");
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].uid, uid);
        assert_eq!(refs[0].kind, "AppDeployment");
        assert_eq!(refs[0].controller, Some(true));
    };
    owned(&job.metadata);
    let svc: Service = eventually("the Service", WAIT, || get(&client, &ns, "shop-api")).await;
    owned(&svc.metadata);
    let ing: Ingress = eventually("the Ingress", WAIT, || get(&client, &ns, "shop-api")).await;
    owned(&ing.metadata);
    let rule = &ing.spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some("api.example.test"));
    let hpa: HorizontalPodAutoscaler = eventually("the worker's HPA", WAIT, || {
        get(&client, &ns, "shop-worker")
    })
    .await;
    owned(&hpa.metadata);
    assert_eq!(hpa.spec.as_ref().unwrap().max_replicas, 4);
    assert!(
        get::<HorizontalPodAutoscaler>(&client, &ns, "shop-api")
            .await
            .is_none()
    );
    for name in ["shop-api", "shop-worker"] {
        let pdb: PodDisruptionBudget =
            eventually("the PDBs", WAIT, || get(&client, &ns, name)).await;
        owned(&pdb.metadata);
    }
    let np: NetworkPolicy =
        eventually("the NetworkPolicy", WAIT, || get(&client, &ns, "shop")).await;
    owned(&np.metadata);
    let egress = np.spec.as_ref().unwrap().egress.as_ref().unwrap();
    let ports: Vec<String> = egress
        .iter()
        .flat_map(|r| r.ports.iter().flatten())
        .map(|p| format!("{:?}/{}", p.port, p.protocol.as_deref().unwrap_or("")))
        .collect();
    assert!(
        ports
            .iter()
            .any(|p| p.contains("53") && p.ends_with("/UDP")),
        "{ports:?}"
    );
    assert!(ports.iter().any(|p| p.contains("5432")), "{ports:?}");
    assert!(ports.iter().any(|p| p.contains("443")), "{ports:?}");
    assert!(
        get::<Deployment>(&client, &ns, "shop-api").await.is_none(),
        "not before the migration"
    );
    let a = wait_for_condition(&client, &ns, "shop", "Progressing", "True").await;
    assert_eq!(condition(&a, "Progressing").unwrap().reason, "Migrating");

    // The migration succeeds: the Deployments appear with the image; then they roll out.
    finish_job(&client, &ns, &job.name_any(), true).await;
    let api: Deployment =
        eventually("the API Deployment", WAIT, || get(&client, &ns, "shop-api")).await;
    owned(&api.metadata);
    assert_eq!(image_of(&api), "registry.test/basalt:1");
    let pod = api.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(),
        &["ALL"]
    );
    assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/ready")
    );
    let env: Vec<&str> = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    for name in [
        "DATABASE_URL",
        "JWT_SECRET",
        "WEBHOOK_ENCRYPTION_KEY",
        "JWT_TTL_SECONDS",
        "BIND_ADDR",
    ] {
        assert!(env.contains(&name), "{name} in {env:?}");
    }
    assert_eq!(api.spec.as_ref().unwrap().replicas, Some(2));
    let worker: Deployment = eventually("the worker Deployment", WAIT, || {
        get(&client, &ns, "shop-worker")
    })
    .await;
    assert_eq!(
        worker.spec.as_ref().unwrap().replicas.unwrap_or(1),
        1,
        "the HPA owns it"
    );
    let wc = &worker
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert_eq!(
        wc.liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/healthz")
    );
    roll_out(&client, &ns, "shop-api").await;
    roll_out(&client, &ns, "shop-worker").await;
    let a = wait_for_condition(&client, &ns, "shop", "Ready", "True").await;
    let status = a.status.as_ref().unwrap();
    assert_eq!(status.api.ready_replicas, 2);
    assert_eq!(
        status.current_image.as_deref(),
        Some("registry.test/basalt:1")
    );
    assert!(is(&a, "Degraded", "False") && is(&a, "Progressing", "False"));

    // A hand edit of a child goes back to spec.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .patch(
            "shop-api",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "shop-api"}, "spec": {"replicas": 7},
            })),
        )
        .await
        .unwrap();
    eventually("the hand edit to be reverted", WAIT, || async {
        let d: Deployment = get(&client, &ns, "shop-api").await?;
        (d.spec?.replicas == Some(2)).then_some(())
    })
    .await;

    // A spec change reaches the children; removing autoscaling deletes the HPA and gives the
    // Deployment its replicas back.
    let mut changed = spec("registry.test/basalt:1");
    changed["api"]["replicas"] = json!(3);
    changed["worker"] = json!({"replicas": 2});
    apply_app(&client, &ns, "shop", changed).await;
    eventually("the new replica counts", WAIT, || async {
        let api: Deployment = get(&client, &ns, "shop-api").await?;
        let worker: Deployment = get(&client, &ns, "shop-worker").await?;
        (api.spec?.replicas == Some(3) && worker.spec?.replicas == Some(2)).then_some(())
    })
    .await;
    eventually("the HPA and the worker's PDB to go", WAIT, || async {
        let hpa = get::<HorizontalPodAutoscaler>(&client, &ns, "shop-worker").await;
        let pdb = get::<PodDisruptionBudget>(&client, &ns, "shop-worker").await;
        (hpa.is_none() && pdb.is_none()).then_some(())
    })
    .await;

    // Deleting the resource: the garbage collector removes every child.
    let apps: Api<AppDeployment> = Api::namespaced(client.clone(), &ns);
    apps.delete("shop", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually(
        "the children to be collected",
        Duration::from_secs(60),
        || async {
            let gone = get::<Deployment>(&client, &ns, "shop-api").await.is_none()
                && get::<Deployment>(&client, &ns, "shop-worker")
                    .await
                    .is_none()
                && get::<Service>(&client, &ns, "shop-api").await.is_none()
                && get::<NetworkPolicy>(&client, &ns, "shop").await.is_none()
                && get::<Ingress>(&client, &ns, "shop-api").await.is_none()
                && Api::<Job>::namespaced(client.clone(), &ns)
                    .list(&ListParams::default())
                    .await
                    .unwrap()
                    .items
                    .is_empty();
            gone.then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_new_image_waits_for_its_migration_and_a_failed_one_keeps_the_old() {
    let _plane = CONTROL_PLANE.read().await;
    let client = admin().await;
    let ns = namespace(&client).await;
    create_secret(&client, &ns).await;
    let _operator = start_operator(&client, &ns);
    apply_app(&client, &ns, "app", spec("registry.test/basalt:1")).await;
    let first = migration_job(&client, &ns, "registry.test/basalt:1").await;
    finish_job(&client, &ns, &first.name_any(), true).await;
    let _: Deployment = eventually("the Deployments", WAIT, || get(&client, &ns, "app-api")).await;

    // Version 2: its Job runs; the Deployments stay on version 1 meanwhile.
    apply_app(&client, &ns, "app", spec("registry.test/basalt:2")).await;
    let second = migration_job(&client, &ns, "registry.test/basalt:2").await;
    let a = wait_for_condition(&client, &ns, "app", "Progressing", "True").await;
    assert_eq!(condition(&a, "Progressing").unwrap().reason, "Migrating");
    let api: Deployment = get(&client, &ns, "app-api").await.unwrap();
    assert_eq!(image_of(&api), "registry.test/basalt:1");

    // It fails: Degraded, and version 1 keeps running.
    finish_job(&client, &ns, &second.name_any(), false).await;
    let a = wait_for_condition(&client, &ns, "app", "Degraded", "True").await;
    assert_eq!(condition(&a, "Degraded").unwrap().reason, "MigrationFailed");
    for name in ["app-api", "app-worker"] {
        let d: Deployment = get(&client, &ns, name).await.unwrap();
        assert_eq!(image_of(&d), "registry.test/basalt:1", "{name}");
    }

    // Version 3 migrates: the Deployments move to it.
    apply_app(&client, &ns, "app", spec("registry.test/basalt:3")).await;
    let third = migration_job(&client, &ns, "registry.test/basalt:3").await;
    finish_job(&client, &ns, &third.name_any(), true).await;
    eventually("the Deployments on version 3", WAIT, || async {
        let d: Deployment = get(&client, &ns, "app-worker").await?;
        (image_of(&d) == "registry.test/basalt:3").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_missing_secret_is_degraded_until_it_exists() {
    let _plane = CONTROL_PLANE.read().await;
    let client = admin().await;
    let ns = namespace(&client).await;
    let _operator = start_operator(&client, &ns);
    apply_app(&client, &ns, "app", spec("registry.test/basalt:1")).await;
    let a = wait_for_condition(&client, &ns, "app", "Degraded", "True").await;
    let c = condition(&a, "Degraded").unwrap();
    assert_eq!(c.reason, "SecretMissing");
    assert!(c.message.contains("basalt-secrets"), "{}", c.message);
    assert!(c.message.contains("DATABASE_URL"), "{}", c.message);
    // An Event says so too.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    eventually("a SecretMissing event", WAIT, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("SecretMissing"))
            .then_some(())
    })
    .await;

    create_secret(&client, &ns).await;
    let job = migration_job(&client, &ns, "registry.test/basalt:1").await;
    finish_job(&client, &ns, &job.name_any(), true).await;
    roll_out(&client, &ns, "app-api").await;
    roll_out(&client, &ns, "app-worker").await;
    let a = wait_for_condition(&client, &ns, "app", "Ready", "True").await;
    assert!(is(&a, "Degraded", "False"));
}

// ------------------------------------------------------------------ operator processes

/// An `operator run` process; killed on drop.
struct Process(Child, String);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_operator(kubeconfig: &str, ns: &str, identity: &str) -> Process {
    spawn_operator_with_lease(kubeconfig, ns, identity, 3)
}

fn spawn_operator_with_lease(
    kubeconfig: &str,
    ns: &str,
    identity: &str,
    lease_seconds: u32,
) -> Process {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_operator"))
        .env_clear()
        .env("KUBECONFIG", kubeconfig)
        .env("HOSTNAME", identity)
        .env("OPERATOR_NAMESPACE", ns)
        .env("OPERATOR_WATCH_NAMESPACE", ns)
        .env("OPERATOR_LEASE_SECONDS", lease_seconds.to_string())
        .env("OPERATOR_HEALTH_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .env(
            "RUST_LOG",
            std::env::var("BASALT_TEST_OPERATOR_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
        // Its log, for a failing test's reader.
        .stdout(
            std::fs::File::create(
                std::env::temp_dir().join(format!("basalt-operator-{ns}-{identity}.log")),
            )
            .map_or_else(|_| Stdio::null(), Stdio::from),
        )
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Process(child, format!("http://127.0.0.1:{port}"))
}

async fn is_leader(base: &str) -> Option<bool> {
    let response = reqwest::get(format!("{base}/ready")).await.ok()?;
    let v: Value = response.json().await.ok()?;
    v["leader"].as_bool()
}

#[tokio::test]
async fn two_operators_elect_one_leader_and_the_other_takes_over_when_it_is_killed() {
    let _plane = CONTROL_PLANE.read().await;
    let client = admin().await;
    let ns = namespace(&client).await;
    create_secret(&client, &ns).await;
    let kubeconfig = kubeconfig_path();
    let mut operators = [
        spawn_operator(&kubeconfig, &ns, "first"),
        spawn_operator(&kubeconfig, &ns, "second"),
    ];
    let bases: Vec<String> = operators.iter().map(|p| p.1.clone()).collect();
    let leaders = eventually("both processes to answer, one leading", WAIT, || async {
        let (x, y) = (is_leader(&bases[0]).await?, is_leader(&bases[1]).await?);
        (x != y).then_some((x, y))
    })
    .await;
    // And it stays so: never two leaders, never none.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = (is_leader(&bases[0]).await, is_leader(&bases[1]).await);
        assert_eq!(
            now,
            (Some(leaders.0), Some(leaders.1)),
            "the leader changed"
        );
    }
    // Only the leader reconciles; it does.
    apply_app(&client, &ns, "app", spec("registry.test/basalt:1")).await;
    migration_job(&client, &ns, "registry.test/basalt:1").await;

    // Kill the leader (SIGKILL: no release): the other takes over once the 3 s lease lapses.
    let leader = if leaders.0 { 0 } else { 1 };
    let survivor = bases[1 - leader].clone();
    let started = Instant::now();
    operators[leader].0.kill().unwrap();
    let _ = operators[leader].0.wait();
    eventually("the survivor to lead", Duration::from_secs(15), || async {
        is_leader(&survivor).await.filter(|l| *l).map(drop)
    })
    .await;
    let took = started.elapsed();
    eprintln!("takeover after the leader was killed: {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// Stops the test control plane's kube-apiserver and starts it again (`scripts/lib/k8s.sh`).
fn restart_api_server() {
    let (script, dir) = match (
        std::env::var("BASALT_TEST_K8S_SH"),
        std::env::var("BASALT_TEST_K8S_DIR"),
    ) {
        (Ok(script), Ok(dir)) => (script, dir),
        _ => panic!(
            "BASALT_TEST_K8S_SH and BASALT_TEST_K8S_DIR are not set: run scripts/test, \
             which names the control plane it started"
        ),
    };
    let status = Command::new("bash")
        .arg(script)
        .arg("k8s_restart_apiserver")
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "k8s_restart_apiserver: {status}");
}

/// The operator keeps working across an API server restart: its watches resume (or list
/// again), so afterwards it still follows spec changes and reverts hand edits. The lease
/// (15 s) outlasts the restart, so this is the same controller, not a fresh one.
#[tokio::test]
async fn the_operator_survives_an_api_server_restart() {
    let _plane = CONTROL_PLANE.write().await;
    let client = admin().await;
    let ns = namespace(&client).await;
    create_secret(&client, &ns).await;
    let _operator = spawn_operator_with_lease(&kubeconfig_path(), &ns, "restarted", 15);
    apply_app(&client, &ns, "app", spec("registry.test/basalt:1")).await;
    let job = migration_job(&client, &ns, "registry.test/basalt:1").await;
    finish_job(&client, &ns, &job.name_any(), true).await;
    roll_out(&client, &ns, "app-api").await;
    roll_out(&client, &ns, "app-worker").await;
    wait_for_condition(&client, &ns, "app", "Ready", "True").await;

    let started = Instant::now();
    restart_api_server();
    eprintln!("kube-apiserver restarted in {:?}", started.elapsed());

    // A spec change made after the restart reaches the children.
    let mut changed = spec("registry.test/basalt:1");
    changed["api"]["replicas"] = json!(3);
    apply_app(&client, &ns, "app", changed).await;
    let started = Instant::now();
    eventually("the API Deployment scaled to 3", WAIT, || async {
        let d: Deployment = get(&client, &ns, "app-api").await?;
        (d.spec?.replicas == Some(3)).then_some(())
    })
    .await;
    eprintln!(
        "spec change applied {:?} after it was made",
        started.elapsed()
    );

    // A hand edit of a child is reverted.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .patch(
            "app-worker",
            &PatchParams::apply("a-human").force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "app-worker"},
                "spec": {"template": {"spec": {"containers": [
                    {"name": "worker", "image": "registry.test/by-hand:0"},
                ]}}},
            })),
        )
        .await
        .unwrap();
    let started = Instant::now();
    eventually("the hand edit reverted", WAIT, || async {
        let d: Deployment = get(&client, &ns, "app-worker").await?;
        (image_of(&d) == "registry.test/basalt:1").then_some(())
    })
    .await;
    eprintln!("hand edit reverted after {:?}", started.elapsed());
    roll_out(&client, &ns, "app-api").await;
    roll_out(&client, &ns, "app-worker").await;
    wait_for_condition(&client, &ns, "app", "Ready", "True").await;
}

/// The admin kubeconfig with a token of ServiceAccount `account` in `ns` instead (from the
/// TokenRequest API), written to a file of its own; returns its path.
async fn kubeconfig_for(client: &Client, ns: &str, account: &str) -> std::path::PathBuf {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let token = accounts
        .create_token_request(
            account,
            &PostParams::default(),
            &serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}})).unwrap(),
        )
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let mut kubeconfig: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(kubeconfig_path()).unwrap()).unwrap();
    for user in kubeconfig["users"].as_array_mut().unwrap() {
        user["user"] = json!({"token": token});
    }
    let path = std::env::temp_dir().join(format!("basalt-operator-{ns}-{account}.kubeconfig"));
    std::fs::write(&path, serde_json::to_string(&kubeconfig).unwrap()).unwrap();
    path
}

/// The operator with only its RBAC (`operator rbac`'s objects, bound to a ServiceAccount whose
/// token comes from the TokenRequest API), not as an administrator, reconciles a resource.
#[tokio::test]
async fn the_operator_works_with_only_its_rbac() {
    let _plane = CONTROL_PLANE.read().await;
    let client = admin().await;
    let ns = namespace(&client).await;
    create_secret(&client, &ns).await;
    for object in operator::rbac::objects(&ns) {
        let kind = object["kind"].as_str().unwrap().to_owned();
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        let (group, version) = match object["apiVersion"].as_str().unwrap().split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), "v1".to_owned()),
        };
        let gvk = kube::core::GroupVersionKind::gvk(&group, &version, &kind);
        let resource = kube::core::ApiResource::from_gvk(&gvk);
        let api: Api<kube::core::DynamicObject> = if object["metadata"]["namespace"].is_string() {
            Api::namespaced_with(client.clone(), &ns, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        // The ClusterRoleBinding is shared by every run: this test's account is its subject.
        api.patch(
            &name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap();
    }
    let path = kubeconfig_for(&client, &ns, operator::rbac::NAME).await;

    let _operator = spawn_operator(path.to_str().unwrap(), &ns, "restricted");
    apply_app(&client, &ns, "app", spec("registry.test/basalt:1")).await;
    let job = migration_job(&client, &ns, "registry.test/basalt:1").await;
    finish_job(&client, &ns, &job.name_any(), true).await;
    roll_out(&client, &ns, "app-api").await;
    roll_out(&client, &ns, "app-worker").await;
    wait_for_condition(&client, &ns, "app", "Ready", "True").await;
    let _ = std::fs::remove_file(path);
}

// ------------------------------------------------------------------ the Helm chart

fn chart_dir() -> String {
    format!("{}/../helm/basalt", env!("CARGO_MANIFEST_DIR"))
}

fn helm() -> Command {
    let helm = std::env::var("BASALT_TEST_HELM").unwrap_or_else(|_| {
        panic!("BASALT_TEST_HELM is not set: run scripts/test, which builds a pinned helm")
    });
    let mut command = Command::new(helm);
    // No repositories, plugins or caches from the user's home.
    let home = std::env::temp_dir().join("basalt-test-helm");
    command
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    command
}

/// `helm uninstall` of `release` in `ns`.
fn helm_uninstall(release: &str, ns: &str) {
    let out = helm()
        .args(["uninstall", release, "--namespace", ns])
        .args(["--kubeconfig", &kubeconfig_path()])
        .output()
        .unwrap();
    assert_succeeded("helm uninstall", &out);
}

fn assert_succeeded(what: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `helm template` of the chart with `args`, as objects.
fn helm_template(args: &[&str]) -> Vec<Value> {
    let out = helm()
        .args([
            "template",
            "t",
            &chart_dir(),
            "--namespace",
            "basalt-system",
        ])
        .args(["--kube-version", "1.34.0"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm template {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple::<Value>(&String::from_utf8(out.stdout).unwrap())
        .unwrap()
        .into_iter()
        .filter(|o| o.is_object())
        .collect()
}

/// A role's rules, each with its lists sorted, sorted: what it allows, not how it is written.
fn rules(role: &Value) -> Vec<Value> {
    let mut rules: Vec<Value> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            let sorted = |key: &str| {
                let mut v: Vec<String> = rule[key]
                    .as_array()
                    .map(|a| a.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default();
                v.sort();
                v
            };
            json!({"apiGroups": sorted("apiGroups"), "resources": sorted("resources"), "verbs": sorted("verbs")})
        })
        .collect();
    rules.sort_by_key(ToString::to_string);
    rules
}

fn kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The chart grants exactly what `operator rbac` does: the same rules, cluster-wide or (with
/// `operator.watchNamespace`) in that namespace, and the Lease's in the release's namespace.
#[test]
fn the_charts_rbac_is_the_operators() {
    let operator = operator::rbac::objects("basalt-system");
    let cluster_rules = rules(kind(&operator, "ClusterRole")[0]);
    let lease_rules = rules(kind(&operator, "Role")[0]);

    let chart = helm_template(&[]);
    let roles = kind(&chart, "ClusterRole");
    assert_eq!(roles.len(), 1);
    assert_eq!(rules(roles[0]), cluster_rules);
    let leases = kind(&chart, "Role");
    assert_eq!(leases.len(), 1);
    assert_eq!(rules(leases[0]), lease_rules);
    assert_eq!(leases[0]["metadata"]["namespace"], "basalt-system");
    let deployment = kind(&chart, "Deployment")[0];
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        kind(&chart, "ServiceAccount")[0]["metadata"]["name"]
    );

    let scoped = helm_template(&["--set", "operator.watchNamespace=apps"]);
    assert!(kind(&scoped, "ClusterRole").is_empty());
    let roles = kind(&scoped, "Role");
    let apps = roles
        .iter()
        .find(|r| r["metadata"]["namespace"] == "apps")
        .unwrap();
    assert_eq!(rules(apps), cluster_rules);
    assert_eq!(kind(&scoped, "RoleBinding").len(), 2);
}

/// `values.schema.json` and the templates refuse bad values, naming them.
#[test]
fn the_chart_refuses_bad_values() {
    let refused = |args: &[&str], says: &str| {
        let out = helm()
            .args(["template", "t", &chart_dir(), "--kube-version", "1.34.0"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} rendered");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    refused(&["--set", "operator.replicas=0"], "replicas");
    refused(&["--set", "operator.leaseSeconds=1"], "leaseSeconds");
    refused(&["--set", "operator.logFormat=xml"], "logFormat");
    refused(
        &["--set", "operator.watchNamespace=Not_A_Namespace"],
        "watchNamespace",
    );
    refused(&["--set", "operator.unknown=1"], "unknown");
    refused(&["--set", "appDeployment.enabled=true"], "image");
    refused(
        &[
            "--set",
            "appDeployment.enabled=true",
            "--set",
            "appDeployment.spec.image=x:1",
            "--set",
            "appDeployment.spec.api.pdb.minAvailable=1",
            "--set",
            "appDeployment.spec.api.pdb.maxUnavailable=1",
        ],
        "pdb",
    );
    let app = [
        "--set",
        "appDeployment.enabled=true",
        "--set",
        "appDeployment.spec.image=x:1",
    ];
    refused(
        &["--set", "operator.enabled=false"],
        "appDeployment.enabled=true",
    );
    refused(
        &[
            &app[..],
            &[
                "--set",
                "appDeployment.spec.worker.autoscaling.minReplicas=5",
            ],
            &[
                "--set",
                "appDeployment.spec.worker.autoscaling.maxReplicas=2",
            ],
        ]
        .concat(),
        "minReplicas must not exceed maxReplicas",
    );
    refused(
        &[&app[..], &["--set", "appDeployment.spec.replica=2"]].concat(),
        "'replica' not allowed",
    );
    refused(
        &[
            &app[..],
            &[
                "--set-json",
                r#"appDeployment.spec.networkPolicy={"database":[{"cidr":"10.0.0.0/8","podSelector":{},"port":5432}]}"#,
            ],
        ]
        .concat(),
        "networkPolicy/database/0",
    );
}

/// `helm install` into the test control plane, an AppDeployment from the chart's values, and
/// the operator running with a token of the chart's own ServiceAccount: every child and the
/// status appear; what the operator does not need is denied to that account.
#[tokio::test]
async fn the_chart_installs_and_its_service_account_runs_the_operator() {
    let _plane = CONTROL_PLANE.read().await;
    let client = admin().await;
    let ns = namespace(&client).await;
    create_secret(&client, &ns).await;
    // The release's cluster-wide objects are named after it: one per test run namespace.
    let release = ns.clone();
    let out = helm()
        .args(["install", &release, &chart_dir(), "--namespace", &ns])
        .args(["--kubeconfig", &kubeconfig_path()])
        .args(["--set", "operator.replicas=1"])
        .args(["--set", "appDeployment.enabled=true"])
        .args(["--set", "appDeployment.name=app"])
        .args(["--set", "appDeployment.spec.image=registry.test/basalt:1"])
        .output()
        .unwrap();
    assert_succeeded("helm install", &out);
    let notes = String::from_utf8_lossy(&out.stdout);
    assert!(notes.contains("AppDeployment app was created"), "{notes}");

    let path = kubeconfig_for(&client, &ns, &format!("{release}-operator")).await;

    let _operator = spawn_operator(path.to_str().unwrap(), &ns, "chart");
    let job = migration_job(&client, &ns, "registry.test/basalt:1").await;
    finish_job(&client, &ns, &job.name_any(), true).await;
    roll_out(&client, &ns, "app-api").await;
    roll_out(&client, &ns, "app-worker").await;
    wait_for_condition(&client, &ns, "app", "Ready", "True").await;
    let _: Service = eventually("the Service", WAIT, || get(&client, &ns, "app-api")).await;
    let _: PodDisruptionBudget =
        eventually("the API's PDB", WAIT, || get(&client, &ns, "app-api")).await;

    // The chart's account may not list Secrets (only get the ones a resource names), nor
    // delete AppDeployments.
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let restricted = Client::try_from(config).unwrap();
    let secrets: Api<Secret> = Api::namespaced(restricted.clone(), &ns);
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
        other => panic!("listing Secrets: {other:?}"),
    }
    let apps: Api<AppDeployment> = Api::namespaced(restricted, &ns);
    match apps.delete("app", &DeleteParams::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
        other => panic!("deleting the AppDeployment: {other:?}"),
    }
    helm_uninstall(&release, &ns);
    let _ = std::fs::remove_file(path);
}

// ------------------------------------------------- the chart without the operator

/// `helm/basalt/ci/full-values.yaml`.
fn full_values() -> String {
    format!("{}/ci/full-values.yaml", chart_dir())
}

/// Chart-only labels and metadata (who manages the object, which chart, Helm's hook
/// annotations, the operator's owner reference) removed: what the two paths must agree on.
fn without_management(mut object: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Object(labels)) = map.get_mut("labels") {
                    labels.remove("app.kubernetes.io/managed-by");
                    labels.remove("helm.sh/chart");
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.remove("ownerReferences");
        meta.remove("annotations");
    }
    strip(&mut object);
    object
}

/// Objects by kind and name.
fn by_kind_and_name(objects: Vec<Value>) -> BTreeMap<(String, String), Value> {
    objects
        .into_iter()
        .map(|o| {
            let key = (
                o["kind"].as_str().unwrap().to_owned(),
                o["metadata"]["name"].as_str().unwrap().to_owned(),
            );
            (key, without_management(o))
        })
        .collect()
}

/// What the operator applies for `app` once its image's migration succeeded: every child the
/// reconciler writes, from the same builders.
fn operator_children(app: &AppDeployment) -> BTreeMap<(String, String), Value> {
    use operator::children::{self, Component};
    let owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "basalt.dev/v1alpha1".to_owned(),
        kind: "AppDeployment".to_owned(),
        name: app.name_any(),
        uid: "00000000-0000-0000-0000-000000000000".to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let image = &app.spec.image;
    fn json(object: &impl serde::Serialize) -> Value {
        serde_json::to_value(object).unwrap()
    }
    let mut objects = vec![
        json(&children::migration_job(app, image, &owner)),
        json(&children::service(app, &owner)),
    ];
    objects.extend(children::ingress(app, &owner).map(|o| json(&o)));
    objects.extend(children::network_policy(app, &owner).map(|o| json(&o)));
    for c in Component::ALL {
        objects.push(json(&children::deployment(app, c, image, &owner)));
        objects.extend(children::autoscaler(app, c, &owner).map(|o| json(&o)));
        objects.extend(children::disruption_budget(app, c, &owner).map(|o| json(&o)));
    }
    by_kind_and_name(objects)
}

/// For the same values, the chart with `operator.enabled=false` writes exactly the objects the
/// operator applies for the AppDeployment the chart renders otherwise: the two paths cannot
/// drift. Tried with every value set, with the defaults, and with the values' other branches.
#[test]
fn the_chart_without_the_operator_writes_what_the_operator_applies() {
    let branches = std::env::temp_dir().join(format!("basalt-branches-{}.yaml", uuid_like()));
    std::fs::write(
        &branches,
        json!({"appDeployment": {"enabled": true, "name": "other", "spec": {
            "image": "registry.test/basalt@sha256:0123",
            // null drops a default (Helm merges these values over values.yaml's).
            "api": {"replicas": 0, "pdb": {"minAvailable": null, "maxUnavailable": "50%"}},
            "worker": {"replicas": 3, "autoscaling": {"minReplicas": 2, "maxReplicas": 5},
                       "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
            "secrets": {
                "databaseUrl": {"name": "db", "key": "url"},
                "jwtSecret": {"name": "jwt", "key": "secret"},
                "webhookEncryptionKey": {"name": "hooks", "key": "key"},
                "redisUrl": {"name": "redis", "key": "url"},
            },
            "config": {"LOG_FORMAT": "pretty", "RATE_LIMIT_DEFAULT": "100/60"},
            "networkPolicy": {
                "database": [{"podSelector": {"matchLabels": {"app": "pg"}},
                              "namespaceSelector": {"matchLabels": {"team": "data"}}, "port": 5432}],
                "httpsEgress": false,
            },
            "ingress": {"host": "api.test"},
        }}})
        .to_string(),
    )
    .unwrap();
    let cases: [&[&str]; 3] = [
        &["-f", &full_values()],
        &[
            "--set",
            "appDeployment.enabled=true",
            "--set",
            "appDeployment.spec.image=registry.test/basalt:1",
        ],
        &["-f", branches.to_str().unwrap()],
    ];
    for values in cases {
        let with_operator = helm_template(values);
        let app: AppDeployment =
            serde_json::from_value(kind(&with_operator, "AppDeployment")[0].clone()).unwrap();
        let expected = operator_children(&app);

        let direct = helm_template(&[values, &["--set", "operator.enabled=false"]].concat());
        for missing in ["AppDeployment", "ServiceAccount", "ClusterRole", "Role"] {
            assert!(kind(&direct, missing).is_empty(), "{values:?}: a {missing}");
        }
        let written = by_kind_and_name(direct);
        assert_eq!(
            written.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{values:?}: the objects differ"
        );
        for (key, object) in &written {
            assert!(
                object == &expected[key],
                "{values:?}: {key:?} differs\nchart:    {}\noperator: {}",
                serde_json::to_string_pretty(object).unwrap(),
                serde_json::to_string_pretty(&expected[key]).unwrap(),
            );
        }
    }
    let _ = std::fs::remove_file(branches);
}

/// A `helm install|upgrade` of the chart without the operator, running in the background.
fn helm_direct(verb: &str, release: &str, ns: &str, image: &str) -> Child {
    helm()
        .args([verb, release, &chart_dir(), "--namespace", ns])
        .args(["--kubeconfig", &kubeconfig_path(), "--skip-crds"])
        .args(["--timeout", "60s"])
        .args(["--set", "operator.enabled=false"])
        .args(["--set", "appDeployment.enabled=true"])
        .args(["--set", "appDeployment.name=app"])
        .args(["--set", &format!("appDeployment.spec.image={image}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Without the operator the chart migrates first too: `helm install` and `helm upgrade` run
/// the migration Job as a hook and write the Deployments (with the new image) only after it
/// succeeded; a failed migration fails the upgrade and keeps the running image.
#[tokio::test]
async fn the_chart_without_the_operator_migrates_before_it_rolls_out() {
    let _plane = CONTROL_PLANE.read().await;
    let client = admin().await;
    let ns = namespace(&client).await;
    create_secret(&client, &ns).await;
    let release = "direct";
    let api_image = || async {
        get::<Deployment>(&client, &ns, "app-api")
            .await
            .map(|d| image_of(&d))
    };

    let install = helm_direct("install", release, &ns, "registry.test/basalt:1");
    let job = migration_job(&client, &ns, "registry.test/basalt:1").await;
    assert_eq!(api_image().await, None, "written before the migration ran");
    finish_job(&client, &ns, &job.name_any(), true).await;
    let out = install.wait_with_output().unwrap();
    assert_succeeded("helm install", &out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("without the operator"));
    assert_eq!(api_image().await.as_deref(), Some("registry.test/basalt:1"));
    let worker: Deployment = get(&client, &ns, "app-worker").await.unwrap();
    assert_eq!(image_of(&worker), "registry.test/basalt:1");
    let _: Service = get(&client, &ns, "app-api").await.unwrap();
    let _: PodDisruptionBudget = get(&client, &ns, "app-api").await.unwrap();

    let upgrade = helm_direct("upgrade", release, &ns, "registry.test/basalt:2");
    let job = migration_job(&client, &ns, "registry.test/basalt:2").await;
    assert_eq!(api_image().await.as_deref(), Some("registry.test/basalt:1"));
    finish_job(&client, &ns, &job.name_any(), true).await;
    let out = upgrade.wait_with_output().unwrap();
    assert_succeeded("helm upgrade", &out);
    assert_eq!(api_image().await.as_deref(), Some("registry.test/basalt:2"));

    let failing = helm_direct("upgrade", release, &ns, "registry.test/basalt:3");
    let job = migration_job(&client, &ns, "registry.test/basalt:3").await;
    finish_job(&client, &ns, &job.name_any(), false).await;
    let out = failing.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a failed migration upgraded");
    assert!(stderr.contains(&job.name_any()), "{stderr}");
    assert_eq!(api_image().await.as_deref(), Some("registry.test/basalt:2"));

    helm_uninstall(release, &ns);
    assert_eq!(api_image().await, None);
}

/// The checked-in CRD and RBAC are what the code generates.
#[test]
fn the_checked_in_crd_and_rbac_are_current() {
    let crd = operator::crd_yaml().unwrap();
    let checked_in = include_str!("../../helm/basalt/crds/appdeployments.basalt.dev.yaml");
    assert!(
        crd == checked_in,
        "helm/basalt/crds/appdeployments.basalt.dev.yaml is stale: \
         cargo run -p operator -- crd > helm/basalt/crds/appdeployments.basalt.dev.yaml"
    );
    let rbac = operator::rbac_yaml("basalt-system").unwrap();
    assert!(
        rbac == include_str!("../deploy/rbac.yaml"),
        "operator/deploy/rbac.yaml is stale: cargo run -p operator -- rbac > operator/deploy/rbac.yaml"
    );
    let _: AppDeploymentSpec =
        serde_json::from_value(
            serde_saphyr::from_str::<Value>(include_str!("../examples/appdeployment.yaml"))
                .unwrap()["spec"]
                .clone(),
        )
        .unwrap();
}
