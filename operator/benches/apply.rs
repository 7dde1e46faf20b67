//! `scripts/bench-operator`'s driver: applies `--apps` AppDeployments at once to a control plane
//! (`--kubeconfig`, from `scripts/k8s-testenv`) watched by one `operator run` process
//! (`--operator`, a release build), and measures, per resource, the time from its apply to
//! each of its children existing and to its status reporting the current `observedGeneration`,
//! and the operator's peak RSS. It plays the job controller (no such controller runs there):
//! each migration Job is marked complete as soon as it appears, so the Deployments follow.
//!
//! Prints the figures, the targets (p50 ≤ 1 s, all ≤ 30 s, RSS ≤ 50 MB) and an
//! `N passed, N failed` line; exits 1 when a target is missed. Run through `cargo bench -p
//! operator --bench apply -- …` (cargo adds `--bench`, which is ignored).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    process::{Child, Command, ExitCode, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        batch::v1::Job,
        core::v1::{Namespace, Secret, Service},
        networking::v1::{Ingress, NetworkPolicy},
        policy::v1::PodDisruptionBudget,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, CustomResourceExt, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    core::PartialObjectMeta,
    runtime::watcher,
};
use operator::crd::AppDeployment;
use serde_json::{Value, json};

const MANAGER: &str = "bench-operator";
const EXAMPLE: &str = include_str!("../examples/appdeployment.yaml");

struct Args {
    kubeconfig: PathBuf,
    operator: PathBuf,
    apps: usize,
    work_dir: PathBuf,
    timeout: Duration,
    /// Other processes whose CPU time is reported (`name=pid`: the API server, etcd).
    cpu_of: Vec<(String, u32)>,
}

fn args() -> Args {
    let mut kubeconfig = None;
    let mut operator = None;
    let mut apps = 200;
    let mut work_dir = std::env::temp_dir();
    let mut timeout = Duration::from_secs(120);
    let mut cpu_of = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--kubeconfig" => kubeconfig = Some(PathBuf::from(value())),
            "--operator" => operator = Some(PathBuf::from(value())),
            "--apps" => apps = value().parse().expect("--apps: a count"),
            "--work-dir" => work_dir = PathBuf::from(value()),
            "--timeout-seconds" => {
                timeout = Duration::from_secs(value().parse().expect("--timeout-seconds"));
            }
            "--cpu-of" => {
                let v = value();
                let (name, pid) = v.split_once('=').expect("--cpu-of NAME=PID");
                cpu_of.push((name.to_owned(), pid.parse().expect("--cpu-of NAME=PID")));
            }
            "--bench" => {}
            other => panic!(
                "unknown argument {other}: --kubeconfig PATH --operator PATH [--apps N] \
                 [--work-dir DIR] [--timeout-seconds S] [--cpu-of NAME=PID]..."
            ),
        }
    }
    Args {
        kubeconfig: kubeconfig.expect("--kubeconfig is required"),
        operator: operator.expect("--operator is required"),
        apps,
        work_dir,
        timeout,
        cpu_of,
    }
}

/// User + system CPU time of `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's closing parenthesis: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Linux reports these in USER_HZ, 100 on every architecture it runs on.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// When each resource was applied, each of its children first seen, its status current.
#[derive(Default)]
struct Timeline {
    applied: HashMap<String, Instant>,
    children: HashMap<String, HashMap<(String, String), Instant>>,
    status_current: HashMap<String, Instant>,
}

type Shared = Arc<Mutex<Timeline>>;

fn owner_of<K: Resource>(object: &K) -> Option<String> {
    object
        .meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == "AppDeployment")
        .map(|o| o.name.clone())
}

