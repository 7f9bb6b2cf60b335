// SPDX-License-Identifier: Apache-2.0
//! What the benchmark binaries share: reading a process's CPU time and memory from /proc (Linux).

use std::time::Duration;

/// User + system CPU time of a process (this one for `None`).
pub fn process_cpu(pid: Option<u32>) -> Duration {
    stat_cpu(&pid.map_or("/proc/self/stat".to_string(), |p| format!("/proc/{p}/stat")))
}

fn stat_cpu(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// User + system CPU time of the calling thread.
pub fn thread_cpu() -> Duration {
    stat_cpu("/proc/thread-self/stat")
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS:` now, `VmHWM:` peak).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Microseconds of a duration, for per-task figures.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A tokio runtime by name, `current_thread` or `multi_thread` (what `#[tokio::main]` builds):
/// the benchmarks measure the worker on either.
pub fn runtime_named(name: &str) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = match name {
        "current_thread" => tokio::runtime::Builder::new_current_thread(),
        "multi_thread" => tokio::runtime::Builder::new_multi_thread(),
        other => {
            return Err(format!(
                "runtime {other}: expected current_thread or multi_thread"
            ));
        }
    };
    builder.enable_all().build().map_err(|e| e.to_string())
}
