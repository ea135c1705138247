//! `lab`: ferrolb on one machine. Builds a layer-2 network of namespaces with N nodes,
//! runs the embedded API server, the ferrolb controller and one speaker per node, and
//! lets you break nodes and the network to watch failover. Needs root and iproute2
//! (nftables for `isolate` and `loss`, iputils-ping for `ping`).
//!
//!     sudo cargo run --release -p ferrolb-lab --bin lab
//!     sudo cargo run --release -p ferrolb-lab --bin lab -- --kubeconfig ~/.kube/test-cluster

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use ferrolb_lab::bench::{self, DISRUPTIONS, Disruption, Round, SOAKS, Soak, SoakReport};
use ferrolb_lab::{Lab, LabOptions, faults, migrate, report, runs};
use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::signal::unix::{SignalKind, signal};

/// ferrolb lab: the controller and one speaker per node, as the real binaries, on a
/// network of namespaces (192.0.2.0/24, 2001:db8::/64) with an embedded, in-memory API
/// server. Everything it creates is removed when it exits.
#[derive(Debug, Parser)]
#[command(name = "lab", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Number of nodes.
    #[arg(long, default_value_t = 3, global = true)]
    nodes: usize,
    /// Directory of ferrolb-controller and ferrolb-speaker (default: beside this binary).
    #[arg(long, global = true)]
    bin_dir: Option<std::path::PathBuf>,
    /// Log level of the controller and speakers.
    #[arg(long, default_value = "info", global = true)]
    log_level: String,
    /// Extra argument for every speaker (repeatable), e.g. --speaker-arg=--lease-duration=3s.
    #[arg(long = "speaker-arg", allow_hyphen_values = true, global = true)]
    speaker_args: Vec<String>,
    /// Extra argument for the controller (repeatable).
    #[arg(long = "controller-arg", allow_hyphen_values = true, global = true)]
    controller_args: Vec<String>,
    /// Without an interactive terminal: keep the lab up this many seconds, then print
    /// the status and exit (default: print the status and exit at once).
    #[arg(long)]
    duration: Option<u64>,
    /// Do not create the example Services.
    #[arg(long)]
    no_examples: bool,
    /// Run against the API server of this kubeconfig's current context instead of the
    /// embedded one: the lab creates its Nodes, namespaces, ConfigMap, Services and
    /// EndpointSlices there and removes exactly what it created when it exits. Use a
    /// test cluster: the lab's controller also serves LoadBalancer Services without a
    /// class. Against an https server only api-down/api-up of the API faults exist.
    #[arg(long, global = true)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Add a second layer-2 segment, a stand-in for VLAN 20: bridge br20, an interface
    /// eth0.20 on every node (203.0.113.(10+i)), a client at 203.0.113.2, and a pool
    /// vlan20 (203.0.113.200-220, 2001:db8:20::200-220) that an l2 policy announces
    /// only on eth0.20 and only from the nodes labelled lab.ferrolb.io/vlan20=true
    /// (all but the last); example Service web-vlan20.
    #[arg(long, global = true)]
    vlan: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure every fault of the failure model from the client: failover rounds
    /// (SIGKILL, SIGTERM, API cut of one node, isolation from peers, SIGKILL while the
    /// API server is down, power-off) and stability runs under faults where nothing may
    /// move (API down, slow API writes, failing API requests, loss between nodes, a
    /// speaker starting while the API server is down).
    BenchFailover {
        /// Rounds per disruption.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// Example Service whose IP fails over (web: IPv4, web6: IPv6).
        #[arg(long, default_value = "web")]
        service: String,
        /// Duration of every stability run, in seconds (default: 60 s for api-down and
        /// start-without-api, 300 s for api-slow-writes and api-failing, 600 s for loss).
        #[arg(long)]
        soak: Option<u64>,
        /// Run only these faults (comma-separated): kill, term, cut, isolate,
        /// kill-api-down, power-off, api-down, api-slow-writes, api-failing, loss,
        /// start-without-api.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Measure switching a running set of Services from another tool to ferrolb
    /// (README "Switching from MetalLB / Cilium / kube-vip"): per step, the addresses
    /// changed, the client's interruption and the time each address went unanswered.
    /// Every round builds a fresh lab (controller and speakers not started).
    BenchMigrate {
        /// Rounds per order.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// Services switched (IPv4 and IPv6 alternately, 1-20).
        #[arg(long, default_value_t = 6)]
        services: usize,
        /// The orders to measure (comma-separated): stop-first (stop the previous
        /// speaker, then apply ferrolb), ferrolb-first (controller, speakers, then stop
        /// the previous speaker).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "stop-first,ferrolb-first"
        )]
        order: Vec<String>,
        /// Seconds between stopping the previous speaker and applying ferrolb in
        /// stop-first (0: the commands back to back).
        #[arg(long, default_value_t = 0.0)]
        pause: f64,
        /// Seconds to keep measuring after each step's effect.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
    },
    /// Measure a VLAN link loss (implies --vlan): the node answering the vlan20 pool's
    /// address on eth0.20 loses that link (its eth0 stays up); per round, the first
    /// answer from another node on the second segment and the client's recovery there.
    BenchVlan {
        /// Rounds.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
    },
    /// Remove what killed lab runs left behind (done at every start anyway).
    Reap,
}

