//! The card's writes while the box runs, off PID 1's event loop: one thread does them in
//! the order they were asked for, each to its end, and the loop picks the results up at a
//! tick (it comes back every [`POLL`] while writes are under way), as it does the SIGHUP
//! reload's reading. A write window ends with `syncfs`, which waits for all of the card's
//! dirty data: behind a box's large write-back on a slow card one window took 87.6 s, and an
//! armed watchdog that the loop no longer petted reset the machine (issue 17). Meanwhile the
//! loop goes on reaping, restarting and petting the watchdog; a write still under way after
//! [`SLOW`] is named once.
//!
//! Generic over the thread's own state `S` (the card's `Scribe`) and what each job gives
//! back `T`, so that it can be tested with a gate instead of a card. The shutdown waits for
//! the jobs sent (`finish`) before it writes its report in the same order.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::sys::Sys;

/// How often the loop looks for results while writes are under way.
pub const POLL: Duration = Duration::from_millis(25);

/// A write still under way after this long is named in a warning (once).
pub const SLOW: Duration = Duration::from_secs(5);

/// The thread's stack: the windows' buffers (reports, the state) are on the heap.
const STACK: usize = 256 * 1024;

/// One write: done on the thread with its `Sys` and its state, giving `T` to the loop.
pub type Job<S, T> = Box<dyn FnOnce(&mut dyn Sys, &mut S) -> T + Send>;

/// What the loop and the thread share: one lock over both directions, and one condition
/// variable told of every change. (A queue under a lock rather than two `mpsc` channels:
/// the same here, and a few KB less code in the init.)
struct Shared<S, T> {
    queue: Mutex<Queue<S, T>>,
    changed: Condvar,
}

struct Queue<S, T> {
    jobs: VecDeque<Job<S, T>>,
    results: Vec<T>,
    /// No more jobs will come: the thread ends once the queue is empty.
    closed: bool,
}

impl<S, T> Shared<S, T> {
    fn lock(&self) -> MutexGuard<'_, Queue<S, T>> {
        // A panic aborts the init: no thread can leave the lock poisoned.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The thread's next job, waiting for one; None once the queue is closed and empty.
    fn next_job(&self) -> Option<Job<S, T>> {
        let mut queue = self.lock();
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                return Some(job);
            }
            if queue.closed {
                return None;
            }
            queue = (self.changed.wait(queue)).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// A job sent and not yet done: what it is for, and since when the loop knows it is the one
/// being written.
struct UnderWay {
    purpose: &'static str,
    since: Instant,
    warned: bool,
}

/// The writer thread, seen from the loop.
pub struct Writer<S, T> {
    shared: Arc<Shared<S, T>>,
    /// Sent and not yet done, oldest first (the one being written).
    under_way: VecDeque<UnderWay>,
}

impl<S: Send + 'static, T: Send + 'static> Writer<S, T> {
    /// Starts the thread, which writes with `sys` and keeps `state` between jobs.
    pub fn start(mut sys: Box<dyn Sys + Send>, mut state: S) -> std::io::Result<Writer<S, T>> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                results: Vec::new(),
                closed: false,
            }),
            changed: Condvar::new(),
        });
        let theirs = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("card".into())
            .stack_size(STACK)
            .spawn(move || {
                while let Some(job) = theirs.next_job() {
                    let result = job(&mut *sys, &mut state);
                    theirs.lock().results.push(result);
                    theirs.changed.notify_all();
                }
            })?;
        Ok(Writer {
            shared,
            under_way: VecDeque::new(),
        })
    }

    /// Sends `job`, done after every job sent before it.
    pub fn send(&mut self, purpose: &'static str, now: Instant, job: Job<S, T>) {
        self.shared.lock().jobs.push_back(job);
        self.shared.changed.notify_all();
        self.under_way.push_back(UnderWay {
            purpose,
            since: now,
            warned: false,
        });
    }

    /// Whether a write is under way.
    pub fn busy(&self) -> bool {
        !self.under_way.is_empty()
    }

    /// When the loop should look for results again: soon while writes are under way.
    pub fn next_look(&self, now: Instant) -> Option<Instant> {
        self.busy()
            .then(|| crate::events::deadline_after(now, POLL))
    }

    /// At every turn of the loop: the results in so far, in the order the jobs were sent.
    pub fn results(&mut self, now: Instant) -> Vec<T> {
        let results = std::mem::take(&mut self.shared.lock().results);
        for _ in &results {
            done_one(&mut self.under_way, now);
        }
        if let Some(oldest) = self.under_way.front_mut() {
            let took = now.saturating_duration_since(oldest.since);
            if took >= SLOW && !oldest.warned {
                oldest.warned = true;
                log::warn!(
                    "card: writing the {} for {}ms so far (a slow or busy card: a large write-back ahead of it?); the box runs, children are reaped and the watchdog petted meanwhile",
                    oldest.purpose,
                    took.as_millis()
                );
            }
        }
        results
    }

    /// Waits until every job sent is done, naming the one under way and asking `go_on`
    /// every [`SLOW`] whether to wait longer; ends the thread (or leaves it behind, stuck).
    /// The results not yet picked up, in order, and whether every job was done.
    pub fn finish(mut self, mut go_on: impl FnMut() -> bool) -> (Vec<T>, bool) {
        let started = Instant::now();
        let mut results = Vec::new();
        let mut queue = self.shared.lock();
        queue.closed = true;
        self.shared.changed.notify_all();
        loop {
            for result in std::mem::take(&mut queue.results) {
                results.push(result);
                done_one(&mut self.under_way, Instant::now());
            }
            let Some(oldest) = self.under_way.front() else {
                return (results, true);
            };
            let (again, waited) = (self.shared.changed.wait_timeout(queue, SLOW))
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            queue = again;
            if waited.timed_out() {
                log::warn!(
                    "card: shutdown waits for the {} to be written ({}ms so far)",
                    oldest.purpose,
                    started.elapsed().as_millis()
                );
                if !go_on() {
                    return (results, false);
                }
            }
        }
    }
}

