//! The machine the benchmark ran on, for the report's header.

use serde::{Deserialize, Serialize};
use std::process::{Command, Stdio};
use std::thread;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Machine {
    pub(super) cores: usize,
    pub(super) cpu: String,
    pub(super) memory: String,
    pub(super) kernel: String,
    pub(super) etcd: String,
    pub(super) etcdctl: String,
    pub(super) commit: String,
}

pub(super) fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub(super) fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    let first_line = |s: String| s.lines().next().unwrap_or("unknown").to_owned();
    let etcd = first_line(command_output("etcd", &["--version"]));
    let etcdctl = first_line(command_output("etcdctl", &["version"]));
    let commit = command_output("git", &["describe", "--always", "--dirty"]);
    Machine {
        cores: thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu,
        memory,
        kernel: command_output("uname", &["-sr"]),
        etcd: etcd.trim_start_matches("etcd Version: ").to_owned(),
        etcdctl: etcdctl.trim_start_matches("etcdctl version: ").to_owned(),
        commit: if commit.is_empty() {
            "unknown".into()
        } else {
            commit
        },
    }
}
