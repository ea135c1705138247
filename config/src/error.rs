//! Problems found in a configuration, and the error that carries all of them.
//!
//! Validation never stops at the first problem: every parser pushes into a
//! `Vec<Problem>` and returns [`ConfigErrors`] only at the end, so an operator
//! sees everything wrong with a ConfigMap in one go.

use std::fmt;

/// Which pool a problem belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolRef {
    /// The pool's name as written (even when the name itself is invalid).
    Name(String),
    /// The pool's position in its list, when it has no usable name.
    Index(usize),
}

impl fmt::Display for PoolRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolRef::Name(n) => write!(f, "pool {n:?}"),
            PoolRef::Index(i) => write!(f, "pool at index {i}"),
        }
    }
}

/// The kind of a problem, for callers that want to react by category
/// (metrics, events) rather than by message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The text is not YAML, or the document is empty.
    Syntax,
    /// The ConfigMap's keys match none of the three formats, or the manifest is not a ConfigMap.
    UnknownFormat,
    /// A field (or ConfigMap key) that the format does not define.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// A field holds a value of the wrong YAML type.
    WrongType,
    /// Not a parseable IP address, CIDR or range.
    InvalidAddress,
    /// A CIDR whose address has bits set beyond the prefix length.
    HostBitsSet,
    /// A range whose start is after its end.
    ReversedRange,
    /// A range whose ends are of different IP families.
    MixedFamilies,
    /// Two address entries share addresses.
    Overlap,
    /// Two pools have the same name.
    DuplicateName,
    /// A pool, namespace or interface name that is not acceptable.
    InvalidName,
    /// A pool with no usable address.
    EmptyPool,
    /// A feature ferrolb does not implement (BGP, per-namespace options of kube-vip, ...).
    Unsupported,
    /// A malformed label selector.
    InvalidSelector,
    /// Any other value outside what the field accepts.
    InvalidValue,
}

/// One thing wrong with a configuration: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Category of the problem.
    pub kind: ProblemKind,
    /// The pool concerned, if any.
    pub pool: Option<PoolRef>,
    /// Field path, e.g. `pools[1].addresses[2]`; empty for the whole document.
    pub path: String,
    /// The offending value, rendered as written (strings quoted), if there is one.
    pub value: Option<String>,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem at `path` with no pool and no value.
    pub fn new(kind: ProblemKind, path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            kind,
            pool: None,
            path: path.into(),
            value: None,
            message: message.into(),
        }
    }

    /// Attach the pool concerned.
    pub fn in_pool(mut self, pool: Option<PoolRef>) -> Self {
        self.pool = pool;
        self
    }

    /// Attach the offending value (already rendered).
    pub fn with_value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }
}

impl fmt::Display for Problem {
    /// `pool "lan", pools[0].addresses[2] = "192.0.2.1/33": <message>`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote_location = false;
        if let Some(pool) = &self.pool {
            write!(f, "{pool}")?;
            wrote_location = true;
        }
        if !self.path.is_empty() {
            if wrote_location {
                f.write_str(", ")?;
            }
            f.write_str(&self.path)?;
            wrote_location = true;
        }
        if let Some(v) = &self.value {
            if wrote_location {
                f.write_str(" = ")?;
            }
            f.write_str(v)?;
            wrote_location = true;
        }
        if wrote_location {
            f.write_str(": ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a configuration. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", display_lines(.problems))]
pub struct ConfigErrors {
    /// The problems, in the order they appear in the input (cross-pool checks last).
    pub problems: Vec<Problem>,
}

impl ConfigErrors {
    /// Wrap a list of problems.
    pub fn new(problems: Vec<Problem>) -> Self {
        ConfigErrors { problems }
    }

    /// A single-problem error.
    pub fn single(problem: Problem) -> Self {
        ConfigErrors {
            problems: vec![problem],
        }
    }
}

fn display_lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_display_with_all_parts() {
        let p = Problem::new(ProblemKind::InvalidAddress, "pools[0].addresses[2]", "bad")
            .in_pool(Some(PoolRef::Name("lan".into())))
            .with_value("\"x\"");
        assert_eq!(
            p.to_string(),
            r#"pool "lan", pools[0].addresses[2] = "x": bad"#
        );
    }

    #[test]
    fn problem_display_without_pool_or_value() {
        let p = Problem::new(ProblemKind::Syntax, "", "the document is empty");
        assert_eq!(p.to_string(), "the document is empty");
        let p = Problem::new(
            ProblemKind::MissingField,
            "pools",
            "required field is missing",
        )
        .in_pool(None);
        assert_eq!(p.to_string(), "pools: required field is missing");
        let p = Problem::new(ProblemKind::MissingField, "pools[3].name", "missing")
            .in_pool(Some(PoolRef::Index(3)));
        assert_eq!(p.to_string(), "pool at index 3, pools[3].name: missing");
    }

    #[test]
    fn errors_display_one_problem_per_line() {
        let e = ConfigErrors::new(vec![
            Problem::new(ProblemKind::Syntax, "a", "one"),
            Problem::new(ProblemKind::Syntax, "b", "two"),
        ]);
        assert_eq!(e.to_string(), "a: one\nb: two");
    }
}
