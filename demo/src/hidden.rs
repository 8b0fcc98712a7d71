//! `hidden-writer=PATH` (issue 17): a process that keeps PATH open for writing, ignores
//! SIGTERM, leaves the box's process group, and empties its own `/proc/PID/cmdline`
//! (`prctl(PR_SET_MM, PR_SET_MM_ARG_END, arg_start)`: an empty command line, which the init
//! once took for a kernel thread's and so left it running and the card busy at shutdown).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use crate::say;

/// The command-line flag of the hidden writer (before it empties its command line).
pub const FLAG: &str = "--hidden-writer";

/// Starts the hidden writer on `path` in a process group of its own, and goes on.
pub fn start(path: &Path) {
    let mut command = crate::this_program(&[FLAG]);
    command.arg(path).process_group(0);
    if let Err(error) = command.spawn() {
        say!("cannot start the hidden writer: {error}");
    }
}

/// The hidden writer itself: never returns.
pub fn run(path: &str) -> ! {
    let mut term = nix::sys::signal::SigSet::empty();
    term.add(nix::sys::signal::Signal::SIGTERM);
    let _ =
        nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&term), None);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    let mut file = match file {
        Ok(file) => file,
        Err(error) => {
            say!("hidden writer: cannot open {path}: {error}");
            std::process::exit(1);
        }
    };
    let _ = writeln!(file, "written by a process with an empty cmdline");
    let emptied = empty_cmdline();
    let bytes = std::fs::read("/proc/self/cmdline").map(|c| c.len());
    match (emptied, bytes) {
        (Ok(()), Ok(0)) => say!("hidden writer holds {path} open, its cmdline empty"),
        (e, b) => say!("hidden writer holds {path} open; cmdline not emptied: {e:?} {b:?}"),
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
        let _ = file.flush();
    }
}

/// Sets the end of the command line to its start: `/proc/self/cmdline` then reads empty.
fn empty_cmdline() -> Result<(), String> {
    // arg_start is field 48 of /proc/self/stat, counted after the name's closing ')'.
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| e.to_string())?;
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("no ) in stat")?;
    let arg_start: usize = rest
        .split_whitespace()
        .nth(48 - 3)
        .and_then(|f| f.parse().ok())
        .ok_or("no arg_start in stat")?;
    let address = std::ptr::NonNull::new(arg_start as *mut std::ffi::c_void);
    // SAFETY: only the kernel's record of where argv ends changes (to where it starts, an
    // address inside this process's own argv area, which PR_SET_MM checks); no memory this
    // program uses is touched. Needs CAP_SYS_RESOURCE (the demo box runs as root here).
    unsafe {
        rustix::process::set_virtual_memory_map_address(
            rustix::process::VirtualMemoryMapAddress::ArgEnd,
            address,
        )
    }
    .map_err(|e| format!("prctl(PR_SET_MM_ARG_END): {e}"))
}
