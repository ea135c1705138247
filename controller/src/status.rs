//! The part of a Service's status that ferrolb owns: the ingress IPs it
//! allocated and its one condition. Pure: from the current Service and the
//! outcome of reconciliation to the merge patch to send (or nothing).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::LoadBalancerIngress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::service::CONDITION_TYPE;
use crate::slim::LbService;

/// What ferrolb wants the status to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// These IPs are the Service's: ingress = exactly these, condition True.
    Allocated { ips: Vec<IpAddr>, pool: String },
    /// Nothing could be allocated: no ingress from ferrolb, condition False with the reason.
    Failed { reason: String, message: String },
    /// ferrolb is no longer responsible: remove the IPs it wrote and its condition.
    Withdrawn { ours: Vec<IpAddr> },
}

/// The merge patch that brings the Service's status to `wanted`, or `None`
/// when it already says so. The patch carries the resourceVersion it was
/// computed from, so that a concurrent change makes it fail with 409 instead
/// of overwriting what someone else wrote.
pub fn patch(svc: &LbService, wanted: &Wanted, now: Timestamp) -> Option<Value> {
    let cur_ingress: Vec<LoadBalancerIngress> = svc.status.ingress.iter().map(Into::into).collect();
    let cur_conditions: Vec<Condition> = svc.status.conditions.iter().map(Into::into).collect();
    let generation = svc.metadata.generation;

    let (ingress, condition): (Vec<LoadBalancerIngress>, Option<Condition>) = match wanted {
        Wanted::Allocated { ips, pool } => {
            let ingress = ips
                .iter()
                .map(|ip| LoadBalancerIngress {
                    ip: Some(ip.to_string()),
                    ip_mode: Some("VIP".into()),
                    ..Default::default()
                })
                .collect();
            let list = ip_list(ips);
            let cond = condition(
                &cur_conditions,
                "True",
                "Allocated",
                &format!("allocated {list} from pool {pool}"),
                generation,
                now,
            );
            (ingress, Some(cond))
        }
        Wanted::Failed { reason, message } => (
            Vec::new(),
            Some(condition(
                &cur_conditions,
                "False",
                reason,
                message,
                generation,
                now,
            )),
        ),
        Wanted::Withdrawn { ours } => {
            let kept = cur_ingress
                .iter()
                .filter(|i| {
                    i.ip.as_deref()
                        .and_then(|s| s.parse::<IpAddr>().ok())
                        .is_none_or(|ip| !ours.contains(&ip))
                })
                .cloned()
                .collect();
            (kept, None)
        }
    };

    let mut conditions: Vec<Condition> = cur_conditions
        .iter()
        .filter(|c| c.type_ != CONDITION_TYPE)
        .cloned()
        .collect();
    conditions.extend(condition);

    let ingress_same = same_ingress(&cur_ingress, &ingress);
    let conditions_same = same_conditions(&cur_conditions, &conditions);
    if ingress_same && conditions_same {
        return None;
    }
    let ingress_json = if ingress.is_empty() {
        Value::Null
    } else {
        json!(ingress)
    };
    Some(json!({
        "metadata": { "resourceVersion": svc.metadata.resource_version },
        "status": {
            "loadBalancer": { "ingress": ingress_json },
            "conditions": if conditions.is_empty() { Value::Null } else { json!(conditions) },
        }
    }))
}

/// IPs as people read them in messages: `192.0.2.10, 2001:db8::10`.
pub fn ip_list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Our condition, keeping its lastTransitionTime when the status does not change.
fn condition(
    current: &[Condition],
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let previous = current.iter().find(|c| c.type_ == CONDITION_TYPE);
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Time(now),
    };
    Condition {
        type_: CONDITION_TYPE.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time,
    }
}

fn same_ingress(a: &[LoadBalancerIngress], b: &[LoadBalancerIngress]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.ip == y.ip && x.ip_mode == y.ip_mode && x.hostname == y.hostname)
}

