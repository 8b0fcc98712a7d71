//! `uevent-flood=N` (issue 17, item 9): more uevents than PID 1's socket can hold. At
//! real-time priority (SCHED_FIFO, the kernel's real-time throttling off for the while) the
//! box writes `change` to /dev/null's device N times and then `add` to every block device's
//! `uevent` file, as `udevadm trigger` does; PID 1 cannot run in between, so its uevent
//! socket's buffer overflows and the adds are dropped. The init must notice (ENOBUFS) and read
//! sysfs again: a `modes=` after this shows whether every disk got its rule back.

use std::fs;
use std::time::Instant;

use crate::say;

/// The knob of the kernel's real-time throttling (-1: none).
const RT_RUNTIME: &str = "/proc/sys/kernel/sched_rt_runtime_us";
/// The device whose uevents fill the buffer: one every box has.
const FILLER: &str = "/sys/class/mem/null/uevent";

/// Floods, then goes back to normal priority and throttling.
pub fn run(count: u32) {
    let throttling = fs::read_to_string(RT_RUNTIME).unwrap_or_else(|_| "950000".into());
    if let Err(error) = fs::write(RT_RUNTIME, "-1") {
        say!("cannot turn real-time throttling off: {error}");
    }
    let real_time = set_fifo(true);
    let started = Instant::now();
    let sent = (0..count)
        .filter(|_| fs::write(FILLER, "change").is_ok())
        .count();
    let mut disks = 0;
    for entry in fs::read_dir("/sys/class/block")
        .into_iter()
        .flatten()
        .flatten()
    {
        if fs::write(entry.path().join("uevent"), "add").is_ok() {
            disks += 1;
        }
    }
    let took = started.elapsed();
    set_fifo(false);
    let _ = fs::write(RT_RUNTIME, throttling.trim());
    say!(
        "uevent flood: {sent} change and {disks} add in {}ms{}",
        took.as_millis(),
        if real_time {
            " at real-time priority"
        } else {
            ""
        }
    );
}

/// SCHED_FIFO at priority 50 (true) or back to SCHED_OTHER; whether it took.
fn set_fifo(on: bool) -> bool {
    let (policy, priority) = match on {
        true => (libc::SCHED_FIFO, 50),
        false => (libc::SCHED_OTHER, 0),
    };
    // The kernel's struct sched_param is one int (musl's has more fields, all unused on Linux).
    let param: libc::c_int = priority;
    // SAFETY: the system call reads one int at `param`, which outlives it; 0 is this process.
    let result = unsafe {
        libc::syscall(
            libc::SYS_sched_setscheduler,
            0,
            policy,
            &param as *const libc::c_int,
        )
    };
    if result != 0 {
        say!(
            "cannot set the scheduling policy: {}",
            std::io::Error::last_os_error()
        );
    }
    result == 0
}
