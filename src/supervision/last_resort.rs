//! The shutdown's last resort. `sync` and the unmounts wait for every disk, and a disk that
//! stopped answering (a dead SD card) makes them wait for ever: scenario 151's power-off hung
//! in `sync` on 4 kB for the dead card, until softdog reset the machine; without a watchdog
//! it would have hung for good. A thread watches them: once no disk has completed a write
//! for `cover::WRITEBACK_STALL` (30 s), it says so and calls `reboot(2)` itself with what was
//! asked for, the unwritten data lost (there is nowhere left to write it). A slow card that
//! goes on writing (a large write-back) is waited for. With a watchdog, this comes before the
//! shutdown's cover ends, so a power-off stays a power-off rather than a reset.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::supervision::cover::{self, Progressing};
use crate::sys::{Reboot, Sys};

/// How the thread watches the disks: how often it looks, how long without a write is a
/// stall, and how it reads the sectors written. [`Watch::disks`] in the init; tests shorten
/// the times and script the disks.
struct Watch {
    look: Duration,
    stall: Duration,
    written: Box<dyn Fn() -> Option<u64> + Send>,
}

impl Watch {
    /// This machine's disks (`/proc/diskstats`), looked at every second, a stall after
    /// [`cover::WRITEBACK_STALL`].
    fn disks() -> Watch {
        Watch {
            look: Duration::from_secs(1),
            stall: cover::WRITEBACK_STALL,
            written: Box::new(cover::written_now),
        }
    }
}

/// The watch over the shutdown's last waits; ended by [`LastResort::disarm`].
pub struct LastResort {
    done: Arc<AtomicBool>,
}

impl LastResort {
    /// Starts watching this machine's disks, to end the machine `how` with `sys` if they stop
    /// answering. None (said why) when no thread can be made: the shutdown goes on without
    /// the watch.
    pub fn arm(sys: Box<dyn Sys + Send>, how: Reboot) -> Option<LastResort> {
        LastResort::arm_watching(sys, how, Watch::disks())
    }

    /// [`LastResort::arm`] with the disks watched as `watch` says.
    fn arm_watching(mut sys: Box<dyn Sys + Send>, how: Reboot, watch: Watch) -> Option<LastResort> {
        let done = Arc::new(AtomicBool::new(false));
        let watching = Arc::clone(&done);
        let spawned = std::thread::Builder::new()
            .name("last resort".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut progress = Progressing::new(Instant::now(), (watch.written)());
                loop {
                    std::thread::sleep(watch.look);
                    if watching.load(Ordering::Acquire) {
                        return;
                    }
                    if !progress.still_within(Instant::now(), (watch.written)(), watch.stall) {
                        break;
                    }
                }
                log::error!(
                    "shutdown: sync and unmount have not ended and no disk completed a write for {}s: a disk does not answer (a dead card?); ending the machine without them ({how:?}), what was not written is lost",
                    watch.stall.as_secs()
                );
                if let Err(e) = sys.reboot(how) {
                    log::error!("reboot({how:?}) failed: {e}; the machine stays up with nothing running");
                }
            });
        match spawned {
            Ok(_) => Some(LastResort { done }),
            Err(e) => {
                log::warn!("shutdown: cannot start a thread to watch sync and unmount ({e}); a disk that does not answer holds the shutdown up");
                None
            }
        }
    }

    /// Sync and unmount ended: the watch ends.
    pub fn disarm(self) {
        self.done.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recorder::{Call, Recorder};
    use std::sync::atomic::AtomicU64;

    /// A watch that looks every 5 ms and calls 300 ms without a write a stall, over disks
    /// whose sectors written are `count`'s.
    fn watch(count: &Arc<AtomicU64>) -> Watch {
        let count = Arc::clone(count);
        Watch {
            look: Duration::from_millis(5),
            stall: Duration::from_millis(300),
            written: Box::new(move || Some(count.load(Ordering::Relaxed))),
        }
    }

    fn reboots(calls: &std::sync::Mutex<Vec<Call>>) -> Vec<Call> {
        let calls = calls.lock().map(|c| c.clone()).unwrap_or_default();
        calls
            .into_iter()
            .filter(|c| matches!(c, Call::Reboot { .. }))
            .collect()
    }

    #[test]
    fn disks_that_stop_writing_end_the_machine_as_asked() {
        let (sys, calls) = Recorder::shared();
        let count = Arc::new(AtomicU64::new(1_000));
        let _armed = LastResort::arm_watching(Box::new(sys), Reboot::PowerOff, watch(&count));
        for _ in 0..500 {
            if !reboots(&calls).is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            reboots(&calls),
            [Call::Reboot {
                how: Reboot::PowerOff
            }]
        );
    }

    #[test]
    fn disks_that_go_on_writing_are_waited_for_and_a_disarmed_watch_ends() {
        let (sys, calls) = Recorder::shared();
        let count = Arc::new(AtomicU64::new(0));
        let armed = LastResort::arm_watching(Box::new(sys), Reboot::Restart, watch(&count));
        // a second of writes, 8 sectors every 10 ms
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(10));
            count.fetch_add(8, Ordering::Relaxed);
        }
        assert_eq!(reboots(&calls), []);
        if let Some(armed) = armed {
            armed.disarm();
        }
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(reboots(&calls), []);
    }
}
