//! Process CPU time and memory, read from `/proc` with safe code only
//! (the workspace forbids `unsafe`, so no `getrusage`).
//!
//! # Method
//!
//! [`process_cpu_time`] sums the first field of
//! `/proc/self/task/<tid>/schedstat` over every thread of this process: the
//! nanoseconds each thread has spent on a CPU (user + system), kept by the
//! scheduler at full precision. That is what a slice of a few tens of
//! milliseconds needs; `/proc/self/stat`'s `utime`/`stime` count in
//! `USER_HZ` ticks (10 ms) and are only used as a fallback when `schedstat`
//! is unavailable (kernel without `CONFIG_SCHED_INFO`), in which case the
//! per-pair CPU ratios are coarse and only the aggregated value per side
//! (summed over all slices) is meaningful.
//!
//! Caveat: a thread that exits *during* a slice takes its time with it
//! (schedstat is per live thread). The bench runtime keeps its worker alive
//! for the whole run and the clients under test keep their own threads
//! (isahc's agent) alive, so in practice only short-lived blocking-pool
//! threads could be missed.

use std::fs;
use std::time::Duration;

/// Which source [`process_cpu_time`] uses on this machine.
pub fn cpu_time_method() -> &'static str {
    if schedstat_sum().is_some() {
        "sum of /proc/self/task/*/schedstat run time (ns precision), whole process"
    } else {
        "/proc/self/stat utime+stime at USER_HZ=100 (10 ms ticks), whole process"
    }
}

/// CPU time consumed so far by all live threads of this process.
///
/// Returns zero when neither `/proc` source can be read.
pub fn process_cpu_time() -> Duration {
    schedstat_sum()
        .or_else(stat_ticks)
        .unwrap_or(Duration::ZERO)
}

fn schedstat_sum() -> Option<Duration> {
    let mut total: u64 = 0;
    let mut any = false;
    for entry in fs::read_dir("/proc/self/task").ok()? {
        let Ok(entry) = entry else { continue };
        let mut path = entry.path();
        path.push("schedstat");
        // A thread may exit between read_dir and read: skip it.
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
        total = total.saturating_add(ns);
        any = true;
    }
    any.then(|| Duration::from_nanos(total))
}

fn stat_ticks() -> Option<Duration> {
    let text = fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces: parse after its ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Peak resident set size of this process so far (`VmHWM`), in MiB.
///
/// Process-wide and monotonic: a scenario that wants its own peak must run
/// before heavier ones or in a child process.
pub fn peak_rss_mib() -> Option<f64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
