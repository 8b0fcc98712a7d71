//! Starting a program without std's `Command`: its `execve(2)` arguments made into C strings
//! before any fork ([`Exec`]), and what the child does to itself between `fork` and `execve`
//! ([`ChildSetup`]: session, console, limits, ids, umask, no_new_privs, signals), as raw
//! system calls that allocate nothing. Supervision resolves a program into these; this file
//! only carries them out.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

/// What a child does to itself between `fork` and `exec`, resolved beforehand so that the
/// child only makes system calls (no allocation, no locks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildSetup {
    /// `setsid(2)`: its own session and process group (not for `exec` mode: PID 1 keeps its).
    pub new_session: bool,
    /// A tty to open as fds 0-2 and make the controlling terminal (`TIOCSCTTY`).
    pub console: Option<CString>,
    /// `setgroups(2)`, applied when `gid` or `uid` is set or the list is not empty.
    pub groups: Vec<u32>,
    /// `setgid(2)`.
    pub gid: Option<u32>,
    /// `setuid(2)`, last: after it the child may no longer change the others.
    pub uid: Option<u32>,
    /// `umask(2)`.
    pub umask: Option<u32>,
    /// `setrlimit(2)` with soft = hard.
    pub rlimits: Vec<(rustix::process::Resource, u64)>,
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    pub no_new_privs: bool,
}

/// How many supplementary groups a program may have (`[box] groups`): the child converts them
/// on its stack, where nothing may allocate.
pub const MAX_GROUPS: usize = 64;

/// The resource a `[box] rlimits` key names, as in `prlimit` (`config::RLIMITS`).
pub fn resource(name: &str) -> Option<rustix::process::Resource> {
    use rustix::process::Resource;
    Some(match name {
        "cpu" => Resource::Cpu,
        "fsize" => Resource::Fsize,
        "data" => Resource::Data,
        "stack" => Resource::Stack,
        "core" => Resource::Core,
        "rss" => Resource::Rss,
        "nproc" => Resource::Nproc,
        "nofile" => Resource::Nofile,
        "memlock" => Resource::Memlock,
        "as" => Resource::As,
        "locks" => Resource::Locks,
        "sigpending" => Resource::Sigpending,
        "msgqueue" => Resource::Msgqueue,
        "nice" => Resource::Nice,
        "rtprio" => Resource::Rtprio,
        "rttime" => Resource::Rttime,
        _ => return None,
    })
}

/// A program's `execve(2)` arguments, converted to C strings before any fork, so that the
/// child between `fork` and `execve` only reads memory and makes system calls. This replaces
/// std's `Command`, whose general machinery (PATH search, pipes for stdio, env merging) the
/// init does not use and which cost about 20 KiB of the static binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    path: CString,
    dir: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

