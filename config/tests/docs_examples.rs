//! The examples in docs/configuration.md are valid and say what the parser does.

use std::collections::BTreeMap;

use ferrolb_config::{AnnouncementSummary, Format, SummaryTable, parse_document, summarize};

const DOC: &str = include_str!("../../docs/configuration.md");

fn blocks(lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    DOC.split(&fence)
        .skip(1)
        .map(|b| b.split("```").next().unwrap().to_string())
        .collect()
}

#[test]
fn every_yaml_example_is_a_valid_configmap() {
    let yaml = blocks("yaml");
    let formats: Vec<Format> = yaml
        .iter()
        .map(|b| {
            parse_document(b)
                .unwrap_or_else(|e| panic!("example does not parse:\n{b}\n{e}"))
                .format
        })
        .collect();
    assert_eq!(
        formats,
        [
            Format::Ferrolb,
            Format::Ferrolb,
            Format::MetalLbLegacy,
            Format::KubeVip
        ]
    );
}

#[test]
fn the_summaries_shown_are_the_summaries_printed() {
    // The first example's, and the announcement policy example's.
    for (yaml, text) in [(0, 0), (1, 1)] {
        let example = &blocks("yaml")[yaml];
        let shown = &blocks("text")[text];
        let config = parse_document(example).unwrap().config;
        let printed = format!(
            "ferrolb-config.yaml: valid ferrolb configuration\n{}{}",
            SummaryTable(&summarize(&config)),
            AnnouncementSummary(&config)
        );
        assert_eq!(&printed, shown);
    }
}

#[test]
fn the_policy_example_announces_the_vlan_pool_on_its_interface_only() {
    let config = parse_document(&blocks("yaml")[1]).unwrap().config;
    let labelled = BTreeMap::from([("example.com/vlan20".to_string(), "true".to_string())]);
    let unlabelled = BTreeMap::new();
    let iot = config.announcement("198.51.100.7".parse().unwrap(), &BTreeMap::new());
    assert!(iot.selects_node(&config.l2, &labelled));
    assert!(!iot.selects_node(&config.l2, &unlabelled));
    let rule = iot.interfaces_on(&labelled);
    assert!(rule.takes("eth0.20", true) && !rule.takes("eth0", true));
    let lan = config.announcement("192.0.2.7".parse().unwrap(), &BTreeMap::new());
    assert!(lan.selects_node(&config.l2, &unlabelled));
}

#[test]
fn the_kubevip_example_gives_the_pools_described() {
    let kubevip = &blocks("yaml")[3];
    let config = parse_document(kubevip).unwrap().config;
    let names: Vec<&str> = config.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["dev", "prod", "global"]);
    assert_eq!(config.l2.interfaces, ["eth0"]);
}

#[test]
fn the_error_lines_shown_are_errors_printed() {
    let text = blocks("text");
    let (bad, shown) = (&text[2], &text[3]);
    let printed = parse_document(bad).unwrap_err().to_string();
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        shown.lines().collect::<Vec<_>>()
    );
}