const HELP: &str = "\
commands:
  status                   services, who answers for each IP, nodes
  kill <node>              SIGKILL the node's speaker (a crash)
  stop <node>              SIGTERM the node's speaker (graceful)
  start <node>             start the node's speaker again
  cut <node> | heal <node> cut the node off from the API server (its link stays up) / undo
  link-down <node> | link-up <node>   take the node's link down at the bridge (with kill:
                           a power-off) / bring it up
  vlan-down <node> | vlan-up <node>   (--vlan) take the node's eth0.20 link down / up; its
                           eth0 stays up
  drain <node> | undrain <node>   label exclude-from-external-load-balancers + cordon / undo
  notready <node> | ready <node>  set the Node's Ready condition
  api-down | api-up        the API server goes away for the speakers and the controller
                           (open connections and watches reset, new ones refused) / comes back
  api-delay <dur>          each API request of the speakers and controller waits <dur> (e.g. 500ms; 0: off)
  api-delay-writes <dur>   each API write (POST/PUT/PATCH/DELETE) waits <dur> more (0: off)
  api-fail <percent>       that share of their API requests get 503 + a Status body (0: off)
  api-normal               no API fault: up, no delay, no failure
  isolate <node> | unisolate <node>   drop frames between the node and the other nodes (the
                           API server and the client still reach it) / undo
  loss <percent>           drop that share of frames between nodes (client traffic spared); loss 0: off
  faults                   the faults in force
  ping <from> <to>         20 pings; <from>: a node or client, <to>: a node, client or IP
  curl <ip|service>        HTTP GET from the client namespace: which node answers
  arp <ip|service>         who answers ARP/NDP for it, seen from the client
  kubectl <args...>        run kubectl against the lab
  quit                     tear everything down and exit";

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("lab: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Reap) = cli.command {
        let reaped = runs::reap_stale();
        println!(
            "reaped {} stale run(s){}",
            reaped.len(),
            if reaped.is_empty() {
                String::new()
            } else {
                format!(": {}", reaped.join(", "))
            }
        );
        return Ok(());
    }
    if cli.bin_dir.is_none() {
        build_ferrolb_binaries()?;
    }
    let opts = LabOptions {
        nodes: cli.nodes,
        bin_dir: cli.bin_dir.clone(),
        log_level: cli.log_level.clone(),
        speaker_args: cli.speaker_args.clone(),
        controller_args: cli.controller_args.clone(),
        kubeconfig: cli.kubeconfig.clone(),
        vlan: cli.vlan || matches!(cli.command, Some(Command::BenchVlan { .. })),
        example_services: !cli.no_examples
            || matches!(cli.command, Some(Command::BenchFailover { .. })),
        ..LabOptions::default()
    };
    // Signals are caught before the lab exists, so that a Ctrl-C during the build still
    // goes through the lab's cleanup.
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    if let Some(Command::BenchMigrate {
        rounds,
        services,
        order,
        pause,
        settle,
    }) = &cli.command
    {
        let orders = order
            .iter()
            .map(|o| {
                migrate::Order::parse(o.trim()).with_context(|| {
                    format!("--order: unknown order {o:?}; known: stop-first, ferrolb-first")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let seconds = |what: &str, v: f64| {
            Duration::try_from_secs_f64(v)
                .with_context(|| format!("--{what} takes a number of seconds, not {v}"))
        };
        let mopts = migrate::Options {
            services: *services,
            pause: seconds("pause", *pause)?,
            settle: seconds("settle", *settle)?,
            ..migrate::Options::default()
        };
        let lab_opts = LabOptions {
            controller: false,
            speakers: false,
            example_services: false,
            ..opts
        };
        // A Ctrl-C drops the running round's lab, which removes what it built.
        return tokio::select! {
            r = bench_migrate(lab_opts, *rounds, &orders, mopts) => r,
            _ = sigint.recv() => bail!("interrupted"),
            _ = sigterm.recv() => bail!("terminated"),
            _ = sighup.recv() => bail!("hung up"),
        };
    }

    eprintln!("lab: building {} nodes ...", cli.nodes);
    let lab = tokio::select! {
        lab = Lab::start(opts) => lab.context("starting the lab")?,
        _ = sigint.recv() => bail!("interrupted"),
        _ = sigterm.recv() => bail!("terminated"),
        _ = sighup.recv() => bail!("hung up"),
    };

    let result = tokio::select! {
        r = session(&lab, &cli) => r,
        e = lab.wait_crash() => Err(anyhow::Error::new(e).context("a lab process crashed; tearing the lab down")),
        _ = sigint.recv() => { eprintln!("\nlab: interrupted"); Ok(()) }
        _ = sigterm.recv() => { eprintln!("lab: terminated"); Ok(()) }
        _ = sighup.recv() => Ok(()),
    };
    if lab.external_api().is_some() {
        eprintln!(
            "lab: removing namespaces, processes and the {} objects the lab owns on the API server ...",
            lab.owned_objects().len()
        );
    } else {
        eprintln!("lab: removing namespaces and processes ...");
    }
    lab.shutdown().await;
    result
}

/// Under `cargo run` (which builds only this binary), builds ferrolb-controller and
/// ferrolb-speaker with the same profile into the same target directory first, so that
/// `cargo run -p ferrolb-lab --bin lab` always runs the current ferrolb. A no-op
/// when they are up to date; skipped when the lab was not started by cargo.
fn build_ferrolb_binaries() -> anyhow::Result<()> {
    let (Some(cargo), Some(manifest_dir)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) else {
        return Ok(());
    };
    let exe = std::env::current_exe().context("locating the lab binary")?;
    let (Some(profile_dir), Some(target_dir)) =
        (exe.parent(), exe.parent().and_then(|p| p.parent()))
    else {
        return Ok(());
    };
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "build",
        "-p",
        "ferrolb-controller",
        "-p",
        "ferrolb-speaker",
        "--bins",
    ])
    .current_dir(manifest_dir)
    .env("CARGO_TARGET_DIR", target_dir);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
        None => return Ok(()),
    }
    eprintln!("lab: building ferrolb-controller and ferrolb-speaker ...");
    let status = cmd
        .status()
        .context("running cargo build for the ferrolb binaries")?;
    if !status.success() {
        bail!("building ferrolb-controller and ferrolb-speaker failed ({status})");
    }
    Ok(())
}

