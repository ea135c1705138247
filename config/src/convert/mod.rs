//! `ferrolb-controller convert`: the configuration of the tool a cluster moves
//! from, as `kubectl get ... -o yaml` prints it, turned into a ferrolb ConfigMap.
//!
//! One module per source: `metallb` (`IPAddressPool`, `L2Advertisement`; the
//! BGP kinds are reported), `cilium` (`CiliumLoadBalancerIPPool`,
//! `CiliumL2AnnouncementPolicy`), `kubevip` (kube-vip-cloud-provider's
//! ConfigMap; a MetalLB legacy or ferrolb ConfigMap is read too). Each turns its
//! objects into pools and announcement policies; `l2` writes the policies as
//! ferrolb `l2.policies`, and `render` writes the result.
//!
//! What cannot be carried over exactly is never dropped in silence: it is a
//! [`Lost`] entry naming the object, the field and why. The output is written
//! so that a Service keeps its pool and its address: pools keep their names,
//! every address a pool had stays in it, and where a restriction cannot be
//! expressed the pool is narrowed to `autoAssign: false` rather than opened to
//! Services that could not use it before.

mod cilium;
mod kubevip;
mod l2;
mod metallb;
mod objects;
mod render;

use std::fmt;

use crate::error::{ConfigErrors, Problem, ProblemKind};
use crate::model::Config;
use crate::validate::{self, RawPool};
use crate::walk::is_dns1123_label;

/// Name of the ConfigMap `convert` writes (the controller's default).
pub const CONFIGMAP_NAME: &str = "ferrolb-config";
/// Namespace of the ConfigMap `convert` writes (the controller's default).
pub const CONFIGMAP_NAMESPACE: &str = "ferrolb-system";

/// One thing of the source configuration that the output does not say exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// The object, e.g. `pools.yaml[0].items[2] L2Advertisement "vlan20"`.
    pub origin: String,
    /// The field within it, e.g. `spec.interfaces`.
    pub field: String,
    /// What happens instead, and why.
    pub reason: String,
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.origin, self.reason)
        } else {
            write!(f, "{} {}: {}", self.origin, self.field, self.reason)
        }
    }
}

/// The result of a conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// The validated configuration the manifest holds.
    pub config: Config,
    /// The ferrolb ConfigMap manifest, ready for `kubectl apply -f`.
    pub manifest: String,
    /// Everything not carried over exactly; empty when the conversion is exact.
    pub lost: Vec<Lost>,
}

/// What one source module read: its pools (in the order ferrolb should try
/// them), its announcement policies, and the `l2` sections of ConfigMaps.
#[derive(Debug, Default)]
struct Part {
    pools: Vec<RawPool>,
    policies: Vec<l2::SourcePolicy>,
    own: Vec<l2::OwnL2>,
}

/// Converts the objects of `files` (name, text). Problems with the input (bad
/// YAML, unknown kinds or fields, malformed addresses, overlapping pools) are
/// errors naming the file, the document, the object and the field.
pub fn convert(files: &[(&str, &str)]) -> Result<Conversion, ConfigErrors> {
    let mut problems = Vec::new();
    let mut lost = Vec::new();
    let mut all = Vec::new();
    for (file, text) in files {
        all.extend(objects::read_file(file, text, &mut problems));
    }
    if all.is_empty() && problems.is_empty() {
        problems.push(Problem::new(
            ProblemKind::Syntax,
            "",
            "no objects found: give the output of `kubectl get ipaddresspools,l2advertisements -A -o yaml` (or of Cilium's or kube-vip's objects)",
        ));
    }
    let (mut mlb, mut cil, mut cms) = (Vec::new(), Vec::new(), Vec::new());
    for o in all {
        match o.kind.as_str() {
            k if metallb::KINDS.contains(&k) => mlb.push(o),
            k if cilium::KINDS.contains(&k) => cil.push(o),
            "ConfigMap" => cms.push(o),
            other => problems.push(Problem::new(
                ProblemKind::UnknownFormat,
                o.origin.to_string(),
                format!(
                    "kind {other:?} is not a load-balancer configuration object (expected MetalLB's {}, Cilium's {}, or a ConfigMap)",
                    metallb::KINDS.join(", "),
                    cilium::KINDS.join(", ")
                ),
            )),
        }
    }
    let parts = [
        metallb::convert(&mlb, &mut problems, &mut lost),
        cilium::convert(&cil, &mut problems, &mut lost),
        kubevip::convert(&cms, &mut problems, &mut lost),
    ];
    let mut pools = Vec::new();
    let mut policies = Vec::new();
    let mut own = Vec::new();
    for part in parts {
        pools.extend(part.pools);
        policies.extend(part.policies);
        own.extend(part.own);
    }
    let l2 = l2::assemble(&pools, policies, own);
    let config = validate::finish(pools, l2, problems)?;
    let manifest = render::manifest(&config, files.iter().map(|(f, _)| *f));
    // The manifest must say exactly what was validated: `check-config` reads it back.
    match crate::parse_document(&manifest) {
        Ok(p) if p.config == config => {}
        other => {
            return Err(ConfigErrors::single(Problem::new(
                ProblemKind::InvalidValue,
                "",
                format!(
                    "internal error: the converted configuration does not read back as written ({other:?}); please report this with the input"
                ),
            )));
        }
    }
    Ok(Conversion {
        config,
        manifest,
        lost,
    })
}

/// The pool name to write for an object name. Kubernetes object names may hold
/// dots, ferrolb pool names may not: a renamed pool is reported, because
/// Services that name the pool must be changed.
fn pool_name(o: &objects::Object, lost: &mut Vec<Lost>) -> String {
    if is_dns1123_label(&o.name) {
        return o.name.clone();
    }
    let n = l2::label_from(&o.name, "pool");
    lost.push(Lost {
        origin: o.origin.to_string(),
        field: "metadata.name".into(),
        reason: format!(
            "not a valid ferrolb pool name (1-63 lowercase letters, digits or '-'); written as {n:?}: Services that name the pool in an annotation must name {n:?}"
        ),
    });
    n
}
