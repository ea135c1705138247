//! Building the Kubernetes client.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::error::SpeakerError;

/// A client from `kubeconfig` when given, else inferred (in-cluster service account,
/// then `$KUBECONFIG` / `~/.kube/config`).
pub async fn kube_client(kubeconfig: Option<&Path>) -> Result<Client, SpeakerError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| SpeakerError::Kubeconfig(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| SpeakerError::Kubeconfig(format!("{}: {e}", path.display())))?
        }
        None => Config::infer()
            .await
            .map_err(|e| SpeakerError::Kubeconfig(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| SpeakerError::kube("building the client", e))
}