async fn session(lab: &Lab, cli: &Cli) -> anyhow::Result<()> {
    if let Some(Command::BenchFailover {
        rounds,
        service,
        soak,
        only,
    }) = &cli.command
    {
        let (disruptions, soaks) = selected_faults(only)?;
        let soak = soak.map(Duration::from_secs);
        return bench_failover(lab, *rounds, service, &disruptions, &soaks, soak).await;
    }
    if let Some(Command::BenchVlan { rounds }) = &cli.command {
        let (name, family) = ferrolb_lab::seed::VLAN_EXAMPLE_SERVICE;
        let count = if family == ferrolb_lab::Family::Dual {
            2
        } else {
            1
        };
        let ips = lab
            .wait_service_ips(name, count, Duration::from_secs(30))
            .await?;
        for ip in ips {
            println!(
                "{name} {ip}: the announcing node's eth0.20 goes down, {rounds} round(s), {} nodes",
                lab.node_names().len()
            );
            let result = ferrolb_lab::bench_vlan::run(lab, ip, *rounds).await?;
            println!("{}", ferrolb_lab::bench_vlan::report(&result));
        }
        return Ok(());
    }
    if !cli.no_examples {
        settle(lab).await;
    }
    println!("{}", report::status(lab).await?);
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if !interactive {
        if let Some(secs) = cli.duration {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            println!("{}", report::status(lab).await?);
        }
        return Ok(());
    }
    println!("{HELP}");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        use std::io::Write;
        print!("lab> ");
        let _ = std::io::stdout().flush();
        let Some(line) = lines.next_line().await? else {
            return Ok(());
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["quit" | "exit" | "q"] => return Ok(()),
            ["help" | "?"] => println!("{HELP}"),
            _ => match command(lab, &words).await {
                Ok(out) => println!("{out}"),
                Err(e) => println!("error: {e:#}"),
            },
        }
    }
}

