//! The `ferrolb-speaker` binary: flags are validated before anything starts, and
//! SIGTERM stops it cleanly with its Lease deleted.

mod election_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use election_support::*;
use ferrolb_testkit::wait_until_async;

const BIN: &str = env!("CARGO_BIN_EXE_ferrolb-speaker");

#[test]
fn inconsistent_timers_are_refused_naming_the_flag() {
    let out = Command::new(BIN)
        .args([
            "--node-name",
            "n1",
            "--renew-period",
            "20s",
            "--log-format",
            "text",
        ])
        .env_remove("NODE_NAME")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains("--renew-period") || stdout.contains("--renew-period"),
        "stderr: {stderr}\nstdout: {stdout}"
    );
}

#[test]
fn node_name_is_required() {
    let out = Command::new(BIN)
        .env_remove("NODE_NAME")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--node-name"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_deletes_the_lease_and_exits_cleanly() {
    let c = Cluster::start().await;
    c.add_node("bin-node", true, &[]).await;
    let dir = std::env::temp_dir().join(format!("ferrolb-speaker-test-{}", std::process::id()));
    let kubeconfig = dir.join("kubeconfig");
    c.server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let log_path = dir.join("speaker.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = Command::new(BIN)
        .args([
            "--node-name",
            "bin-node",
            "--no-dataplane",
            "--metrics-addr",
            "127.0.0.1:0",
            "--namespace",
            NS,
            "--membership-bind",
            &c.node_addr("bin-node").to_string(),
            "--membership-port",
            &c.port.to_string(),
        ])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env_remove("NODE_NAME")
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn");
    wait_until_async("the binary's Lease", Duration::from_secs(10), || async {
        c.lease("bin-node").await.is_some()
    })
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = std::time::Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("speaker did not exit after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(exit.success(), "exit {exit:?}, log:\n{log}");
    assert!(
        c.lease("bin-node").await.is_none(),
        "Lease deleted; log:\n{log}"
    );
    assert!(log.contains("Lease deleted"), "log:\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
