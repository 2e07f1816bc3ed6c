//! CPU time spent over one transfer: the whole machine's busy time and its
//! softirq share (/proc/stat), the switch processes' utime+stime
//! (/proc/PID/stat), the kernel's softirq threads (ksoftirqd, threaded
//! NAPI), and the children this process reaped in between (getrusage: the
//! iperf3 client and server).
//!
//! The kernel's bridge, router and vxlan do their work in softirq. On veths
//! there is no hardware interrupt: softirq runs either in the task that
//! raised it (a sender's `sendmsg`, podswitch's `write`) or in ksoftirqd.
//! Without `CONFIG_IRQ_TIME_ACCOUNTING` (this VM's kernel) the first is
//! inside that task's own time, so the run's own cost is its tasks plus
//! those threads; adding /proc/stat's softirq would count it twice. The
//! machine figure sees everything, including other jobs on the machine.

use anyhow::{anyhow, Context, Result};
use nix::sys::resource::{getrusage, UsageWho};

/// Counters read at one instant.
#[derive(Debug, Clone)]
pub struct Sample {
    busy_ticks: u64,
    softirq_ticks: u64,
    switch_ticks: u64,
    kthread_ticks: u64,
    children_s: f64,
}

/// CPU-seconds between two samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// Every core's non-idle time (user, nice, system, irq, softirq).
    pub machine_s: f64,
    /// Every core's softirq time.
    pub softirq_s: f64,
    /// utime+stime of the switch processes (podswitch daemons).
    pub switch_s: f64,
    /// utime+stime of the children reaped in between (iperf3).
    pub iperf_s: f64,
    /// ksoftirqd and threaded NAPI: softirq no task of the run did inline.
    pub kthread_s: f64,
}

impl CpuUse {
    /// What the transfer itself cost: the endpoints, the switch processes
    /// (each with the softirq it ran inline) and the softirq threads (less
    /// noisy than `machine_s` when other jobs share the machine).
    pub fn own_s(&self) -> f64 {
        self.iperf_s + self.switch_s + self.kthread_s
    }
}

impl Sample {
    /// Reads the counters now; `switch_pids` are the podswitch daemons.
    pub fn now(switch_pids: &[i32]) -> Result<Sample> {
        let (busy_ticks, softirq_ticks) = machine_ticks()?;
        let mut switch_ticks = 0;
        for &pid in switch_pids {
            switch_ticks += process_ticks(pid)?;
        }
        let kthread_ticks = softirq_thread_ticks();
        let ru = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage")?;
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        Ok(Sample {
            busy_ticks,
            softirq_ticks,
            switch_ticks,
            kthread_ticks,
            children_s: secs(ru.user_time()) + secs(ru.system_time()),
        })
    }

    /// What was spent from `self` to `later`.
    pub fn until(&self, later: &Sample) -> CpuUse {
        let hz = ticks_per_sec();
        let d = |a: u64, b: u64| b.saturating_sub(a) as f64 / hz;
        CpuUse {
            machine_s: d(self.busy_ticks, later.busy_ticks),
            softirq_s: d(self.softirq_ticks, later.softirq_ticks),
            switch_s: d(self.switch_ticks, later.switch_ticks),
            iperf_s: (later.children_s - self.children_s).max(0.0),
            kthread_s: d(self.kthread_ticks, later.kthread_ticks),
        }
    }
}

/// The 1-minute load average: how busy the rest of the machine was.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// (busy, softirq) ticks of the `cpu` line of /proc/stat.
fn machine_ticks() -> Result<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_stat(&text).ok_or_else(|| anyhow!("/proc/stat has no parsable `cpu` line"))
}

fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq [steal guest guest_nice]:
    // guest time is already inside user, and steal is the hypervisor's.
    let [user, nice, system, _idle, _iowait, irq, softirq, ..] = v[..] else {
        return None;
    };
    Some((user + nice + system + irq + softirq, softirq))
}

/// utime+stime ticks of every thread of a process.
fn process_ticks(pid: i32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_pid_stat(&text).ok_or_else(|| anyhow!("{path} is not parsable: {text}"))
}

/// utime+stime ticks of every ksoftirqd and threaded-NAPI kernel thread.
fn softirq_thread_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|text| is_softirq_thread(text))
        .filter_map(|text| parse_pid_stat(&text))
        .sum()
}

fn is_softirq_thread(stat: &str) -> bool {
    let comm = stat
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .map_or("", |(c, _)| c);
    comm.starts_with("ksoftirqd/") || comm.starts_with("napi/")
}

fn parse_pid_stat(text: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields are counted
    // from the last ')'. After it come state (field 3) ... utime (14) and
    // stime (15).
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_busy_time_leaves_out_idle_iowait_and_steal() {
        let text = "cpu  100 20 30 1000 50 7 9 400 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(parse_stat(text), Some((100 + 20 + 30 + 7 + 9, 9)));
    }

    #[test]
    fn a_process_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let text = "42 (po (d) sw) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(parse_pid_stat(text), Some(325));
    }

    #[test]
    fn ksoftirqd_and_napi_threads_are_told_from_a_process_that_mentions_them() {
        assert!(is_softirq_thread(
            "15 (ksoftirqd/1) S 2 0 0 0 -1 0 0 0 0 0 7 9"
        ));
        assert!(is_softirq_thread(
            "99 (napi/eth0-8193) S 2 0 0 0 -1 0 0 0 0 0 7 9"
        ));
        assert!(!is_softirq_thread(
            "77 (my ksoftirqd/1) S 1 0 0 0 -1 0 0 0 0 0 7 9"
        ));
        assert!(!is_softirq_thread("78 (iperf3) S 1 0 0 0 -1 0 0 0 0 0 7 9"));
    }

    #[test]
    fn a_truncated_stat_line_is_an_error_not_a_panic() {
        assert_eq!(parse_pid_stat("42 (x) S 1 2"), None);
        assert_eq!(parse_stat("cpu  1 2 3\n"), None);
    }

    #[test]
    fn this_process_burns_measurable_time_when_it_spins() {
        // Spin until the process's own counter shows 0.1 CPU-s, with a
        // deadline: on a loaded machine 0.1 s of CPU takes longer than 0.1 s.
        let me = std::process::id() as i32;
        let a = Sample::now(&[me]).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut x = 0u64;
        let u = loop {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            let u = a.until(&Sample::now(&[me]).unwrap());
            if u.switch_s >= 0.1 {
                break u;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "30 s of spinning showed {u:?}"
            );
        };
        assert!(u.machine_s >= u.switch_s * 0.5, "{u:?}");
    }
}
