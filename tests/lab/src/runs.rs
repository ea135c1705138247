//! Ownership of lab runs, so that a run after a killed run works.
//!
//! Each run claims a prefix (e.g. `flb1234a`) by creating `/run/ferrolb-lab/<prefix>.pid`
//! (exclusively) holding its pid and that process's start time, *before* it creates
//! anything. A later run reaps every run whose owner is gone — its processes, its
//! namespaces, its state directory `/run/ferrolb-lab/<prefix>/` — and every namespace
//! of the prefix family that has no record at all.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::LabError;
use crate::plan::{candidate_prefix, is_family_prefix, prefix_of_netns};
use crate::topology::{destroy_namespaces, list_netns, pids_in};

/// Where run records and state directories live.
pub const RUN_DIR: &str = "/run/ferrolb-lab";

/// The owner of a run: its pid and that process's start time (in clock ticks since
/// boot), which tells a live owner from a recycled pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Start time of that process, field 22 of `/proc/<pid>/stat`.
    pub start: u64,
}

impl Owner {
    /// This process.
    pub fn current() -> Result<Owner, LabError> {
        let pid = std::process::id();
        let start = start_time(pid)
            .ok_or_else(|| LabError::Config("cannot read /proc/self/stat".into()))?;
        Ok(Owner { pid, start })
    }

    /// Whether the owning process still runs.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }

    fn to_record(self) -> String {
        format!("{} {}\n", self.pid, self.start)
    }

    fn from_record(s: &str) -> Option<Owner> {
        let mut words = s.split_whitespace();
        let pid = words.next()?.parse().ok()?;
        let start = words.next()?.parse().ok()?;
        Some(Owner { pid, start })
    }
}

/// Start time of process `pid`, if it exists.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// Field 22 (starttime) of a `/proc/<pid>/stat` line; the command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// A claimed run: removing the claim is part of cleanup.
#[derive(Debug)]
pub struct Claim {
    /// The run's prefix.
    pub prefix: String,
    /// Its state directory (kubeconfigs, logs).
    pub state_dir: PathBuf,
    record: PathBuf,
}

impl Claim {
    /// Removes the record and the state directory. Idempotent.
    pub fn release(&self) {
        let _ = std::fs::remove_dir_all(&self.state_dir);
        let _ = std::fs::remove_file(&self.record);
    }
}

fn record_path(prefix: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{prefix}.pid"))
}

/// Reaps stale runs, then claims a fresh prefix for this process.
pub fn claim() -> Result<Claim, LabError> {
    std::fs::create_dir_all(RUN_DIR).map_err(LabError::io(format!("creating {RUN_DIR}")))?;
    reap_stale();
    let owner = Owner::current()?;
    for n in 0..26 {
        let prefix = candidate_prefix(owner.pid, n);
        let record = record_path(&prefix);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&record)
        {
            Ok(mut f) => {
                f.write_all(owner.to_record().as_bytes())
                    .map_err(LabError::io(format!("writing {}", record.display())))?;
                let state_dir = Path::new(RUN_DIR).join(&prefix);
                // A leftover directory of a reaped run of the same name goes first.
                let _ = std::fs::remove_dir_all(&state_dir);
                std::fs::create_dir_all(state_dir.join("logs"))
                    .map_err(LabError::io(format!("creating {}", state_dir.display())))?;
                return Ok(Claim {
                    prefix,
                    state_dir,
                    record,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(LabError::Io {
                    what: format!("creating {}", record.display()),
                    source: e,
                });
            }
        }
    }
    Err(LabError::Config(format!(
        "no free lab prefix for pid {}: too many labs running",
        owner.pid
    )))
}

/// The prefixes of runs whose owner is gone, and of namespaces no run owns.
pub fn stale_prefixes() -> BTreeSet<String> {
    let mut stale = BTreeSet::new();
    let mut owned = BTreeSet::new();
    if let Ok(dir) = std::fs::read_dir(RUN_DIR) {
        for entry in dir.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(prefix) = name.strip_suffix(".pid") else {
                continue;
            };
            if !is_family_prefix(prefix) {
                continue;
            }
            let owner = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|s| Owner::from_record(&s));
            // A record being written right now may still be empty: give it the
            // benefit of the doubt unless it is old.
            let young = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().map(|e| e.as_secs() < 10).unwrap_or(true))
                .unwrap_or(false);
            match owner {
                Some(o) if o.alive() => {
                    owned.insert(prefix.to_string());
                }
                None if young => {
                    owned.insert(prefix.to_string());
                }
                _ => {
                    stale.insert(prefix.to_string());
                }
            }
        }
    }
    for ns in list_netns().unwrap_or_default() {
        if let Some(prefix) = prefix_of_netns(&ns)
            && !owned.contains(prefix)
        {
            stale.insert(prefix.to_string());
        }
    }
    stale
}

/// Removes every stale run (see [`stale_prefixes`]); returns the prefixes reaped.
pub fn reap_stale() -> Vec<String> {
    let stale = stale_prefixes();
    for prefix in &stale {
        reap(prefix);
    }
    stale.into_iter().collect()
}

/// Kills the processes of run `prefix`, removes its namespaces, state and record.
pub fn reap(prefix: &str) {
    let namespaces: Vec<String> = list_netns()
        .unwrap_or_default()
        .into_iter()
        .filter(|ns| prefix_of_netns(ns) == Some(prefix))
        .collect();
    let state_dir = Path::new(RUN_DIR).join(prefix);
    let mut pids: BTreeSet<u32> = namespaces.iter().flat_map(|ns| pids_in(ns)).collect();
    pids.extend(pids_mentioning(&format!("{}/", state_dir.display())));
    pids.remove(&std::process::id());
    for pid in pids {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    destroy_namespaces(&namespaces);
    // Its objects on an external API server, once its processes are gone.
    crate::ledger::reap_record(&state_dir);
    let _ = std::fs::remove_dir_all(&state_dir);
    let _ = std::fs::remove_file(record_path(prefix));
}

/// Processes whose command line mentions `needle` (the lab passes its state directory
/// to every child, e.g. in `--kubeconfig`, which makes its root-namespace children
/// findable after the lab itself was killed).
fn pids_mentioning(needle: &str) -> Vec<u32> {
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc_dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_with_odd_command_names() {
        let stat =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
        assert_eq!(parse_start_time("1 (x) S 1"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_bogus_owner_is_not() {
        let me = Owner::current().unwrap();
        assert!(me.alive());
        assert!(
            !Owner {
                pid: me.pid,
                start: me.start + 1
            }
            .alive()
        );
        assert_eq!(Owner::from_record(&me.to_record()), Some(me));
        assert_eq!(Owner::from_record(""), None);
    }
}
