//! What an `AppDeployment` becomes: pure functions from the resource to each child object, as
//! the operator server-side-applies it. No API calls here, so every child's spec is unit-
//! testable and the reconciler only decides which to apply, when, and with which image.
//!
//! Names: `<name>-api` (Deployment, Service, HPA, PDB, Ingress), `<name>-worker` (Deployment,
//! HPA, PDB), `<name>` (NetworkPolicy), `<name>-migrate-<image hash>` (the migration Job).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        autoscaling::v2::{
            CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
            MetricSpec, MetricTarget, ResourceMetricSource,
        },
        batch::v1::{Job, JobSpec},
        core::v1::{
            Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
            HTTPGetAction, LocalObjectReference, PodSecurityContext, PodSpec, PodTemplateSpec,
            Probe, SeccompProfile, SecretKeySelector, SecurityContext, Service, ServicePort,
            ServiceSpec, Volume, VolumeMount,
        },
        networking::v1::{
            HTTPIngressPath, HTTPIngressRuleValue, IPBlock, Ingress, IngressBackend, IngressRule,
            IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, NetworkPolicy,
            NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
            NetworkPolicyPort, NetworkPolicySpec as K8sNetworkPolicySpec, ServiceBackendPort,
        },
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use sha2::{Digest, Sha256};

use crate::crd::{AppDeployment, ComponentSpec, Peer, SecretKey};

/// The API's port (`BIND_ADDR`).
pub const API_PORT: i32 = 8001;
/// The worker's health port (`WORKER_HEALTH_ADDR`).
pub const WORKER_HEALTH_PORT: i32 = 8081;
/// The label every child carries with the resource's name.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
const UID: i64 = 65532;

/// The API or the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Api,
    Worker,
}

impl Component {
    pub const ALL: [Self; 2] = [Self::Api, Self::Worker];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Worker => "worker",
        }
    }

    pub fn spec(self, app: &AppDeployment) -> &ComponentSpec {
        match self {
            Self::Api => &app.spec.api,
            Self::Worker => &app.spec.worker,
        }
    }

    /// The child's name: `<app>-api`, `<app>-worker`.
    pub fn name(self, app: &AppDeployment) -> String {
        format!("{}-{}", app_name(app), self.as_str())
    }

    fn default_replicas(self) -> i32 {
        match self {
            Self::Api => 2,
            Self::Worker => 1,
        }
    }

    /// The replicas the Deployment asks for; `None` when an HPA owns the count.
    pub fn replicas(self, app: &AppDeployment) -> Option<i32> {
        let spec = self.spec(app);
        if spec.autoscaling.is_some() {
            return None;
        }
        Some(spec.replicas.unwrap_or(self.default_replicas()))
    }
}

pub fn app_name(app: &AppDeployment) -> &str {
    app.metadata.name.as_deref().unwrap_or_default()
}

fn namespace(app: &AppDeployment) -> Option<String> {
    app.metadata.namespace.clone()
}

/// Labels that select a component's pods.
pub fn selector_labels(app: &AppDeployment, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "basalt".to_owned()),
        (INSTANCE_LABEL.to_owned(), app_name(app).to_owned()),
        (COMPONENT_LABEL.to_owned(), component.to_owned()),
    ])
}

fn labels(app: &AppDeployment, component: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(app, component);
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        "basalt-operator".to_owned(),
    );
    labels
}

fn meta(app: &AppDeployment, name: String, component: &str, owner: &OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: namespace(app),
        labels: Some(labels(app, component)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

fn secret_env(name: &str, key: &SecretKey) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: key.name.clone(),
                key: key.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    }
}

/// The environment every container of the app gets: the secrets, `config`, JSON logs; then the
/// component's own (`BIND_ADDR` or `WORKER_HEALTH_ADDR`) and its extra `env`.
fn environment(app: &AppDeployment, component: Option<Component>) -> Vec<EnvVar> {
    let secrets = &app.spec.secrets;
    let mut env = vec![
        secret_env("DATABASE_URL", &secrets.database_url),
        secret_env("JWT_SECRET", &secrets.jwt_secret),
        secret_env("WEBHOOK_ENCRYPTION_KEY", &secrets.webhook_encryption_key),
    ];
    if let Some(redis) = &secrets.redis_url {
        env.push(secret_env("REDIS_URL", redis));
    }
    if !app.spec.config.contains_key("LOG_FORMAT") {
        env.push(plain_env("LOG_FORMAT", "json"));
    }
    env.extend(app.spec.config.iter().map(|(k, v)| plain_env(k, v)));
    match component {
        Some(Component::Api) => env.push(plain_env("BIND_ADDR", &format!("0.0.0.0:{API_PORT}"))),
        Some(Component::Worker) => env.push(plain_env(
            "WORKER_HEALTH_ADDR",
            &format!("0.0.0.0:{WORKER_HEALTH_PORT}"),
        )),
        None => {}
    }
    if let Some(c) = component {
        env.extend(c.spec(app).env.iter().cloned());
    }
    env
}

