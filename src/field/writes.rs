//! Where the card's writes are done: at once while the machine boots and shuts down, and on
//! the card's writer thread (`writer`) while the box runs, so that a slow card does not hold
//! up PID 1's loop. The decisions stay the loop's (`run.rs`); a write carries what it needs,
//! is done in the order asked, and its result (the card's state as written, and `After`) is
//! picked up at a later tick. Tests, which start no thread, see every write at once.

use std::time::Instant;

use super::card::Card;
use super::state::State;
use super::watch::{After, CardWriter};
use super::window::{Scribe, Window};
use super::writer::Job;
use crate::supervision::cover;
use crate::sys::Sys;

impl Card {
    /// From now on (the box runs) the card's writes are done on a thread of their own, with
    /// `sys`. When the thread cannot be made they stay on the loop, and a line says so.
    pub fn write_off_loop(&mut self, sys: Box<dyn Sys + Send>) {
        if !self.keeps_state() && self.run.time.is_none() {
            return;
        }
        match CardWriter::start(sys, self.scribe.clone()) {
            Ok(writer) => self.run.writer = Some(writer),
            Err(e) => log::warn!(
                "card: cannot start a thread for the card's writes ({e}); they are done by PID 1's loop, which a slow card then holds up"
            ),
        }
    }

    /// Does `job` with the scribe: on the writer thread while one runs, after the writes
    /// asked for before it, else at once with `sys`.
    pub(crate) fn write(
        &mut self,
        sys: &mut dyn Sys,
        purpose: &'static str,
        job: impl FnOnce(&mut dyn Sys, &mut Scribe) -> After + Send + 'static,
    ) {
        // Boxed either way: one copy of the job's code in the init.
        let job: Job<Scribe, (Scribe, After)> =
            Box::new(move |sys: &mut dyn Sys, scribe: &mut Scribe| {
                let after = job(sys, scribe);
                (scribe.clone(), after)
            });
        if let Some(writer) = self.run.writer.as_mut() {
            writer.send(purpose, Instant::now(), job);
            return;
        }
        let (scribe, after) = job(sys, &mut self.scribe);
        self.written(scribe, after);
    }

    /// A write window (`Scribe::window`) done as `write` does; `then` learns whether it was
    /// written.
    pub(crate) fn write_window(
        &mut self,
        sys: &mut dyn Sys,
        purpose: &'static str,
        writes: impl FnOnce(&mut Window, &mut State) -> std::io::Result<()> + Send + 'static,
        then: impl FnOnce(bool) -> After + Send + 'static,
    ) {
        self.write(sys, purpose, move |sys, scribe| {
            then(scribe.window(sys, purpose, writes))
        });
    }

    /// At every tick: the writes done since, taken in.
    pub(crate) fn writes_done(&mut self, now: Instant) {
        let Some(writer) = self.run.writer.as_mut() else {
            return;
        };
        for (scribe, after) in writer.results(now) {
            self.written(scribe, after);
        }
    }

    /// When to look for results again, while writes are under way.
    pub(crate) fn writes_next_look(&self, now: Instant) -> Option<Instant> {
        self.run.writer.as_ref()?.next_look(now)
    }

    /// At shutdown, once its own writes are asked for: waits for every write, for as long
    /// as the disks complete writes (a slow card behind a write-back), and ends the thread;
    /// from now on the card is written at once. A card on which nothing has been written for
    /// [`cover::WRITEBACK_STALL`] does not answer: the shutdown goes on without what is left.
    pub(crate) fn finish_writes(&mut self) {
        let Some(writer) = self.run.writer.take() else {
            return;
        };
        let mut progress = cover::Progressing::new(Instant::now(), cover::written_now());
        let (results, all) = writer.finish(|| progress.still(Instant::now(), cover::written_now()));
        for (scribe, after) in results {
            self.written(scribe, after);
        }
        if !all {
            log::error!(
                "card: the disks completed no write for {}s while the shutdown waited for the card: it does not answer (dmesg may show I/O errors); the shutdown goes on without the writes left (its report, this boot's record)",
                cover::WRITEBACK_STALL.as_secs()
            );
        }
    }

    fn written(&mut self, scribe: Scribe, after: After) {
        self.scribe = scribe;
        match after {
            After::Nothing => {}
            After::TimeSaved(seconds) => self.saved_time(seconds),
        }
    }
}