/// Watches `K`s in `ns` (metadata only), recording each child's first sighting; `on_new` runs
/// once per new child. Resolves `ready` once the initial list is done.
fn watch_children<K>(
    client: &Client,
    ns: &str,
    timeline: Shared,
    ready: tokio::sync::mpsc::Sender<()>,
    on_new: impl Fn(String) + Send + 'static,
) where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<PartialObjectMeta<K>> = Api::namespaced(client.clone(), ns);
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
        while let Some(event) = events.next().await {
            let object = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                Ok(watcher::Event::InitDone) => {
                    let _ = ready.send(()).await;
                    continue;
                }
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("watch of {}: {e}", K::kind(&()));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let Some(owner) = owner_of(&object) else {
                continue;
            };
            let key = (K::kind(&()).into_owned(), object.name_any());
            let new = {
                let mut t = timeline.lock().unwrap();
                let seen = t.children.entry(owner).or_default();
                if seen.contains_key(&key) {
                    false
                } else {
                    seen.insert(key.clone(), Instant::now());
                    true
                }
            };
            if new {
                on_new(key.1);
            }
        }
    });
}

/// Watches the AppDeployments, recording when each status first reports its generation.
fn watch_apps(client: &Client, ns: &str, timeline: Shared, ready: tokio::sync::mpsc::Sender<()>) {
    let api: Api<AppDeployment> = Api::namespaced(client.clone(), ns);
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
        while let Some(event) = events.next().await {
            let app = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                Ok(watcher::Event::InitDone) => {
                    let _ = ready.send(()).await;
                    continue;
                }
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("watch of AppDeployment: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let observed = app.status.as_ref().and_then(|s| s.observed_generation);
            if observed.is_some() && observed == app.metadata.generation {
                let mut t = timeline.lock().unwrap();
                t.status_current
                    .entry(app.name_any())
                    .or_insert_with(Instant::now);
            }
        }
    });
}

