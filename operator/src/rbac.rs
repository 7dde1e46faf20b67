//! The operator's least privilege, as objects (`operator rbac` prints them; the Helm chart's
//! copy is checked against them by a test): a ServiceAccount; a ClusterRole to watch
//! AppDeployments and manage their children in every namespace (Secrets: `get` only, to check
//! that a referenced one exists); a Role in its own namespace for the leader Lease.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        core::v1::ServiceAccount,
        rbac::v1::{
            ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
        },
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde_json::Value;

/// The name of every RBAC object (and the ServiceAccount).
pub const NAME: &str = "basalt-operator";

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

const OWN: &[&str] = &[
    "get", "list", "watch", "create", "patch", "update", "delete",
];

/// What the controller needs cluster-wide.
pub fn cluster_rules() -> Vec<PolicyRule> {
    vec![
        rule("basalt.dev", &["appdeployments"], &["get", "list", "watch"]),
        rule(
            "basalt.dev",
            &["appdeployments/status"],
            &["get", "patch", "update"],
        ),
        rule("apps", &["deployments"], OWN),
        rule("", &["services"], OWN),
        rule("batch", &["jobs"], OWN),
        rule("autoscaling", &["horizontalpodautoscalers"], OWN),
        rule("policy", &["poddisruptionbudgets"], OWN),
        rule("networking.k8s.io", &["networkpolicies", "ingresses"], OWN),
        // Only to tell whether a referenced Secret and key exist; never listed or watched.
        rule("", &["secrets"], &["get"]),
        rule("events.k8s.io", &["events"], &["create", "patch"]),
    ]
}

/// The leader Lease, in the operator's namespace only.
pub fn lease_rules() -> Vec<PolicyRule> {
    vec![rule(
        "coordination.k8s.io",
        &["leases"],
        &["get", "list", "watch", "create", "patch", "update"],
    )]
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/name".to_owned(),
            NAME.to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

fn subject(namespace: &str) -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".to_owned(),
        name: NAME.to_owned(),
        namespace: Some(namespace.to_owned()),
        ..Subject::default()
    }]
}

/// Every object, in apply order, for an operator running as `basalt-operator` in `namespace`.
pub fn objects(namespace: &str) -> Vec<Value> {
    let values = [
        serde_json::to_value(ServiceAccount {
            metadata: meta(NAME, Some(namespace)),
            automount_service_account_token: Some(true),
            ..ServiceAccount::default()
        }),
        serde_json::to_value(ClusterRole {
            metadata: meta(NAME, None),
            rules: Some(cluster_rules()),
            ..ClusterRole::default()
        }),
        serde_json::to_value(ClusterRoleBinding {
            metadata: meta(NAME, None),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_owned(),
                kind: "ClusterRole".to_owned(),
                name: NAME.to_owned(),
            },
            subjects: Some(subject(namespace)),
        }),
        serde_json::to_value(Role {
            metadata: meta(NAME, Some(namespace)),
            rules: Some(lease_rules()),
        }),
        serde_json::to_value(RoleBinding {
            metadata: meta(NAME, Some(namespace)),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".to_owned(),
                kind: "Role".to_owned(),
                name: NAME.to_owned(),
            },
            subjects: Some(subject(namespace)),
        }),
    ];
    values.into_iter().filter_map(Result::ok).collect()
}
