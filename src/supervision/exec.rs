//! `mode = "exec"`: the box replaces PID 1. PID 1 sets itself up as the box (console, umask,
//! rlimits, groups, ids) and calls `execve(2)`; if that fails, PID 1 must still be able to take
//! its rescue action, which needs root. So everything that can fail is checked first, while
//! nothing has changed (`runnable::check_program`: the file, its format, its loader or interpreter, the
//! working directory), and the steps are ordered so that each one can be undone: the user id is
//! set with the saved set-user-ID kept at 0 (`setresuid(uid, uid, 0)`), which a successful
//! `execve` replaces with the new id and a failed one lets PID 1 take back. Only
//! `no_new_privs` stays, which does not keep PID 1 from rebooting.
//!
//! The system calls here change PID 1 itself and are undone on failure: they are not phase
//! sequences for the recorder, and they run where no other thread of PID 1 is left but the
//! probe threads still reading a block device that does not answer ([`keep_open`]).

use rustix::process::{Gid, Resource, Rlimit, Uid};
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use crate::supervision::program::Program;
use crate::supervision::runnable::{check_program, User};
use crate::sys::exec::{ChildSetup, Exec};

/// Everything PID 1 changes on itself to become the box, as it was before: put back when
/// `execve` fails.
struct Saved {
    stdio: [Option<OwnedFd>; 3],
    umask: Option<u32>,
    rlimits: Vec<(Resource, Rlimit)>,
    groups: Vec<Gid>,
    ids_changed: bool,
}

/// `mode = "exec"`: becomes `spec` and returns only when that failed, with what went wrong;
/// PID 1 is then as it was (root, its console, its limits, every signal blocked), so its
/// rescue action can run. `reading` are the block devices a probe thread still reads (they
/// have not answered): see [`keep_open`].
pub fn exec(spec: &Program, reading: &[PathBuf]) -> String {
    let user = User::of(spec);
    if let Err(why) = check_program(&spec.program, &user) {
        return why;
    }
    if !spec.working_dir.is_dir() {
        return format!(
            "the working directory {} does not exist",
            spec.working_dir.display()
        );
    }
    // The execve arguments as C strings now, while nothing has changed (and with no NUL in
    // them: `Exec::new` says which string holds one).
    let exec = match Exec::new(&spec.program, &spec.args, &spec.env, &spec.working_dir) {
        Ok(exec) => exec,
        Err(e) => return format!("cannot exec {}: {e}", spec.program.display()),
    };
    let console = match &spec.setup.console {
        Some(tty) => match open_console(tty) {
            Ok(fd) => Some(fd),
            Err(e) => return format!("cannot open the console {tty:?}: {e}"),
        },
        None => None,
    };
    let kept = keep_open(reading);
    let mut saved = Saved {
        stdio: [None, None, None],
        umask: None,
        rlimits: Vec::new(),
        groups: rustix::process::getgroups().unwrap_or_default(),
        ids_changed: false,
    };
    let error = match become_box(spec, console, &mut saved) {
        Ok(()) => {
            // `become_box` made the setup in PID 1 itself, to undo it on failure: the exec
            // adds only the working directory and the signal state (which `undo` restores).
            let e = exec.exec(&ChildSetup::default());
            format!("cannot exec {}: {e}", spec.program.display())
        }
        Err(e) => format!("cannot set up {}: {e}", spec.program.display()),
    };
    undo(saved);
    drop(kept);
    error
}

