//! The examples in docs/configuration.md are valid and say what the parser does.

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
        [Format::Ferrolb, Format::MetalLbLegacy, Format::KubeVip]
    );
}

#[test]
fn the_summary_shown_is_the_summary_printed() {
    let ferrolb = &blocks("yaml")[0];
    let shown = &blocks("text")[0];
    let config = parse_document(ferrolb).unwrap().config;
    let printed = format!(
        "ferrolb-config.yaml: valid ferrolb configuration\n{}{}",
        SummaryTable(&summarize(&config)),
        AnnouncementSummary(&config)
    );
    assert_eq!(&printed, shown);
}

#[test]
fn the_kubevip_example_gives_the_pools_described() {
    let kubevip = &blocks("yaml")[2];
    let config = parse_document(kubevip).unwrap().config;
    let names: Vec<&str> = config.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["dev", "prod", "global"]);
    assert_eq!(config.l2.interfaces, ["eth0"]);
}

#[test]
fn the_error_lines_shown_are_errors_printed() {
    let text = blocks("text");
    let (bad, shown) = (&text[1], &text[2]);
    let printed = parse_document(bad).unwrap_err().to_string();
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        shown.lines().collect::<Vec<_>>()
    );
}
