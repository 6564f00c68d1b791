//! What the process used: CPU time and resident memory, from `/proc`.

/// The CPU time of this process so far (all threads, ended ones
/// included), in seconds, to the nanosecond (`CLOCK_PROCESS_CPUTIME_ID`).
pub(crate) fn cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Makes room for `needed` open files: raises the soft limit up to the
/// hard one if it is lower. Says how far short it stays.
pub(crate) fn ensure_open_files(needed: u64) -> Result<(), String> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= needed {
        return Ok(());
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let raised = rustix::process::Rlimit {
        current: Some(needed.min(hard)),
        maximum: limit.maximum,
    };
    let _ = setrlimit(Resource::Nofile, raised);
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if now >= needed {
        Ok(())
    } else {
        Err(format!(
            "this needs about {needed} open files and the limit is {now} (raise it with `ulimit -n`)"
        ))
    }
}

/// The resident memory of this process in bytes; 0 where `/proc` is
/// missing.
pub(crate) fn rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    pages * rustix::param::page_size() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_has_used_cpu_and_memory() {
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds() > 0.0);
        if cfg!(target_os = "linux") {
            assert!(rss_bytes() > 1 << 20);
        }
        assert!(ensure_open_files(16).is_ok());
        assert!(ensure_open_files(u64::MAX).is_err());
    }
}
