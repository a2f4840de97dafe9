//! Control of the local cluster `scripts/up` started: every process has
//! `<state>/run/<name>.pid` and `<state>/run/<name>.cmd` (its shell-quoted command line) and
//! logs to `<state>/logs/<name>.log`. Names: `s3`, `redis-<region>`, `node-<region>`, `router`.
//!
//! Signals go through the `kill` command (no libc). A restarted process gets its original
//! environment and working directory (read from `/proc` before it was stopped), its output
//! appended to its log, a session of its own as `scripts/up` gives it (so a Ctrl-C here does
//! not reach it, and the kernel's autogroups do not make it share one CPU share with this
//! process), and its new pid written to its `.pid` file, so `scripts/up`'s cleanup still
//! stops it.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Signals scenarios send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
    Stop,
    Cont,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
        }
    }
}

/// How to start a process again.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Shell-quoted command line (`.cmd`).
    pub cmd: String,
    /// The original environment, when `/proc` had it; else this process's is inherited.
    pub env: Option<Vec<(OsString, OsString)>>,
    pub cwd: PathBuf,
}

impl Launch {
    /// The same launch with `key=value` in its environment (replacing an earlier value).
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        let mut env = self.env.take().unwrap_or_else(|| std::env::vars_os().collect());
        env.retain(|(k, _)| k != key);
        env.push((key.into(), value.into()));
        self.env = Some(env);
        self
    }

    /// The value of `key` in the launch's environment, when it is known.
    pub fn env_var(&self, key: &str) -> Option<&OsString> {
        self.env.as_ref()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// The state directory of a local cluster (`.georec`).
#[derive(Debug, Clone)]
pub struct Cluster {
    state: PathBuf,
}

impl Cluster {
    pub fn new(state: impl Into<PathBuf>) -> Self {
        Cluster { state: state.into() }
    }

    pub fn state(&self) -> &Path {
        &self.state
    }

    /// The directory `scripts/up` ran in: the parent of the state directory.
    pub fn root(&self) -> PathBuf {
        let abs = std::fs::canonicalize(&self.state).unwrap_or_else(|_| self.state.clone());
        abs.parent().map(Path::to_path_buf).unwrap_or(abs)
    }

    fn file(&self, name: &str, ext: &str) -> PathBuf {
        self.state.join("run").join(format!("{name}.{ext}"))
    }

    pub fn log_file(&self, name: &str) -> PathBuf {
        self.state.join("logs").join(format!("{name}.log"))
    }

    /// The pid of a running process.
    pub fn pid(&self, name: &str) -> Result<u32, ClusterError> {
        let path = self.file(name, "pid");
        let text = std::fs::read_to_string(&path).map_err(|source| ClusterError::NoProcess {
            name: name.into(),
            path: path.clone(),
            source,
        })?;
        let pid = text.trim().parse().map_err(|_| ClusterError::BadPid { path, text: text.trim().into() })?;
        if !alive(pid) {
            return Err(ClusterError::NotRunning { name: name.into(), pid });
        }
        Ok(pid)
    }

    /// Send `signal` to the named process; returns its pid.
    pub fn signal(&self, name: &str, signal: Signal) -> Result<u32, ClusterError> {
        let pid = self.pid(name)?;
        send(pid, signal)?;
        Ok(pid)
    }

    /// How to start the named (running) process again.
    pub fn launch_of(&self, name: &str) -> Result<Launch, ClusterError> {
        let path = self.file(name, "cmd");
        let cmd = std::fs::read_to_string(&path)
            .map_err(|source| ClusterError::NoProcess { name: name.into(), path, source })?
            .trim()
            .to_string();
        let pid = self.pid(name)?;
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let env = std::fs::read(proc.join("environ")).ok().map(|bytes| parse_environ(&bytes));
        let cwd = std::fs::read_link(proc.join("cwd")).unwrap_or_else(|_| self.root());
        Ok(Launch { cmd, env, cwd })
    }

    /// Start `launch` as `name`, detached; record its pid. Returns the pid.
    pub fn start(&self, name: &str, launch: &Launch) -> Result<u32, ClusterError> {
        let io = |source| ClusterError::Start { name: name.into(), source };
        let log_path = self.log_file(name);
        let log = OpenOptions::new().create(true).append(true).open(&log_path).map_err(io)?;
        let mut cmd = Command::new("bash");
        // `setsid` (util-linux) makes the session and execs in place: this shell is not a
        // process group leader, so the pid recorded is the process's own.
        cmd.arg("-c")
            .arg(format!("exec setsid -w {}", launch.cmd))
            .current_dir(&launch.cwd)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io)?)
            .stderr(log);
        if let Some(env) = &launch.env {
            cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        }
        // Not waited for: the process outlives this one, and dropping `Child` leaves it running.
        let child = cmd.spawn().map_err(io)?;
        let pid = child.id();
        let pid_file = self.file(name, "pid");
        std::fs::write(&pid_file, format!("{pid}\n"))
            .map_err(|source| ClusterError::Start { name: name.into(), source })?;
        Ok(pid)
    }
}

/// `kill -<SIG> <pid>`.
pub fn send(pid: u32, signal: Signal) -> Result<(), ClusterError> {
    let status = Command::new("kill")
        .arg(format!("-{}", signal.name()))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .map_err(|source| ClusterError::Kill { pid, signal: signal.name(), source: Some(source) })?;
    if status.success() {
        Ok(())
    } else {
        Err(ClusterError::Kill { pid, signal: signal.name(), source: None })
    }
}

/// Whether `pid` runs (`kill -0`); a zombie (killed, not yet reaped) does not.
pub fn alive(pid: u32) -> bool {
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S ...`: the state follows the last ')'.
        if stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')) {
            return false;
        }
    }
    Command::new("kill")
        .arg("-0")
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn parse_environ(bytes: &[u8]) -> Vec<(OsString, OsString)> {
    bytes
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let eq = kv.iter().position(|b| *b == b'=')?;
            let (k, v) = (&kv[..eq], &kv[eq + 1..]);
            Some((std::ffi::OsStr::from_bytes(k).to_owned(), std::ffi::OsStr::from_bytes(v).to_owned()))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no process {name} in the local cluster ({path}); is scripts/up running, with --state pointing at its state directory?")]
    NoProcess {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} does not hold a pid: {text:?}")]
    BadPid { path: PathBuf, text: String },
    #[error("{name} (pid {pid}) is not running; restart the cluster with scripts/up")]
    NotRunning { name: String, pid: u32 },
    #[error("kill -{signal} {pid} failed")]
    Kill {
        pid: u32,
        signal: &'static str,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error("cannot start {name}")]
    Start {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environ_splits_on_nul_and_first_equals() {
        let env = parse_environ(b"A=1\0B=x=y\0\0");
        assert_eq!(env, vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]);
    }
}
