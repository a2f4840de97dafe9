//! Local cluster control on a throwaway process laid out as scripts/up lays out its own.

use std::time::Duration;

use loadtest::cluster::{alive, Cluster, ClusterError, Launch, Signal};

/// The fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, ...
fn stat(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    stat.rsplit_once(')').expect("comm").1.split_whitespace().map(str::to_string).collect()
}

fn state(pid: u32) -> String {
    stat(pid)[0][..1].to_string()
}

/// The session a process belongs to.
fn session(pid: u32) -> u32 {
    stat(pid)[3].parse().expect("session id")
}

/// Until the child has exec'd `sleep` (before that, /proc shows the forking parent's environment).
fn wait_exec(pid: u32) {
    for _ in 0..200 {
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep") {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{pid} did not exec sleep");
}

#[test]
fn a_process_is_stopped_resumed_killed_and_restarted_with_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("run")).unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let cluster = Cluster::new(dir.path());
    std::fs::write(dir.path().join("run/node-x.cmd"), "sleep 30 ").unwrap();
    let path = std::env::var_os("PATH").unwrap();
    let first = Launch {
        cmd: "sleep 30".into(),
        env: Some(vec![("PATH".into(), path), ("GEOREC_MARK".into(), "original".into())]),
        cwd: dir.path().to_path_buf(),
    };
    let pid = cluster.start("node-x", &first).unwrap();
    wait_exec(pid);
    assert_eq!(cluster.pid("node-x").unwrap(), pid);
    assert_eq!(session(pid), pid, "a session of its own, led by the process itself");

    // What a restart will use: the command, and the running process's environment and cwd.
    let launch = cluster.launch_of("node-x").unwrap();
    assert_eq!(launch.cmd, "sleep 30");
    let env = launch.env.clone().unwrap();
    assert!(env.iter().any(|(k, v)| k == "GEOREC_MARK" && v == "original"), "{env:?}");
    assert_eq!(launch.cwd, std::fs::canonicalize(dir.path()).unwrap());

    cluster.signal("node-x", Signal::Stop).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(state(pid), "T");
    cluster.signal("node-x", Signal::Cont).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_ne!(state(pid), "T");

    cluster.signal("node-x", Signal::Kill).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!alive(pid), "a killed (zombie) process is not alive");
    assert!(matches!(cluster.pid("node-x"), Err(ClusterError::NotRunning { .. })));

    let again = cluster.start("node-x", &launch).unwrap();
    wait_exec(again);
    assert_ne!(again, pid);
    assert_eq!(cluster.pid("node-x").unwrap(), again, "the new pid is in the .pid file");
    let environ = std::fs::read(format!("/proc/{again}/environ")).unwrap();
    assert!(String::from_utf8_lossy(&environ).contains("GEOREC_MARK=original"));
    cluster.signal("node-x", Signal::Kill).unwrap();

    assert!(matches!(cluster.pid("redis-y"), Err(ClusterError::NoProcess { .. })));
}
