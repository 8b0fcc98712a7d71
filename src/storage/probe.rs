//! Reads of block devices off the event loop: each probe (the boot partition scan, an
//! automount's look at a new partition) runs in a thread of its own that only reads, and the
//! loop waits for its answer only as long as it chooses. A device that is slow or never
//! answers then stalls that thread, not reaping, signals or the watchdog. A thread stuck in
//! the kernel cannot be stopped: it is left behind, detached, and its late answer dropped.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

/// Stack of a probe thread: partition and FAT parsing need little.
const STACK: usize = 256 * 1024;

/// A probe under way.
pub struct Probe<T> {
    answer: Receiver<T>,
    /// When it started, to give up on it after a while.
    pub started: Instant,
}

/// What a probe has to say so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer<T> {
    /// It finished with this.
    Ready(T),
    /// Still reading.
    NotYet,
    /// Its thread ended without an answer (it panicked): there will be none.
    Lost,
}

impl<T: Send + 'static> Probe<T> {
    /// Runs `read` in a new thread. Fails only when no thread can be made.
    pub fn start(
        name: &str,
        read: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<Probe<T>> {
        let (tx, answer) = mpsc::channel();
        std::thread::Builder::new()
            .name(name.to_string())
            .stack_size(STACK)
            .spawn(move || {
                // The receiver may be gone (given up on): the answer is dropped.
                let _ = tx.send(read());
            })?;
        Ok(Probe {
            answer,
            started: Instant::now(),
        })
    }
}

impl<T> Probe<T> {
    /// The answer if it is there, without waiting.
    pub fn poll(&self) -> Answer<T> {
        match self.answer.try_recv() {
            Ok(value) => Answer::Ready(value),
            Err(TryRecvError::Empty) => Answer::NotYet,
            Err(TryRecvError::Disconnected) => Answer::Lost,
        }
    }

    /// The answer, waiting for it at most `limit`.
    pub fn wait(&self, limit: Duration) -> Answer<T> {
        match self.answer.recv_timeout(limit) {
            Ok(value) => Answer::Ready(value),
            Err(RecvTimeoutError::Timeout) => Answer::NotYet,
            Err(RecvTimeoutError::Disconnected) => Answer::Lost,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_when_ready_and_never_blocks_beyond_its_bound() {
        let quick = Probe::start("probe", || 7).unwrap();
        assert_eq!(quick.wait(Duration::from_secs(5)), Answer::Ready(7));
        // A read that hangs (here: a receive that never gets anything).
        let (_keep, never) = mpsc::channel::<()>();
        let hung = Probe::start("probe", move || never.recv().is_ok()).unwrap();
        let t0 = Instant::now();
        assert_eq!(hung.wait(Duration::from_millis(100)), Answer::NotYet);
        assert_eq!(hung.poll(), Answer::NotYet);
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
}
