//! Tests only: a [`Sys`] that records every call as a typed [`Call`] and fails the ones a test
//! scripts to fail; its transcript (one line per call: `mount(proc, /proc, ...)`) is what the
//! phase tests assert.

use std::io;
use std::path::Path;

use super::{KillTarget, MountFlags, NodeKind, Reboot, Rename, RouteRequest, Sys};

/// One recorded system call: the transcript of what a phase did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: String,
        target: String,
        fstype: String,
        flags: MountFlags,
        data: String,
    },
    Unmount {
        target: String,
    },
    Remount {
        target: String,
        flags: MountFlags,
    },
    RemountWith {
        target: String,
        flags: MountFlags,
        data: String,
    },
    Mkdir {
        path: String,
        mode: u32,
    },
    Mknod {
        path: String,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    },
    Symlink {
        target: String,
        link: String,
    },
    Unlink {
        path: String,
    },
    Chmod {
        path: String,
        mode: u32,
    },
    Chown {
        path: String,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    UnmountDetach {
        target: String,
    },
    WriteFile {
        path: String,
        contents: String,
    },
    CreateFile {
        path: String,
        mode: u32,
        len: usize,
    },
    Overwrite {
        path: String,
        contents: Vec<u8>,
    },
    Create {
        path: String,
        contents: Vec<u8>,
    },
    Fdatasync {
        path: String,
    },
    Fsync {
        path: String,
    },
    Syncfs {
        path: String,
    },
    Rename {
        from: String,
        to: String,
        how: Rename,
    },
    FinitModule {
        path: String,
        params: String,
    },
    Sethostname {
        name: String,
    },
    Kill {
        target: KillTarget,
        signal: i32,
    },
    Sync,
    Reboot {
        how: Reboot,
    },
    NetlinkRoute {
        request: RouteRequest,
    },
    ClockSettime {
        unix_nanos: i128,
    },
    Adjtime {
        micros: i64,
    },
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Call::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => {
                write!(
                    f,
                    "mount({source}, {target}, {fstype}, {flags:?}, {data:?})"
                )
            }
            Call::Unmount { target } => write!(f, "umount({target})"),
            Call::Remount { target, flags } => write!(f, "remount({target}, {flags:?})"),
            Call::RemountWith {
                target,
                flags,
                data,
            } => write!(f, "remount({target}, {flags:?}, {data:?})"),
            Call::Mkdir { path, mode } => write!(f, "mkdir({path}, {mode:o})"),
            Call::Mknod {
                path,
                kind,
                mode,
                major,
                minor,
            } => {
                write!(f, "mknod({path}, {kind:?}, {mode:o}, {major}:{minor})")
            }
            Call::Symlink { target, link } => write!(f, "symlink({link} -> {target})"),
            Call::Unlink { path } => write!(f, "unlink({path})"),
            Call::Chmod { path, mode } => write!(f, "chmod({path}, {mode:o})"),
            Call::Chown { path, uid, gid } => {
                let id = |v: &Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
                write!(f, "chown({path}, {}, {})", id(uid), id(gid))
            }
            Call::UnmountDetach { target } => write!(f, "umount({target}, MNT_DETACH)"),
            Call::WriteFile { path, contents } => write!(f, "write({path}, {contents:?})"),
            Call::CreateFile { path, mode, len } => {
                write!(f, "create({path}, {mode:o}, {len} bytes)")
            }
            Call::Overwrite { path, contents } => {
                write!(f, "overwrite({path}, {} bytes)", contents.len())
            }
            Call::Create { path, contents } => {
                write!(f, "create({path}, {} bytes)", contents.len())
            }
            Call::Fdatasync { path } => write!(f, "fdatasync({path})"),
            Call::Fsync { path } => write!(f, "fsync({path})"),
            Call::Syncfs { path } => write!(f, "syncfs({path})"),
            Call::Rename { from, to, how } => write!(f, "renameat2({from}, {to}, {how:?})"),
            Call::FinitModule { path, params } => write!(f, "finit_module({path}, {params:?})"),
            Call::Sethostname { name } => write!(f, "sethostname({name})"),
            Call::Kill { target, signal } => write!(f, "kill({target:?}, {signal})"),
            Call::Sync => write!(f, "sync()"),
            Call::Reboot { how } => write!(f, "reboot({how:?})"),
            Call::NetlinkRoute { request } => write!(f, "netlink({request})"),
            Call::ClockSettime { unix_nanos } => {
                let secs = unix_nanos.div_euclid(1_000_000_000);
                let date = crate::net::clock::date(i64::try_from(secs).unwrap_or(i64::MAX));
                write!(f, "clock_settime({date})")
            }
            Call::Adjtime { micros } => write!(f, "adjtime({micros}us)"),
        }
    }
}

type CallPredicate = Box<dyn Fn(&Call) -> bool + Send>;