/// Plays the job controller: the migration Job succeeded.
async fn complete_job(jobs: Api<Job>, name: String) {
    let now = "2026-12-01T00:00:00Z";
    let status = json!({"status": {
        "startTime": now, "completionTime": now, "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
            {"type": "Complete", "status": "True", "lastTransitionTime": now},
        ],
    }});
    for _ in 0..20 {
        match jobs
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            Ok(_) => return,
            Err(e) => {
                eprintln!("completing Job {name}: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The children the example's spec produces (kinds and counts), from its blocks.
fn expected_children(spec: &Value) -> usize {
    let mut n = 1 /* migration Job */ + 2 /* Deployments */ + 1 /* Service */;
    for component in ["api", "worker"] {
        n += usize::from(spec[component]["autoscaling"].is_object());
        n += usize::from(spec[component]["pdb"].is_object());
    }
    n += usize::from(spec["networkPolicy"].is_object());
    n += usize::from(spec["ingress"].is_object());
    n
}

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmHWM` (peak resident set) and `VmRSS` of `pid`, in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// Creates namespace `ns`; returns the namespaces' API, to delete it at the end.
async fn create_namespace(client: &Client, ns: &str) -> Api<Namespace> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    namespaces
}

struct Direct {
    elapsed: Duration,
    writes: usize,
    concurrency: usize,
    apiserver_cpu: Duration,
}

/// Server-side applies `object` as the operator would (its field manager, forced).
async fn apply<K>(api: &Api<K>, object: &K)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap();
    api.patch(
        &name,
        &PatchParams::apply(operator::reconcile::MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {} {name}: {e}", K::kind(&())));
}

/// Every child of `names` (in a fresh namespace) written once, plus one status write each.
async fn direct_writes(
    client: &Client,
    ns: &str,
    names: &[String],
    spec: &Value,
    args: &Args,
) -> Direct {
    use operator::children::{self, Component};
    // The test control plane's service range is a /24: the first run's Services go first.
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let listed = services.list(&ListParams::default()).await.unwrap();
    let delete = kube::api::DeleteParams::default();
    futures_util::future::join_all(
        listed
            .items
            .iter()
            .map(|s| services.delete(s.metadata.name.as_deref().unwrap(), &delete)),
    )
    .await;
    while !services
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ns = format!("{ns}-direct");
    let namespaces = create_namespace(client, &ns).await;
    let apps_api: Api<AppDeployment> = Api::namespaced(client.clone(), &ns);
    let mut apps = Vec::new();
    for name in names {
        let app = apps_api
            .patch(
                name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(json!({
                    "apiVersion": "basalt.dev/v1alpha1", "kind": "AppDeployment",
                    "metadata": {"name": name}, "spec": spec,
                })),
            )
            .await
            .unwrap();
        apps.push(app);
    }
    let concurrency = std::env::var("OPERATOR_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16usize);
    let apiserver = args
        .cpu_of
        .iter()
        .find(|(n, _)| n == "kube-apiserver")
        .map(|(_, p)| *p);
    let cpu_before = apiserver.map(cpu_time).unwrap_or_default();
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    futures_util::stream::iter(apps)
        .for_each_concurrent(concurrency, |app| {
            let (client, ns, writes) = (client.clone(), ns.clone(), writes.clone());
            async move {
                let owner = app.controller_owner_ref(&()).unwrap();
                let count = |n| writes.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                apply(
                    &Api::namespaced(client.clone(), &ns),
                    &children::migration_job(&app, &app.spec.image, &owner),
                )
                .await;
                let services: Api<Service> = Api::namespaced(client.clone(), &ns);
                let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns);
                let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
                let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns);
                let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
                let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
                let mut n = 1;
                let service = children::service(&app, &owner);
                let ingress = children::ingress(&app, &owner);
                let policy = children::network_policy(&app, &owner);
                let hpa: Vec<_> = Component::ALL
                    .iter()
                    .filter_map(|c| children::autoscaler(&app, *c, &owner))
                    .collect();
                let pdb: Vec<_> = Component::ALL
                    .iter()
                    .filter_map(|c| children::disruption_budget(&app, *c, &owner))
                    .collect();
                let deployment: Vec<_> = Component::ALL
                    .iter()
                    .map(|c| children::deployment(&app, *c, &app.spec.image, &owner))
                    .collect();
                let mut batch: Vec<
                    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>,
                > = vec![Box::pin(apply(&services, &service))];
                if let Some(i) = &ingress {
                    batch.push(Box::pin(apply(&ingresses, i)));
                }
                if let Some(p) = &policy {
                    batch.push(Box::pin(apply(&policies, p)));
                }
                for h in &hpa {
                    batch.push(Box::pin(apply(&hpas, h)));
                }
                for p in &pdb {
                    batch.push(Box::pin(apply(&pdbs, p)));
                }
                n += batch.len();
                futures_util::future::join_all(batch).await;
                n += deployment.len();
                futures_util::future::join_all(deployment.iter().map(|d| apply(&deployments, d)))
                    .await;
                let apps: Api<AppDeployment> = Api::namespaced(client.clone(), &ns);
                apps.patch_status(
                    &app.name_any(),
                    &PatchParams::apply(operator::reconcile::MANAGER).force(),
                    &Patch::Apply(json!({
                        "apiVersion": "basalt.dev/v1alpha1", "kind": "AppDeployment",
                        "status": {"observedGeneration": app.metadata.generation},
                    })),
                )
                .await
                .unwrap();
                count(n + 1);
            }
        })
        .await;
    let elapsed = started.elapsed();
    let _ = namespaces.delete(&ns, &Default::default()).await;
    Direct {
        elapsed,
        writes: writes.load(std::sync::atomic::Ordering::Relaxed),
        concurrency,
        apiserver_cpu: apiserver
            .map(cpu_time)
            .unwrap_or_default()
            .saturating_sub(cpu_before),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = args();
    let kubeconfig = Kubeconfig::read_from(&args.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let client = Client::try_from(config).unwrap();

    // The CRD, a namespace and the Secrets the example names.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "appdeployments.basalt.dev",
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(AppDeployment::crd()),
    )
    .await
    .unwrap();
    let apps: Api<AppDeployment> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while apps.list(&ListParams::default().limit(1)).await.is_err() {
        assert!(Instant::now() < deadline, "the CRD does not serve");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ns = format!("bench-{}", std::process::id());
    let namespaces = create_namespace(&client, &ns).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "basalt-secrets"},
                "stringData": {
                    "database-url": "postgres://basalt@db.internal:5432/basalt",
                    "jwt-secret": "a-bench-secret-a-bench-secret-a-bench-secret",
                    "webhook-encryption-key": "YmVuY2gtd2ViaG9vay1rZXktYmVuY2gtd2ViaG9vay0=",
                },
            }))
            .unwrap(),
        )
        .await
        .unwrap();

    // The operator, watching every namespace as deployed, its Lease in the bench's.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = args.work_dir.join("operator.log");
    let child = Command::new(&args.operator)
        .arg("run")
        .env_clear()
        .env("KUBECONFIG", &args.kubeconfig)
        .env("HOSTNAME", "bench")
        .env("OPERATOR_NAMESPACE", &ns)
        .env("OPERATOR_HEALTH_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .envs(std::env::var("OPERATOR_CONCURRENCY").map(|v| ("OPERATOR_CONCURRENCY", v)))
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let operator = Operator(child);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leading = async {
            let v: Value = reqwest::get(format!("{base}/ready"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            v["leader"].as_bool()
        };
        if leading.await == Some(true) {
            break;
        }
        assert!(Instant::now() < deadline, "the operator does not lead");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, idle_rss) = memory(pid);

    // Our watches, ready before the first apply.
    let timeline: Shared = Arc::default();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(16);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let completing = Arc::new(Mutex::new(HashSet::new()));
    {
        let jobs = jobs.clone();
        let completing = completing.clone();
        watch_children::<Job>(
            &client,
            &ns,
            timeline.clone(),
            ready_tx.clone(),
            move |name| {
                if completing.lock().unwrap().insert(name.clone()) {
                    tokio::spawn(complete_job(jobs.clone(), name));
                }
            },
        );
    }
    let none = |_: String| {};
    watch_children::<Deployment>(&client, &ns, timeline.clone(), ready_tx.clone(), none);
    watch_children::<Service>(&client, &ns, timeline.clone(), ready_tx.clone(), none);
    watch_children::<Ingress>(&client, &ns, timeline.clone(), ready_tx.clone(), none);
    watch_children::<HorizontalPodAutoscaler>(
        &client,
        &ns,
        timeline.clone(),
        ready_tx.clone(),
        none,
    );
    watch_children::<PodDisruptionBudget>(&client, &ns, timeline.clone(), ready_tx.clone(), none);
    watch_children::<NetworkPolicy>(&client, &ns, timeline.clone(), ready_tx.clone(), none);
    watch_apps(&client, &ns, timeline.clone(), ready_tx.clone());
    drop(ready_tx);
    for _ in 0..8 {
        ready_rx
            .recv()
            .await
            .expect("a watch ended before it listed");
    }

    // All at once.
    let mut cpu_before: Vec<(String, u32, Duration)> = args
        .cpu_of
        .iter()
        .map(|(name, pid)| (name.clone(), *pid, cpu_time(*pid)))
        .collect();
    cpu_before.push(("operator".to_owned(), pid, cpu_time(pid)));
    cpu_before.push((
        "this driver".to_owned(),
        std::process::id(),
        cpu_time(std::process::id()),
    ));
    let example: Value = serde_saphyr::from_str(EXAMPLE).unwrap();
    let spec = example["spec"].clone();
    let expected = expected_children(&spec);
    let names: Vec<String> = (0..args.apps).map(|i| format!("app-{i:03}")).collect();
    let apps: Api<AppDeployment> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    let applies: Vec<_> = names
        .iter()
        .map(|name| {
            let (apps, timeline, spec, name) =
                (apps.clone(), timeline.clone(), spec.clone(), name.clone());
            tokio::spawn(async move {
                timeline
                    .lock()
                    .unwrap()
                    .applied
                    .insert(name.clone(), Instant::now());
                apps.patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(json!({
                        "apiVersion": "basalt.dev/v1alpha1", "kind": "AppDeployment",
                        "metadata": {"name": name}, "spec": spec,
                    })),
                )
                .await
                .unwrap_or_else(|e| panic!("applying {name}: {e}"));
            })
        })
        .collect();
    for apply in applies {
        apply.await.unwrap();
    }
    let applied_in = started.elapsed();

    // Until every child exists and every status is current (or the timeout).
    let done = |t: &Timeline| {
        names.iter().all(|n| {
            t.children.get(n).is_some_and(|c| c.len() >= expected)
                && t.status_current.contains_key(n)
        })
    };
    let deadline = started + args.timeout;
    let mut peak_sampled = 0;
    while !done(&timeline.lock().unwrap()) && Instant::now() < deadline {
        peak_sampled = peak_sampled.max(memory(pid).1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_done = started.elapsed();
    let cpu: Vec<(String, Duration)> = cpu_before
        .iter()
        .map(|(name, pid, before)| (name.clone(), cpu_time(*pid).saturating_sub(*before)))
        .collect();
    let (peak_rss, end_rss) = memory(pid);
    let reconciles = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("basalt_operator_reconciles_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();

    let t = std::mem::take(&mut *timeline.lock().unwrap());
    let mut to_first = Vec::new();
    let mut to_children = Vec::new();
    let mut to_status = Vec::new();
    let mut incomplete = Vec::new();
    for name in &names {
        let applied = t.applied[name];
        let children = t.children.get(name);
        match children {
            Some(c) if c.len() >= expected => {
                to_first.push(*c.values().min().unwrap() - applied);
                to_children.push(*c.values().max().unwrap() - applied);
            }
            _ => incomplete.push(format!(
                "{name}: {} of {expected} children",
                children.map_or(0, HashMap::len)
            )),
        }
        match t.status_current.get(name) {
            Some(at) => to_status.push(*at - applied),
            None => incomplete.push(format!("{name}: status not current")),
        }
    }
    for v in [&mut to_first, &mut to_children, &mut to_status] {
        v.sort();
    }
    let line = |what: &str, v: &[Duration]| {
        println!(
            "{what:<34} p50 {:>8}   p99 {:>8}   max {:>8}   ({} of {})",
            ms(percentile(v, 50.0)),
            ms(percentile(v, 99.0)),
            ms(v.last().copied().unwrap_or_default()),
            v.len(),
            names.len()
        );
    };
    println!(
        "{} AppDeployments applied at once ({expected} children each), all applies answered in {}",
        names.len(),
        ms(applied_in)
    );
    line("apply → first child", &to_first);
    line(&format!("apply → all {expected} children"), &to_children);
    line("apply → status observedGeneration", &to_status);
    println!(
        "{:<34} {} from the first apply",
        "every child and status",
        ms(all_done)
    );
    println!(
        "{:<34} peak {} (idle before {}, at the end {}; sampled {})",
        "operator RSS",
        mb(peak_rss),
        mb(idle_rss),
        mb(end_rss),
        mb(peak_sampled)
    );
    println!(
        "{:<34} {reconciles} ({:.1} per resource)",
        "reconciles",
        reconciles / names.len() as f64
    );
    println!(
        "{:<34} {}",
        "CPU seconds until then",
        cpu.iter()
            .map(|(name, d)| format!("{name} {:.1}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for i in incomplete.iter().take(10) {
        println!("incomplete: {i}");
    }

    // The control: the same children written straight to the same API server, the operator
    // stopped, with as many resources at once as the operator reconciles — the API server's
    // own cost of the writes 200 resources need, whoever makes them.
    drop(operator);
    let direct = direct_writes(&client, &ns, &names, &spec, &args).await;
    println!(
        "{:<34} {} for {} writes ({} per resource, {} resources at once), kube-apiserver {:.1} CPU s",
        "control: the children written directly",
        ms(direct.elapsed),
        direct.writes,
        direct.writes / names.len(),
        direct.concurrency,
        direct.apiserver_cpu.as_secs_f64()
    );
    println!(
        "{:<34} {:.2}× the direct writes' time",
        "operator, all done",
        all_done.as_secs_f64() / direct.elapsed.as_secs_f64()
    );

    let p50 = percentile(&to_children, 50.0);
    let targets = [
        (
            format!("p50 apply → children {} ≤ 1 s", ms(p50)),
            incomplete.is_empty() && p50 <= Duration::from_secs(1),
        ),
        (
            format!("all {} done in {} ≤ 30 s", names.len(), ms(all_done)),
            incomplete.is_empty() && all_done <= Duration::from_secs(30),
        ),
        (
            format!("operator peak RSS {} ≤ 50 MB", mb(peak_rss)),
            peak_rss <= 50_000_000,
        ),
    ];
    let mut failed = 0;
    for (what, ok) in &targets {
        println!("{} {what}", if *ok { "pass" } else { "FAIL" });
        failed += usize::from(!ok);
    }
    println!("{} passed, {failed} failed", targets.len() - failed);
    let _ = namespaces.delete(&ns, &Default::default()).await;
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
