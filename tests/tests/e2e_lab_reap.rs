//! A run after a killed run works: starting a lab reaps what a killed lab left behind
//! (its namespaces, processes in them, its root-namespace children, its state), and
//! namespaces of the lab family that no run owns. In its own test binary, so that no
//! other lab of this process reaps the fake leftovers before the test looks.

use std::time::Duration;

use ferrolb_testbed::lab::topology::{list_netns, pids_in};
use ferrolb_testbed::lab::{Lab, LabOptions, cmd, runs};

fn network_only() -> LabOptions {
    LabOptions {
        controller: false,
        speakers: false,
        example_services: false,
        nodes: 1,
        ..LabOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_left_by_a_killed_lab_is_reaped() {
    // Fake a killed run: a record whose owner is dead, a namespace with a process in it,
    // and a root-namespace process that mentions the run's state directory.
    let dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    let mut dead = dead;
    dead.wait().unwrap();
    let prefix = "flb9999z";
    std::fs::create_dir_all(format!("{}/{prefix}/logs", runs::RUN_DIR)).unwrap();
    std::fs::write(
        format!("{}/{prefix}.pid", runs::RUN_DIR),
        format!("{dead_pid} 1\n"),
    )
    .unwrap();
    let ns = format!("{prefix}-n1");
    let _ = cmd::ip(&["netns", "del", &ns]);
    cmd::ip(&["netns", "add", &ns]).unwrap();
    let mut in_ns = std::process::Command::new("ip")
        .args(["netns", "exec", &ns, "sleep", "60"])
        .spawn()
        .unwrap();
    let state_arg = format!("{}/{prefix}/kubeconfig", runs::RUN_DIR);
    let mut in_root = std::process::Command::new("sh")
        .args(["-c", "sleep 60; true", &state_arg])
        .spawn()
        .unwrap();
    // An orphan namespace of the family without any record is stale too.
    let orphan = "flb9998y-br".to_string();
    let _ = cmd::ip(&["netns", "del", &orphan]);
    cmd::ip(&["netns", "add", &orphan]).unwrap();
    ferrolb_testbed::lab::wait_for(
        "the sleeper in the namespace",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || async { (!pids_in(&ns).is_empty()).then_some(()) },
    )
    .await
    .unwrap();

    // Starting a lab reaps them.
    let lab = Lab::start(network_only())
        .await
        .expect("lab starts after a killed run");
    let existing = list_netns().unwrap();
    assert!(
        !existing.contains(&ns) && !existing.contains(&orphan),
        "{existing:?}"
    );
    assert!(!std::path::Path::new(&format!("{}/{prefix}", runs::RUN_DIR)).exists());
    assert!(!std::path::Path::new(&format!("{}/{prefix}.pid", runs::RUN_DIR)).exists());
    let status = in_ns.wait().unwrap();
    assert!(
        !status.success(),
        "the sleeper in the namespace was killed: {status}"
    );
    let status = in_root.wait().unwrap();
    assert!(
        !status.success(),
        "the root-namespace child was killed: {status}"
    );
    // The live lab itself is not stale.
    assert!(!runs::stale_prefixes().contains(lab.plan().prefix()));
    lab.shutdown().await;
}
