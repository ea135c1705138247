//! Load benchmark of the controller against the embedded API server (a bench
//! binary, not criterion: the figures are latencies of a whole system).
//!
//! `cargo bench -p ferrolb-controller --bench controller_load`
//!
//! 1. Burst: 1,000 LoadBalancer Services created with 8 requests in flight
//!    (`BENCH_IN_FLIGHT` changes that); latency from each create's response to the
//!    watch showing its IP in status: p50, p99, max, and the time for the whole burst.
//! 2. Cold start: with 10,000 allocated Services, the controller is killed and
//!    started again: time from spawn to /readyz, and every IP compared.
//! 3. The controller's RSS: idle, after the burst, and after the cold start.
//!
//! `BENCH_BURST_ONLY=1` stops after the burst (1.); `BENCH_CONTROLLER_BIN=path` runs
//! another build of the controller (e.g. a static musl one, for comparison).
//!
//! `BENCH_KUBECONFIG=FILE` runs it against the API server of FILE's current context
//! instead of the embedded one: the pool ConfigMap (and with it the leader Lease and
//! the membership Secret) and the Services go into two namespaces of the run's own,
//! `flbbench-<pid>-<time>-system` and `-svc`, deleted at the end (also on a panic). The
//! Services are IPv6 single-stack, so the server must serve IPv6 Services; the
//! controller serves class-less LoadBalancer Services of the whole cluster, so use a
//! test cluster. The CPU figure then excludes the API server.
//!
//! Bounded: a fixed number of Services, every wait with a deadline.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

const BURST: usize = 1_000;
const COLD: usize = 10_000;
const IN_FLIGHT: usize = 8;

/// Creates in flight during the burst: `BENCH_IN_FLIGHT` (default 8). With 8, the
/// embedded API server on the 2-core benchmark machine creates the 1,000 Services in
/// about 0.3 s (~3,000/s, six times the rate the 2 s target for the whole burst
/// asks for, and 80-85% of the server's maximum, reached at 16). Past that, more
/// creates in flight mostly wait longer in the server's queue (Little's law), which
/// every request shares, the controller's status writes too; BENCHMARKS.md gives the
/// table from 1 to 32. With 1 (a client such as `kubectl apply`, which creates one
/// object at a time), the latency is that of one Service through an otherwise idle
/// system.
fn burst_in_flight() -> usize {
    std::env::var("BENCH_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(IN_FLIGHT)
}

fn ips(s: &Service) -> Vec<String> {
    s.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .map(|i| i.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

fn svc(name: &str, namespace: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace},
        // IPv6 single-stack: the embedded API server's IPv4 service range (a
        // documentation /24) cannot hold 10,000 cluster IPs.
        // No node ports either: 10,000 would overflow the 30000-32767 range, as on a real cluster.
        "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv6"], "allocateLoadBalancerNodePorts": false, "selector": {"app": name}, "ports": [{"port": 80}]}
    }))
    .unwrap()
}

