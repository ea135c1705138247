//! Entry points on whole inputs: a ConfigMap's data (format detected from its
//! keys) and a file for `check-config` (a ConfigMap manifest or a bare config).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::error::{ConfigErrors, Problem, ProblemKind};
use crate::model::Config;
use crate::walk::{self, Loc};
use crate::{ferrolb, kubevip, metallb};

/// The ConfigMap key of ferrolb's own format.
pub const FERROLB_KEY: &str = "config.yaml";
/// The ConfigMap key of MetalLB's legacy format.
pub const METALLB_KEY: &str = "config";

/// Which of the three formats a configuration was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// ferrolb's own `config.yaml`.
    Ferrolb,
    /// MetalLB's legacy ConfigMap (`config` key, `address-pools:`).
    MetalLbLegacy,
    /// kube-vip-cloud-provider's ConfigMap (`cidr-*` / `range-*` keys).
    KubeVip,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Ferrolb => "ferrolb",
            Format::MetalLbLegacy => "MetalLB legacy",
            Format::KubeVip => "kube-vip-cloud-provider",
        })
    }
}

/// A validated configuration and the format it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The detected format.
    pub format: Format,
    /// The validated configuration.
    pub config: Config,
}

/// Parse a ConfigMap's `data`, detecting the format from its keys:
/// `config.yaml` → ferrolb, `config` → MetalLB legacy, `cidr-*`/`range-*` → kube-vip.
/// Keys that belong to no format, or to two formats at once, are errors.
pub fn parse_configmap_data(data: &BTreeMap<String, String>) -> Result<Parsed, ConfigErrors> {
    let key_loc = |k: &str| Loc::at(format!("data[{k:?}]"));
    let has_ferrolb = data.contains_key(FERROLB_KEY);
    let has_metallb = data.contains_key(METALLB_KEY);
    let has_kubevip = kubevip::detect(data);
    let detected = [
        (has_ferrolb, Format::Ferrolb),
        (has_metallb, Format::MetalLbLegacy),
        (has_kubevip, Format::KubeVip),
    ];
    let formats: Vec<Format> = detected
        .iter()
        .filter(|(h, _)| *h)
        .map(|(_, f)| *f)
        .collect();
    match formats[..] {
        [] => Err(no_format(data)),
        [Format::KubeVip] => kubevip::parse_kubevip(data).map(|config| Parsed {
            format: Format::KubeVip,
            config,
        }),
        [format] => {
            let key = if format == Format::Ferrolb {
                FERROLB_KEY
            } else {
                METALLB_KEY
            };
            let mut problems: Vec<Problem> = data
                .keys()
                .filter(|k| k.as_str() != key)
                .map(|k| {
                    key_loc(k).problem(
                        ProblemKind::UnknownField,
                        format!(
                            "unexpected key next to {key:?}; a ConfigMap holds one configuration"
                        ),
                    )
                })
                .collect();
            let text = &data[key];
            let result = load_single(text).and_then(|v| match format {
                Format::Ferrolb => ferrolb::from_value(&v),
                _ => metallb::from_value(&v),
            });
            match result {
                Ok(config) if problems.is_empty() => Ok(Parsed { format, config }),
                Ok(_) => Err(ConfigErrors::new(problems)),
                Err(e) => {
                    problems.extend(e.problems);
                    Err(ConfigErrors::new(problems))
                }
            }
        }
        _ => {
            let names: Vec<String> = formats.iter().map(ToString::to_string).collect();
            Err(ConfigErrors::single(Problem::new(
                ProblemKind::UnknownFormat,
                "data",
                format!(
                    "keys of several formats in one ConfigMap ({}); keep the keys of one",
                    names.join(", ")
                ),
            )))
        }
    }
}

fn no_format(data: &BTreeMap<String, String>) -> ConfigErrors {
    let keys: Vec<String> = data.keys().map(|k| format!("{k:?}")).collect();
    let found = if keys.is_empty() {
        "it has no keys".to_string()
    } else {
        format!("found {}", keys.join(", "))
    };
    let mut problems = vec![Problem::new(
        ProblemKind::UnknownFormat,
        "data",
        format!(
            "no configuration found: expected the key \"config.yaml\" (ferrolb), \"config\" (MetalLB legacy) or cidr-<namespace>/range-<namespace> keys (kube-vip-cloud-provider); {found}"
        ),
    )];
    const CANDIDATES: &[&str] = &[FERROLB_KEY, METALLB_KEY, "cidr-global", "range-global"];
    for k in data.keys() {
        if let Some(s) = walk::suggest(k, CANDIDATES) {
            problems.push(Loc::at(format!("data[{k:?}]")).problem(
                ProblemKind::UnknownField,
                format!("unknown key, did you mean {s:?}?"),
            ));
        }
    }
    ConfigErrors::new(problems)
}

