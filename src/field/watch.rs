//! What the run of the box keeps track of (kept in the `Card`, changed by `run.rs`): whether a
//! verdict is in, the deadline, the validation file's first mtime, whether the watchdog is
//! starving, the box's last exit and output, `[time] save`, and the card's writer thread
//! (`writes.rs`). Plain data.

use std::time::{Duration, Instant, SystemTime};

use super::window::Scribe;
use super::writer::Writer;

/// What the loop's card learns from a write done on the writer thread, besides the state
/// the card now holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// `[time] save`'s file holds these seconds.
    TimeSaved(i64),
}

/// The card's writer thread: each result is the scribe as the write left it, and what else
/// the card learns.
pub type CardWriter = Writer<Scribe, (Scribe, After)>;

/// The run's part of the card.
#[derive(Default)]
pub struct RunState {
    /// This boot's record waits for the box to run (an ordinary boot: nothing to try).
    pub(crate) boot_pending: bool,
    /// The previous boot left no report (read at boot): one is written for it now.
    pub(crate) previous_without_report: bool,
    /// A verdict is in (healthy, overdue, reverted), or nothing is judged this boot.
    pub(crate) judged: bool,
    pub(crate) deadline: Option<Instant>,
    /// The validation file's mtime when the box started.
    pub(crate) validate_mtime: Option<SystemTime>,
    /// The watchdog is starving and that was recorded.
    pub(crate) starving: bool,
    pub(crate) last_exit: Option<String>,
    /// The box's output, when it passes through PID 1.
    pub(crate) output: Option<crate::supervision::relay::Tail>,
    pub(crate) time: Option<TimeSave>,
    /// While the box runs, the card is written on this thread (None: at once).
    pub(crate) writer: Option<CardWriter>,
}

/// `[time] save`: the file on the card (or elsewhere), and when to copy the time next.
pub(crate) struct TimeSave {
    /// Relative to the card, or absolute (another disk: written without a window).
    pub(crate) target: String,
    pub(crate) interval: Duration,
    pub(crate) next: Instant,
    pub(crate) saved: Option<i64>,
}
