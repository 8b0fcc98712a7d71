//! The SIGHUP reload's reading, off the event loop: the config files and the programs they
//! name are read on a thread of their own (the boot partition may be a slow or dying card,
//! whose reads can take seconds or never end), and the loop picks the result up at a tick,
//! as it does the automount probes' and the exec pipes' (it comes back every [`POLL`] while
//! a reload is under way). Meanwhile it goes on reaping, restarting and petting the watchdog.
//!
//! A SIGHUP that comes while a reload is reading is noted, not lost: once the result is in,
//! one more reload runs (any number of them coalesce into that one), since the files may have
//! changed after the first read began. A read that never ends leaves its thread stuck; the
//! next SIGHUPs are noted and a warning says why nothing happens. Applying the result to the
//! supervisors stays `event_loop`'s.

use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::BoxConfig;
use crate::supervision::program::Program;

/// A re-read configuration: the programs in order (box first) and the reload grace period.
pub type Reloaded = (Vec<(BoxConfig, Program)>, Duration);

/// How often the loop looks for the result while a reload is reading.
pub const POLL: Duration = Duration::from_millis(25);

/// A reload still reading after this long is named in a warning (once).
pub const SLOW: Duration = Duration::from_secs(5);

/// The thread's stack: it parses TOML and reads files; what it allocates is on the heap.
const STACK: usize = 256 * 1024;

/// What reads the configuration again: the config files and the programs they name
/// (`None` when they cannot be used; it says why). Runs on the reload thread.
pub type ReadConfig = Arc<dyn Fn() -> Option<Reloaded> + Send + Sync>;

/// A reload thread under way.
struct UnderWay {
    since: Instant,
    result: Receiver<Option<Reloaded>>,
    /// The [`SLOW`] warning was given.
    warned: bool,
}

/// The loop's reloads: at most one reading at a time, a SIGHUP during it noted.
pub struct Reload {
    read: ReadConfig,
    under_way: Option<UnderWay>,
    /// A SIGHUP came while a reload was reading: one more after it.
    again: bool,
}

impl Reload {
    /// Reloads that read with `read`.
    pub fn new(read: ReadConfig) -> Reload {
        Reload {
            read,
            under_way: None,
            again: false,
        }
    }

    /// SIGHUP: starts reading, or notes one more reload when a reading is under way.
    pub fn asked(&mut self, now: Instant) {
        if let Some(under_way) = &self.under_way {
            log::info!(
                "received SIGHUP while the last reload is still reading (for {}ms): it runs again once that one is done",
                now.saturating_duration_since(under_way.since).as_millis()
            );
            self.again = true;
            return;
        }
        log::info!("received SIGHUP: re-reading the configuration");
        self.start(now);
    }

    fn start(&mut self, now: Instant) {
        let (tx, result) = channel();
        let read = Arc::clone(&self.read);
        let spawned = std::thread::Builder::new()
            .name("reload".into())
            .stack_size(STACK)
            .spawn(move || {
                // The loop may have gone (shutdown): then nobody wants the result.
                let _ = tx.send(read());
            });
        match spawned {
            Ok(_) => {
                self.under_way = Some(UnderWay {
                    since: now,
                    result,
                    warned: false,
                })
            }
            Err(e) => log::error!(
                "reload: cannot start a thread to read the configuration ({e}); keeping the running configuration (send SIGHUP again)"
            ),
        }
    }

    /// At every turn of the loop: the configuration read, once it is in (`Some(None)`: read
    /// but not usable, it said why), and when to look again at the latest.
    pub fn tick(&mut self, now: Instant) -> (Option<Option<Reloaded>>, Option<Instant>) {
        let Some(under_way) = &mut self.under_way else {
            return (None, None);
        };
        let done = match under_way.result.try_recv() {
            Ok(result) => result,
            Err(TryRecvError::Empty) => {
                let took = now.saturating_duration_since(under_way.since);
                if took >= SLOW && !under_way.warned {
                    under_way.warned = true;
                    log::warn!(
                        "reload: still reading the configuration after {}ms (a slow or hung boot partition?); the running configuration stays until it is done",
                        took.as_millis()
                    );
                }
                return (None, Some(crate::events::deadline_after(now, POLL)));
            }
            // Cannot be short of a bug: the thread sends before it ends.
            Err(TryRecvError::Disconnected) => None,
        };
        self.under_way = None;
        if std::mem::take(&mut self.again) {
            log::info!(
                "reload: re-reading the configuration once more for a SIGHUP that came meanwhile"
            );
            self.start(now);
        }
        let next = self
            .under_way
            .as_ref()
            .map(|_| crate::events::deadline_after(now, POLL));
        (Some(done), next)
    }

    /// Whether a reload is reading.
    pub fn reading(&self) -> bool {
        self.under_way.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::gate::Gate;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A read that hangs until released (a dying card), counting its calls.
    #[derive(Default)]
    struct HungRead {
        gate: Gate,
        reads: AtomicUsize,
    }

    impl HungRead {
        fn read(&self) -> Option<Reloaded> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.gate.wait();
            Some((Vec::new(), Duration::from_secs(7)))
        }
        fn release(&self) {
            self.gate.release();
        }
    }

    /// Ticks until a result is in (or 5 s).
    fn result(reload: &mut Reload) -> Option<Reloaded> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let (Some(done), _) = reload.tick(Instant::now()) {
                return done;
            }
            assert!(Instant::now() < deadline, "no result");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Issue 17, item 11: a reload whose reads hang does not hold up the loop (SIGHUP and
    /// every tick return at once, the tick asks to come back soon), a SIGHUP meanwhile is
    /// noted, and both SIGHUPs in between coalesce into one more reading after it.
    #[test]
    fn a_hung_read_leaves_the_loop_free_and_a_sighup_meanwhile_runs_after_it() {
        let gate = Arc::new(HungRead::default());
        let theirs = Arc::clone(&gate);
        let mut reload = Reload::new(Arc::new(move || theirs.read()));
        assert_eq!(reload.tick(Instant::now()), (None, None));
        let started = Instant::now();
        reload.asked(started);
        assert!(reload.reading());
        let (done, next) = reload.tick(Instant::now());
        assert!(done.is_none());
        assert!(next.is_some_and(|at| at <= Instant::now() + POLL));
        reload.asked(Instant::now());
        reload.asked(Instant::now());
        // past SLOW: warned, still free
        assert!(reload.tick(started + SLOW).0.is_none());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the loop waited"
        );
        gate.release();
        let first = result(&mut reload);
        assert_eq!(first.map(|(_, grace)| grace), Some(Duration::from_secs(7)));
        // the SIGHUPs that came meanwhile: one more reading, already under way
        assert!(reload.reading());
        assert!(result(&mut reload).is_some());
        assert!(!reload.reading());
        assert_eq!(gate.reads.load(Ordering::SeqCst), 2);
        assert_eq!(reload.tick(Instant::now()), (None, None));
    }

    #[test]
    fn a_reload_that_cannot_be_used_is_reported_as_such() {
        let mut reload = Reload::new(Arc::new(|| None));
        reload.asked(Instant::now());
        assert!(result(&mut reload).is_none());
        assert!(!reload.reading());
    }
}
