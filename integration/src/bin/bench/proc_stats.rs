//! What /proc says about a process and the machine (CPU time, memory, load), read with the
//! `procfs` crate.

use anyhow::{Context, Result};
use procfs::process::Process;
use std::time::Duration;

/// Seconds of `ticks` of the kernel's clock (`_SC_CLK_TCK`).
pub(super) fn tick_seconds(ticks: u64) -> f64 {
    ticks as f64 / procfs::ticks_per_second() as f64
}

/// CPU time (user + system) of a process so far.
pub(super) fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = Process::new(pid as i32)?
        .stat()
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    Ok(Duration::from_secs_f64(tick_seconds(
        stat.utime + stat.stime,
    )))
}

/// Resident memory of a process now (`VmRSS`) and at its peak (`VmHWM`), in bytes.
pub(super) fn resident_bytes(pid: u32) -> Result<(u64, u64)> {
    let status = Process::new(pid as i32)?
        .status()
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb = |v: Option<u64>, name| v.map(|kb| kb * 1024).context(format!("no {name}"));
    Ok((kb(status.vmrss, "VmRSS")?, kb(status.vmhwm, "VmHWM")?))
}

/// The pid of the process whose command line contains `needle` (etcd's data directory).
pub(super) fn find_pid(needle: &str) -> Option<u32> {
    let me = std::process::id() as i32;
    procfs::process::all_processes().ok()?.find_map(|process| {
        let process = process.ok()?;
        let cmdline = process.cmdline().ok()?.join(" ");
        let found = process.pid != me && cmdline.contains(needle) && !cmdline.contains("etcdctl");
        found.then_some(process.pid as u32)
    })
}

/// Busy and total ticks of the whole machine's CPUs.
pub(super) fn machine_ticks() -> (u64, u64) {
    use procfs::CurrentSI as _;
    let Ok(stats) = procfs::KernelStats::current() else {
        return (0, 0);
    };
    let t = stats.total;
    let extra = [t.iowait, t.irq, t.softirq, t.steal];
    let total = t.user + t.nice + t.system + t.idle + extra.iter().flatten().sum::<u64>();
    let idle = t.idle + t.iowait.unwrap_or(0);
    (total - idle, total)
}

/// CPU used by this process and its reaped children.
pub(super) fn own_cpu() -> Duration {
    let ticks = Process::myself()
        .and_then(|p| p.stat())
        .map(|s| s.utime + s.stime + (s.cutime + s.cstime).max(0) as u64)
        .unwrap_or(0);
    Duration::from_secs_f64(tick_seconds(ticks))
}

pub(super) fn load_average() -> String {
    use procfs::Current as _;
    procfs::LoadAverage::current()
        .map(|l| format!("{:.2} {:.2} {:.2}", l.one, l.five, l.fifteen))
        .unwrap_or_default()
}
