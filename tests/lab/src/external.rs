//! `lab --kubeconfig FILE`: the lab against an external API server instead of the
//! embedded one.
//!
//! The current context of FILE names the server and the credentials. The lab's own
//! client, `status` and the kubectl passthrough use FILE as it is; the controller and
//! the speakers get a kubeconfig of their own ([`ExternalApi::kubeconfig_via`]) whose
//! server is their API forwarder and whose credentials (token, client certificate, exec
//! plugin, CA) are FILE's, so that the faults of the API path still act on them.
//!
//! **How the forwarders pass TLS.** For an `https` server the forwarders relay TCP
//! ([`crate::forward::Relay::Tcp`]): the TLS session runs end to end between the
//! child and the real server, which keeps its certificate, its client-certificate
//! authentication and its audit identity exactly as without the lab. The children's
//! kubeconfig keeps FILE's CA and sets `tls-server-name` to the server's own host name,
//! so that the certificate still verifies although the connection goes to the
//! forwarder's address. The price: the forwarder sees bytes, not requests, so only the
//! `api-down`/`api-up` fault (resets and refusals are TCP-level) is available; the
//! per-request faults (`api-delay`, `api-delay-writes`, `api-fail`) are refused with an
//! error naming them (see [`crate::faults::needs_http`]). TLS termination would
//! keep them, but it would have to present a certificate of the lab's own CA to the
//! children and act towards the server with one identity for all of them (client
//! certificates cannot be passed on), so the children would no longer run with the
//! credentials they are given. A plain `http` server is relayed as HTTP, every fault
//! included.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::error::LabError;

/// The scheme of the external API server's URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// TLS: the forwarders relay TCP.
    Https,
    /// Plain HTTP: the forwarders relay HTTP (every fault available).
    Http,
}

/// Scheme, host (without brackets) and port of a server URL such as
/// `https://[2001:db8::1]:6443/prefix`.
pub fn parse_server(url: &str) -> Result<(Scheme, String, u16), String> {
    let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r)
    } else {
        return Err(format!(
            "server {url:?} is neither an http:// nor an https:// URL"
        ));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!(
            "server {url:?}: user info in the URL is not supported"
        ));
    }
    let default_port = match scheme {
        Scheme::Https => 443,
        Scheme::Http => 80,
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("server {url:?}: unclosed '[' in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(format!("server {url:?}: junk after the IPv6 address")),
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("server {url:?} has no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("server {url:?}: port {p:?} is not a number from 0 to 65535"))?,
        None => default_port,
    };
    Ok((scheme, host, port))
}

/// The external API server of a lab, from a kubeconfig file.
#[derive(Debug, Clone)]
pub struct ExternalApi {
    /// The kubeconfig file.
    pub path: PathBuf,
    /// Its scheme.
    pub scheme: Scheme,
    /// Its host, as written in the URL (the name the certificate must match).
    pub host: String,
    /// Where the forwarders connect (resolved from the root namespace).
    pub target: SocketAddr,
    /// The current context, flattened: `{cluster, user, namespace}` of FILE.
    cluster: Value,
    user: Value,
    namespace: Option<String>,
}

impl ExternalApi {
    /// Reads `path` and resolves its current context's server.
    pub fn load(path: &Path) -> Result<ExternalApi, LabError> {
        let text = std::fs::read_to_string(path).map_err(LabError::io(format!(
            "reading kubeconfig {}",
            path.display()
        )))?;
        let abs = std::path::absolute(path)
            .map_err(LabError::io(format!("resolving {}", path.display())))?;
        let mut ext = Self::parse(&text, abs.parent())
            .map_err(|e| LabError::Config(format!("kubeconfig {}: {e}", path.display())))?;
        ext.path = abs;
        Ok(ext)
    }

    /// Parses kubeconfig `text` (relative file paths in it taken relative to `dir`) and
    /// resolves the server's address.
    pub fn parse(text: &str, dir: Option<&Path>) -> Result<ExternalApi, String> {
        let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let current = doc["current-context"]
            .as_str()
            .filter(|c| !c.is_empty())
            .ok_or("no current-context")?;
        let named = |list: &str, name: &str, field: &str| -> Result<Value, String> {
            doc[list]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["name"].as_str() == Some(name))
                .map(|e| e[field].clone())
                .ok_or_else(|| format!("no {list} entry named {name:?}"))
        };
        let context = named("contexts", current, "context")?;
        let cluster_name = context["cluster"]
            .as_str()
            .ok_or_else(|| format!("context {current:?} names no cluster"))?;
        let mut cluster = named("clusters", cluster_name, "cluster")?;
        let mut user = match context["user"].as_str() {
            Some(u) if !u.is_empty() => named("users", u, "user")?,
            _ => json!({}),
        };
        if let Some(dir) = dir {
            anchor(&mut cluster, &["certificate-authority"], dir);
            anchor(
                &mut user,
                &["client-certificate", "client-key", "tokenFile"],
                dir,
            );
        }
        let server = cluster["server"]
            .as_str()
            .ok_or_else(|| format!("cluster {cluster_name:?} has no server"))?;
        if cluster.get("proxy-url").is_some() {
            return Err(format!(
                "cluster {cluster_name:?} uses a proxy-url, which the lab's forwarders cannot go through"
            ));
        }
        let (scheme, host, port) = parse_server(server)?;
        let target = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("resolving {host}:{port}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}:{port} resolves to no address"))?;
        Ok(ExternalApi {
            path: PathBuf::new(),
            scheme,
            host,
            target,
            cluster,
            user,
            namespace: context["namespace"].as_str().map(str::to_string),
        })
    }

    /// A kubeconfig (YAML) that reaches the server through the forwarder at `via`,
    /// with FILE's credentials and CA; `tls-server-name` keeps the certificate check on
    /// the server's own name.
    pub fn kubeconfig_via(&self, via: SocketAddr) -> String {
        let mut cluster = self.cluster.clone();
        let scheme = match self.scheme {
            Scheme::Https => "https",
            Scheme::Http => "http",
        };
        cluster["server"] = json!(format!("{scheme}://{via}"));
        if self.scheme == Scheme::Https && cluster.get("tls-server-name").is_none() {
            cluster["tls-server-name"] = json!(self.host);
        }
        let mut context = json!({"cluster": "external", "user": "external"});
        if let Some(ns) = &self.namespace {
            context["namespace"] = json!(ns);
        }
        let cfg = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "external", "cluster": cluster}],
            "users": [{"name": "external", "user": self.user}],
            "contexts": [{"name": "external", "context": context}],
            "current-context": "external",
        });
        serde_yaml_ng::to_string(&cfg).unwrap_or_default()
    }

    /// A kube client from FILE (the lab's own observer client).
    pub async fn client(&self) -> Result<kube::Client, LabError> {
        client_from_file(&self.path).await
    }
}

