//! `ferrolb-controller convert FILE...` as an operator runs it: exit codes,
//! standard output that `check-config` accepts, the report on standard error;
//! then the converted ConfigMap in front of the controller, against Services
//! whose status the previous tool wrote: no address and no pool changes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use ferrolb_testkit::wait_for;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../config/tests/fixtures/convert"
);

fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .args(args)
        .output()
        .expect("run ferrolb-controller")
}

fn convert(files: &[PathBuf]) -> (i32, String, String) {
    let mut args: Vec<&std::ffi::OsStr> = vec!["convert".as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let out = run(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `check-config` on `manifest`; (exit code, output).
fn check_config(manifest: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("ferrolb-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("out-{}.yaml", manifest.len()));
    std::fs::write(&file, manifest).unwrap();
    let out = run(&["check-config".as_ref(), file.as_os_str()]);
    let _ = std::fs::remove_file(&file);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn exact_conversions_exit_0_and_check_config_accepts_them() {
    for (file, pools, policies) in [
        (
            "metallb-exact.yaml",
            vec!["dmz", "lan", "manual"],
            vec!["by-name", "by-label"],
        ),
        (
            "metallb-vlans.yaml",
            vec!["cams", "iot", "lan"],
            vec!["lan-0", "lan-1", "vlans-0", "vlans-1", "backup"],
        ),
        (
            "cilium-exact.yaml",
            vec!["blue", "v6"],
            vec!["workers", "edge"],
        ),
    ] {
        let (code, out, err) = convert(&[fixture(file)]);
        assert_eq!(code, 0, "{file}: {err}");
        assert_eq!(
            err,
            format!("converted exactly: {} pool(s), nothing lost\n", pools.len())
        );
        let (code, summary) = check_config(&out);
        assert_eq!(code, 0, "{file}: {summary}\n{out}");
        assert!(summary.contains("valid ferrolb configuration"), "{summary}");
        for p in pools {
            assert!(
                summary.lines().any(|l| l.starts_with(p)),
                "{p} missing in {summary}"
            );
        }
        // Every advertisement or policy is carried: check-config lists each.
        let listed: Vec<&str> = summary
            .lines()
            .filter_map(|l| l.strip_prefix("policy ")?.strip_suffix(':'))
            .collect();
        assert_eq!(listed, policies, "{file}: {summary}");
        assert!(
            !summary.contains("announced under l2"),
            "{file}: every pool is covered, as in the source: {summary}"
        );
    }
}

#[test]
fn lossy_conversions_exit_2_print_a_valid_manifest_and_list_every_loss() {
    for (file, n) in [
        ("metallb-lossy.yaml", 8),
        ("cilium-lossy.yaml", 5),
        ("kubevip.yaml", 2),
    ] {
        let (code, out, err) = convert(&[fixture(file)]);
        assert_eq!(code, 2, "{file}: {err}");
        let (code, summary) = check_config(&out);
        assert_eq!(code, 0, "{file}: {summary}");
        let listed: Vec<&str> = err.lines().filter(|l| l.starts_with("- ")).collect();
        assert_eq!(listed.len(), n, "{file}:\n{err}");
        let pools = ferrolb_config::parse_document(&out)
            .expect("the manifest is valid")
            .config
            .pools
            .len();
        assert!(
            err.starts_with(&format!(
                "converted {pools} pool(s); {n} thing(s) could not be carried over exactly:\n"
            )),
            "{err}"
        );
    }
    let (_, _, err) = convert(&[fixture("metallb-lossy.yaml")]);
    for kind in [
        "BGPAdvertisement \"bgp\"",
        "BGPPeer \"router\"",
        "Community \"communities\"",
        "BFDProfile \"fast\"",
    ] {
        assert!(
            err.contains(&format!("{kind}: ")),
            "{kind} not reported:\n{err}"
        );
    }
}

#[test]
fn bad_input_exits_1_with_nothing_on_stdout() {
    let dir = std::env::temp_dir().join(format!("ferrolb-convert-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan}\nspec: {addresses: [192.0.2.300]}\n",
    )
    .unwrap();
    let (code, out, err) = convert(std::slice::from_ref(&bad));
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert!(
        err.contains("bad.yaml[0] IPAddressPool \"lan\" spec.addresses[0] = \"192.0.2.300\": not an IP address"),
        "{err}"
    );
    let (code, out, err) = convert(&[dir.join("missing.yaml")]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.starts_with("cannot read ") && err.contains("missing.yaml"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    // No file at all is a usage error: 1, not clap's usual 2, which would read as "lossy".
    let out = run(&["convert".as_ref()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

/// The `config.yaml` of the manifest `convert` printed (a literal block
/// indented by four spaces, as it writes it).
fn config_yaml(manifest: &str) -> String {
    let (_, body) = manifest
        .split_once("  config.yaml: |\n")
        .expect("the manifest holds config.yaml");
    body.lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").expect("indented block")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_converted_configuration_keeps_every_services_pool_and_address() {
    let (code, manifest, err) = convert(&[fixture("metallb-exact.yaml")]);
    assert_eq!(code, 0, "{err}");
    let lab = Lab::start().await;
    set_config(&lab.client, &config_yaml(&manifest)).await;

    // Services as MetalLB left them: its annotations, its addresses in status.
    let set = [
        (
            "web",
            "web",
            json!({"tier": "edge", "exposure": "public"}),
            json!({}),
            "198.51.100.77",
            "dmz",
        ),
        (
            "shop",
            "shop",
            json!({"tier": "edge", "exposure": "public"}),
            json!({}),
            "198.51.100.3",
            "dmz",
        ),
        ("nas", "default", json!({}), json!({}), "192.0.2.118", "lan"),
        (
            "v6",
            "default",
            json!({}),
            json!({}),
            "2001:db8:10::42",
            "lan",
        ),
        (
            "printer",
            "default",
            json!({}),
            json!({"metallb.universe.tf/address-pool": "manual"}),
            "203.0.113.20",
            "manual",
        ),
        (
            "pinned",
            "default",
            json!({}),
            json!({"metallb.io/loadBalancerIPs": "192.0.2.40"}),
            "192.0.2.40",
            "lan",
        ),
    ];
    for (name, ns, labels, ann, ip, _) in &set {
        ensure_namespace(&lab.client, ns).await;
        let mut v = mk_service(name);
        v["metadata"]["namespace"] = json!(ns);
        v["metadata"]["labels"] = labels.clone();
        v["metadata"]["annotations"] = ann.clone();
        if ip.contains(':') {
            v["spec"]["ipFamilies"] = json!(["IPv6"]);
        }
        create_service(&lab.client, v).await;
        let api: Api<Service> = Api::namespaced(lab.client.clone(), ns);
        let body = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .unwrap();
    }

    let _c = ControllerProc::start(&lab.kubeconfig, "c1");
    for (name, ns, _, _, ip, pool) in &set {
        let api: Api<Service> = Api::namespaced(lab.client.clone(), ns);
        let (reason, message) = wait_for(
            &format!("{ns}/{name} taken over"),
            std::time::Duration::from_secs(15),
            || async {
                let s = api.get(name).await.ok()?;
                let (status, reason, message) = condition(&s)?;
                (status == "True").then_some((reason, message))
            },
        )
        .await;
        assert_eq!(reason, "Allocated");
        assert_eq!(
            message,
            format!("allocated {ip} from pool {pool}"),
            "{ns}/{name}"
        );
        let now = ingress_ips(&api.get(name).await.unwrap());
        assert_eq!(now, [ip.to_string()], "{ns}/{name} changed address");
        let note = wait_event(&lab.client, ns, name, "IPAdopted").await;
        assert!(
            note.contains(ip) && note.ends_with(&format!("into pool {pool}")),
            "{note}"
        );
    }
}