impl Exec {
    /// `program` run as argv[0] with `args`, in `dir`, with exactly `env`. Fails (naming what)
    /// when a string holds a NUL byte.
    pub fn new(
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        dir: &Path,
    ) -> io::Result<Exec> {
        use std::os::unix::ffi::OsStrExt;
        let c = |bytes: &[u8], what: &str| {
            CString::new(bytes).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{what} contains a NUL byte"),
                )
            })
        };
        let path = c(program.as_os_str().as_bytes(), "the program path")?;
        let mut argv = vec![path.clone()];
        for arg in args {
            argv.push(c(arg.as_bytes(), "an argument")?);
        }
        let mut envp = Vec::with_capacity(env.len());
        for (key, value) in env {
            envp.push(c(
                format!("{key}={value}").as_bytes(),
                "an environment variable",
            )?);
        }
        Ok(Exec {
            dir: c(dir.as_os_str().as_bytes(), "the working directory")?,
            path,
            argv,
            envp,
        })
    }

    /// `fork(2)`, then in the child: the working directory, `setup`, and `execve(2)`. Returns
    /// the child's pid once it has exec'd, or the error of the step that failed: the child
    /// writes its errno to a close-on-exec pipe, which reads empty when `execve` succeeded
    /// (as std's `Command` does). A child that failed is reaped here. This waits for the
    /// child's `execve`, which may read a slow card: PID 1's loop uses
    /// [`Exec::spawn_pending`] instead (here: the rescue shell, exec mode's tests).
    pub fn spawn(&self, setup: &ChildSetup) -> io::Result<i32> {
        let (pid, reader) = self.spawn_pending(setup)?;
        let outcome = loop {
            let mut fds = [rustix::event::PollFd::new(
                &reader,
                rustix::event::PollFlags::IN,
            )];
            let _ = rustix::event::poll(&mut fds, None);
            match exec_outcome(&reader) {
                ExecOutcome::Pending => continue,
                done => break done,
            }
        };
        match outcome {
            ExecOutcome::Failed(error) => {
                let _ = rustix::process::waitpid(
                    rustix::process::Pid::from_raw(pid),
                    rustix::process::WaitOptions::empty(),
                );
                Err(error)
            }
            _ => Ok(pid),
        }
    }

    /// `fork(2)` and the child's setup and `execve(2)` as [`Exec::spawn`], without waiting
    /// for the `execve`: the child's pid at once, and the read end of its close-on-exec pipe
    /// (non-blocking) for [`exec_outcome`]. The child reading its program from a hung card
    /// stalls only itself; the caller learns how its exec went when it asks (or reaps it:
    /// a child that failed writes its errno before it exits with 127).
    pub fn spawn_pending(&self, setup: &ChildSetup) -> io::Result<(i32, OwnedFd)> {
        let argv = pointers(&self.argv);
        let envp = pointers(&self.envp);
        let (reader, writer) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )?;
        // SAFETY: PID 1 may have other threads when it forks (a probe thread reading a block
        // device, the deferred coldplug's loader, the watchdog's keeper during shutdown, a
        // module level's loaders), and fork(2) copies only this one: whatever lock another
        // thread held at that instant (the allocator's, stdio's, the logger's) stays locked
        // in the child for good. So the child takes none: `run_child` only reads what was
        // prepared above (C strings, pointer arrays, `setup`), converts ids on its stack and
        // makes raw system calls through rustix, nix and libc, which neither allocate nor lock
        // (async-signal-safe, as POSIX requires after a multithreaded fork); its errors are
        // errno values, written to the pipe. It never returns: it execs or calls _exit(2).
        // The parent's side of fork is safe in any process.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            let error = self.run_child(&argv, &envp, setup);
            let errno = error.raw_os_error().unwrap_or(libc::EINVAL).to_ne_bytes();
            let _ = rustix::io::write(&writer, &errno);
            // SAFETY: _exit(2) ends the child without running the parent's atexit handlers
            // or flushing its buffers.
            unsafe { libc::_exit(127) }
        }
        drop(writer);
        Ok((pid, reader))
    }

    /// Becomes the program in this process (`mode = "exec"`): the working directory, `setup`,
    /// `execve(2)`. Returns only on error, and then the steps before it have been made.
    pub fn exec(&self, setup: &ChildSetup) -> io::Error {
        self.run_child(&pointers(&self.argv), &pointers(&self.envp), setup)
    }

    /// Between fork and exec: only raw system calls, nothing allocated (errors are errnos).
    fn run_child(
        &self,
        argv: &[*const libc::c_char],
        envp: &[*const libc::c_char],
        setup: &ChildSetup,
    ) -> io::Error {
        if let Err(e) = rustix::process::chdir(self.dir.as_c_str()) {
            return e.into();
        }
        if let Err(e) = child_setup(setup) {
            return e;
        }
        // SAFETY: `path` and every pointer in `argv`/`envp` point into C strings owned by
        // `self`, alive for the call, and both arrays end with a null pointer (`pointers`).
        unsafe { libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        io::Error::last_os_error()
    }
}

/// How a child's `execve` went, as its pipe says ([`Exec::spawn_pending`]).
#[derive(Debug)]
pub enum ExecOutcome {
    /// Not yet known: the child is still between fork and exec.
    Pending,
    /// It runs its program (the pipe closed on exec, empty).
    Running,
    /// A step before the program failed, with this error; the child exits with 127.
    Failed(io::Error),
}

/// Reads the child's pipe without blocking: empty and closed is a done `execve`, four bytes
/// an errno, nothing yet (`EAGAIN`) still pending.
pub fn exec_outcome(reader: &OwnedFd) -> ExecOutcome {
    let mut errno = [0u8; 4];
    let read = loop {
        match rustix::io::read(reader, &mut errno) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other,
        }
    };
    match read {
        Ok(0) => ExecOutcome::Running,
        Ok(4) => ExecOutcome::Failed(io::Error::from_raw_os_error(i32::from_ne_bytes(errno))),
        Ok(_) => ExecOutcome::Failed(io::Error::other(
            "the child ended before telling how its exec went",
        )),
        Err(rustix::io::Errno::AGAIN) => ExecOutcome::Pending,
        Err(e) => ExecOutcome::Failed(e.into()),
    }
}

