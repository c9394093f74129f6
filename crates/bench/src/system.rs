//! What the harness reads about the machine and its processes from /proc: CPU time
//! (of this process, this thread, another process and its children), resident
//! memory, load average, cores and memory.

use std::time::Duration;

/// User + system CPU time of this process (every thread), from /proc/self/stat.
pub fn cpu_time() -> Duration {
    cpu_time_of("self").unwrap_or_default()
}

fn cpu_time_of(pid: &str) -> Option<Duration> {
    let fields = stat_fields(pid)?;
    let ticks = tick_sum(&fields, &[11, 12])?;
    Some(ticks_to_duration(ticks))
}

/// The fields of /proc/{pid}/stat after the parenthesised command name (so field 0
/// is the state, 1 the parent pid, 11 and 12 utime and stime, 13 and 14 the CPU
/// time of waited-for children).
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn tick_sum(fields: &[String], which: &[usize]) -> Option<u64> {
    which
        .iter()
        .map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum()
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let per_second = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    };
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

/// The parent of process `pid`.
pub fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(&pid.to_string())?.get(1)?.parse().ok()
}

/// CPU time of process `pid` and all its children, live and exited (PostgreSQL:
/// the postmaster reaps every backend, so exited ones are in its children's time).
pub fn cpu_time_of_tree(pid: u32) -> Duration {
    let own = stat_fields(&pid.to_string())
        .and_then(|f| tick_sum(&f, &[11, 12, 13, 14]))
        .unwrap_or(0);
    let children: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let name = name.to_str()?;
            name.parse::<u32>().ok()?;
            let fields = stat_fields(name)?;
            (fields.get(1)?.parse::<u32>().ok()? == pid).then(|| tick_sum(&fields, &[11, 12]))?
        })
        .sum();
    ticks_to_duration(own + children)
}

/// CPU time of the calling thread.
pub fn thread_cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// `VmRSS` and `VmHWM` (peak resident) of a process, in KiB.
pub fn resident_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg writes them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// "2 cores, 23.4 GiB".
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map_or_else(
            || "unknown memory".to_owned(),
            |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0),
        );
    format!("{cores} cores, {memory}")
}

/// Raises the open-file limit to the hard limit: 512 client connections plus their
/// server ends live in this process and in wrk.
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
