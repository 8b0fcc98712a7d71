//! Module loading once the box runs, off the event loop: one long-lived thread fed by a
//! queue carries out coldplug's second pass, then each new device's modalias the loop sends it
//! (a USB hub, a keyboard, a stick), so that a driver's `finit_module` (dwc2's init takes a
//! quarter of a second under QEMU) never holds up reaping, restarts or the watchdog. The loop
//! only sends words; what a job loads is decided here, with the same `Loader` the boot used.
//! Which modules a boot needs first is `hotplug`'s; loading itself is `modules`'.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::devices::coldplug;
use crate::devices::modules::{not_loaded, Loader, Summary};
use crate::storage::extras::Extras;
use crate::sys::Sys;

/// The thread's stack: it plans and loads modules, reads sysfs and logs; what it allocates
/// is on the heap. Only the pages it touches count in PID 1's memory.
const STACK: usize = 128 * 1024;

/// Coldplug's second pass, as the boot left it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecondPass {
    /// The modules the first pass left for after the boot partition.
    pub modules: Vec<String>,
    /// Every device's modalias read from sysfs first (the first pass did not read them: the
    /// boot disk's modules were named in `[modules] boot`).
    pub walk: bool,
    /// The card's archives (`[boot] extras`), unpacked first: their firmware is in place
    /// before the drivers that ask for it load.
    pub extras: Extras,
    /// When the extras brought kernel modules, every device's modules are looked for again
    /// (`[modules] coldplug`): a device whose module was not there yet gets it now.
    pub coldplug: bool,
}

impl SecondPass {
    /// Nothing to unpack, walk or load.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty() && !self.walk && self.extras.is_empty()
    }
}

/// What the loader thread is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Coldplug's second pass.
    SecondPass(SecondPass),
    /// A device that appeared (a uevent): `alias` is its modalias, `what` names it for the
    /// log line (`usb 1-1`).
    Device { alias: String, what: String },
}

/// What the loop and the thread share: how many jobs are queued or under way, and whether
/// the second pass is over.
#[derive(Default)]
struct Shared {
    queued: AtomicUsize,
    second_pass_done: AtomicBool,
}

/// The running loader thread, as the loop holds it.
pub struct LoadThread {
    jobs: Sender<Job>,
    shared: Arc<Shared>,
    /// Joined by tests only: the thread lives until the machine goes down.
    #[cfg_attr(not(test), allow(dead_code))]
    handle: JoinHandle<Box<dyn Sys + Send>>,
}

impl LoadThread {
    /// Starts the thread, which makes its system calls through `sys`; `second_pass` is its
    /// first job (None: there is none, the pass counts as done).
    pub fn spawn(
        loader: Loader,
        sys: Box<dyn Sys + Send>,
        second_pass: Option<Job>,
    ) -> io::Result<LoadThread> {
        let (jobs, queue) = channel();
        let shared = Arc::new(Shared::default());
        match &second_pass {
            Some(job) => {
                shared.queued.store(1, Ordering::SeqCst);
                // cannot fail: the receiver is right here
                let _ = jobs.send(job.clone());
            }
            None => shared.second_pass_done.store(true, Ordering::SeqCst),
        }
        let theirs = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("modload".into())
            .stack_size(STACK)
            .spawn(move || run(&loader, sys, &queue, &theirs))?;
        Ok(LoadThread {
            jobs,
            shared,
            handle,
        })
    }

    /// Queues `job`; gives it back when the thread is gone (it cannot be, short of a bug).
    pub fn send(&self, job: Job) -> Result<(), Job> {
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        self.jobs.send(job).map_err(|e| {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            e.0
        })
    }

    /// Whether coldplug is done: the second pass is over and no job is queued or under way.
    pub fn idle(&self) -> bool {
        self.shared.second_pass_done.load(Ordering::SeqCst)
            && self.shared.queued.load(Ordering::SeqCst) == 0
    }

    /// Tests: lets the queue run dry, ends the thread and gives back its `Sys`.
    #[cfg(test)]
    pub fn finish(self) -> Box<dyn Sys + Send> {
        drop(self.jobs);
        match self.handle.join() {
            Ok(sys) => sys,
            Err(_) => panic!("the loader thread panicked"),
        }
    }
}

/// The thread: each job in turn until the loop drops its end of the queue.
fn run(
    loader: &Loader,
    mut sys: Box<dyn Sys + Send>,
    queue: &Receiver<Job>,
    shared: &Shared,
) -> Box<dyn Sys + Send> {
    for job in queue {
        match job {
            Job::SecondPass(pass) => {
                let started = Instant::now();
                let summary = second_pass(loader, sys.as_mut(), pass);
                log_second_pass(summary, started, "loader thread");
                shared.second_pass_done.store(true, Ordering::SeqCst);
            }
            Job::Device { alias, what } => {
                device(loader, sys.as_mut(), &alias, &what);
            }
        }
        shared.queued.fetch_sub(1, Ordering::SeqCst);
    }
    sys
}

/// Coldplug's second pass: the extras unpacked, then `modules`, with `walk` (or extras that
/// brought modules) those of every device sysfs shows too, less what is loaded already. The
/// uevents of the devices their drivers bring up go to whoever reads the socket. Also the
/// boot's own, before the box (`hotplug`).
pub fn second_pass(loader: &Loader, sys: &mut dyn Sys, pass: SecondPass) -> Summary {
    let brought_modules = pass.extras.unpack(sys);
    let mut modules = pass.modules;
    if pass.walk || (brought_modules && pass.coldplug) {
        let aliases = coldplug::known_modaliases(loader.root());
        modules.extend(coldplug::modules_for(&loader.index, &aliases));
    }
    let modules = not_loaded(loader.root(), modules);
    if modules.is_empty() {
        return Summary::default();
    }
    loader.load(sys, &modules)
}

/// The second pass's line (none when it had nothing to do), saying `when` it ran.
pub fn log_second_pass(summary: Summary, started: Instant, when: &str) {
    if summary == Summary::default() {
        return;
    }
    log::info!(
        "modules of the other devices ({when}): {} loaded, {} already there, {} failed in {}ms",
        summary.loaded,
        summary.already,
        summary.failed,
        started.elapsed().as_millis()
    );
}

/// The modules a new device's `alias` needs, less what is loaded already, loaded; one line
/// when there were any.
pub fn device(loader: &Loader, sys: &mut dyn Sys, alias: &str, what: &str) -> Summary {
    let modules = not_loaded(
        loader.root(),
        coldplug::modules_for(&loader.index, [alias.to_string()].iter()),
    );
    load_for(loader, sys, &modules, what)
}

/// `modules` (those a new device `what` needs) loaded, with one line when there were any.
pub fn load_for(loader: &Loader, sys: &mut dyn Sys, modules: &[String], what: &str) -> Summary {
    if modules.is_empty() {
        return Summary::default();
    }
    let summary = loader.load(sys, modules);
    log::info!(
        "hotplug: {what} needs {}: {} loaded, {} failed",
        modules.join(" "),
        summary.loaded,
        summary.failed
    );
    summary
}