fn spawn_controller(
    kubeconfig: &std::path::Path,
    config_namespace: &str,
    port: u16,
    log: &str,
) -> Child {
    // BENCH_CONTROLLER_WRAPPER (e.g. "heaptrack -o /tmp/ctl") runs the restarted
    // controller under a profiler; the figures of such a run are not the product's.
    let wrapper: Vec<String> = std::env::var("BENCH_CONTROLLER_WRAPPER")
        .ok()
        .filter(|_| log == "info")
        .map(|w| w.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    // BENCH_CONTROLLER_BIN runs another build of the controller, e.g. a static musl
    // binary for comparison (BENCHMARKS.md, "Controller").
    let bin = std::env::var_os("BENCH_CONTROLLER_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_ferrolb-controller").into());
    let mut cmd = match wrapper.split_first() {
        Some((prog, args)) => {
            let mut c = Command::new(prog);
            c.args(args).arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--config-namespace", config_namespace])
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--log-level",
            // As shipped by default: a debug filter (e.g. BENCH_CONTROLLER_LOG=
            // "info,ferrolb_process::malloc=debug" for the heap's use after each release)
            // runs code that adds ~0.5 MiB of resident pages.
            &std::env::var("BENCH_CONTROLLER_LOG").unwrap_or_else(|_| log.to_owned()),
        ])
        .args([
            "--lease-duration",
            "2s",
            "--renew-period",
            "500ms",
            "--identity",
            &format!("bench-{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ferrolb-controller")
}

async fn ready(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").await.is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf).await;
    buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) a process has used so far, from /proc/<pid>/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the ')'.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 1000 / 100)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Creates the Services; returns how long each create request took (its own wait in
/// the API server's queue, which the controller's status write shares).
async fn create_all(
    api: &Api<Service>,
    namespace: &str,
    names: Vec<String>,
    created: Arc<Mutex<HashMap<String, Instant>>>,
) -> Vec<Duration> {
    let took: Arc<Mutex<Vec<Duration>>> = Arc::default();
    futures::stream::iter(names)
        .for_each_concurrent(burst_in_flight(), |n| {
            let api = api.clone();
            let created = created.clone();
            let took = took.clone();
            async move {
                let sent = Instant::now();
                api.create(&PostParams::default(), &svc(&n, namespace))
                    .await
                    .unwrap_or_else(|e| panic!("creating Service {n} (IPv6 single-stack): {e}"));
                let now = Instant::now();
                took.lock().unwrap().push(now - sent);
                created.lock().unwrap().entry(n).or_insert(now);
            }
        })
        .await;
    let mut took = std::mem::take(&mut *took.lock().unwrap());
    took.sort();
    took
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` probes benches
    }
    if let Some(path) = std::env::var_os("BENCH_KUBECONFIG").filter(|v| !v.is_empty()) {
        let names = Names::external();
        println!(
            "against the external API server of {} (namespaces {} and {})",
            PathBuf::from(&path).display(),
            names.system_ns,
            names.svc_ns
        );
        let _cleanup = Cleanup {
            path: path.clone().into(),
            names: names.clone(),
        };
        runtime("bench", 2).block_on(bench(Target {
            server: None,
            kubeconfig: path.into(),
            names,
        }));
        return;
    }
    // The API server gets a runtime of its own, as it would have in a process of its
    // own: sharing the benchmark's workers would queue its requests behind the
    // benchmark's creators and observer, which a real API server never does.
    let server_rt = runtime(
        "apiserver",
        std::env::var("BENCH_SERVER_WORKERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2),
    );
    let opts = ferrolb_apiserver::ApiServerOptions {
        history: 200_000,
        ..Default::default()
    };
    let server = server_rt
        .block_on(ferrolb_apiserver::ApiServer::start(opts))
        .expect("API server");
    runtime("bench", 2).block_on(bench(Target {
        server: Some(&server),
        kubeconfig: PathBuf::new(),
        names: Names::embedded(),
    }));
    drop(server);
    server_rt.shutdown_timeout(Duration::from_secs(1));
}

/// A runtime with two workers (the machine's cores).
fn runtime(name: &str, workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The namespaces of a run.
#[derive(Debug, Clone)]
struct Names {
    /// The pool ConfigMap's (the controller's `--config-namespace`).
    system_ns: String,
    /// The Services'.
    svc_ns: String,
}

impl Names {
    /// ferrolb's default, Services in `default` (the embedded server holds nothing else).
    fn embedded() -> Names {
        Names {
            system_ns: "ferrolb-system".into(),
            svc_ns: "default".into(),
        }
    }

    /// Namespaces of the run's own on an external server.
    fn external() -> Names {
        let prefix = ferrolb_testkit::bench_run_prefix();
        Names {
            system_ns: format!("{prefix}system"),
            svc_ns: format!("{prefix}svc"),
        }
    }

    /// The namespaces the run creates.
    fn created(&self) -> Vec<String> {
        let mut out = vec![self.system_ns.clone()];
        if self.svc_ns != "default" {
            out.push(self.svc_ns.clone());
        }
        out
    }
}

/// The API server of a run: the embedded one, or the one of `kubeconfig`.
struct Target<'a> {
    server: Option<&'a ferrolb_apiserver::RunningApiServer>,
    kubeconfig: PathBuf,
    names: Names,
}

async fn client_from(path: &std::path::Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", path.display()));
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", path.display()));
    kube::Client::try_from(config).expect("client")
}

/// Deletes, when dropped, the namespaces an external run created (with everything in
/// them: Services, ConfigMap, the controller's Lease, Secret and Events), and waits
/// (bounded) until they are gone.
struct Cleanup {
    path: PathBuf,
    names: Names,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (path, names) = (self.path.clone(), self.names.clone());
        // A thread and runtime of its own: the bench's may be gone or blocked.
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async move {
                let api: Api<Namespace> = Api::all(client_from(&path).await);
                for ns in names.created() {
                    if let Err(e) = api.delete(&ns, &Default::default()).await {
                        eprintln!("cleanup: deleting namespace {ns}: {e}");
                    }
                }
                let deadline = Instant::now() + Duration::from_secs(300);
                for ns in names.created() {
                    while Instant::now() < deadline && !matches!(api.get_opt(&ns).await, Ok(None)) {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                println!(
                    "cleanup: deleted the namespaces {} from the external API server",
                    names.created().join(", ")
                );
            });
        });
        let _ = worker.join();
    }
}

async fn bench(target: Target<'_>) {
    let dir = std::env::temp_dir().join(format!("ferrolb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = match target.server {
        Some(server) => {
            let path = dir.join("kubeconfig");
            server.write_kubeconfig(&path).unwrap();
            path
        }
        None => target.kubeconfig.clone(),
    };
    let client = client_from(&kubeconfig).await;
    let (system_ns, svc_ns) = (
        target.names.system_ns.as_str(),
        target.names.svc_ns.as_str(),
    );

    for name in target.names.created() {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    }
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "ferrolb-config", "namespace": system_ns},
        "data": {"config.yaml": "pools:\n  - name: bench\n    addresses: [\"2001:db8:100::/104\"]\n"}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), system_ns)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();

    let port = ferrolb_testkit::free_port();
    let mut ctl = spawn_controller(&kubeconfig, system_ns, port, "warn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(port).await {
        assert!(Instant::now() < deadline, "controller not ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    println!(
        "controller RSS idle (no Service): {:.1} MiB",
        rss_kib(ctl.id()) as f64 / 1024.0
    );

    // Watch from now: when did each Service first show an IP?
    let api: Api<Service> = Api::namespaced(client.clone(), svc_ns);
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // ... and when did the same watch first show the Service at all?
    let appeared: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // The observer runs on a thread and runtime of its own, as a client elsewhere
    // would: on the creators' runtime, its events would wait behind their work.
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel::<()>();
    {
        let seen = seen.clone();
        let appeared = appeared.clone();
        let kubeconfig = kubeconfig.clone();
        let svc_ns = svc_ns.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("observer runtime");
            rt.block_on(async move {
                let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
                let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .expect("client config");
                let client = kube::Client::try_from(config).expect("client");
                let api: Api<Service> = Api::namespaced(client, &svc_ns);
                let mut synced_tx = Some(synced_tx);
                let mut w = watcher::watcher(api, watcher::Config::default()).boxed();
                while let Ok(Some(ev)) = w.try_next().await {
                    if let watcher::Event::InitDone = ev
                        && let Some(tx) = synced_tx.take()
                    {
                        let _ = tx.send(());
                    }
                    if let watcher::Event::Apply(s) | watcher::Event::InitApply(s) = &ev {
                        appeared
                            .lock()
                            .unwrap()
                            .entry(s.metadata.name.clone().unwrap_or_default())
                            .or_insert_with(Instant::now);
                    }
                    if let watcher::Event::Apply(s) | watcher::Event::InitApply(s) = ev
                        && !ips(&s).is_empty()
                    {
                        let name = s.metadata.name.clone().unwrap_or_default();
                        seen.lock()
                            .unwrap()
                            .entry(name)
                            .or_insert_with(Instant::now);
                    }
                }
            });
        });
    }
    synced_rx.await.expect("observer watch synced");

    // 1. Burst.
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let names: Vec<String> = (0..BURST).map(|i| format!("burst-{i:05}")).collect();
    let t0 = Instant::now();
    let (ctl_cpu0, own_cpu0) = (cpu_time(ctl.id()), cpu_time(std::process::id()));
    let create_took = create_all(&api, svc_ns, names.clone(), created.clone()).await;
    let creates_done = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < BURST {
        assert!(
            Instant::now() < deadline,
            "burst: only {} of {BURST} allocated",
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let last = *seen.lock().unwrap().values().max().unwrap();
    let burst_total = last - t0;
    let (ctl_cpu, own_cpu) = (
        cpu_time(ctl.id()) - ctl_cpu0,
        cpu_time(std::process::id()) - own_cpu0,
    );
    let mut lat: Vec<Duration> = {
        let seen = seen.lock().unwrap();
        let created = created.lock().unwrap();
        names
            .iter()
            .map(|n| seen[n].saturating_duration_since(created[n]))
            .collect()
    };
    lat.sort();
    // The watch's own delay: create response -> the watch shows the new Service.
    let mut watch_lat: Vec<Duration> = {
        let appeared = appeared.lock().unwrap();
        let created = created.lock().unwrap();
        names
            .iter()
            .map(|n| appeared[n].saturating_duration_since(created[n]))
            .collect()
    };
    watch_lat.sort();
    println!(
        "burst: {BURST} Services, {} creates in flight, whole burst {burst_total:?}",
        burst_in_flight()
    );
    println!(
        "  last create answered after {creates_done:?}; CPU during the burst: controller {ctl_cpu:?}, \
         {} {own_cpu:?}",
        if target.server.is_some() {
            "API server + creators + observer"
        } else {
            "creators + observer (the API server is external, its CPU not counted)"
        }
    );
    println!(
        "  create->status latency p50 {:?}  p99 {:?}  max {:?}",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        lat[lat.len() - 1]
    );
    println!(
        "  (of which create->the watch shows the Service: p50 {:?}  p99 {:?})",
        pct(&watch_lat, 0.5),
        pct(&watch_lat, 0.99)
    );
    println!(
        "  each create request itself (sent -> answered): p50 {:?}  p99 {:?}",
        pct(&create_took, 0.5),
        pct(&create_took, 0.99)
    );

    println!(
        "controller RSS after the burst: {:.1} MiB",
        rss_kib(ctl.id()) as f64 / 1024.0
    );

    if std::env::var_os("BENCH_BURST_ONLY").is_some() {
        let _ = ctl.kill();
        let _ = ctl.wait();
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }

    // 2. Cold start with 10,000 allocated Services.
    let more: Vec<String> = (BURST..COLD).map(|i| format!("cold-{i:05}")).collect();
    let t = Instant::now();
    futures::stream::iter(more.clone())
        .for_each_concurrent(IN_FLIGHT, |n| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &svc(&n, svc_ns))
                    .await
                    .expect("create");
            }
        })
        .await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen.lock().unwrap().len() < COLD {
        assert!(
            Instant::now() < deadline,
            "cold: only {} of {COLD} allocated",
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "setup: {} more Services allocated in {:?}",
        COLD - BURST,
        t.elapsed()
    );
    let before: BTreeMap<String, Vec<String>> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| (s.metadata.name.clone().unwrap(), ips(s)))
        .collect();
    assert_eq!(before.len(), COLD);
    let _ = ctl.kill();
    let _ = ctl.wait();
    // Same identity, as a restarted pod keeps its name: it renews its own
    // Lease at once, so this measures the cold start, not a Lease expiry.
    let t = Instant::now();
    // Its start-up log shows the phases (caches synced, leading, rebuilt).
    let mut ctl = spawn_controller(&kubeconfig, system_ns, port, "info");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(port).await {
        assert!(
            Instant::now() < deadline,
            "controller not ready after restart"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cold = t.elapsed();
    println!(
        "controller RSS when ready after the restart: {:.1} MiB",
        rss_kib(ctl.id()) as f64 / 1024.0
    );
    // Let it reconcile everything, then compare every IP.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: BTreeMap<String, Vec<String>> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| (s.metadata.name.clone().unwrap(), ips(s)))
        .collect();
    let changed = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(*v))
        .count();
    println!(
        "cold start: {COLD} Services, spawn -> ready {cold:?}; IPs changed: {changed} of {}",
        before.len()
    );
    let rss = rss_kib(ctl.id());
    println!(
        "controller RSS after the run: {:.1} MiB",
        rss as f64 / 1024.0
    );
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", ctl.id())) {
        let parts: Vec<&str> = status
            .lines()
            .filter(|l| l.starts_with("Rss") || l.starts_with("VmHWM"))
            .collect();
        println!(
            "  {}",
            parts
                .join("; ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let _ = ctl.kill();
    let _ = ctl.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(changed, 0, "a restart must change no IP");
}
