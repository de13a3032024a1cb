//! What the server process (and its children: nginx serves from worker
//! processes) costs, read from /proc: CPU seconds and resident memory.
//! Nothing here asks the server anything, so every server is measured the
//! same way.

use std::collections::HashMap;
use std::fs;
use std::sync::OnceLock;

/// Kernel clock ticks per second (`getconf CLK_TCK`; 100 on every Linux
/// we know of, the fallback).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|&t| t > 0.0)
            .unwrap_or(100.0)
    })
}

/// The fields of /proc/PID/stat after the command name (which may contain
/// spaces and parentheses, hence the last ')').
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// utime + stime of one process in seconds (fields 14 and 15 of stat;
/// 11 and 12 after the name).
fn cpu_of(pid: u32) -> Option<f64> {
    let f = stat_fields(pid)?;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second())
}

/// This process's own CPU seconds.
pub(crate) fn self_cpu() -> f64 {
    cpu_of(std::process::id()).unwrap_or(0.0)
}

/// `pid` and every process below it.
pub(crate) fn tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = stat_fields(p).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut all = vec![pid];
    let mut i = 0;
    while let Some(&p) = all.get(i) {
        if let Some(c) = children.get(&p) {
            all.extend(c);
        }
        i += 1;
    }
    all
}

/// Summed CPU seconds of `pids` (processes that are gone count 0).
pub(crate) fn cpu(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| cpu_of(p)).sum()
}

/// Summed VmRSS of `pids`, in KiB.
pub(crate) fn rss_kb(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| {
            let status = fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// Seconds the threads of `pids` spent runnable but waiting for a CPU
/// (the second field of /proc/PID/task/TID/schedstat). On a shared
/// machine this tells a starved process from a slow one.
pub(crate) fn runqueue_wait(pids: &[u32]) -> f64 {
    let mut ns: u64 = 0;
    for p in pids {
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(text) = fs::read_to_string(t.path().join("schedstat")) else {
                continue;
            };
            ns += text
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}
