//! The `AppDeployment` custom resource (`basalt.dev/v1alpha1`): its spec, status and the CEL
//! rules the API server enforces. The CRD is generated from these types (`operator crd`) and the
//! copy in `helm/crds/` is checked against it by a test: never edit the YAML by hand.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{EnvVar, ResourceRequirements},
    apimachinery::pkg::{
        apis::meta::v1::{Condition, LabelSelector},
        util::intstr::IntOrString,
    },
};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// One installation of Basalt: the API and the worker from one image, their scaling and
/// disruption budgets, the network policy around them, and where their secrets are.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "basalt.dev",
    version = "v1alpha1",
    kind = "AppDeployment",
    namespaced,
    status = "AppDeploymentStatus",
    shortname = "appdeploy",
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "API", "type": "integer", "jsonPath": ".status.api.readyReplicas"}"#,
    printcolumn = r#"{"name": "Worker", "type": "integer", "jsonPath": ".status.worker.readyReplicas"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AppDeploymentSpec {
    /// The Basalt image (`host` and `worker` binaries): `registry/basalt:1.2.3`.
    #[x_kube(validation = Rule::new("self.size() > 0").message("image must not be empty"))]
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`; Kubernetes' default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Secrets in this namespace holding registry credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    /// The HTTP API (`host serve`, port 8001).
    #[serde(default)]
    pub api: ComponentSpec,
    /// The job worker (`worker serve`, health port 8081).
    #[serde(default)]
    pub worker: ComponentSpec,
    /// Where `DATABASE_URL`, `REDIS_URL`, `JWT_SECRET` and `WEBHOOK_ENCRYPTION_KEY` come from.
    pub secrets: SecretRefs,
    /// Further settings for both components, by their names in the README ("Configuration"):
    /// `JWT_TTL_SECONDS`, `RATE_LIMIT_AUTH`, … (not the four secrets, nor the listen addresses).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Default-deny network policy for the app's pods with the egress they need; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,
    /// An Ingress for the API's clients; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// The API's or the worker's pods.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    /// Pods when not autoscaled (default: 2 for the API, 1 for the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("replicas must not be negative"))]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// A HorizontalPodAutoscaler on CPU; it then owns the replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// A PodDisruptionBudget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdb: Option<DisruptionBudget>,
    /// Extra environment for this component only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"))]
pub struct Autoscaling {
    #[x_kube(validation = Rule::new("self >= 1").message("minReplicas must be at least 1"))]
    pub min_replicas: i32,
    pub max_replicas: i32,
    /// Average CPU utilisation to aim for, in percent of the requests (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("targetCPUUtilizationPercentage must be 1 to 100"))]
    #[serde(rename = "targetCPUUtilizationPercentage")]
    pub target_cpu_utilization_percentage: Option<i32>,
}

/// Exactly one of `minAvailable` and `maxUnavailable` (a count or a percentage).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.minAvailable) != has(self.maxUnavailable)").message("set exactly one of minAvailable and maxUnavailable"))]
pub struct DisruptionBudget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// A key of a Secret in the AppDeployment's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct SecretKey {
    #[x_kube(validation = Rule::new("self.size() > 0").message("a Secret name must not be empty"))]
    pub name: String,
    #[x_kube(validation = Rule::new("self.size() > 0").message("a Secret key must not be empty"))]
    pub key: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRefs {
    pub database_url: SecretKey,
    pub jwt_secret: SecretKey,
    pub webhook_encryption_key: SecretKey,
    /// Unset: each API pod limits rates in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<SecretKey>,
}

/// Where the pods may connect to and be reached from; everything else is denied.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// PostgreSQL: addresses or pods, with ports.
    #[serde(default)]
    pub database: Vec<Endpoint>,
    /// Redis, likewise.
    #[serde(default)]
    pub redis: Vec<Endpoint>,
    /// TCP 443 to anywhere (webhook deliveries, cloud APIs); default true.
    #[serde(default = "yes")]
    pub https_egress: bool,
    /// Who may reach the API's port (8001): the ingress controller's pods, say. Empty: nobody
    /// outside the app.
    #[serde(default)]
    pub api_ingress_from: Vec<Peer>,
}

fn yes() -> bool {
    true
}

/// An egress destination: an address range or pods, and the port it listens on.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.cidr) != (has(self.podSelector) || has(self.namespaceSelector))").message("give either cidr or pod/namespace selectors"))]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port must be 1 to 65535"))]
    pub port: i32,
}

impl Endpoint {
    pub fn peer(&self) -> Peer {
        Peer {
            cidr: self.cidr.clone(),
            pod_selector: self.pod_selector.clone(),
            namespace_selector: self.namespace_selector.clone(),
        }
    }
}

/// An address range, or pods chosen by labels (in namespaces chosen by labels).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.cidr) != (has(self.podSelector) || has(self.namespaceSelector))").message("give either cidr or pod/namespace selectors"))]
pub struct Peer {
    /// e.g. `10.20.0.0/16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    #[x_kube(validation = Rule::new("self.size() > 0").message("host must not be empty"))]
    pub host: String,
    /// A `kubernetes.io/tls` Secret for `host`; plain HTTP when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
}

/// What the operator last saw.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppDeploymentStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub api: ComponentStatus,
    #[serde(default)]
    pub worker: ComponentStatus,
    /// The image the Deployments run: the newest whose migration Job succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_image: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub replicas: i32,
    pub ready_replicas: i32,
}
