//! Reconcile decisions on plain data: given a Service (its [`ServiceView`]) and the
//! allocator, what the Service's status must say and which Events to emit. No API
//! calls here; `term` carries the decision out.

use std::net::IpAddr;

use ferrolb_config::Config;
use ferrolb_core::alloc::{AllocError, Allocator};

use crate::error::{Failure, NoteReason};
use crate::service::{Handling, ServiceView};
use crate::status::Wanted;

/// Event to publish on the Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// The Event's reason.
    pub reason: NoteReason,
    /// Human-readable text.
    pub message: String,
}

/// What reconciling one Service decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceDecision {
    /// The status to write; `None` leaves the status alone.
    pub wanted: Option<Wanted>,
    /// Events to publish, in order.
    pub notes: Vec<Note>,
    /// Why allocation failed, when it did.
    pub failure: Option<Failure>,
    /// True when an allocation was made or changed.
    pub allocated: bool,
    /// True when an allocation was released.
    pub released: bool,
}

/// Decides for one Service. `config` is `None` while no pool ConfigMap exists; `cm`
/// names the ConfigMap in the Event that says so.
pub fn decide(
    alloc: &mut Allocator,
    config: Option<&Config>,
    svc: &ServiceView,
    cm: &str,
) -> ServiceDecision {
    let key = svc.holder_key();
    let request = match &svc.handling {
        Handling::NotHandled(_) => return withdraw(alloc, config, svc, key),
        Handling::Handled(request) => request,
    };
    let current = &svc.status_ips;
    let Some(_) = config else {
        // Without any configuration nothing is allocated, and nothing already
        // written is taken away: only Services still waiting are told why.
        if !current.is_empty() {
            return ServiceDecision::default();
        }
        let message = format!("no pool configuration: ConfigMap {cm} does not exist");
        return fail(alloc, key, Failure::NoConfiguration, message);
    };
    let req = match request {
        Ok(r) => r,
        Err(message) => return fail(alloc, key, Failure::InvalidRequest, message.clone()),
    };

    let mut notes = Vec::new();
    // A status ferrolb did not write was given by the tool ferrolb replaces.
    let foreign = !current.is_empty() && !svc.our_condition;
    if foreign && let Some(note) = outside_pools(alloc.config(), current) {
        // Never renumber a Service behind its users' back: the address stays (and
        // is still announced) until the operator adds it to a pool or clears it.
        return ServiceDecision {
            notes: vec![note],
            ..ServiceDecision::default()
        };
    }
    if alloc.get(key).is_none() && !current.is_empty() {
        // Adopt what the status already says (restart, a missed event, or the
        // previous tool's address) so that no Service changes IP; a conflict
        // means someone older holds it.
        match alloc.assign_existing(req, current) {
            Ok(_) => {}
            Err(e @ AllocError::IpInUse { .. }) => notes.push(Note {
                warning: true,
                reason: NoteReason::IpConflict,
                message: format!("{e}; allocating another"),
            }),
            Err(e) if foreign => notes.push(Note {
                warning: true,
                reason: NoteReason::IpNotAdopted,
                message: format!(
                    "{} in the status (written by another load-balancer implementation) cannot be kept: {e}; allocating another",
                    crate::status::ip_list(current)
                ),
            }),
            Err(_) => {}
        }
    }
    match alloc.allocate(req) {
        Ok(a) => {
            let changed = a.ips != *current;
            if foreign && current.iter().all(|ip| a.ips.contains(ip)) {
                notes.push(Note {
                    warning: false,
                    reason: NoteReason::IpAdopted,
                    message: format!(
                        "adopted {} (written to the status by another load-balancer implementation) into pool {}",
                        crate::status::ip_list(current),
                        a.pool
                    ),
                });
            }
            if changed {
                let ips = crate::status::ip_list(&a.ips);
                notes.push(Note {
                    warning: false,
                    reason: NoteReason::IpAllocated,
                    message: format!("allocated {ips} from pool {}", a.pool),
                });
            }
            ServiceDecision {
                wanted: Some(Wanted::Allocated {
                    ips: a.ips,
                    pool: a.pool,
                }),
                notes,
                allocated: changed,
                ..ServiceDecision::default()
            }
        }
        Err(e) => {
            let mut d = fail(alloc, key, Failure::Allocation(e.reason()), e.to_string());
            notes.append(&mut d.notes);
            d.notes = notes;
            d
        }
    }
}