/// Waits (bounded) until the example Services have their IPs announced, so that the
/// first status shows them.
async fn settle(lab: &Lab) {
    let vlan = lab
        .plan()
        .has_vlan()
        .then_some(ferrolb_lab::seed::VLAN_EXAMPLE_SERVICE);
    for (name, family) in ferrolb_lab::seed::EXAMPLE_SERVICES.into_iter().chain(vlan) {
        let count = if family == ferrolb_lab::Family::Dual {
            2
        } else {
            1
        };
        if let Ok(ips) = lab
            .wait_service_ips(name, count, Duration::from_secs(15))
            .await
        {
            for ip in ips {
                let _ = lab.wait_single_announcer(ip, Duration::from_secs(5)).await;
            }
        }
    }
}

/// Resolves an IP or a Service name (its first external IP).
async fn target(lab: &Lab, word: &str) -> anyhow::Result<IpAddr> {
    if let Ok(ip) = word.parse() {
        return Ok(ip);
    }
    let ips = lab.service_ips(word).await?;
    ips.first()
        .copied()
        .with_context(|| format!("{word:?} is neither an IP nor a Service with an external IP"))
}

/// A node's IPv4 address, the client's, or an IP.
fn ping_target(lab: &Lab, word: &str) -> anyhow::Result<IpAddr> {
    if word == "client" {
        return Ok(IpAddr::V4(ferrolb_lab::plan::CLIENT_V4));
    }
    if let Ok(ip) = word.parse() {
        return Ok(ip);
    }
    Ok(IpAddr::V4(lab.node(word)?.v4))
}