/// A test double that records every call and fails the ones a test scripts to fail.
pub struct Recorder {
    /// The calls made so far, in order.
    pub calls: Vec<Call>,
    failures: Vec<(CallPredicate, i32)>,
    /// Where a recorder given to another thread shows its calls too ([`Recorder::shared`]).
    mirror: Option<std::sync::Arc<std::sync::Mutex<Vec<Call>>>>,
}

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            calls: Vec::new(),
            failures: Vec::new(),
            mirror: None,
        }
    }

    /// A recorder to give to another thread (the loader thread), and the list its calls
    /// also go to, for the test to read.
    pub fn shared() -> (Recorder, std::sync::Arc<std::sync::Mutex<Vec<Call>>>) {
        let calls = std::sync::Arc::default();
        let recorder = Recorder {
            mirror: Some(std::sync::Arc::clone(&calls)),
            ..Recorder::new()
        };
        (recorder, calls)
    }

    /// Calls matching `predicate` fail with `errno`.
    pub fn fail_when(&mut self, predicate: impl Fn(&Call) -> bool + Send + 'static, errno: i32) {
        self.failures.push((Box::new(predicate), errno));
    }

    /// One line per call, the way the transcript is compared in tests.
    pub fn transcript(&self) -> String {
        self.calls.iter().map(|c| format!("{c}\n")).collect()
    }

    fn record(&mut self, call: Call) -> io::Result<()> {
        let errno = self
            .failures
            .iter()
            .find(|(p, _)| p(&call))
            .map(|(_, e)| *e);
        if let Some(mirror) = &self.mirror {
            mirror.lock().unwrap().push(call.clone());
        }
        self.calls.push(call);
        match errno {
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Ok(()),
        }
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

impl Sys for Recorder {
    fn mount(
        &mut self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()> {
        let call = Call::Mount {
            source: source.into(),
            target: s(target),
            fstype: fstype.into(),
            flags,
            data: data.into(),
        };
        self.record(call)
    }
    fn unmount(&mut self, target: &Path) -> io::Result<()> {
        self.record(Call::Unmount { target: s(target) })
    }
    fn remount(&mut self, target: &Path, flags: MountFlags) -> io::Result<()> {
        self.record(Call::Remount {
            target: s(target),
            flags,
        })
    }
    fn remount_with(&mut self, target: &Path, flags: MountFlags, data: &str) -> io::Result<()> {
        self.record(Call::RemountWith {
            target: s(target),
            flags,
            data: data.into(),
        })
    }
    fn mkdir(&mut self, path: &Path, mode: u32) -> io::Result<()> {
        self.record(Call::Mkdir {
            path: s(path),
            mode,
        })
    }
    fn mknod(
        &mut self,
        path: &Path,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.record(Call::Mknod {
            path: s(path),
            kind,
            mode,
            major,
            minor,
        })
    }
    fn symlink(&mut self, target: &Path, link: &Path) -> io::Result<()> {
        self.record(Call::Symlink {
            target: s(target),
            link: s(link),
        })
    }
    fn unlink(&mut self, path: &Path) -> io::Result<()> {
        self.record(Call::Unlink { path: s(path) })
    }
    fn chmod(&mut self, path: &Path, mode: u32) -> io::Result<()> {
        self.record(Call::Chmod {
            path: s(path),
            mode,
        })
    }
    fn chown(&mut self, path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        self.record(Call::Chown {
            path: s(path),
            uid,
            gid,
        })
    }
    fn unmount_detach(&mut self, target: &Path) -> io::Result<()> {
        self.record(Call::UnmountDetach { target: s(target) })
    }
    fn write_file(&mut self, path: &Path, contents: &str) -> io::Result<()> {
        self.record(Call::WriteFile {
            path: s(path),
            contents: contents.into(),
        })
    }
    fn create_file(&mut self, path: &Path, mode: u32, contents: &[u8]) -> io::Result<()> {
        self.record(Call::CreateFile {
            path: s(path),
            mode,
            len: contents.len(),
        })
    }
    fn overwrite(&mut self, path: &Path, contents: &[u8]) -> io::Result<()> {
        self.record(Call::Overwrite {
            path: s(path),
            contents: contents.to_vec(),
        })
    }
    fn create(&mut self, path: &Path, contents: &[u8]) -> io::Result<()> {
        self.record(Call::Create {
            path: s(path),
            contents: contents.to_vec(),
        })
    }
    fn fdatasync(&mut self, path: &Path) -> io::Result<()> {
        self.record(Call::Fdatasync { path: s(path) })
    }
    fn fsync(&mut self, path: &Path) -> io::Result<()> {
        self.record(Call::Fsync { path: s(path) })
    }
    fn syncfs(&mut self, path: &Path) -> io::Result<()> {
        self.record(Call::Syncfs { path: s(path) })
    }
    fn rename(&mut self, from: &Path, to: &Path, how: Rename) -> io::Result<()> {
        self.record(Call::Rename {
            from: s(from),
            to: s(to),
            how,
        })
    }
    fn finit_module(&mut self, path: &Path, params: &str) -> io::Result<()> {
        self.record(Call::FinitModule {
            path: s(path),
            params: params.into(),
        })
    }
    fn sethostname(&mut self, name: &str) -> io::Result<()> {
        self.record(Call::Sethostname { name: name.into() })
    }
    fn kill(&mut self, target: KillTarget, signal: i32) -> io::Result<()> {
        self.record(Call::Kill { target, signal })
    }
    fn sync(&mut self) {
        let _ = self.record(Call::Sync);
    }
    fn reboot(&mut self, how: Reboot) -> io::Result<()> {
        self.record(Call::Reboot { how })
    }
    fn netlink_route(&mut self, request: &RouteRequest) -> io::Result<()> {
        self.record(Call::NetlinkRoute {
            request: request.clone(),
        })
    }
    fn clock_settime(&mut self, unix_nanos: i128) -> io::Result<()> {
        self.record(Call::ClockSettime { unix_nanos })
    }
    fn adjtime(&mut self, micros: i64) -> io::Result<()> {
        self.record(Call::Adjtime { micros })
    }
}
