//! The lab's error type.

use std::path::PathBuf;

/// What can go wrong while building, running or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A bad option or argument.
    #[error("{0}")]
    Config(String),
    /// The lab must run as root (it creates network namespaces).
    #[error("the lab needs root (it creates network namespaces with iproute2); run it with sudo")]
    NotRoot,
    /// A required external program is not installed.
    #[error("`{program}` was not found on PATH: {hint}")]
    MissingProgram {
        /// The program.
        program: String,
        /// How to get it.
        hint: String,
    },
    /// A ferrolb binary the lab runs was not built.
    #[error(
        "{} not found: build the workspace first (`cargo build --workspace`, or `cargo test --workspace` which builds every binary)",
        .0.display()
    )]
    MissingBinary(PathBuf),
    /// An external command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// An I/O error, with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What the lab was doing.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A call to the API server failed.
    #[error("{what}: {source}")]
    Kube {
        /// What the lab was doing.
        what: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// A node name that the lab does not have.
    #[error("no node named {0:?} in this lab")]
    UnknownNode(String),
    /// Something did not happen in time.
    #[error("timed out after {after:?}: {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the lab waited.
        after: std::time::Duration,
    },
    /// A child process of the lab exited on its own.
    #[error("{name} exited unexpectedly ({status}); last lines of its log {log}:\n{tail}")]
    ChildCrashed {
        /// Which child.
        name: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: String,
        /// The end of its log.
        tail: String,
    },
}

impl LabError {
    /// Wraps an I/O error with what the lab was doing.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
        let what = what.into();
        move |source| LabError::Io { what, source }
    }

    /// Wraps a kube error with what the lab was doing.
    pub fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> LabError {
        let what = what.into();
        move |source| LabError::Kube { what, source }
    }
}