async fn command(lab: &Lab, words: &[&str]) -> anyhow::Result<String> {
    Ok(match words {
        ["status"] => report::status(lab).await?,
        ["kill", node] => format!(
            "SIGKILL sent to the speaker of {node} (pid {})",
            lab.signal_speaker(node, Signal::SIGKILL)?
        ),
        ["stop", node] => format!(
            "SIGTERM sent to the speaker of {node} (pid {})",
            lab.signal_speaker(node, Signal::SIGTERM)?
        ),
        ["start", node] => format!(
            "speaker of {node} started (pid {})",
            lab.start_speaker(node)?
        ),
        ["cut", node] => {
            lab.cut(node).await?;
            format!("{node} cannot reach the API server any more (its link stays up)")
        }
        ["heal", node] => {
            lab.heal(node).await?;
            format!("{node} reaches the API server again")
        }
        ["link-down", node] => {
            lab.set_link(node, false).await?;
            format!("{node}'s link is down: nothing reaches it")
        }
        ["link-up", node] => {
            lab.set_link(node, true).await?;
            format!("{node}'s link is up again")
        }
        ["vlan-down", node] => {
            lab.set_vlan_link(node, false).await?;
            format!("{node}'s eth0.20 is down (its eth0 is up)")
        }
        ["vlan-up", node] => {
            lab.set_vlan_link(node, true).await?;
            format!("{node}'s eth0.20 is up again")
        }
        ["drain", node] => {
            lab.drain(node, true).await?;
            format!("{node} cordoned and labelled exclude-from-external-load-balancers")
        }
        ["undrain", node] => {
            lab.drain(node, false).await?;
            format!("{node} uncordoned and unlabelled")
        }
        ["notready", node] => {
            lab.set_ready(node, false).await?;
            format!("{node} is NotReady")
        }
        ["ready", node] => {
            lab.set_ready(node, true).await?;
            format!("{node} is Ready")
        }
        ["curl", what] => {
            let ip = target(lab, what).await?;
            match lab.curl(ip, Duration::from_secs(2)).await {
                Ok(node) => format!("http://{ip}/ answered by {node}"),
                Err(e) => format!("http://{ip}/ failed: {e}"),
            }
        }
        ["arp", what] => {
            let ip = target(lab, what).await?;
            format!(
                "{ip}: {}",
                report::describe_announcers(&lab.announcers(ip).await?)
            )
        }
        ["api-down"] => {
            lab.api_down().await?;
            "the API server is down for the speakers and the controller: connections reset, new ones refused".into()
        }
        ["api-up"] => {
            lab.api_up().await?;
            "the API server is up again".into()
        }
        ["api-delay", d] => {
            let d = faults::parse_delay(d).map_err(anyhow::Error::msg)?;
            lab.api_delay(d).await?;
            format!("faults: {}", lab.fault_summary().await)
        }
        ["api-delay-writes", d] => {
            let d = faults::parse_delay(d).map_err(anyhow::Error::msg)?;
            lab.api_delay_writes(d).await?;
            format!("faults: {}", lab.fault_summary().await)
        }
        ["api-fail", p] => {
            let p = faults::parse_percent(p).map_err(anyhow::Error::msg)?;
            lab.api_fail(p).await?;
            format!("faults: {}", lab.fault_summary().await)
        }
        ["api-normal"] => {
            lab.api_normal().await?;
            format!("faults: {}", lab.fault_summary().await)
        }
        ["isolate", node] => {
            lab.isolate(node).await?;
            format!(
                "{node} is cut off from the other nodes (the API server and the client still reach it)"
            )
        }
        ["unisolate", node] => {
            lab.unisolate(node).await?;
            format!("{node} hears its peers again")
        }
        ["loss", p] => {
            let p = faults::parse_percent(p).map_err(anyhow::Error::msg)?;
            lab.loss(p).await?;
            format!("faults: {}", lab.fault_summary().await)
        }
        ["faults"] => format!("faults: {}", lab.fault_summary().await),
        ["ping", from, to] => {
            let ip = ping_target(lab, to)?;
            let stats = lab.ping(from, ip, 20, Duration::from_millis(50)).await?;
            format!(
                "{from} -> {to} ({ip}): {} of {} echo replies",
                stats.received, stats.transmitted
            )
        }
        ["kubectl", args @ ..] => lab.kubectl(args).await?,
        _ => format!("unknown command {:?}\n{HELP}", words.join(" ")),
    })
}

/// The disruptions and stability runs named in `--only` (all of them when empty).
fn selected_faults(only: &[String]) -> anyhow::Result<(Vec<Disruption>, Vec<Soak>)> {
    if only.is_empty() {
        return Ok((DISRUPTIONS.to_vec(), SOAKS.to_vec()));
    }
    let (mut disruptions, mut soaks) = (Vec::new(), Vec::new());
    for name in only {
        let name = name.trim();
        if let Some(d) = DISRUPTIONS.iter().find(|d| d.name() == name) {
            disruptions.push(*d);
        } else if let Some(s) = SOAKS.iter().find(|s| s.name() == name) {
            soaks.push(*s);
        } else {
            let known: Vec<&str> = DISRUPTIONS
                .iter()
                .map(|d| d.name())
                .chain(SOAKS.iter().map(|s| s.name()))
                .collect();
            bail!(
                "--only: unknown fault {name:?}; known: {}",
                known.join(", ")
            );
        }
    }
    Ok((disruptions, soaks))
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map(bench::ms).unwrap_or_else(|| "-".into())
}

