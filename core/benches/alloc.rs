//! Allocator benchmark (issue 4, section 4):
//! - 100,000 Services allocated from one IPv4 /15 pool;
//! - a rebuild of those 100,000 from status;
//! - 100,000 allocations from a 2001:db8::/64 pool.
//!
//! Each measured iteration does all 100,000 operations on a fresh allocator; the
//! requests (and the status list) are built outside the timing. Memory is measured by
//! the separate `alloc_memory` bench binary, so that its counting allocator does not
//! slow these timings down.
//!
//! Every scenario is measured twice: in wall-clock time (criterion's default) and in
//! CPU time of the benchmark thread (`/proc/thread-self/schedstat`). On a shared
//! machine other processes stretch wall-clock time; the thread's CPU time is what the
//! allocator itself costs.
//!
//! Run: `cargo bench -p ferrolb-core --bench alloc`

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ferrolb_config::{Config, IpRange, Pool};
use ferrolb_core::alloc::{Allocator, FamilyPolicy, IpFamily, Port, Protocol, Request};

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

/// One /15: 131,072 addresses, room for 100,000 Services.
fn v4_config() -> Config {
    Config {
        pools: vec![mk_pool("v4", "10.0.0.0", "10.1.255.255")],
        ..Config::default()
    }
}

fn v6_config() -> Config {
    Config {
        pools: vec![mk_pool("v6", "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff")],
        ..Config::default()
    }
}

/// A typical Service: its own namespace/name, one TCP port, no sharing.
fn mk_service(i: usize, family: IpFamily) -> Request {
    Request {
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
    }
}

fn requests(family: IpFamily) -> Vec<Request> {
    let mut v = Vec::with_capacity(N);
    v.extend((0..N).map(|i| mk_service(i, family)));
    v
}

fn allocate_all(config: Config, reqs: &[Request]) -> Allocator {
    let mut al = Allocator::new(config);
    for r in reqs {
        black_box(al.allocate(r).expect("pool large enough"));
    }
    al
}

/// What the Services' status would show: (request, IPs), cloned from a first run.
fn status_of(al: &Allocator, reqs: &[Request]) -> Vec<(Request, Vec<IpAddr>)> {
    let mut v = Vec::with_capacity(reqs.len());
    v.extend(
        reqs.iter()
            .map(|r| (r.clone(), al.get(&r.key).unwrap().ips.clone())),
    );
    v
}

/// CPU time consumed by the calling thread, in nanoseconds (Linux).
struct ThreadCpu {
    /// Borrowed for its nanosecond formatter.
    wall: WallTime,
}

fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("schedstat's first field is the thread's CPU time in ns")
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}

fn benches_wall(c: &mut Criterion) {
    benches(c, "allocator_100k_wall");
}

fn benches_cpu(c: &mut Criterion<ThreadCpu>) {
    benches(c, "allocator_100k_thread_cpu");
}

fn benches<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    let v4 = requests(IpFamily::V4);
    g.bench_function("allocate_100k_from_v4_slash15", |b| {
        b.iter_batched(
            v4_config,
            |cfg| allocate_all(cfg, &v4),
            BatchSize::PerIteration,
        )
    });

    // Status as the controller would hand it over: one (request, IPs) per Service.
    let status = status_of(&allocate_all(v4_config(), &v4), &v4);
    g.bench_function("rebuild_100k_from_status", |b| {
        b.iter_batched(
            v4_config,
            |cfg| {
                let mut al = Allocator::new(cfg);
                let items = status.iter().map(|(r, ips)| (r, ips.as_slice()));
                assert!(al.rebuild(items).is_empty());
                al
            },
            BatchSize::PerIteration,
        )
    });

    let v6 = requests(IpFamily::V6);
    g.bench_function("allocate_100k_from_v6_slash64", |b| {
        b.iter_batched(
            v6_config,
            |cfg| allocate_all(cfg, &v6),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(wall, benches_wall);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpu { wall: WallTime });
    targets = benches_cpu
}
criterion_main!(wall, cpu);