/// The Warning for a status whose addresses lie outside every pool, if any does.
fn outside_pools(config: &Config, current: &[IpAddr]) -> Option<Note> {
    let outside: Vec<IpAddr> = current
        .iter()
        .copied()
        .filter(|ip| !config.pools.iter().any(|p| p.contains(*ip)))
        .collect();
    if outside.is_empty() {
        return None;
    }
    let ips = crate::status::ip_list(&outside);
    Some(Note {
        warning: true,
        reason: NoteReason::IpNotInPool,
        message: format!(
            "{ips} in the status (written by another load-balancer implementation) lies in no ferrolb address pool; \
             it is left as it is, neither adopted nor replaced: add it to a pool to adopt it, or clear the \
             Service's status.loadBalancer to have ferrolb allocate a new address"
        ),
    })
}

/// The Service is not (or no longer) ferrolb's: release and clear only what ferrolb wrote.
fn withdraw(
    alloc: &mut Allocator,
    config: Option<&Config>,
    svc: &ServiceView,
    key: &str,
) -> ServiceDecision {
    let released = alloc.release(key);
    let mut ours: Vec<IpAddr> = released.as_ref().map(|a| a.ips.clone()).unwrap_or_default();
    if svc.our_condition {
        // After a restart the allocator does not know foreign Services; the
        // condition proves ferrolb wrote the status, so its pool IPs are ours.
        for &ip in &svc.status_ips {
            if !ours.contains(&ip) && config.is_none_or(|c| c.pools.iter().any(|p| p.contains(ip)))
            {
                ours.push(ip);
            }
        }
    }
    if ours.is_empty() && !svc.our_condition {
        return ServiceDecision::default();
    }
    let mut notes = Vec::new();
    if let Some(a) = &released {
        let ips = crate::status::ip_list(&a.ips);
        notes.push(Note {
            warning: false,
            reason: NoteReason::IpReleased,
            message: format!("released {ips}: the Service is no longer a ferrolb LoadBalancer"),
        });
    }
    ServiceDecision {
        wanted: Some(Wanted::Withdrawn { ours }),
        notes,
        released: released.is_some(),
        ..ServiceDecision::default()
    }
}

fn fail(alloc: &mut Allocator, key: &str, failure: Failure, message: String) -> ServiceDecision {
    // No half-result: whatever the Service held is given back.
    let released = alloc.release(key).is_some();
    ServiceDecision {
        wanted: Some(Wanted::Failed {
            reason: failure.metric_label().to_owned(),
            message: message.clone(),
        }),
        notes: vec![Note {
            warning: true,
            reason: NoteReason::AllocationFailed,
            message,
        }],
        failure: Some(failure),
        released,
        ..ServiceDecision::default()
    }
}

/// Rebuilds the allocator from the IPs already in the Services' status,
/// oldest Service first, so that of two Services claiming one IP the older
/// keeps it. Only Services ferrolb handles and whose request is valid count.
/// Returns how many Services were adopted.
pub fn rebuild(alloc: &mut Allocator, services: impl IntoIterator<Item = ServiceView>) -> usize {
    let items: Vec<_> = services
        .into_iter()
        .filter_map(|s| match s.handling {
            Handling::Handled(Ok(req)) if !s.status_ips.is_empty() => Some((req, s.status_ips)),
            _ => None,
        })
        .collect();
    let total = items.len();
    total - alloc.rebuild(items).len()
}