fn same_conditions(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{LoadBalancerStatus, Service, ServiceStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn mk_service(ingress: &[&str], conditions: Vec<Condition>) -> LbService {
        LbService::from_service(&Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                resource_version: Some("42".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: None,
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        ingress
                            .iter()
                            .map(|ip| LoadBalancerIngress {
                                ip: Some((*ip).into()),
                                ip_mode: Some("VIP".into()),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                }),
                conditions: Some(conditions),
            }),
        })
        .unwrap()
    }

    fn foreign_condition() -> Condition {
        Condition {
            type_: "example.com/Other".into(),
            status: "True".into(),
            reason: "X".into(),
            message: "kept".into(),
            observed_generation: None,
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn allocation_writes_ingress_with_vip_mode_and_true_condition() {
        let svc = mk_service(&[], vec![foreign_condition()]);
        let wanted = Wanted::Allocated {
            ips: vec!["192.0.2.1".parse().unwrap()],
            pool: "lan".into(),
        };
        let p = patch(&svc, &wanted, Timestamp::now()).expect("a change");
        assert_eq!(p["metadata"]["resourceVersion"], "42");
        assert_eq!(p["status"]["loadBalancer"]["ingress"][0]["ip"], "192.0.2.1");
        assert_eq!(p["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");
        let conds = p["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 2, "the foreign condition is kept: {conds:?}");
        assert_eq!(conds[0]["type"], "example.com/Other");
        assert_eq!(conds[1]["type"], CONDITION_TYPE);
        assert_eq!(conds[1]["status"], "True");
        assert_eq!(conds[1]["observedGeneration"], 3);
    }

    #[test]
    fn unchanged_status_gives_no_patch() {
        let wanted = Wanted::Allocated {
            ips: vec!["192.0.2.1".parse().unwrap()],
            pool: "lan".into(),
        };
        let first = mk_service(&[], vec![]);
        let p = patch(&first, &wanted, Timestamp::now()).unwrap();
        let mut svc: LbService = serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default", "generation": 3}, "status": p["status"]})).unwrap();
        svc.metadata.resource_version = Some("43".into());
        assert_eq!(patch(&svc, &wanted, Timestamp::now()), None);
    }

    #[test]
    fn failure_clears_ingress_and_sets_false_condition() {
        let svc = mk_service(&["192.0.2.1"], vec![]);
        let wanted = Wanted::Failed {
            reason: "PoolExhausted".into(),
            message: "pool lan has no free IPv4 address".into(),
        };
        let p = patch(&svc, &wanted, Timestamp::now()).unwrap();
        assert_eq!(p["status"]["loadBalancer"]["ingress"], Value::Null);
        assert_eq!(p["status"]["conditions"][0]["status"], "False");
        assert_eq!(p["status"]["conditions"][0]["reason"], "PoolExhausted");
    }

    #[test]
    fn withdrawal_removes_only_what_ferrolb_wrote() {
        let mut ours = Condition {
            type_: CONDITION_TYPE.into(),
            ..foreign_condition()
        };
        ours.message = "allocated".into();
        let svc = mk_service(
            &["192.0.2.1", "203.0.113.9"],
            vec![foreign_condition(), ours],
        );
        let wanted = Wanted::Withdrawn {
            ours: vec!["192.0.2.1".parse().unwrap()],
        };
        let p = patch(&svc, &wanted, Timestamp::now()).unwrap();
        let ingress = p["status"]["loadBalancer"]["ingress"].as_array().unwrap();
        assert_eq!(ingress.len(), 1);
        assert_eq!(ingress[0]["ip"], "203.0.113.9");
        let conds = p["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0]["type"], "example.com/Other");
    }

    #[test]
    fn transition_time_is_kept_while_status_holds() {
        let wanted = Wanted::Failed {
            reason: "PoolExhausted".into(),
            message: "a".into(),
        };
        let t0 = Timestamp::UNIX_EPOCH;
        let svc = mk_service(
            &[],
            vec![condition(&[], "False", "PoolExhausted", "old", Some(3), t0)],
        );
        let p = patch(&svc, &wanted, Timestamp::now()).unwrap();
        assert_eq!(
            p["status"]["conditions"][0]["lastTransitionTime"],
            "1970-01-01T00:00:00Z"
        );
    }
}
