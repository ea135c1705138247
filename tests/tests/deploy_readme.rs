//! README.md against the code: the permission tables are `api_access`, every flag
//! and environment variable of both binaries is documented with its default, every
//! metric is listed, the configuration reference is docs/configuration.md, and every
//! ConfigMap example is a valid configuration.

mod deploy_support;

use std::collections::BTreeSet;
use std::sync::Arc;

use deploy_support::*;
use ferrolb_testbed::api_access::{self, Install};
use k8s_openapi::api::core::v1::ConfigMap;

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).expect("README.md")
}

/// The text from the line `start` up to the next line starting with `end` (or EOF).
fn section<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let i = text
        .find(start)
        .unwrap_or_else(|| panic!("README has no {start:?}"));
    let rest = &text[i..];
    let j = rest[start.len()..]
        .find(end)
        .map_or(rest.len(), |j| j + start.len());
    &rest[..j]
}

#[test]
fn the_first_sections_keep_their_commands() {
    let r = readme();
    let heads: Vec<&str> = r.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        &heads[..3],
        ["## Setup", "## Run it (the lab)", "## Run the tests"]
    );
    for cmd in [
        "apt-get install -y build-essential curl ca-certificates iproute2 iputils-ping arping ndisc6 tcpdump nftables",
        "sudo cargo run --release -p ferrolb-lab --bin lab",
        "cargo test --workspace --locked",
    ] {
        assert!(r.contains(cmd), "README lost the command {cmd:?}");
    }
    // The CI entry point runs the README's test command.
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).expect(".ci/run");
    assert!(ci.contains("cargo test --workspace --locked"));
    // ... and installs the packages the README's Setup line names (the lab's faults
    // need nftables).
    for pkg in [
        "iproute2",
        "iputils-ping",
        "arping",
        "ndisc6",
        "tcpdump",
        "nftables",
    ] {
        assert!(
            ci.contains(&format!(":{pkg}")),
            ".ci/run does not install {pkg}"
        );
    }
}

#[test]
fn install_uses_the_manifests_and_the_documented_image() {
    let r = readme();
    assert!(r.contains("kubectl apply -k deploy/"));
    assert!(r.contains("kubectl delete -k deploy/"));
    assert!(r.contains("kubectl get svc"));
    let kustomization = std::fs::read_to_string(repo_root().join("deploy/kustomization.yaml"))
        .expect("kustomization");
    let k: serde_json::Value = serde_yaml_ng::from_str(&kustomization).expect("YAML");
    let img = &k["images"][0];
    let image = format!(
        "{}:{}",
        img["name"].as_str().expect("image name"),
        img["newTag"].as_str().expect("image tag")
    );
    assert!(r.contains(&image), "README does not name the image {image}");
}

#[test]
fn the_permission_tables_are_the_api_access_lists() {
    let r = readme();
    let rbac = section(&r, "## Permissions (RBAC)", "\n## ");
    let install = Install::default();
    for (who, list) in [
        ("**ferrolb-controller**", api_access::CONTROLLER),
        ("**ferrolb-speaker**", api_access::SPEAKER),
    ] {
        let table = api_access::markdown_table(list, &install);
        let part = section(rbac, who, "\n**");
        assert!(
            part.contains(&table),
            "README's table for {who} differs from api_access; it should read:\n{table}"
        );
    }
}

/// docs/configuration.md as the README holds it: headings one level down, and the
/// known erratum (a flag that does not exist) corrected.
fn folded_configuration_reference() -> String {
    let doc = std::fs::read_to_string(repo_root().join("docs/configuration.md")).expect("docs");
    let mut out = Vec::new();
    let mut fence = false;
    for line in doc.split('\n') {
        if line.starts_with("```") {
            fence = !fence;
        }
        if !fence && line.starts_with('#') {
            out.push(format!("#{line}"));
        } else {
            out.push(line.to_owned());
        }
    }
    let s = out.join("\n").replace(
        "`--config-map metallb-system/config`",
        "`--config-namespace metallb-system --config-name config`",
    );
    format!("{}\n", s.trim_end_matches('\n'))
}

#[test]
fn the_configuration_reference_is_docs_configuration_md() {
    let r = readme();
    let begin = r
        .find("<!-- BEGIN docs/configuration.md")
        .expect("BEGIN marker");
    let body_start = begin + r[begin..].find("-->\n").expect("marker end") + 4;
    let end = r
        .find("<!-- END docs/configuration.md -->")
        .expect("END marker");
    let folded = folded_configuration_reference();
    assert!(
        r[body_start..end] == folded,
        "README's configuration reference differs from docs/configuration.md; fold it again \
         (headings one level down) — it should read:\n{folded}"
    );
}

