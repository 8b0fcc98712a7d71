//! Reads of block devices off PID 1's thread: each device is read by a thread of its own that
//! only reads, and at most one such thread per device is under way at any time, whoever asks
//! (the boot partition's waits, automount). What a read found is kept until the device is
//! added, changed or removed again ([`Probes::forget`]); askers wait for it only as long as
//! they choose. A device that is slow or never answers then holds up its own thread, not the
//! loop, the boot partition search or the other devices.
//!
//! A thread stuck in the kernel is left behind, detached: a device that is plugged in again
//! while its last read is still stuck gets no second thread (its answer, when it comes, is
//! dropped as stale, and the next ask reads again), so a dead stick plugged in a hundred
//! times costs one thread, not a hundred. Devices are known by their kernel name (`sda1`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::storage::scan;

/// Stack of a probe thread: partition and FAT parsing need little.
const STACK: usize = 256 * 1024;

/// A read still under way after this long is named in a warning, once ([`Probes::take_slow`]).
pub const SLOW: Duration = Duration::from_secs(5);

/// What is known about a device so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    /// Its read finished with this.
    Ready(T),
    /// Still reading, since then.
    NotYet { since: Instant },
    /// Its thread ended without an answer (it panicked), or none could be started: there will
    /// be none until the device is added again.
    Lost,
}

/// The reads of every device, shared by whoever asks: cloning gives another handle on the
/// same reads.
pub struct Probes<T> {
    shared: Arc<Shared<T>>,
    read: Arc<dyn Fn(&str) -> T + Send + Sync>,
}

impl<T> Clone for Probes<T> {
    fn clone(&self) -> Self {
        Probes {
            shared: self.shared.clone(),
            read: self.read.clone(),
        }
    }
}

struct Shared<T> {
    slots: Mutex<Slots<T>>,
    /// Notified whenever a read ends.
    answered: Condvar,
}

struct Slots<T> {
    by_name: BTreeMap<String, Slot<T>>,
    /// How many reads have ended: a waiter compares it with the count it last saw.
    answers: u64,
}

struct Slot<T> {
    started: Instant,
    state: State<T>,
    /// The device was added, changed or removed during the read: its answer is dropped.
    stale: bool,
    /// A warning has named this read as slow.
    named: bool,
}

enum State<T> {
    Reading,
    Done(T),
    Lost,
}

