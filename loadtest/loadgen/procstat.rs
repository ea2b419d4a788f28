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

/// Write-type syscalls (`syscw`) of `pid` so far, from `/proc/<pid>/io` (needs the same user or
/// ptrace rights).
pub fn write_syscalls(pid: &str) -> Option<u64> {
    let io = std::fs::read_to_string(Path::new("/proc").join(pid).join("io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("syscw:"))?
        .trim()
        .parse()
        .ok()
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
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
        let before = lim.rlim_cur as u64;
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                #[allow(clippy::unnecessary_cast)]
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
    start_syscw: Vec<Option<u64>>,
    pub peak_rss_kib: Vec<u64>,
}

/// One server process over the window.
pub struct ServerFigures {
    pub pid: String,
    pub cpu_s: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub hwm_kib: u64,
    /// Write-type syscalls in the window (None if /proc/<pid>/io is not readable).
    pub write_syscalls: Option<u64>,
}

impl ServerProbe {
    pub fn new(pids: &[u32]) -> Self {
        let pids: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
        let n = pids.len();
        ServerProbe {
            pids,
            start_cpu: vec![0.0; n],
            start_syscw: vec![None; n],
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
        self.start_syscw = self.pids.iter().map(|p| write_syscalls(p)).collect();
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

    /// The figures of every pid since `start`.
    pub fn finish(&mut self) -> Vec<ServerFigures> {
        self.sample();
        self.pids
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (rss, hwm) = memory_kib(p).unwrap_or((0, 0));
                ServerFigures {
                    pid: p.clone(),
                    cpu_s: cpu_seconds(p).map(|c| c - self.start_cpu[i]).unwrap_or(0.0),
                    rss_kib: rss,
                    peak_rss_kib: self.peak_rss_kib[i],
                    hwm_kib: hwm,
                    write_syscalls: match (self.start_syscw[i], write_syscalls(p)) {
                        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                        _ => None,
                    },
                }
            })
            .collect()
    }
}

/// Resident memory of a set of server processes sampled on a timer for the whole run: at start,
/// at the highest sample, at the end, and every sample (for seeing whether memory levels off).
pub struct RssSampler {
    state: std::sync::Arc<std::sync::Mutex<RssState>>,
    task: tokio::task::JoinHandle<()>,
}

struct RssState {
    pids: Vec<String>,
    first: Vec<u64>,
    max: Vec<u64>,
    last: Vec<u64>,
    series: Vec<Vec<u64>>,
}

impl RssState {
    fn sample(&mut self) -> Vec<u64> {
        let now: Vec<u64> = self
            .pids
            .iter()
            .map(|p| memory_kib(p).map(|m| m.0).unwrap_or(0))
            .collect();
        for (i, &r) in now.iter().enumerate() {
            self.max[i] = self.max[i].max(r);
            self.last[i] = r;
            self.series[i].push(r);
        }
        now
    }
}

/// One process's RSS over the run, KiB.
pub struct RssFigures {
    pub pid: String,
    pub first_kib: u64,
    pub max_kib: u64,
    pub last_kib: u64,
    pub series_kib: Vec<u64>,
}

impl RssSampler {
    /// Takes the first sample now, then one every `period` until `finish`.
    pub fn start(pids: &[u32], period: std::time::Duration) -> Self {
        let pids: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
        let n = pids.len();
        let mut st = RssState {
            pids,
            first: vec![0; n],
            max: vec![0; n],
            last: vec![0; n],
            series: vec![Vec::new(); n],
        };
        st.first = st.sample();
        let state = std::sync::Arc::new(std::sync::Mutex::new(st));
        let s = state.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                s.lock().expect("rss sampler lock").sample();
            }
        });
        RssSampler { state, task }
    }

    /// Samples now (also recorded in the series) and returns the RSS of every pid.
    pub fn now(&self) -> Vec<u64> {
        self.state.lock().expect("rss sampler lock").sample()
    }

    pub fn finish(self) -> Vec<RssFigures> {
        self.task.abort();
        let mut st = self.state.lock().expect("rss sampler lock");
        st.sample();
        (0..st.pids.len())
            .map(|i| RssFigures {
                pid: st.pids[i].clone(),
                first_kib: st.first[i],
                max_kib: st.max[i],
                last_kib: st.last[i],
                series_kib: std::mem::take(&mut st.series[i]),
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
        assert!(write_syscalls(&me).is_some());
    }
}
