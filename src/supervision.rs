//! Supervision: running the box and the services. A `[box]`/`[[service]]` resolved into a
//! `program` and checked as `runnable`; each one's life as a `supervisor` (restart `backoff`,
//! crash loops, exit actions); the `event_loop` that drives them all, reaps, reloads (the
//! files read on a thread: `reload`) and pets the `watchdog`; `wait` for what a program needs
//! before it starts (`wait_for`); `exec` for a box that replaces PID 1; the box's output
//! passed through PID 1 (`relay`); and the orderly `shutdown`.

pub mod backoff;
pub mod cover;
pub mod event_loop;
pub mod exec;
pub mod last_resort;
pub mod program;
pub mod relay;
pub mod reload;
pub mod runnable;
pub mod shutdown;
pub mod supervisor;
pub mod wait;
pub mod watchdog;
