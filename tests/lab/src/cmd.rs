//! Running external commands (iproute2, kubectl) with errors that quote the command.
//!
//! Synchronous versions exist because cleanup runs from `Drop` and signal paths, where
//! no runtime may be available.

use std::process::{Command, Output, Stdio};

use crate::error::LabError;

fn describe(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

fn check(program: &str, args: &[&str], out: std::io::Result<Output>) -> Result<String, LabError> {
    let out = out.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            LabError::MissingProgram {
                program: program.to_string(),
                hint: install_hint(program),
            }
        } else {
            LabError::Io {
                what: format!("running `{}`", describe(program, args)),
                source: e,
            }
        }
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command: describe(program, args),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// How to install a program the lab uses.
pub fn install_hint(program: &str) -> String {
    match program {
        "ip" => "install iproute2 (apt-get install iproute2)".into(),
        "kubectl" => "install kubectl (https://kubernetes.io/docs/tasks/tools/)".into(),
        "nft" => "install nftables (apt-get install nftables)".into(),
        "ping" => "install iputils-ping (apt-get install iputils-ping)".into(),
        other => format!("install {other}"),
    }
}

/// Runs `program args...`, returning its stdout, or an error with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, LabError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output();
    check(program, args, out)
}

/// Async [`run`].
pub async fn run_async(program: &str, args: &[&str]) -> Result<String, LabError> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    check(program, args, out)
}

/// Runs `ip args...`.
pub fn ip(args: &[&str]) -> Result<String, LabError> {
    run("ip", args)
}

/// Async `ip args...`.
pub async fn ip_async(args: &[&str]) -> Result<String, LabError> {
    run_async("ip", args).await
}

/// Runs `ip -n <netns> args...`.
pub fn ip_in(netns: &str, args: &[&str]) -> Result<String, LabError> {
    let mut all = vec!["-n", netns];
    all.extend_from_slice(args);
    ip(&all)
}

/// Async `ip -n <netns> args...`.
pub async fn ip_in_async(netns: &str, args: &[&str]) -> Result<String, LabError> {
    let mut all = vec!["-n", netns];
    all.extend_from_slice(args);
    ip_async(&all).await
}

/// Fails with a clear error when `program` is not on PATH.
pub fn require_program(program: &str) -> Result<(), LabError> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(LabError::MissingProgram {
            program: program.to_string(),
            hint: install_hint(program),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_command_reports_its_command_line_and_stderr() {
        let err = run("sh", &["-c", "echo boom >&2; exit 3"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sh -c echo boom >&2; exit 3"), "{text}");
        assert!(text.contains("boom"), "{text}");
        assert!(text.contains("3"), "{text}");
    }

    #[test]
    fn a_missing_program_is_named() {
        let err = run("ferrolb-no-such-program", &[]).unwrap_err();
        assert!(matches!(err, LabError::MissingProgram { .. }), "{err}");
        assert!(require_program("ferrolb-no-such-program").is_err());
        assert!(require_program("sh").is_ok());
        assert!(install_hint("nft").contains("apt-get install nftables"));
    }

    #[test]
    fn stdout_is_returned() {
        assert_eq!(run("echo", &["hi"]).unwrap(), "hi\n");
    }
}