/// Non-root, read-only root filesystem, no capabilities, the runtime's seccomp profile.
fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(UID),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(UID),
        run_as_group: Some(UID),
        fs_group: Some(UID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

fn http_probe(path: &str, port: i32, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(port),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// `/tmp` as a memory-backed volume: the root filesystem is read-only.
fn tmp_volume() -> (Volume, VolumeMount) {
    (
        Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".to_owned()),
                size_limit: None,
            }),
            ..Volume::default()
        },
        VolumeMount {
            name: "tmp".to_owned(),
            mount_path: "/tmp".to_owned(),
            ..VolumeMount::default()
        },
    )
}

fn pod_spec(app: &AppDeployment, container: Container, restart: Option<&str>) -> PodSpec {
    let (volume, _) = tmp_volume();
    PodSpec {
        containers: vec![container],
        security_context: Some(pod_security()),
        automount_service_account_token: Some(false),
        image_pull_secrets: (!app.spec.image_pull_secrets.is_empty()).then(|| {
            app.spec
                .image_pull_secrets
                .iter()
                .map(|name| LocalObjectReference { name: name.clone() })
                .collect()
        }),
        restart_policy: restart.map(str::to_owned),
        volumes: Some(vec![volume]),
        ..PodSpec::default()
    }
}

fn container(app: &AppDeployment, name: &str, image: &str, args: &[&str]) -> Container {
    let (_, mount) = tmp_volume();
    Container {
        name: name.to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: app.spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        args: Some(args.iter().map(|a| (*a).to_owned()).collect()),
        security_context: Some(container_security()),
        volume_mounts: Some(vec![mount]),
        ..Container::default()
    }
}