/// Every `yaml` block of the README that is a ConfigMap is a valid pool configuration.
#[test]
fn every_configmap_example_is_valid() {
    let r = readme();
    let mut checked = 0;
    let mut in_yaml = false;
    let mut block = String::new();
    for line in r.lines() {
        let t = line.trim_start();
        if !in_yaml && t == "```yaml" {
            in_yaml = true;
            block.clear();
            continue;
        }
        if in_yaml && t == "```" {
            in_yaml = false;
            let doc: serde_json::Value =
                serde_yaml_ng::from_str(&unindent(&block)).expect("README YAML parses");
            if doc["kind"] == "ConfigMap" {
                let cm: ConfigMap = serde_json::from_value(doc).expect("a ConfigMap");
                let name = cm.metadata.name.clone().unwrap_or_default();
                ferrolb_config::parse_configmap_data(&cm.data.unwrap_or_default())
                    .unwrap_or_else(|e| panic!("README example ConfigMap {name} is invalid: {e}"));
                checked += 1;
            }
            continue;
        }
        if in_yaml {
            block.push_str(line);
            block.push('\n');
        }
    }
    // ferrolb, MetalLB and kube-vip examples, in the reference and in the migration guide.
    assert!(checked >= 5, "only {checked} ConfigMap examples found");
}

/// Removes the common indentation of a code block nested in a list.
fn unindent(block: &str) -> String {
    let indent = block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    block
        .lines()
        .map(|l| l.get(indent..).unwrap_or("").to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The flag table rows of one binary: (flag, env, default) cells, as written.
fn flag_rows(table: &str) -> Vec<(String, String, String)> {
    table
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].to_owned(),
                cells[2].to_owned(),
                cells[3].to_owned(),
            )
        })
        .collect()
}

fn check_flags(who: &str, cmd: clap::Command, table: &str) {
    let mut cmd = cmd;
    cmd.build();
    let rows = flag_rows(table);
    let mut documented = BTreeSet::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version") {
            continue;
        }
        let long = format!("`--{}`", arg.get_long().expect("long flag"));
        if arg.is_hide_set() {
            // A retired flag: still accepted, named in the prose under the table.
            assert!(
                table.contains(&format!(
                    "{long} (`{}`)",
                    arg.get_env().expect("env var").to_string_lossy()
                )),
                "{who}: README does not name the retired {long} and its variable"
            );
            continue;
        }
        let row = rows
            .iter()
            .find(|r| r.0 == long)
            .unwrap_or_else(|| panic!("{who}: README does not document {long}"));
        let env = arg
            .get_env()
            .expect("env var")
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            row.1,
            format!("`{env}`"),
            "{who} {long}: environment variable"
        );
        if let Some(default) = arg.get_default_values().first() {
            let default = default.to_string_lossy();
            if arg.get_action().takes_values() {
                assert!(
                    row.2.starts_with(&format!("`{default}`")),
                    "{who} {long}: README says default {}, the binary {default}",
                    row.2
                );
            }
        }
        documented.insert(long);
    }
    for r in &rows {
        assert!(
            documented.contains(&r.0),
            "{who}: README documents {}, which does not exist",
            r.0
        );
    }
}

#[test]
fn every_flag_is_documented_with_its_variable_and_default() {
    use clap::CommandFactory;
    let r = readme();
    let flags = section(&r, "## Flags and environment variables", "\n## ");
    let (ctl, spk) = flags
        .split_once("\n**ferrolb-speaker**\n")
        .expect("a speaker part in the flags section");
    check_flags(
        "ferrolb-controller",
        ferrolb_controller::cli::Cli::command(),
        ctl,
    );
    check_flags("ferrolb-speaker", ferrolb_speaker::Cli::command(), spk);
}

/// Metric names in an exposition, as scraped (counters with `_total`).
fn exposed(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next().expect("name");
            match it.next() {
                Some("counter") => format!("{name}_total"),
                _ => name.to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_metric_is_listed() {
    let r = readme();
    let metrics = section(&r, "## Metrics", "\n## ");
    let (ctl_doc, spk_doc) = metrics
        .split_once("\n**ferrolb-speaker**\n")
        .expect("a speaker part in the metrics section");
    let listed = |doc: &str| -> BTreeSet<String> {
        doc.lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`').map(|(n, _)| n.to_owned()))
            .collect()
    };
    // Labelled families appear once they have a child.
    let m = ferrolb_controller::metrics::ControllerMetrics::new();
    let pool = ferrolb_controller::metrics::PoolLabels {
        pool: "lan".into(),
        family: "ipv4".into(),
    };
    m.pool_size.get_or_create(&pool).set(16.0);
    m.pool_in_use.get_or_create(&pool).set(1);
    m.pool_free.get_or_create(&pool).set(15.0);
    m.failure("PoolExhausted");
    m.config_reloads
        .get_or_create(&ferrolb_controller::metrics::ResultLabels {
            result: "ok".into(),
        })
        .inc();
    let ctl = exposed(&m.encode());
    let dp: Arc<dyn ferrolb_speaker::Dataplane> =
        Arc::new(ferrolb_speaker::RecordingDataplane::new());
    let sm = ferrolb_speaker::metrics::SpeakerMetrics::new(dp);
    sm.record_changes(1, 0);
    let spk = exposed(&sm.encode());
    assert!(ctl.contains("ferrolb_config_stale") && spk.contains("ferrolb_speaker_announced_ips"));
    assert_eq!(
        listed(ctl_doc),
        ctl,
        "README's controller metrics differ from the exposition"
    );
    assert_eq!(
        listed(spk_doc),
        spk,
        "README's speaker metrics differ from the exposition"
    );
}
