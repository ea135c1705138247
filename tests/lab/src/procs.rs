//! The lab's child processes (controller, speakers): started with their output in a log
//! file, in their own process group (a Ctrl-C at the terminal reaches the lab only, which
//! then tears everything down in order), killed by the kernel if the lab dies, and
//! supervised: a child that exits without the lab asking for it is a crash.
//!
//! "Killed by the kernel if the lab dies" is the parent-death signal, set by running
//! each child under `setpriv --pdeathsig KILL` (util-linux), which keeps the crate free
//! of `unsafe`. The signal persists through `exec` and fires when the *thread* that
//! forked the child exits, so children must be started from long-lived threads (a
//! runtime's worker or main thread, never `spawn_blocking` or a throwaway thread).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::sync::Notify;

use crate::error::LabError;

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The child's name in the lab (`controller`, `speaker-n1`): also its log file name.
    pub name: String,
    /// Program and arguments.
    pub argv: Vec<OsString>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

/// How a child ended without being asked to.
#[derive(Debug, Clone)]
pub struct Crash {
    /// The child's name.
    pub name: String,
    /// Its exit status.
    pub status: String,
    /// Its log file.
    pub log: PathBuf,
}

#[derive(Debug)]
struct Entry {
    pid: u32,
    /// Set before the lab signals the child: its exit is then expected.
    expected: bool,
    running: bool,
    spec: Spec,
}

#[derive(Debug, Default)]
struct State {
    children: BTreeMap<String, Entry>,
    crash: Option<Crash>,
    shutting_down: bool,
}

/// Starts, signals and watches the lab's children.
#[derive(Debug, Clone)]
pub struct Supervisor {
    log_dir: PathBuf,
    state: Arc<Mutex<State>>,
    crashed: Arc<Notify>,
}

impl Supervisor {
    /// A supervisor writing child logs under `log_dir`.
    pub fn new(log_dir: PathBuf) -> Supervisor {
        Supervisor {
            log_dir,
            state: Arc::default(),
            crashed: Arc::new(Notify::new()),
        }
    }

    /// Path of the log of child `name`.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// Starts `spec` (call from a long-lived thread: see the module documentation). A child of
    /// the same name must not be running.
    pub fn start(&self, spec: Spec) -> Result<u32, LabError> {
        {
            let state = self.state.lock().expect("supervisor lock");
            if state.shutting_down {
                return Err(LabError::Config("the lab is shutting down".into()));
            }
            if state.children.get(&spec.name).is_some_and(|e| e.running) {
                return Err(LabError::Config(format!(
                    "{} is already running",
                    spec.name
                )));
            }
        }
        let log_path = self.log_path(&spec.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(LabError::io(format!("opening {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(LabError::io("duplicating a log file handle"))?;
        let program = spec
            .argv
            .first()
            .ok_or_else(|| LabError::Config("empty command".into()))?;
        if program.to_str().is_some_and(|p| p.contains('/'))
            && !std::path::Path::new(program).is_file()
        {
            return Err(LabError::MissingBinary(PathBuf::from(program)));
        }
        let mut cmd = tokio::process::Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--"])
            .args(&spec.argv)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                LabError::MissingProgram {
                    program: "setpriv".into(),
                    hint: "install util-linux".into(),
                }
            } else {
                LabError::Io {
                    what: format!("starting {}", spec.name),
                    source: e,
                }
            }
        })?;
        let pid = child
            .id()
            .ok_or_else(|| LabError::Config(format!("{} exited at once", spec.name)))?;
        let name = spec.name.clone();
        self.state.lock().expect("supervisor lock").children.insert(
            name.clone(),
            Entry {
                pid,
                expected: false,
                running: true,
                spec,
            },
        );
        let state = self.state.clone();
        let crashed = self.crashed.clone();
        let log = log_path.clone();
        tokio::spawn(async move {
            let status = child
                .wait()
                .await
                .map(|s| s.to_string())
                .unwrap_or_else(|e| format!("wait failed: {e}"));
            let mut st = state.lock().expect("supervisor lock");
            let shutting_down = st.shutting_down;
            if let Some(entry) = st.children.get_mut(&name)
                && entry.pid == pid
            {
                entry.running = false;
                if !entry.expected && !shutting_down && st.crash.is_none() {
                    st.crash = Some(Crash {
                        name: name.clone(),
                        status,
                        log,
                    });
                    crashed.notify_waiters();
                    crashed.notify_one();
                }
            }
        });
        Ok(pid)
    }

    /// Starts again a child that ran before, with the same command.
    pub fn restart(&self, name: &str) -> Result<u32, LabError> {
        let spec = self
            .state
            .lock()
            .expect("supervisor lock")
            .children
            .get(name)
            .map(|e| e.spec.clone())
            .ok_or_else(|| LabError::Config(format!("no child named {name}")))?;
        self.start(spec)
    }

    /// Sends `signal` to child `name`, whose exit is then expected. Returns its pid.
    pub fn signal(&self, name: &str, signal: Signal) -> Result<u32, LabError> {
        let mut st = self.state.lock().expect("supervisor lock");
        let entry = st
            .children
            .get_mut(name)
            .ok_or_else(|| LabError::Config(format!("no child named {name}")))?;
        if !entry.running {
            return Err(LabError::Config(format!("{name} is not running")));
        }
        entry.expected = true;
        kill(Pid::from_raw(entry.pid as i32), signal).map_err(|e| LabError::Io {
            what: format!("sending {signal} to {name} (pid {})", entry.pid),
            source: e.into(),
        })?;
        Ok(entry.pid)
    }

    /// Whether child `name` runs.
    pub fn is_running(&self, name: &str) -> bool {
        self.state
            .lock()
            .expect("supervisor lock")
            .children
            .get(name)
            .is_some_and(|e| e.running)
    }

    /// Pid of child `name` if it runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        let st = self.state.lock().expect("supervisor lock");
        st.children.get(name).filter(|e| e.running).map(|e| e.pid)
    }