/// Parse the file `ferrolb-controller check-config` is given: a ConfigMap
/// manifest in any of the three formats (when the file holds several YAML
/// documents, the one ConfigMap among them), or a bare ferrolb `config.yaml`
/// (or a bare MetalLB legacy config, recognised by `address-pools`).
pub fn parse_document(text: &str) -> Result<Parsed, ConfigErrors> {
    let docs = load_all(text)?;
    let doc = match docs.len() {
        0 => return Err(empty_document()),
        1 => &docs[0],
        n => {
            let maps: Vec<&Value> = docs.iter().filter(|d| is_configmap(d)).collect();
            match maps[..] {
                [one] => one,
                [] => {
                    return Err(ConfigErrors::single(Problem::new(
                        ProblemKind::UnknownFormat,
                        "",
                        format!("the file holds {n} YAML documents and none is a ConfigMap"),
                    )));
                }
                _ => {
                    return Err(ConfigErrors::single(Problem::new(
                        ProblemKind::UnknownFormat,
                        "",
                        format!(
                            "the file holds {} ConfigMaps; check one at a time",
                            maps.len()
                        ),
                    )));
                }
            }
        }
    };
    if doc.is_null() {
        return Err(empty_document());
    }
    match doc.get("kind") {
        Some(kind) => manifest(doc, kind),
        None if doc.get("address-pools").is_some() && doc.get("pools").is_none() => {
            metallb::from_value(doc).map(|config| Parsed {
                format: Format::MetalLbLegacy,
                config,
            })
        }
        None => ferrolb::from_value(doc).map(|config| Parsed {
            format: Format::Ferrolb,
            config,
        }),
    }
}

fn is_configmap(doc: &Value) -> bool {
    doc.get("kind").and_then(Value::as_str) == Some("ConfigMap")
}

fn empty_document() -> ConfigErrors {
    ConfigErrors::single(Problem::new(
        ProblemKind::Syntax,
        "",
        "the document is empty",
    ))
}

/// A Kubernetes manifest: must be a ConfigMap whose `data` holds strings.
fn manifest(doc: &Value, kind: &Value) -> Result<Parsed, ConfigErrors> {
    let root = Loc::root();
    if kind.as_str() != Some("ConfigMap") {
        return Err(ConfigErrors::single(root.field("kind").problem_value(
            ProblemKind::UnknownFormat,
            kind,
            "expected a ConfigMap manifest or a bare config.yaml",
        )));
    }
    let dloc = root.field("data");
    let mut problems = Vec::new();
    let data = match doc.get("data") {
        None | Some(Value::Null) => {
            return Err(ConfigErrors::single(
                dloc.problem(ProblemKind::MissingField, "the ConfigMap has no data"),
            ));
        }
        Some(Value::Mapping(m)) => m,
        Some(other) => {
            return Err(ConfigErrors::single(walk::wrong_type(
                &dloc,
                other,
                "a mapping",
            )));
        }
    };
    let mut out = BTreeMap::new();
    for (k, v) in data {
        let Value::String(key) = k else {
            problems.push(dloc.problem_value(
                ProblemKind::WrongType,
                k,
                "ConfigMap keys must be strings",
            ));
            continue;
        };
        if let Some(s) = walk::string(v, &dloc.field(key), &mut problems) {
            out.insert(key.clone(), s.to_string());
        }
    }
    if !problems.is_empty() {
        return Err(ConfigErrors::new(problems));
    }
    parse_configmap_data(&out)
}

/// Load text that must be exactly one YAML document (a ConfigMap value).
/// An empty text is `Value::Null`.
pub(crate) fn load_single(text: &str) -> Result<Value, ConfigErrors> {
    let mut docs = load_all(text)?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => Ok(docs.remove(0)),
        n => Err(ConfigErrors::single(Problem::new(
            ProblemKind::Syntax,
            "",
            format!("expected one YAML document, found {n} (separated by ---)"),
        ))),
    }
}

/// Load every YAML document in `text`, with merge keys (`<<`) applied.
fn load_all(text: &str) -> Result<Vec<Value>, ConfigErrors> {
    let mut out = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let mut v = Value::deserialize(de).map_err(syntax)?;
        v.apply_merge().map_err(syntax)?;
        out.push(v);
    }
    Ok(out)
}

fn syntax(e: serde_yaml_ng::Error) -> ConfigErrors {
    ConfigErrors::single(Problem::new(
        ProblemKind::Syntax,
        "",
        format!("invalid YAML: {e}"),
    ))
}