impl<T: Clone + Send + 'static> Probes<T> {
    /// Probes that read a device (by kernel name) with `read`: the real one reads its node
    /// under a root (`scan::look`); a test's may hang on purpose.
    pub fn new(read: impl Fn(&str) -> T + Send + Sync + 'static) -> Probes<T> {
        Probes {
            shared: Arc::new(Shared {
                slots: Mutex::new(Slots {
                    by_name: BTreeMap::new(),
                    answers: 0,
                }),
                answered: Condvar::new(),
            }),
            read: Arc::new(read),
        }
    }

    /// What `name` holds: the answer when its read has ended; otherwise a read is started
    /// unless one is under way already (never two at once for a device).
    pub fn ask(&self, name: &str) -> Answer<T> {
        let mut slots = self.lock();
        if let Some(slot) = slots.by_name.get(name) {
            return match &slot.state {
                State::Done(value) => Answer::Ready(value.clone()),
                State::Reading => Answer::NotYet {
                    since: slot.started,
                },
                State::Lost => Answer::Lost,
            };
        }
        let started = Instant::now();
        let (shared, read, key) = (self.shared.clone(), self.read.clone(), name.to_string());
        let spawned = std::thread::Builder::new()
            .name(format!("probe {name}"))
            .stack_size(STACK)
            .spawn(move || {
                let mut end = End {
                    shared,
                    name: key,
                    value: None,
                };
                end.value = Some(read(&end.name));
            });
        let (state, answer) = match spawned {
            Ok(_) => (State::Reading, Answer::NotYet { since: started }),
            Err(e) => {
                log::warn!("cannot start a thread to read /dev/{name}: {e}; it is not looked at until it is added again");
                (State::Lost, Answer::Lost)
            }
        };
        slots.by_name.insert(
            name.to_string(),
            Slot {
                started,
                state,
                stale: false,
                named: false,
            },
        );
        answer
    }

    /// `name` was added, changed or removed: what was read from it no longer holds. A read
    /// under way is not doubled: its answer will be dropped, and the ask after it reads again.
    pub fn forget(&self, name: &str) {
        let mut slots = self.lock();
        match slots.by_name.get_mut(name) {
            Some(slot) if matches!(slot.state, State::Reading) => slot.stale = true,
            Some(_) => {
                slots.by_name.remove(name);
            }
            None => {}
        }
    }

    /// How many reads have ended so far; give it to [`Probes::wait_answer`].
    pub fn answers(&self) -> u64 {
        self.lock().answers
    }

    /// Waits until a read ends after the `seen`-th, at most `limit`; returns the count then.
    pub fn wait_answer(&self, seen: u64, limit: Duration) -> u64 {
        let slots = self.lock();
        let (slots, _) = self
            .shared
            .answered
            .wait_timeout_while(slots, limit, |s| s.answers == seen)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.answers
    }

    /// The reads under way for at least `after` that no warning has named yet, with how long
    /// they have been reading; they count as named from now on.
    pub fn take_slow(&self, now: Instant, after: Duration) -> Vec<(String, Duration)> {
        let mut slots = self.lock();
        let mut slow = Vec::new();
        for (name, slot) in slots.by_name.iter_mut() {
            let reading = now.saturating_duration_since(slot.started);
            if matches!(slot.state, State::Reading) && !slot.named && reading >= after {
                slot.named = true;
                slow.push((name.clone(), reading));
            }
        }
        slow
    }

    /// When the next read under way and not named yet will have taken `after`.
    pub fn next_slow(&self, after: Duration) -> Option<Instant> {
        self.lock()
            .by_name
            .values()
            .filter(|s| matches!(s.state, State::Reading) && !s.named)
            .map(|s| crate::events::deadline_after(s.started, after))
            .min()
    }

    /// A warning of the caller's own named the read of `name` as slow.
    pub fn mark_named(&self, name: &str) {
        if let Some(slot) = self.lock().by_name.get_mut(name) {
            slot.named = true;
        }
    }

    /// The devices whose read is under way (their threads hold them open).
    pub fn reading_names(&self) -> Vec<String> {
        self.lock()
            .by_name
            .iter()
            .filter(|(_, s)| matches!(s.state, State::Reading))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// How many reads are under way: threads that have not ended.
    pub fn reading(&self) -> usize {
        self.lock()
            .by_name
            .values()
            .filter(|s| matches!(s.state, State::Reading))
            .count()
    }

    fn lock(&self) -> MutexGuard<'_, Slots<T>> {
        // A poisoned lock only means a thread panicked while holding it; the map is whole.
        self.shared
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The probes of the block devices: each reads a device's first sectors ([`scan::look`]).
pub type DeviceProbes = Probes<scan::Look>;

/// The probes of the block devices under `root` (`/`; a temp dir in tests).
pub fn for_devices(root: &Path) -> DeviceProbes {
    let root = root.to_path_buf();
    Probes::new(move |name| scan::look(&root, name))
}

/// The end of a probe thread, also when its read panics (then without a value): records the
/// answer (or drops it as stale) and wakes the waiters.
struct End<T> {
    shared: Arc<Shared<T>>,
    name: String,
    value: Option<T>,
}

impl<T> Drop for End<T> {
    fn drop(&mut self) {
        let mut slots = self
            .shared
            .slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let stale = slots.by_name.get(&self.name).is_none_or(|s| s.stale);
        if stale {
            slots.by_name.remove(&self.name);
        } else if let Some(slot) = slots.by_name.get_mut(&self.name) {
            slot.state = match self.value.take() {
                Some(value) => State::Done(value),
                None => State::Lost,
            };
        }
        slots.answers += 1;
        self.shared.answered.notify_all();
    }
}

/// For tests: a FIFO at `path` with no writer stands in for a device that never answers
/// (opening it to read blocks, as a read of a hung disk does).
#[cfg(test)]
pub fn make_hung_device(path: &std::path::Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

/// For tests: lets the reads stuck on [`make_hung_device`]'s FIFO go (a writer opens it).
#[cfg(test)]
pub fn release_hung_device(path: &std::path::Path) {
    let _ = rustix::fs::open(
        path,
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    );
}

/// For tests: a reader whose devices named in `hung` never answer until released, and that
/// counts the reads it was asked for (threads started).
#[cfg(test)]
pub mod fake {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex};

    /// Devices that hang, the count of reads, and the switch that lets them go.
    #[derive(Clone, Default)]
    pub struct Hang {
        pub reads: Arc<AtomicUsize>,
        released: Arc<(Mutex<bool>, Condvar)>,
    }

    impl Hang {
        /// A reader: `answer(name)` at once, except for the names in `hung`, which block
        /// until [`Hang::release`].
        pub fn reader<T>(
            &self,
            hung: &'static [&'static str],
            answer: impl Fn(&str) -> T + Send + Sync + 'static,
        ) -> impl Fn(&str) -> T + Send + Sync + 'static {
            let me = self.clone();
            move |name: &str| {
                me.reads.fetch_add(1, Ordering::SeqCst);
                if hung.contains(&name) {
                    let (lock, cv) = &*me.released;
                    let mut done = lock.lock().unwrap();
                    while !*done {
                        done = cv.wait(done).unwrap();
                    }
                }
                answer(name)
            }
        }

        /// How many reads have begun (a thread counts once it runs), waiting up to 5 s for
        /// `at_least` of them.
        pub fn reads(&self, at_least: usize) -> usize {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while self.reads.load(Ordering::SeqCst) < at_least
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            self.reads.load(Ordering::SeqCst)
        }

        /// Lets every hung read go (at the end of a test, so its threads end).
        pub fn release(&self) {
            let (lock, cv) = &*self.released;
            *lock.lock().unwrap() = true;
            cv.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_until(probes: &Probes<u32>, name: &str) -> Answer<u32> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen = probes.answers();
            match probes.ask(name) {
                Answer::NotYet { .. } if Instant::now() < deadline => {
                    probes.wait_answer(seen, Duration::from_millis(100));
                }
                answer => return answer,
            }
        }
    }

    #[test]
    fn answers_when_ready_and_never_blocks_the_asker() {
        let hang = fake::Hang::default();
        let probes = Probes::new(hang.reader(&["vda1"], |name| name.len() as u32));
        assert_eq!(wait_until(&probes, "vdb1"), Answer::Ready(4));
        let t0 = Instant::now();
        assert!(matches!(probes.ask("vda1"), Answer::NotYet { .. }));
        let seen = probes.answers();
        assert_eq!(probes.wait_answer(seen, Duration::from_millis(100)), seen);
        assert!(matches!(probes.ask("vda1"), Answer::NotYet { since } if since >= t0));
        assert!(t0.elapsed() < Duration::from_secs(2));
        // the answer is kept: no second read
        assert_eq!(probes.ask("vdb1"), Answer::Ready(4));
        assert_eq!(hang.reads(2), 2);
        assert_eq!(probes.reading(), 1);
        assert_eq!(probes.reading_names(), ["vda1"]);
        hang.release();
        assert_eq!(wait_until(&probes, "vda1"), Answer::Ready(4));
        assert_eq!(probes.reading(), 0);
    }

    /// A dead device added and removed again and again costs one thread: the read stuck on
    /// it is never doubled, and once it ends its stale answer is dropped for a fresh read.
    #[test]
    fn a_device_added_again_while_its_read_hangs_gets_no_second_thread() {
        let hang = fake::Hang::default();
        let probes = Probes::new(hang.reader(&["sdb1"], |_| 7u32));
        for _ in 0..100 {
            probes.forget("sdb1"); // add
            assert!(matches!(probes.ask("sdb1"), Answer::NotYet { .. }));
            probes.forget("sdb1"); // remove
        }
        assert_eq!(hang.reads(1), 1);
        assert_eq!(probes.reading(), 1);
        // the stuck read's answer is for a device that went away: dropped, read again
        let seen = probes.answers();
        hang.release();
        probes.wait_answer(seen, Duration::from_secs(5));
        assert_eq!(wait_until(&probes, "sdb1"), Answer::Ready(7));
        assert_eq!(hang.reads(2), 2);
        // an answer is forgotten when the device changes, and read again when asked
        probes.forget("sdb1");
        assert_eq!(wait_until(&probes, "sdb1"), Answer::Ready(7));
        assert_eq!(hang.reads(3), 3);
    }

    #[test]
    fn slow_reads_are_named_once() {
        let hang = fake::Hang::default();
        let probes = Probes::new(hang.reader(&["vda1", "vdc"], |_| 0u32));
        let t0 = Instant::now();
        for name in ["vda1", "vdb1", "vdc"] {
            probes.ask(name);
        }
        assert_eq!(wait_until(&probes, "vdb1"), Answer::Ready(0));
        assert!(probes.take_slow(Instant::now(), SLOW).is_empty());
        let next = probes.next_slow(SLOW).unwrap();
        assert!(next >= t0 + SLOW && next <= Instant::now() + SLOW);
        probes.mark_named("vdc");
        let later = Instant::now() + SLOW;
        let slow: Vec<String> = probes
            .take_slow(later, SLOW)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(slow, ["vda1"]);
        assert!(probes.take_slow(later, SLOW).is_empty());
        assert_eq!(probes.next_slow(SLOW), None);
        hang.release();
    }

    #[test]
    fn a_read_that_panics_is_lost_until_the_device_comes_again() {
        let probes = Probes::new(|name: &str| {
            assert!(name != "bad", "a parser bug");
            1u32
        });
        assert_eq!(wait_until(&probes, "bad"), Answer::Lost);
        assert_eq!(probes.ask("bad"), Answer::Lost);
        probes.forget("bad");
        assert_eq!(wait_until(&probes, "bad"), Answer::Lost);
        assert_eq!(wait_until(&probes, "good"), Answer::Ready(1));
    }
}
