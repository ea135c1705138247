//! Memory of the allocator for 100,000 Services (issue 4, section 4: ≤ 50 MiB).
//!
//! A counting global allocator (`cap`, a safe wrapper around the system allocator)
//! reports the heap bytes the allocator holds after each scenario — the same three as
//! the `alloc` timing bench — and the peak reached while building it (hash-table growth
//! briefly holds old and new tables). Bytes are those requested from the system
//! allocator; malloc's own per-block bookkeeping is not included.
//!
//! Run: `cargo bench -p ferrolb-core --bench alloc_memory`

use std::net::IpAddr;

use cap::Cap;
use ferrolb_config::{Config, IpRange, Pool};
use ferrolb_core::alloc::{Allocator, FamilyPolicy, IpFamily, Port, Protocol, Request};

#[global_allocator]
static HEAP: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

const N: usize = 100_000;

fn mk_pool(name: &str, start: &str, end: &str) -> Pool {
    Pool {
        name: name.to_string(),
        ranges: vec![IpRange {
            start: start.parse().unwrap(),
            end: end.parse().unwrap(),
        }],
        auto_assign: true,
        avoid_buggy_ips: false,
        namespaces: None,
        service_selector: None,
        labels: Default::default(),
    }
}

fn config(pool: Pool) -> Config {
    Config {
        pools: vec![pool],
        ..Config::default()
    }
}

/// The same Services as the timing bench: own name, one TCP port, no sharing.
fn requests(family: IpFamily) -> Vec<Request> {
    let mut v = Vec::with_capacity(N);
    v.extend((0..N).map(|i| Request {
        key: format!("bench/svc-{i:06}"),
        namespace: "bench".to_string(),
        families: vec![family],
        family_policy: FamilyPolicy::SingleStack,
        ports: vec![Port {
            protocol: Protocol::Tcp,
            port: 80,
        }],
        created: i as i64,
        ..Request::default()
    }));
    v
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Prints the heap held by the allocator `f` builds and the peak while it ran, both
/// relative to the heap before. Each scenario runs in its own process (see `main`), so
/// the process-wide peak belongs to that scenario alone.
fn measure(what: &str, f: impl FnOnce() -> Allocator) {
    let base = HEAP.allocated();
    let peak_before = HEAP.max_allocated();
    let al = f();
    let held = HEAP.allocated() - base;
    let peak = HEAP.max_allocated().max(peak_before) - base;
    assert_eq!(al.len(), N);
    println!(
        "{what}: {:.1} MiB held ({held} bytes, {:.0} B per Service), peak while building {:.1} MiB",
        mib(held),
        held as f64 / N as f64,
        mib(peak),
    );
}

fn v4_pool() -> Config {
    config(mk_pool("v4", "10.0.0.0", "10.1.255.255"))
}

fn allocate_all(cfg: Config, reqs: &[Request]) -> Allocator {
    let mut al = Allocator::new(cfg);
    for r in reqs {
        al.allocate(r).unwrap();
    }
    al
}

fn scenario(n: u32) {
    match n {
        0 => {
            let v4 = requests(IpFamily::V4);
            measure("100,000 allocations from a /15", || {
                allocate_all(v4_pool(), &v4)
            });
        }
        1 => {
            let v4 = requests(IpFamily::V4);
            let first = allocate_all(v4_pool(), &v4);
            let status: Vec<(&Request, Vec<IpAddr>)> = v4
                .iter()
                .map(|r| (r, first.get(&r.key).unwrap().ips.clone()))
                .collect();
            drop(first);
            measure("rebuild of 100,000 from status", || {
                let mut al = Allocator::new(v4_pool());
                assert!(
                    al.rebuild(status.iter().map(|(r, ips)| (*r, ips.as_slice())))
                        .is_empty()
                );
                al
            });
        }
        _ => {
            let v6 = requests(IpFamily::V6);
            let cfg = config(mk_pool("v6", "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"));
            measure("100,000 allocations from a /64", || allocate_all(cfg, &v6));
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a child is told its scenario by `ALLOC_MEMORY_SCENARIO`.
    if let Ok(n) = std::env::var("ALLOC_MEMORY_SCENARIO") {
        scenario(n.parse().expect("scenario number"));
        return;
    }
    let me = std::env::current_exe().expect("own path");
    for n in 0..3 {
        let status = std::process::Command::new(&me)
            .env("ALLOC_MEMORY_SCENARIO", n.to_string())
            .status()
            .expect("run scenario");
        assert!(status.success(), "scenario {n} failed");
    }
}
