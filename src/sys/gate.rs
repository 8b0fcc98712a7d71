//! A gate for tests: what a thread under test waits at (a read or a write that hangs, as on
//! a slow or dying card) until the test opens it.

use std::sync::{Condvar, Mutex};

/// Closed until [`Gate::release`]; then every wait returns at once.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    /// Waits until the gate is open.
    pub fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    /// Opens the gate for every waiter, now and later.
    pub fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}
