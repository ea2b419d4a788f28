//! Process figures from /proc: CPU seconds (utime + stime) and resident memory, and raising our
//! own open-file limit.

use std::path::Path;

/// utime + stime of `pid` in seconds (`/proc/<pid>/stat` fields 14 and 15).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")).ok()?;
    // The command name (field 2) may contain spaces: split after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tck = if tck > 0 { tck as f64 } else { 100.0 };
    Some((utime + stime) as f64 / tck)
}

/// (VmRSS, VmHWM) of `pid` in KiB from `/proc/<pid>/status`.
pub fn memory_kib(pid: &str) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid).join("status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns (before, after).
pub fn raise_nofile_limit() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return (0, 0);
        }
        let before = lim.rlim_cur as u64;
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                return (before, lim.rlim_max as u64);
            }
        }
        (before, before)
    }
}

/// CPU and memory of a set of server processes over a measurement window.
pub struct ServerProbe {
    pids: Vec<String>,
    start_cpu: Vec<f64>,
    pub peak_rss_kib: Vec<u64>,
}

impl ServerProbe {
    pub fn new(pids: &[u32]) -> Self {
        let pids: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
        let n = pids.len();
        ServerProbe {
            pids,
            start_cpu: vec![0.0; n],
            peak_rss_kib: vec![0; n],
        }
    }

    /// Starts the CPU window.
    pub fn start(&mut self) {
        self.start_cpu = self
            .pids
            .iter()
            .map(|p| cpu_seconds(p).unwrap_or(0.0))
            .collect();
        self.sample();
    }

    /// Records the current RSS (for the peak during the window).
    pub fn sample(&mut self) {
        for (i, p) in self.pids.iter().enumerate() {
            if let Some((rss, _)) = memory_kib(p) {
                self.peak_rss_kib[i] = self.peak_rss_kib[i].max(rss);
            }
        }
    }

    /// Per pid: (pid, CPU seconds since `start`, RSS now, peak RSS in the window, VmHWM).
    pub fn finish(&mut self) -> Vec<(String, f64, u64, u64, u64)> {
        self.sample();
        self.pids
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let cpu = cpu_seconds(p).map(|c| c - self.start_cpu[i]).unwrap_or(0.0);
                let (rss, hwm) = memory_kib(p).unwrap_or((0, 0));
                (p.clone(), cpu, rss, self.peak_rss_kib[i], hwm)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id().to_string();
        assert!(cpu_seconds(&me).is_some());
        let (rss, hwm) = memory_kib(&me).expect("status");
        assert!(rss > 0 && hwm >= rss);
    }
}