/// After a configuration change: adopts the status addresses of Services the
/// allocator does not hold (an address another tool gave, outside the old
/// pools but inside the new ones) before any Service is reconciled, so that
/// none of them is handed to another Service first. Returns how many.
pub fn adopt_unheld(
    alloc: &mut Allocator,
    services: impl IntoIterator<Item = ServiceView>,
) -> usize {
    let unheld: Vec<ServiceView> = services
        .into_iter()
        .filter(|s| alloc.get(s.holder_key()).is_none())
        .collect();
    rebuild(alloc, unheld)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::NotHandled;
    use crate::slim::LbService;
    use ferrolb_config::{IpRange, Pool};
    use ferrolb_core::alloc::Request;
    use ferrolb_core::service::ServiceKey;

    const CLASS: &str = "ferrolb.io/lb";
    const CM: &str = "ferrolb-system/ferrolb-config";

    fn mk_pool(name: &str, first: &str, last: &str) -> Pool {
        Pool {
            name: name.into(),
            ranges: vec![IpRange {
                start: first.parse().unwrap(),
                end: last.parse().unwrap(),
            }],
            auto_assign: true,
            avoid_buggy_ips: false,
            namespaces: None,
            service_selector: None,
            labels: Default::default(),
        }
    }

    fn mk_config(pools: Vec<Pool>) -> Config {
        Config {
            pools,
            ..Config::default()
        }
    }

    /// A LoadBalancer Service `default/<name>` that ferrolb handles, created at
    /// `created` (seconds since the epoch), asking for nothing in particular, with an
    /// empty status.
    fn view(name: &str, created: i64) -> ServiceView {
        ServiceView {
            key: ServiceKey::new("default", name).to_string(),
            handling: Handling::Handled(Ok(Request {
                key: format!("default/{name}"),
                namespace: "default".into(),
                created,
                ..Request::default()
            })),
            status_ips: Vec::new(),
            our_condition: false,
        }
    }

    /// `v` with `ips` in its status, written by ferrolb (its condition is there) when
    /// `ours`, else by another implementation.
    fn with_status(mut v: ServiceView, ips: &[&str], ours: bool) -> ServiceView {
        v.status_ips = ips.iter().map(|ip| ip.parse().unwrap()).collect();
        v.our_condition = ours;
        v
    }

    /// `v` as a Service ferrolb no longer handles.
    fn not_handled(v: ServiceView, why: NotHandled) -> ServiceView {
        ServiceView {
            handling: Handling::NotHandled(why),
            ..v
        }
    }

    /// The view of a Service object, as the reconcile reads it.
    fn view_of(svc: serde_json::Value) -> ServiceView {
        ServiceView::new(&serde_json::from_value::<LbService>(svc).unwrap(), CLASS)
    }

    fn ips(d: &ServiceDecision) -> Vec<String> {
        match &d.wanted {
            Some(Wanted::Allocated { ips, .. }) => ips.iter().map(ToString::to_string).collect(),
            other => panic!("expected an allocation, got {other:?}"),
        }
    }

    fn setup() -> (Allocator, Config) {
        let c = mk_config(vec![mk_pool("lan", "192.0.2.10", "192.0.2.11")]);
        (Allocator::new(c.clone()), c)
    }

    #[test]
    fn the_builders_stand_for_the_services_they_name() {
        let svc = |status: serde_json::Value| {
            serde_json::json!({
                "metadata": {"name": "web", "namespace": "default", "resourceVersion": "1",
                    "creationTimestamp": "1970-01-01T00:00:01Z"},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
                "status": status
            })
        };
        assert_eq!(view_of(svc(serde_json::json!({}))), view("web", 1));
        let ingress = serde_json::json!({"ingress": [{"ip": "192.0.2.11"}]});
        assert_eq!(
            view_of(svc(serde_json::json!({"loadBalancer": ingress}))),
            with_status(view("web", 1), &["192.0.2.11"], false)
        );
        let condition = serde_json::json!([{"type": crate::service::CONDITION_TYPE,
            "status": "True", "reason": "Allocated", "message": "",
            "lastTransitionTime": "1970-01-01T00:00:00Z"}]);
        assert_eq!(
            view_of(svc(
                serde_json::json!({"loadBalancer": ingress, "conditions": condition})
            )),
            with_status(view("web", 1), &["192.0.2.11"], true)
        );
    }

    #[test]
    fn new_service_gets_lowest_ip_and_an_event() {
        let (mut a, c) = setup();
        let d = decide(&mut a, Some(&c), &view("web", 1), CM);
        assert_eq!(ips(&d), ["192.0.2.10"]);
        assert!(d.allocated);
        assert_eq!(d.notes.len(), 1);
        assert_eq!(d.notes[0].reason, NoteReason::IpAllocated);
        assert!(d.notes[0].message.contains("192.0.2.10") && d.notes[0].message.contains("lan"));
    }

    #[test]
    fn service_already_showing_its_ip_gets_no_new_event() {
        let (mut a, c) = setup();
        let svc = with_status(view("web", 1), &["192.0.2.11"], true);
        let d = decide(&mut a, Some(&c), &svc, CM);
        assert_eq!(
            ips(&d),
            ["192.0.2.11"],
            "the IP in status is kept, not moved to the lowest"
        );
        assert!(d.notes.is_empty());
        assert!(!d.allocated);
    }

    #[test]
    fn foreign_class_and_other_types_are_left_alone() {
        let (mut a, c) = setup();
        let svc = not_handled(view("web", 1), NotHandled::OtherClass);
        assert_eq!(
            decide(&mut a, Some(&c), &svc, CM),
            ServiceDecision::default()
        );
        let svc = with_status(view("web", 1), &["203.0.113.5"], false);
        let svc = not_handled(svc, NotHandled::NotLoadBalancer);
        assert_eq!(
            decide(&mut a, Some(&c), &svc, CM),
            ServiceDecision::default()
        );
    }

    #[test]
    fn type_change_releases_and_withdraws_only_ours() {
        let (mut a, c) = setup();
        let svc = view("web", 1);
        let d = decide(&mut a, Some(&c), &svc, CM);
        assert_eq!(ips(&d), ["192.0.2.10"]);
        let svc = with_status(svc, &["192.0.2.10", "203.0.113.5"], true);
        let svc = not_handled(svc, NotHandled::NotLoadBalancer);
        let d = decide(&mut a, Some(&c), &svc, CM);
        assert!(d.released);
        assert_eq!(
            d.wanted,
            Some(Wanted::Withdrawn {
                ours: vec!["192.0.2.10".parse().unwrap()]
            })
        );
        assert_eq!(d.notes[0].reason, NoteReason::IpReleased);
        assert!(a.get("default/web").is_none());
    }

    #[test]
    fn a_service_being_deleted_gives_its_address_back_at_once() {
        let (mut a, c) = setup();
        let svc = with_status(view("web", 1), &["192.0.2.10"], true);
        assert_eq!(ips(&decide(&mut a, Some(&c), &svc, CM)), ["192.0.2.10"]);
        let d = decide(
            &mut a,
            Some(&c),
            &not_handled(svc, NotHandled::Deleting),
            CM,
        );
        assert!(d.released);
        assert!(a.is_free("192.0.2.10".parse().unwrap()));
    }

    #[test]
    fn exhausted_pool_fails_with_warning_and_no_half_result() {
        let (mut a, c) = setup();
        decide(&mut a, Some(&c), &view("a", 1), CM);
        decide(&mut a, Some(&c), &view("b", 2), CM);
        let d = decide(&mut a, Some(&c), &view("c", 3), CM);
        assert_eq!(d.failure, Some(Failure::Allocation("PoolExhausted")));
        assert!(
            matches!(&d.wanted, Some(Wanted::Failed { reason, .. }) if reason == "PoolExhausted")
        );
        assert!(d.notes[0].warning && d.notes[0].reason == NoteReason::AllocationFailed);
        assert!(a.get("default/c").is_none());
    }

    #[test]
    fn bad_annotation_is_an_invalid_request() {
        let (mut a, c) = setup();
        let svc = view_of(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default",
                "annotations": {"ferrolb.io/loadBalancerIPs": "not-an-ip"}},
            "spec": {"type": "LoadBalancer"}
        }));
        let d = decide(&mut a, Some(&c), &svc, CM);
        assert_eq!(d.failure, Some(Failure::InvalidRequest));
        assert!(d.notes[0].message.contains("not-an-ip"), "{:?}", d.notes);
    }

    #[test]
    fn without_configuration_nothing_is_allocated_and_nothing_taken() {
        let (mut a, _) = setup();
        let d = decide(&mut a, None, &view("new", 1), CM);
        assert_eq!(d.failure, Some(Failure::NoConfiguration));
        assert!(d.notes[0].message.contains(CM));
        let held = with_status(view("old", 1), &["192.0.2.10"], true);
        assert_eq!(decide(&mut a, None, &held, CM), ServiceDecision::default());
    }

    #[test]
    fn rebuild_keeps_ips_and_the_older_service_wins_a_duplicate() {
        let (mut a, c) = setup();
        let older = with_status(view("older", 100), &["192.0.2.11"], true);
        let younger = with_status(view("younger", 200), &["192.0.2.11"], true);
        // Order of the list must not matter.
        let adopted = rebuild(&mut a, [younger.clone(), older]);
        assert_eq!(adopted, 1);
        assert_eq!(
            a.get("default/older").unwrap().ips,
            vec!["192.0.2.11".parse::<IpAddr>().unwrap()]
        );
        let d = decide(&mut a, Some(&c), &younger, CM);
        assert_eq!(ips(&d), ["192.0.2.10"], "the younger one moves");
        assert_eq!(d.notes[0].reason, NoteReason::IpConflict);
        assert!(d.notes[0].warning);
        assert_eq!(d.notes[1].reason, NoteReason::IpAllocated);
    }

    #[test]
    fn rebuild_skips_services_not_handled_or_invalid() {
        let (mut a, _) = setup();
        let gone = not_handled(
            with_status(view("gone", 1), &["192.0.2.10"], true),
            NotHandled::Deleting,
        );
        let mut invalid = with_status(view("invalid", 2), &["192.0.2.11"], true);
        invalid.handling = Handling::Handled(Err("bad annotation".into()));
        assert_eq!(rebuild(&mut a, [gone, invalid]), 0);
        assert!(a.is_free("192.0.2.10".parse().unwrap()));
        assert!(a.is_free("192.0.2.11".parse().unwrap()));
    }

    #[test]
    fn a_previous_tools_address_in_a_pool_is_adopted_with_an_event() {
        let (mut a, c) = setup();
        // Written by the tool ferrolb replaces: no ferrolb condition.
        let svc = with_status(view("web", 1), &["192.0.2.11"], false);
        let d = decide(&mut a, Some(&c), &svc, CM);
        assert_eq!(ips(&d), ["192.0.2.11"], "kept, not moved to the lowest");
        assert!(!d.allocated);
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
        assert_eq!(d.notes[0].reason, NoteReason::IpAdopted);
        assert!(!d.notes[0].warning);
        assert_eq!(
            d.notes[0].message,
            "adopted 192.0.2.11 (written to the status by another load-balancer implementation) into pool lan"
        );
        assert_eq!(
            a.get("default/web").unwrap().ips,
            vec!["192.0.2.11".parse::<IpAddr>().unwrap()]
        );
        // The status write adds ferrolb's condition; once it is there, no more events.
        let svc = with_status(view("web", 1), &["192.0.2.11"], true);
        let d = decide(&mut a, Some(&c), &svc, CM);
        assert_eq!(ips(&d), ["192.0.2.11"]);
        assert!(d.notes.is_empty());
    }

    #[test]
    fn adoption_after_rebuild_changes_no_address() {
        let (mut a, c) = setup();
        let svcs: Vec<ServiceView> = [("a", "192.0.2.11"), ("b", "192.0.2.10")]
            .iter()
            .enumerate()
            .map(|(i, (n, ip))| with_status(view(n, i as i64), &[ip], false))
            .collect();
        assert_eq!(rebuild(&mut a, svcs.clone()), 2);
        for svc in &svcs {
            let d = decide(&mut a, Some(&c), svc, CM);
            let before = svc.status_ips[0].to_string();
            assert_eq!(ips(&d), [before]);
            assert_eq!(
                d.notes.iter().map(|n| n.reason).collect::<Vec<_>>(),
                [NoteReason::IpAdopted]
            );
        }
    }

    #[test]
    fn a_previous_tools_address_outside_every_pool_is_reported_and_left_alone() {
        let (mut a, c) = setup();
        let svc = with_status(view("web", 1), &["203.0.113.50"], false);
        let d = decide(&mut a, Some(&c), &svc, CM);
        assert_eq!(d.wanted, None, "the status is not touched");
        assert!(!d.allocated);
        assert_eq!(d.notes.len(), 1);
        assert!(d.notes[0].warning);
        assert_eq!(d.notes[0].reason, NoteReason::IpNotInPool);
        assert!(
            d.notes[0].message.starts_with(
                "203.0.113.50 in the status (written by another load-balancer implementation) lies in no ferrolb address pool; it is left as it is, neither adopted nor replaced"
            ),
            "{}",
            d.notes[0].message
        );
        assert!(a.get("default/web").is_none());
        assert!(a.is_free("192.0.2.10".parse().unwrap()));
        // Dual-stack with one address outside: left alone too.
        let svc = with_status(view("ds", 1), &["192.0.2.10", "2001:db8::1"], false);
        let d = decide(&mut a, Some(&c), &svc, CM);
        assert_eq!(d.wanted, None);
        assert!(d.notes[0].message.starts_with("2001:db8::1 in the status"));
    }

    #[test]
    fn ferrolbs_own_address_outside_the_pools_is_still_reallocated() {
        // The pools changed while the controller was down: ferrolb's own status is
        // ferrolb's to correct (the configuration change renumbers, as documented).
        let (mut a, c) = setup();
        let svc = with_status(view("web", 1), &["203.0.113.50"], true);
        let d = decide(&mut a, Some(&c), &svc, CM);
        assert_eq!(ips(&d), ["192.0.2.10"]);
        assert_eq!(d.notes[0].reason, NoteReason::IpAllocated);
    }

    #[test]
    fn a_previous_tools_address_the_pool_does_not_allow_is_reported_then_replaced() {
        let mut pool = mk_pool("lan", "192.0.2.10", "192.0.2.11");
        pool.namespaces = Some(vec!["prod".into()]);
        let c = mk_config(vec![pool, mk_pool("other", "198.51.100.1", "198.51.100.1")]);
        let mut a = Allocator::new(c.clone());
        let svc = with_status(view("web", 1), &["192.0.2.11"], false);
        let d = decide(&mut a, Some(&c), &svc, CM);
        assert_eq!(ips(&d), ["198.51.100.1"]);
        assert_eq!(d.notes[0].reason, NoteReason::IpNotAdopted);
        assert!(d.notes[0].warning);
        assert!(
            d.notes[0].message.contains("192.0.2.11 in the status")
                && d.notes[0].message.contains("not in the pool's namespaces"),
            "{}",
            d.notes[0].message
        );
        assert_eq!(d.notes[1].reason, NoteReason::IpAllocated);
    }

    #[test]
    fn a_configuration_change_adopts_addresses_before_anyone_else_takes_them() {
        let (mut a, c) = setup();
        let held = with_status(view("held", 1), &["192.0.2.10"], true);
        let outside = with_status(view("outside", 2), &["203.0.113.50"], false);
        let both = [held, outside];
        assert_eq!(rebuild(&mut a, both.clone()), 1);
        // The outside address joins a pool: adopted at once, the held one untouched.
        let mut c2 = c.clone();
        c2.pools
            .push(mk_pool("legacy", "203.0.113.50", "203.0.113.50"));
        assert!(a.set_config(c2.clone()).is_empty());
        assert_eq!(adopt_unheld(&mut a, both.clone()), 1);
        assert_eq!(
            a.get("default/outside").unwrap().ips,
            vec!["203.0.113.50".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(a.get("default/outside").unwrap().pool, "legacy");
        assert_eq!(adopt_unheld(&mut a, both), 0, "nothing left to adopt");
    }
}
