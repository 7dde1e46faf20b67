//! Why a reconcile failed: each kind is a `Degraded` reason on the resource, a Warning event,
//! and a metrics label.

/// A failed reconcile; the error policy requeues the resource with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{setting} comes from the Secret {secret:?}, key {key:?}, which {}",
        if *exists { "has no such key" } else { "does not exist" }
    )]
    SecretMissing {
        setting: &'static str,
        secret: String,
        key: String,
        exists: bool,
    },
    #[error("config names settings no component reads (or the operator sets): {0}")]
    InvalidConfig(String),
    #[error("cannot apply the {kind} {name}: {source}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot delete the {kind} {name}: {source}")]
    Delete {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot write the status: {0}")]
    Status(#[source] kube::Error),
    #[error("the Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("an AppDeployment must be namespaced")]
    NotNamespaced,
}

impl Error {
    /// The condition reason (CamelCase) and the metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SecretMissing { .. } => "SecretMissing",
            Self::InvalidConfig(_) => "InvalidConfig",
            Self::Apply { .. } => "ApplyFailed",
            Self::Delete { .. } => "DeleteFailed",
            Self::Status(_) => "StatusFailed",
            Self::Kube(_) => "ApiError",
            Self::NotNamespaced => "NotNamespaced",
        }
    }
}