/// A kube client for the current context of kubeconfig `path`.
pub async fn client_from_file(path: &Path) -> Result<kube::Client, LabError> {
    let kc = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| LabError::Config(format!("kubeconfig {}: {e}", path.display())))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| LabError::Config(format!("kubeconfig {}: {e}", path.display())))?;
    kube::Client::try_from(config).map_err(LabError::kube(format!(
        "building a client from {}",
        path.display()
    )))
}

/// Makes the relative file paths under `keys` of `obj` absolute (under `dir`): the
/// children's kubeconfig lives elsewhere than FILE.
fn anchor(obj: &mut Value, keys: &[&str], dir: &Path) {
    for key in keys {
        if let Some(p) = obj[*key].as_str()
            && Path::new(p).is_relative()
        {
            obj[*key] = json!(dir.join(p).display().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_split_into_scheme_host_and_port() {
        assert_eq!(
            parse_server("https://127.0.0.1:6443").unwrap(),
            (Scheme::Https, "127.0.0.1".into(), 6443)
        );
        assert_eq!(
            parse_server("https://k8s.example.org/").unwrap(),
            (Scheme::Https, "k8s.example.org".into(), 443)
        );
        assert_eq!(
            parse_server("http://[2001:db8::1]:8080/api").unwrap(),
            (Scheme::Http, "2001:db8::1".into(), 8080)
        );
        assert_eq!(
            parse_server("http://[2001:db8::1]").unwrap(),
            (Scheme::Http, "2001:db8::1".into(), 80)
        );
        for bad in [
            "ftp://x",
            "https://:443",
            "https://h:port",
            "https://[::1",
            "https://u@h",
        ] {
            assert!(parse_server(bad).is_err(), "{bad}");
        }
    }

    const FILE: &str = r#"
apiVersion: v1
kind: Config
current-context: b
clusters:
- name: a
  cluster: {server: "https://198.51.100.9:6443"}
- name: c2
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority: pki/ca.crt
users:
- name: u2
  user:
    client-certificate: /abs/admin.crt
    client-key: pki/admin.key
    token: not-a-real-token
contexts:
- name: a
  context: {cluster: a, user: u2}
- name: b
  context: {cluster: c2, user: u2, namespace: kube-system}
"#;

    #[test]
    fn the_childrens_kubeconfig_goes_through_the_forwarder_with_files_credentials() {
        let ext = ExternalApi::parse(FILE, Some(Path::new("/etc/kube"))).unwrap();
        assert_eq!(ext.scheme, Scheme::Https);
        assert_eq!(ext.host, "127.0.0.1");
        assert_eq!(ext.target, "127.0.0.1:6443".parse().unwrap());
        let yaml = ext.kubeconfig_via("192.0.2.1:6443".parse().unwrap());
        let v: Value = serde_yaml_ng::from_str(&yaml).unwrap();
        let cluster = &v["clusters"][0]["cluster"];
        assert_eq!(cluster["server"], "https://192.0.2.1:6443");
        assert_eq!(cluster["tls-server-name"], "127.0.0.1");
        assert_eq!(cluster["certificate-authority"], "/etc/kube/pki/ca.crt");
        let user = &v["users"][0]["user"];
        assert_eq!(user["client-certificate"], "/abs/admin.crt");
        assert_eq!(user["client-key"], "/etc/kube/pki/admin.key");
        assert_eq!(user["token"], "not-a-real-token");
        assert_eq!(v["contexts"][0]["context"]["namespace"], "kube-system");
        // kube itself reads it back.
        let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        assert_eq!(
            kc.clusters[0].cluster.as_ref().unwrap().tls_server_name,
            Some("127.0.0.1".to_string())
        );
    }

    #[test]
    fn a_broken_kubeconfig_says_what_is_missing() {
        let no_ctx = FILE.replace("current-context: b", "current-context: zz");
        let err = ExternalApi::parse(&no_ctx, None).unwrap_err();
        assert!(err.contains("\"zz\""), "{err}");
        let err = ExternalApi::parse("clusters: [", None).unwrap_err();
        assert!(!err.is_empty());
        let proxy = FILE.replace(
            "server: https://127.0.0.1:6443",
            "server: https://127.0.0.1:6443\n    proxy-url: http://198.51.100.1:3128",
        );
        let err = ExternalApi::parse(&proxy, None).unwrap_err();
        assert!(err.contains("proxy-url"), "{err}");
    }
}