/// The oldest job is done; the next one is being written from `now`.
fn done_one(under_way: &mut VecDeque<UnderWay>, now: Instant) {
    if let Some(done) = under_way.pop_front() {
        if done.warned {
            log::info!(
                "card: the {} is written, after {}ms",
                done.purpose,
                now.saturating_duration_since(done.since).as_millis()
            );
        }
    }
    if let Some(next) = under_way.front_mut() {
        next.since = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::gate::Gate;
    use crate::sys::recorder::Recorder;
    use std::sync::Arc;

    fn job(gate: Option<Arc<Gate>>, n: u32) -> Job<Vec<u32>, Vec<u32>> {
        Box::new(move |_, state: &mut Vec<u32>| {
            if let Some(gate) = gate {
                gate.wait();
            }
            state.push(n);
            state.clone()
        })
    }

    #[test]
    fn a_blocked_write_does_not_block_the_loop_and_results_come_in_order() {
        let gate = Arc::new(Gate::default());
        let mut w = Writer::start(Box::new(Recorder::new()), vec![0]).unwrap();
        let t0 = Instant::now();
        w.send("first", t0, job(Some(gate.clone()), 1));
        w.send("second", t0, job(None, 2));
        // the loop's turns return at once while the first write waits
        for _ in 0..3 {
            assert!(w.results(Instant::now()).is_empty());
            assert!(w.next_look(Instant::now()).is_some());
        }
        assert!(w.busy());
        gate.release();
        let mut got = Vec::new();
        while w.busy() {
            got.extend(w.results(Instant::now()));
            std::thread::sleep(Duration::from_millis(1));
        }
        // each job saw the state the ones before it left
        assert_eq!(got, vec![vec![0, 1], vec![0, 1, 2]]);
        assert!(w.results(Instant::now()).is_empty());
        assert_eq!(w.next_look(Instant::now()), None);
    }

    #[test]
    fn finish_gives_up_when_told_to() {
        let gate = Arc::new(Gate::default());
        let mut w = Writer::start(Box::new(Recorder::new()), Vec::new()).unwrap();
        w.send("first", Instant::now(), job(None, 1));
        w.send("stuck", Instant::now(), job(Some(gate.clone()), 2));
        let (results, all) = w.finish(|| false);
        assert_eq!((results, all), (vec![vec![1]], false));
        gate.release();
    }

    #[test]
    fn finish_waits_for_every_write_sent() {
        let gate = Arc::new(Gate::default());
        let mut w = Writer::start(Box::new(Recorder::new()), Vec::new()).unwrap();
        let now = Instant::now();
        w.send("first", now, job(Some(gate.clone()), 1));
        w.send("second", now, job(None, 2));
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            gate.release();
        });
        assert_eq!(w.finish(|| true), (vec![vec![1], vec![1, 2]], true));
        release.join().unwrap();
    }
}