async fn bench_failover(
    lab: &Lab,
    rounds: u32,
    service: &str,
    disruptions: &[Disruption],
    soaks: &[Soak],
    soak: Option<Duration>,
) -> anyhow::Result<()> {
    let ips = lab
        .wait_service_ips(service, 1, Duration::from_secs(30))
        .await?;
    let ip = ips[0];
    println!(
        "failover of {service} ({ip}), {} nodes, {rounds} rounds per disruption",
        lab.plan().node_count()
    );
    println!(
        "| disruption | round | from | to | recovery (client HTTP) | takeover (first ARP/NDP claim) | silent gap | overlap | old node silent | failed requests | rejoin overlap |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut all: Vec<Round> = Vec::new();
    for &d in disruptions {
        for i in 1..=rounds {
            let r = bench::failover_round(lab, ip, d, Duration::from_secs(30))
                .await
                .with_context(|| format!("{d}, round {i}"))?;
            println!(
                "| {} | {i} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.disruption,
                r.from,
                r.to,
                bench::ms(r.recovery),
                opt_ms(r.takeover),
                opt_ms(r.gap),
                bench::ms(r.overlap),
                opt_ms(r.silenced),
                r.failed_requests,
                bench::ms(r.rejoin_overlap)
            );
            all.push(r);
        }
    }
    let mut reports: Vec<SoakReport> = Vec::new();
    if !soaks.is_empty() {
        let ips = bench::example_ips(lab).await?;
        println!();
        println!(
            "stability runs over every example Service IP ({}), one request every 20 ms",
            ips.iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "| fault | held | requests | failed requests | moves while held | moves within 5 s after | longest unanswered | note |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for &s in soaks {
            let held = soak.unwrap_or_else(|| s.default_duration());
            let r = bench::soak(lab, &ips, s, held)
                .await
                .with_context(|| format!("stability run {s}"))?;
            let note = match &r.restarted {
                Some((node, claims)) => format!(
                    "{node} restarted ({} IPs before); {claims} claims by it while the API was down",
                    r.announcers.values().filter(|a| *a == node).count()
                ),
                None => r.failures.join("; "),
            };
            println!(
                "| {s} | {} s | {} | {} | {} | {} | {} | {note} |",
                r.duration.as_secs(),
                r.requests,
                r.failed_requests,
                r.moves,
                r.moves_after_lift,
                bench::ms(r.longest_silence)
            );
            reports.push(r);
        }
    }
    println!();
    println!(
        "| fault | rounds / held | recovery min / median / max | takeover median | silent gap min / max | overlap max | failed requests | moves |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &d in disruptions {
        let of: Vec<&Round> = all.iter().filter(|r| r.disruption == d).collect();
        let rec: Vec<Duration> = of.iter().map(|r| r.recovery).collect();
        let tk: Vec<Duration> = of.iter().filter_map(|r| r.takeover).collect();
        let (min, med, _, max) = bench::summary(&rec).context("no rounds")?;
        let gaps: Vec<Duration> = of.iter().filter_map(|r| r.gap).collect();
        println!(
            "| {d} | {} | {} / {} / {} | {} | {} / {} | {} | {} | - |",
            of.len(),
            bench::ms(min),
            bench::ms(med),
            bench::ms(max),
            opt_ms(bench::summary(&tk).map(|s| s.1)),
            opt_ms(gaps.iter().min().copied()),
            opt_ms(gaps.iter().max().copied()),
            bench::ms(of.iter().map(|r| r.overlap).max().unwrap_or_default()),
            of.iter().map(|r| r.failed_requests).sum::<u32>(),
        );
    }
    for r in &reports {
        println!(
            "| {} | {} s | - | - | - | - | {} of {} | {} (+{} after) |",
            r.soak,
            r.duration.as_secs(),
            r.failed_requests,
            r.requests,
            r.moves,
            r.moves_after_lift
        );
    }
    Ok(())
}

/// `bench-migrate`: `rounds` switches per order, each in a fresh lab; a table per round
/// and a summary per order and step.
async fn bench_migrate(
    lab_opts: LabOptions,
    rounds: u32,
    orders: &[migrate::Order],
    opts: migrate::Options,
) -> anyhow::Result<()> {
    println!(
        "switch of {} Services (IPv4 and IPv6 alternately) from a previous tool on {} to ferrolb, {} nodes, {rounds} round(s) per order",
        opts.services, opts.previous_node, lab_opts.nodes
    );
    println!("{}", migrate::ROUND_HEADER);
    let mut reports = Vec::new();
    for &order in orders {
        for round in 1..=rounds {
            eprintln!("lab: {} round {round}: building the lab ...", order.name());
            let lab = Lab::start(lab_opts.clone())
                .await
                .context("starting the lab")?;
            let report = migrate::run(
                &lab,
                &migrate::Options {
                    order,
                    ..opts.clone()
                },
            )
            .await;
            lab.shutdown().await;
            let report = report.with_context(|| format!("{}, round {round}", order.name()))?;
            print!("{}", migrate::round_rows(&report, round));
            reports.push(report);
        }
    }
    println!();
    print!("{}", migrate::summary(&reports));
    Ok(())
}
