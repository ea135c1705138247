//! The lab's stand-in for kube-proxy: it watches Services and keeps, in every node
//! namespace, the external IPs of LoadBalancer Services on kube-lb0 (see
//! [`crate::topology`] for why the kernel then accepts traffic for them without
//! answering ARP/NDP). Like kube-proxy it takes the IPs from `status.loadBalancer`,
//! so a Service gets traffic once the controller has written its status.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::topology::{add_service_ip, del_service_ip};

/// The external IPs kube-proxy would serve: ingress IPs of LoadBalancer Services.
pub fn desired_ips(services: &[Arc<Service>]) -> BTreeSet<IpAddr> {
    services
        .iter()
        .filter(|s| s.spec.as_ref().and_then(|sp| sp.type_.as_deref()) == Some("LoadBalancer"))
        .filter_map(|s| s.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref())
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// Runs the stand-in for `namespaces` (the node namespaces). The returned receiver
/// holds the set of IPs currently configured on every node.
pub fn spawn(
    client: kube::Client,
    namespaces: Vec<String>,
) -> (JoinHandle<()>, watch::Receiver<BTreeSet<IpAddr>>) {
    let (tx, rx) = watch::channel(BTreeSet::new());
    let task = tokio::spawn(async move {
        let api: Api<Service> = Api::all(client);
        let (reader, writer) = reflector::store();
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer);
        futures::pin_mut!(stream);
        let mut applied: BTreeSet<IpAddr> = BTreeSet::new();
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::debug!(error = %e, "kube-proxy stand-in: watch error (retrying)");
                continue;
            }
            let desired = desired_ips(&reader.state());
            if desired == applied {
                continue;
            }
            for ip in desired.difference(&applied) {
                for ns in &namespaces {
                    if let Err(e) = add_service_ip(ns, *ip).await {
                        tracing::warn!(%ip, netns = %ns, error = %e, "kube-proxy stand-in: cannot add Service IP");
                    }
                }
            }
            for ip in applied.difference(&desired) {
                for ns in &namespaces {
                    if let Err(e) = del_service_ip(ns, *ip).await {
                        tracing::warn!(%ip, netns = %ns, error = %e, "kube-proxy stand-in: cannot remove Service IP");
                    }
                }
            }
            applied = desired;
            tx.send_replace(applied.clone());
        }
    });
    (task, rx)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };

    use super::*;

    fn svc(type_: &str, ips: &[&str]) -> Arc<Service> {
        Arc::new(Service {
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        ips.iter()
                            .map(|ip| LoadBalancerIngress {
                                ip: Some(ip.to_string()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn only_load_balancer_ingress_ips_are_served() {
        let services = [
            svc("LoadBalancer", &["192.0.2.200", "2001:db8::200"]),
            svc("ClusterIP", &["192.0.2.201"]),
            svc("LoadBalancer", &["not-an-ip"]),
            Arc::new(Service::default()),
        ];
        let got: Vec<String> = desired_ips(&services)
            .iter()
            .map(|ip| ip.to_string())
            .collect();
        assert_eq!(got, ["192.0.2.200", "2001:db8::200"]);
    }
}
