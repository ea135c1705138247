//! Building the Kubernetes client (both binaries).
//!
//! Kubeconfig files are parsed here with `serde_yaml_ng` (the YAML parser the pool
//! configuration already uses) rather than by kube's own loader: kube's brings a second
//! YAML stack (serde-saphyr and its parser), and the code a process has run stays
//! resident in each speaker on every node, and in the controller (the saving is in
//! BENCHMARKS.md, "Controller"). The loading rules are
//! kube's: `$KUBECONFIG` (a list of files, merged, the first definition of a name
//! winning) or `~/.kube/config`, several YAML documents in one file merged the same way,
//! relative file paths taken relative to the file, and the in-cluster service account
//! when no kubeconfig can be loaded.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Deserialize;

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No kubeconfig could be read or used (and, when inferring, no in-cluster config
    /// either); the message names the file and what is wrong in it.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// The configuration was read but kube could not build a client from it.
    #[error("building the Kubernetes client: {0}")]
    Build(#[source] kube::Error),
}

/// A client from `kubeconfig` when given, else inferred (`$KUBECONFIG` or
/// `~/.kube/config` when there is one, else the in-cluster service account).
pub async fn kube_client(kubeconfig: Option<&Path>) -> Result<Client, ClientError> {
    let config = match kubeconfig {
        Some(path) => from_files(&[path.to_path_buf()]).await?,
        None => infer().await?,
    };
    Client::try_from(config).map_err(ClientError::Build)
}

/// kube's `Config::infer` order: a local kubeconfig, else the in-cluster config.
async fn infer() -> Result<Config, ClientError> {
    let local = match default_paths() {
        Some(paths) => from_files(&paths).await,
        None => Err(ClientError::Kubeconfig(
            "no $KUBECONFIG and no ~/.kube/config".into(),
        )),
    };
    let mut config = match local {
        Ok(c) => c,
        Err(local) => Config::incluster()
            .map_err(|e| ClientError::Kubeconfig(format!("{local}; in-cluster config: {e}")))?,
    };
    // The KUBE_RS_DEBUG_* environment overrides, as kube's own `infer` applies them.
    config.apply_debug_overrides();
    Ok(config)
}

/// The files of `$KUBECONFIG`, or `~/.kube/config` if it exists; `None` without either.
fn default_paths() -> Option<Vec<PathBuf>> {
    if let Some(list) = std::env::var_os("KUBECONFIG") {
        let paths: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        return (!paths.is_empty()).then_some(paths);
    }
    let home = std::env::var_os("HOME")?;
    let path = Path::new(&home).join(".kube").join("config");
    path.exists().then_some(vec![path])
}

/// The client configuration of the merged kubeconfig `paths`, current context.
async fn from_files(paths: &[PathBuf]) -> Result<Config, ClientError> {
    let names = || {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    };
    let mut merged = Kubeconfig::default();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Kubeconfig(format!("{}: {e}", path.display())))?;
        let kc = parse_kubeconfig(&text, path.parent())
            .map_err(|e| ClientError::Kubeconfig(format!("{}: {e}", path.display())))?;
        merged = merged
            .merge(kc)
            .map_err(|e| ClientError::Kubeconfig(format!("{}: {e}", names())))?;
    }
    Config::from_custom_kubeconfig(merged, &KubeConfigOptions::default())
        .await
        .map_err(|e| ClientError::Kubeconfig(format!("{}: {e}", names())))
}

/// Parses the YAML documents of one kubeconfig file into one [`Kubeconfig`] (later
/// documents add only names the earlier ones lack), with the relative file paths in it
/// made relative to `dir`, the file's directory.
pub fn parse_kubeconfig(text: &str, dir: Option<&Path>) -> Result<Kubeconfig, String> {
    let mut merged = Kubeconfig::default();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let mut kc =
            Kubeconfig::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
        if let Some(dir) = dir {
            anchor_paths(&mut kc, dir);
        }
        merged = merged.merge(kc).map_err(|e| e.to_string())?;
    }
    Ok(merged)
}

/// Makes the certificate, key and token file paths of `kc` that are relative into paths
/// under `dir`.
fn anchor_paths(kc: &mut Kubeconfig, dir: &Path) {
    let anchor = |field: &mut Option<String>| {
        if let Some(p) = field.as_deref()
            && Path::new(p).is_relative()
            && let Some(abs) = dir.join(p).to_str()
        {
            *field = Some(abs.to_owned());
        }
    };
    for cluster in kc.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        anchor(&mut cluster.certificate_authority);
    }
    for auth in kc
        .auth_infos
        .iter_mut()
        .filter_map(|a| a.auth_info.as_mut())
    {
        anchor(&mut auth.client_certificate);
        anchor(&mut auth.client_key);
        anchor(&mut auth.token_file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: lab
clusters:
- name: lab
  cluster:
    server: https://192.0.2.1:6443
    certificate-authority: certs/ca.pem
contexts:
- name: lab
  context: {cluster: lab, user: admin, namespace: ferrolb-system}
users:
- name: admin
  user:
    client-certificate: /abs/admin.pem
    client-key: admin-key.pem
    token: not-a-real-token
"#;

    #[test]
    fn parses_a_kubeconfig_and_anchors_relative_paths() {
        let kc = parse_kubeconfig(KUBECONFIG, Some(Path::new("/etc/kube"))).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("lab"));
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://192.0.2.1:6443"));
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some("/etc/kube/certs/ca.pem")
        );
        let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(user.client_certificate.as_deref(), Some("/abs/admin.pem"));
        assert_eq!(user.client_key.as_deref(), Some("/etc/kube/admin-key.pem"));
        assert!(user.token.is_some());
        let ctx = kc.contexts[0].context.as_ref().unwrap();
        assert_eq!(ctx.namespace.as_deref(), Some("ferrolb-system"));
    }

    #[test]
    fn documents_merge_with_the_first_definition_winning() {
        let text = format!(
            "{KUBECONFIG}---\nclusters:\n- name: lab\n  cluster: {{server: https://198.51.100.1}}\n\
             - name: other\n  cluster: {{server: https://203.0.113.1}}\n"
        );
        let kc = parse_kubeconfig(&text, None).unwrap();
        let servers: Vec<_> = kc
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.cluster.as_ref().unwrap().server.clone()))
            .collect();
        assert_eq!(
            servers,
            [
                ("lab", Some("https://192.0.2.1:6443".to_string())),
                ("other", Some("https://203.0.113.1".to_string()))
            ]
        );
        // Relative paths stay as written without a directory.
        assert_eq!(
            kc.clusters[0]
                .cluster
                .as_ref()
                .unwrap()
                .certificate_authority
                .as_deref(),
            Some("certs/ca.pem")
        );
    }

    #[test]
    fn bad_yaml_names_the_document() {
        let err = parse_kubeconfig("clusters: [", None).unwrap_err();
        assert!(err.contains("document 1"), "{err}");
        let err = parse_kubeconfig(&format!("{KUBECONFIG}---\nclusters: 7\n"), None).unwrap_err();
        assert!(err.contains("document 2"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_file_is_a_clear_error() {
        let err = from_files(&[PathBuf::from("/nonexistent/ferrolb/kubeconfig")])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/ferrolb/kubeconfig"), "{err}");
    }
}
