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

/// How often the thread looks at the disks.
const LOOK: Duration = Duration::from_secs(1);

/// The watch over the shutdown's last waits; ended by [`LastResort::disarm`].
pub struct LastResort {
    done: Arc<AtomicBool>,
}

impl LastResort {
    /// Starts watching, to end the machine `how` with `sys` if the disks stop answering.
    /// None (said why) when no thread can be made: the shutdown goes on without the watch.
    pub fn arm(mut sys: Box<dyn Sys + Send>, how: Reboot) -> Option<LastResort> {
        let done = Arc::new(AtomicBool::new(false));
        let watching = Arc::clone(&done);
        let spawned = std::thread::Builder::new()
            .name("last resort".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut progress = Progressing::new(Instant::now(), cover::written_now());
                loop {
                    std::thread::sleep(LOOK);
                    if watching.load(Ordering::Acquire) {
                        return;
                    }
                    if !progress.still(Instant::now(), cover::written_now()) {
                        break;
                    }
                }
                log::error!(
                    "shutdown: sync and unmount have not ended and no disk completed a write for {}s: a disk does not answer (a dead card?); ending the machine without them ({how:?}), what was not written is lost",
                    cover::WRITEBACK_STALL.as_secs()
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