/// A component's Deployment running `image` (the newest image whose migration succeeded).
pub fn deployment(
    app: &AppDeployment,
    component: Component,
    image: &str,
    owner: &OwnerReference,
) -> Deployment {
    let spec = component.spec(app);
    let mut c = match component {
        Component::Api => {
            let mut c = container(app, "api", image, &["host", "serve"]);
            c.ports = Some(vec![ContainerPort {
                name: Some("http".to_owned()),
                container_port: API_PORT,
                ..ContainerPort::default()
            }]);
            c.liveness_probe = Some(http_probe("/health", API_PORT, 10));
            c.readiness_probe = Some(http_probe("/ready", API_PORT, 5));
            c
        }
        Component::Worker => {
            let mut c = container(app, "worker", image, &["worker", "serve"]);
            c.ports = Some(vec![ContainerPort {
                name: Some("health".to_owned()),
                container_port: WORKER_HEALTH_PORT,
                ..ContainerPort::default()
            }]);
            c.liveness_probe = Some(http_probe("/healthz", WORKER_HEALTH_PORT, 10));
            c.readiness_probe = Some(http_probe("/readyz", WORKER_HEALTH_PORT, 5));
            c
        }
    };
    c.env = Some(environment(app, Some(component)));
    c.resources = spec.resources.clone();
    let selector = selector_labels(app, component.as_str());
    let mut pod = pod_spec(app, c, None);
    if component == Component::Worker {
        // Running jobs get WORKER_SHUTDOWN_GRACE_SECONDS (30) after SIGTERM, plus a margin.
        pod.termination_grace_period_seconds = Some(40);
    }
    Deployment {
        metadata: meta(app, component.name(app), component.as_str(), owner),
        spec: Some(DeploymentSpec {
            replicas: component.replicas(app),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(app, component.as_str())),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The API's Service (ClusterIP, port 80 → 8001).
pub fn service(app: &AppDeployment, owner: &OwnerReference) -> Service {
    Service {
        metadata: meta(app, Component::Api.name(app), "api", owner),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(app, "api")),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The API's Ingress, when the spec asks for one.
pub fn ingress(app: &AppDeployment, owner: &OwnerReference) -> Option<Ingress> {
    let spec = app.spec.ingress.as_ref()?;
    let name = Component::Api.name(app);
    Some(Ingress {
        metadata: meta(app, name.clone(), "api", owner),
        spec: Some(K8sIngressSpec {
            ingress_class_name: spec.class_name.clone(),
            tls: spec.tls_secret_name.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![spec.host.clone()]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(spec.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".to_owned()),
                        path_type: "Prefix".to_owned(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name,
                                port: Some(ServiceBackendPort {
                                    name: Some("http".to_owned()),
                                    number: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            ..K8sIngressSpec::default()
        }),
        status: None,
    })
}

/// The migration Job's name for `image`: one Job per image, so a new image migrates once.
pub fn migration_job_name(app: &AppDeployment, image: &str) -> String {
    format!("{}-migrate-{}", app_name(app), image_hash(image))
}

/// `host migrate` with `image`: the Deployments move to `image` only after it succeeded.
pub fn migration_job(app: &AppDeployment, image: &str, owner: &OwnerReference) -> Job {
    let mut c = container(app, "migrate", image, &["host", "migrate"]);
    c.env = Some(environment(app, None));
    let mut labels_ = labels(app, "migrate");
    labels_.insert("basalt.dev/image-hash".to_owned(), image_hash(image));
    Job {
        metadata: ObjectMeta {
            labels: Some(labels_.clone()),
            ..meta(app, migration_job_name(app, image), "migrate", owner)
        },
        spec: Some(JobSpec {
            backoff_limit: Some(3),
            // Kept a day after it finishes, for its logs; the next image's Job replaces it.
            ttl_seconds_after_finished: Some(24 * 3600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels_),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(app, c, Some("Never"))),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// The first 5 bytes of the image name's SHA-256, in hex: the Job's name suffix and label.
fn image_hash(image: &str) -> String {
    let digest = Sha256::digest(image.as_bytes());
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

/// A component's HPA (autoscaling/v2, CPU), when it autoscales.
pub fn autoscaler(
    app: &AppDeployment,
    component: Component,
    owner: &OwnerReference,
) -> Option<HorizontalPodAutoscaler> {
    let scaling = component.spec(app).autoscaling.as_ref()?;
    Some(HorizontalPodAutoscaler {
        metadata: meta(app, component.name(app), component.as_str(), owner),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: component.name(app),
            },
            min_replicas: Some(scaling.min_replicas),
            max_replicas: scaling.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(
                            scaling.target_cpu_utilization_percentage.unwrap_or(80),
                        ),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: None,
        }),
        status: None,
    })
}

/// A component's PDB (policy/v1), when the spec gives one.
pub fn disruption_budget(
    app: &AppDeployment,
    component: Component,
    owner: &OwnerReference,
) -> Option<PodDisruptionBudget> {
    let pdb = component.spec(app).pdb.as_ref()?;
    Some(PodDisruptionBudget {
        metadata: meta(app, component.name(app), component.as_str(), owner),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: pdb.min_available.clone(),
            max_unavailable: pdb.max_unavailable.clone(),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(app, component.as_str())),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}

fn policy_peer(peer: &Peer) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: peer.cidr.as_ref().map(|cidr| IPBlock {
            cidr: cidr.clone(),
            except: None,
        }),
        pod_selector: peer.pod_selector.clone(),
        namespace_selector: peer.namespace_selector.clone(),
    }
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_owned()),
        end_port: None,
    }
}

/// Default-deny for the app's pods (all components: `app.kubernetes.io/instance=<name>`):
/// egress only to DNS, the database and Redis endpoints and (unless turned off) TCP 443;
/// ingress to the API port from the configured sources; to the worker's health port from
/// nowhere but the node (the kubelet's probes are not subject to NetworkPolicy).
pub fn network_policy(app: &AppDeployment, owner: &OwnerReference) -> Option<NetworkPolicy> {
    let spec = app.spec.network_policy.as_ref()?;
    let dns = NetworkPolicyEgressRule {
        to: None,
        ports: Some(vec![
            NetworkPolicyPort {
                port: Some(IntOrString::Int(53)),
                protocol: Some("UDP".to_owned()),
                end_port: None,
            },
            tcp(53),
        ]),
    };
    let mut egress = vec![dns];
    for endpoint in spec.database.iter().chain(&spec.redis) {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![policy_peer(&endpoint.peer())]),
            ports: Some(vec![tcp(endpoint.port)]),
        });
    }
    if spec.https_egress {
        egress.push(NetworkPolicyEgressRule {
            to: None,
            ports: Some(vec![tcp(443)]),
        });
    }
    let ingress = vec![NetworkPolicyIngressRule {
        from: (!spec.api_ingress_from.is_empty())
            .then(|| spec.api_ingress_from.iter().map(policy_peer).collect()),
        ports: Some(vec![tcp(API_PORT)]),
    }];
    Some(NetworkPolicy {
        metadata: meta(app, app_name(app).to_owned(), "network", owner),
        spec: Some(K8sNetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    INSTANCE_LABEL.to_owned(),
                    app_name(app).to_owned(),
                )])),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            egress: Some(egress),
            // Only the API's port is open, and only when sources are named (an empty `from`
            // would mean everyone).
            ingress: Some(if spec.api_ingress_from.is_empty() {
                Vec::new()
            } else {
                ingress
            }),
        }),
    })
}