/// The null-terminated pointer array `execve(2)` takes, pointing into `strings`.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The child's setup, after its working directory and before `execve`: each step is one raw
/// system call through rustix or nix (setsid, open, ioctl, dup2, setgroups, setgid, setuid,
/// umask, setrlimit, prctl, sigaction, sigprocmask) and nothing allocates: `setup` was built
/// before the fork and is only read; the gid list is converted on the stack. Last, the signal
/// mask is cleared: PID 1 blocks every signal (they are read from a signalfd) and a blocked
/// mask survives `fork` and `exec`, so a box that inherited it would ignore the SIGTERM of
/// shutdown; and SIGPIPE goes back to its default, which std's runtime set to ignored in PID 1
/// and which `exec` would keep.
fn child_setup(setup: &ChildSetup) -> io::Result<()> {
    use rustix::process::{Gid, Uid};
    if setup.new_session {
        rustix::process::setsid()?;
    }
    if let Some(tty) = &setup.console {
        let fd = rustix::fs::open(
            tty.as_c_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY,
            rustix::fs::Mode::empty(),
        )?;
        if setup.new_session {
            rustix::process::ioctl_tiocsctty(&fd)?;
        }
        rustix::stdio::dup2_stdin(&fd)?;
        rustix::stdio::dup2_stdout(&fd)?;
        rustix::stdio::dup2_stderr(&fd)?;
        // When init had no fds 0-2 (no console at boot), the tty came back as one of them:
        // keep it open rather than close it when `fd` drops.
        if std::os::fd::AsRawFd::as_raw_fd(&fd) <= 2 {
            let _ = std::os::fd::IntoRawFd::into_raw_fd(fd);
        }
    }
    // Limits before the ids: raising a hard limit (`nofile` above the kernel's 4096) needs
    // CAP_SYS_RESOURCE, which the child has as root and loses with `setuid`; after it, every
    // start of a box with a `user` and a higher limit failed with EPERM.
    for (resource, value) in &setup.rlimits {
        let limit = rustix::process::Rlimit {
            current: Some(*value),
            maximum: Some(*value),
        };
        rustix::process::setrlimit(*resource, limit)?;
    }
    if !setup.groups.is_empty() || setup.gid.is_some() || setup.uid.is_some() {
        const MAX: usize = MAX_GROUPS;
        let mut gids = [Gid::ROOT; MAX];
        let n = setup.groups.len().min(MAX);
        for (slot, gid) in gids.iter_mut().zip(&setup.groups) {
            *slot = Gid::from_raw_unchecked(*gid);
        }
        rustix::thread::set_thread_groups(gids.get(..n).unwrap_or_default())?;
    }
    if let Some(gid) = setup.gid {
        rustix::thread::set_thread_gid(Gid::from_raw_unchecked(gid))?;
    }
    if let Some(uid) = setup.uid {
        rustix::thread::set_thread_uid(Uid::from_raw_unchecked(uid))?;
    }
    if let Some(mask) = setup.umask {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
    }
    if setup.no_new_privs {
        rustix::thread::set_no_new_privs(true)?;
    }
    // std's Command reset SIGPIPE for the child; with our own fork/execve we do it.
    // SAFETY: SIG_DFL installs no handler; sigaction(2) is one system call.
    unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )?;
    }
    crate::events::unblock_all_signals()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(pid: i32) -> Option<rustix::process::WaitStatus> {
        let pid = rustix::process::Pid::from_raw(pid);
        rustix::process::waitpid(pid, rustix::process::WaitOptions::empty())
            .unwrap()
            .map(|(_, status)| status)
    }

    #[test]
    fn a_child_gets_its_arguments_environment_and_directory() {
        let dir = std::env::temp_dir().join(format!("boxinit-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exec = Exec::new(
            Path::new("/bin/sh"),
            &[
                "-c".into(),
                "echo \"$0|$1|$GREETING|$(pwd)|$HOME\" > out".into(),
                "zero".into(),
                "one two".into(),
            ],
            &[("GREETING".into(), "hello there".into())],
            &dir,
        )
        .unwrap();
        let status = wait(exec.spawn(&ChildSetup::default()).unwrap()).unwrap();
        assert_eq!(status.exit_status(), Some(0));
        let out = std::fs::read_to_string(dir.join("out")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            out,
            format!("zero|one two|hello there|{}|\n", dir.display())
        );
    }

    #[test]
    fn what_fails_before_exec_comes_back_as_the_error_and_the_child_is_reaped() {
        let missing = Exec::new(Path::new("/nonexistent/box"), &[], &[], Path::new("/")).unwrap();
        let e = missing.spawn(&ChildSetup::default()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        let no_dir =
            Exec::new(Path::new("/bin/true"), &[], &[], Path::new("/nonexistent")).unwrap();
        let e = no_dir.spawn(&ChildSetup::default()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        let bad_tty = ChildSetup {
            new_session: true,
            console: Some(CString::new("/nonexistent/tty").unwrap()),
            ..Default::default()
        };
        let ok = Exec::new(Path::new("/bin/true"), &[], &[], Path::new("/")).unwrap();
        assert!(ok.spawn(&bad_tty).is_err());
        let nul = Exec::new(
            Path::new("/bin/true"),
            &["a\0b".into()],
            &[],
            Path::new("/"),
        );
        assert_eq!(
            nul.unwrap_err().to_string(),
            "an argument contains a NUL byte"
        );
    }
}