/// `execve` closes PID 1's close-on-exec descriptors, among them the one a probe thread holds
/// on a block device that never answered; and the last close of a block device waits for the
/// reads held on it (the kernel drops the device's page cache, `kill_bdev`), so that exec
/// would wait for ever. One more descriptor of each such device, without close-on-exec, keeps
/// that close from being the last; the box inherits it (the thread itself, in a killable
/// wait, ends with the exec). Opening does not read: the device is open already.
fn keep_open(devices: &[PathBuf]) -> Vec<OwnedFd> {
    use rustix::fs::{open, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
    let mut kept = Vec::new();
    for dev in devices {
        match open(dev, flags, Mode::empty()) {
            Ok(fd) => {
                log::info!(
                    "exec: {} has not answered a read: the box inherits a descriptor of it, so that the exec does not wait for that read",
                    dev.display()
                );
                kept.push(fd);
            }
            Err(e) => log::warn!(
                "exec: cannot open {} again ({e}), which has not answered a read: the exec may wait for that read",
                dev.display()
            ),
        }
    }
    kept
}

fn open_console(tty: &CString) -> std::io::Result<OwnedFd> {
    let fd = rustix::fs::open(
        tty.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok(fd)
}

/// The setup steps in the order that keeps each one undoable: the console on fds 0-2, umask,
/// rlimits (raising a hard limit needs root), groups and group id, the user id with the saved
/// set-user-ID kept at 0, no_new_privs, and the empty signal mask the box starts with.
fn become_box(spec: &Program, console: Option<OwnedFd>, saved: &mut Saved) -> std::io::Result<()> {
    let setup = &spec.setup;
    if let Some(fd) = console {
        let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
        let stdio = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
        for (slot, old) in saved.stdio.iter_mut().zip(stdio) {
            // EBADF: PID 1 had no such fd (no console at boot); nothing to put back.
            *slot = rustix::io::fcntl_dupfd_cloexec(old, 3).ok();
        }
        rustix::stdio::dup2_stdin(&fd)?;
        rustix::stdio::dup2_stdout(&fd)?;
        rustix::stdio::dup2_stderr(&fd)?;
    }
    if let Some(mask) = setup.umask {
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
        saved.umask = Some(old.bits());
    }
    for (resource, value) in &setup.rlimits {
        saved
            .rlimits
            .push((*resource, rustix::process::getrlimit(*resource)));
        rustix::process::setrlimit(
            *resource,
            Rlimit {
                current: Some(*value),
                maximum: Some(*value),
            },
        )?;
    }
    if !setup.groups.is_empty() || setup.gid.is_some() || setup.uid.is_some() {
        saved.ids_changed = true;
        let groups: Vec<Gid> = setup
            .groups
            .iter()
            .map(|g| Gid::from_raw_unchecked(*g))
            .collect();
        rustix::thread::set_thread_groups(&groups)?;
    }
    if let Some(gid) = setup.gid {
        let gid = Gid::from_raw_unchecked(gid);
        rustix::thread::set_thread_res_gid(gid, gid, gid)?;
    }
    if let Some(uid) = setup.uid {
        let uid = Uid::from_raw_unchecked(uid);
        // The saved set-user-ID stays root: execve replaces it with `uid`, a failed execve
        // lets PID 1 take root back (setresuid(2), execve(2): "set-user-ID ... saved").
        rustix::thread::set_thread_res_uid(uid, uid, Uid::ROOT)?;
    }
    if setup.no_new_privs {
        rustix::thread::set_no_new_privs(true)?;
    }
    crate::events::unblock_all_signals()
}

/// Puts PID 1 back as it was before [`become_box`], in reverse order. Each step is tried
/// even when one before it failed, and failures are logged: PID 1 goes on to its rescue.
fn undo(saved: Saved) {
    if let Err(e) = crate::events::block_all_signals() {
        log::error!("exec: cannot block the signals again: {e}");
    }
    if saved.ids_changed {
        let steps = [
            rustix::thread::set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT),
            rustix::thread::set_thread_res_gid(Gid::ROOT, Gid::ROOT, Gid::ROOT),
            rustix::thread::set_thread_groups(&saved.groups),
        ];
        for e in steps.into_iter().filter_map(Result::err) {
            log::error!("exec: cannot take PID 1's ids back: {e}; the rescue may fail");
        }
    }
    for (resource, limit) in saved.rlimits.into_iter().rev() {
        if let Err(e) = rustix::process::setrlimit(resource, limit) {
            log::warn!("exec: cannot restore the limit {resource:?}: {e}");
        }
    }
    if let Some(mask) = saved.umask {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
    }
    let [stdin, stdout, stderr] = saved.stdio;
    let _ = stdin.map(|fd| rustix::stdio::dup2_stdin(&fd));
    let _ = stdout.map(|fd| rustix::stdio::dup2_stdout(&fd));
    let _ = stderr.map(|fd| rustix::stdio::dup2_stderr(&fd));
}