    /// The first crash, if any.
    pub fn crash(&self) -> Option<Crash> {
        self.state.lock().expect("supervisor lock").crash.clone()
    }

    /// Waits until a child crashes.
    pub async fn wait_crash(&self) -> Crash {
        loop {
            let notified = self.crashed.notified();
            if let Some(c) = self.crash() {
                return c;
            }
            notified.await;
        }
    }

    /// SIGKILLs every running child; from now on exits are expected and no child may
    /// start. Synchronous and idempotent (used by cleanup).
    pub fn kill_all(&self) {
        let mut st = self.state.lock().expect("supervisor lock");
        st.shutting_down = true;
        for entry in st.children.values_mut().filter(|e| e.running) {
            entry.expected = true;
            let _ = kill(Pid::from_raw(entry.pid as i32), Signal::SIGKILL);
        }
    }

    /// Waits (bounded) until no child runs.
    pub async fn wait_all_exited(&self, within: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let any = self
                .state
                .lock()
                .expect("supervisor lock")
                .children
                .values()
                .any(|e| e.running);
            if !any {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The last `lines` lines of child `name`'s log.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        tail(&self.log_path(name), lines)
    }
}

/// The last `lines` lines of a file ("" if unreadable).
pub fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Crash {
    /// The crash as an error carrying the end of the child's log.
    pub fn into_error(self) -> LabError {
        let tail = tail(&self.log, 30);
        LabError::ChildCrashed {
            name: self.name,
            status: self.status,
            log: self.log.display().to_string(),
            tail,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn spec(name: &str, script: &str) -> Spec {
        Spec {
            name: name.into(),
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![],
        }
    }

    #[tokio::test]
    async fn an_unexpected_exit_is_a_crash_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let sup = Supervisor::new(dir.path().to_path_buf());
        sup.start(spec("quick", "echo about to fail; exit 7"))
            .unwrap();
        let crash = tokio::time::timeout(Duration::from_secs(5), sup.wait_crash())
            .await
            .unwrap();
        assert_eq!(crash.name, "quick");
        assert!(crash.status.contains('7'), "{}", crash.status);
        let err = crash.into_error().to_string();
        assert!(err.contains("about to fail"), "{err}");
    }

    #[tokio::test]
    async fn a_signalled_child_is_not_a_crash_and_can_restart() {
        let dir = tempfile::tempdir().unwrap();
        let sup = Supervisor::new(dir.path().to_path_buf());
        let pid = sup.start(spec("sleeper", "exec sleep 30")).unwrap();
        assert!(sup.is_running("sleeper"));
        assert!(
            sup.start(spec("sleeper", "exec sleep 30")).is_err(),
            "a second one with the same name"
        );
        assert_eq!(sup.signal("sleeper", Signal::SIGKILL).unwrap(), pid);
        assert!(sup.wait_all_exited(Duration::from_secs(5)).await);
        assert!(sup.crash().is_none());
        assert!(
            sup.signal("sleeper", Signal::SIGKILL).is_err(),
            "not running any more"
        );
        let pid2 = sup.restart("sleeper").unwrap();
        assert_ne!(pid, pid2);
        sup.kill_all();
        assert!(sup.wait_all_exited(Duration::from_secs(5)).await);
        assert!(sup.crash().is_none());
        assert!(sup.restart("sleeper").is_err(), "no start after shutdown");
    }

    #[tokio::test]
    async fn a_missing_binary_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let sup = Supervisor::new(dir.path().to_path_buf());
        let err = sup
            .start(Spec {
                name: "x".into(),
                argv: vec!["/nonexistent/ferrolb-speaker".into()],
                env: vec![],
            })
            .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/ferrolb-speaker"),
            "{err}"
        );
        assert!(err.to_string().contains("cargo build --workspace"), "{err}");
    }
}
