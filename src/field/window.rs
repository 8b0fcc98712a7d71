//! A write window on the card: the boot partition remounted read-write (unless `[boot]
//! read_only = false` left it so), the writes, `syncfs`, and read-only again; logged once,
//! with what was written and how long the card was writable. The writes are the kinds a power
//! cut cannot turn into a broken FAT: an existing file overwritten in place at its own length
//! then `fdatasync` (no allocation table or directory entry changes), a rename done with
//! `RENAME_EXCHANGE` or `RENAME_NOREPLACE` then `fsync` of the directory, a new file created
//! once then `fsync` of it and its directory. Every call goes through `Sys`, so a recorder
//! test sees the whole sequence.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::state::{self, State};
use crate::storage::bootpart;
use crate::sys::{Rename, Sys};

/// Who writes the card, and what its writes left: where the windows open (the card's mount,
/// boxinit's private mount of it, whether it is mounted read-only) and the state the card
/// holds. The `Card` keeps one; while the box runs the card's writer thread (`writer`) works
/// with its own copy and hands it back with each result.
#[derive(Debug, Clone)]
pub struct Scribe {
    /// Where the card is mounted (`/boot`): what is read, and where the box runs from.
    pub(crate) dir: PathBuf,
    /// boxinit's own bind mount of it (`card::PRIVATE_MOUNT`), where a window writes when
    /// the card is read-only; None when it could not be made (the windows remount `dir`).
    pub(crate) private: Option<PathBuf>,
    /// The card is mounted read-only: each write window remounts it.
    pub(crate) read_only: bool,
    pub(crate) state: State,
    /// The state file's length on the card (0: missing).
    pub(crate) state_len: usize,
    /// A write window could not open (a write-protected card): no more attempts.
    pub(crate) unwritable: bool,
}

impl Scribe {
    /// Opens a write window, runs `writes` with the state to change, closes it; the state
    /// is kept only when every write succeeded. Returns whether they did. A card that cannot
    /// be made writable is said once and not tried again.
    pub(crate) fn window(
        &mut self,
        sys: &mut dyn Sys,
        purpose: &'static str,
        writes: impl FnOnce(&mut Window, &mut State) -> io::Result<()>,
    ) -> bool {
        if self.unwritable {
            return false;
        }
        // A read-write `/boot` (`[boot] read_only = false`) is written as it is; the private
        // mount keeps the read-only flag it was made with.
        let at = match (&self.private, self.read_only) {
            (Some(private), true) => private.clone(),
            _ => self.dir.clone(),
        };
        let mut w = match Window::open(sys, &at, self.read_only, purpose) {
            Ok(w) => w,
            Err(e) => {
                log::error!("card: cannot make {} writable ({e}): boxinit keeps no state, trial or report on it this boot (a write-protected card?)", self.dir.display());
                self.unwritable = true;
                return false;
            }
        };
        let mut state = self.state.clone();
        let result = writes(&mut w, &mut state);
        w.close();
        match result {
            Ok(()) => {
                self.state_len = self.state_len.max(state::STATE_LEN);
                self.state = state;
                true
            }
            Err(e) => {
                log::error!(
                    "card: {purpose}: {e}; the card's state is as it was before this write"
                );
                false
            }
        }
    }
}

/// An open write window on the card mounted at `dir`.
pub struct Window<'a> {
    sys: &'a mut dyn Sys,
    dir: PathBuf,
    /// The card is mounted read-only: remounted read-write at open, read-only at close.
    remount: bool,
    opened: Instant,
    /// What was written, for the log line.
    done: Vec<String>,
    /// Why the window is held: "boot", "shutdown report", ...
    purpose: &'static str,
}

impl<'a> Window<'a> {
    /// Makes the card at `dir` writable (when `read_only`); the error says why it cannot be
    /// (a write-protected card: `EROFS`).
    pub fn open(
        sys: &'a mut dyn Sys,
        dir: &Path,
        read_only: bool,
        purpose: &'static str,
    ) -> io::Result<Window<'a>> {
        let opened = Instant::now();
        if read_only {
            sys.remount(dir, bootpart::mount_flags(false))?;
        }
        Ok(Window {
            sys,
            dir: dir.to_path_buf(),
            remount: read_only,
            opened,
            done: Vec::new(),
            purpose,
        })
    }

    /// The card's path of `name` (relative to the card).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Overwrites the existing file `name` in place with `contents` (its own length), then
    /// `fdatasync`.
    pub fn overwrite(&mut self, name: &str, contents: &[u8]) -> io::Result<()> {
        let path = self.path(name);
        self.sys
            .overwrite(&path, contents)
            .map_err(|e| at(&path, e))?;
        self.sys.fdatasync(&path).map_err(|e| at(&path, e))?;
        self.done.push(name.to_string());
        Ok(())
    }

    /// Creates `name` (which must not exist), then `fsync` of the file and of its directory.
    pub fn create(&mut self, name: &str, contents: &[u8]) -> io::Result<()> {
        let path = self.path(name);
        self.sys.create(&path, contents).map_err(|e| at(&path, e))?;
        self.sys.fsync(&path).map_err(|e| at(&path, e))?;
        self.sync_dir_of(&path)?;
        self.done.push(format!("{name} (new)"));
        Ok(())
    }

    /// Creates the directory `name`, then `fsync` of its parent.
    pub fn mkdir(&mut self, name: &str) -> io::Result<()> {
        let path = self.path(name);
        self.sys.mkdir(&path, 0o755).map_err(|e| at(&path, e))?;
        self.sync_dir_of(&path)?;
        self.done.push(format!("{name}/ (new)"));
        Ok(())
    }

    /// Swaps the files of `a` and `b` at once (`RENAME_EXCHANGE`), then `fsync` of the
    /// directory. `Ok(false)`: the kernel cannot (vfat before Linux 6.0: `EINVAL`), nothing
    /// was changed, and the caller renames one at a time instead.
    pub fn exchange(&mut self, a: &str, b: &str) -> io::Result<bool> {
        let (pa, pb) = (self.path(a), self.path(b));
        match self.sys.rename(&pa, &pb, Rename::Exchange) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                return Ok(false)
            }
            Err(e) => return Err(at(&pa, e)),
        }
        self.sync_dir_of(&pa)?;
        self.done.push(format!("{a} <-> {b}"));
        Ok(true)
    }

    /// Renames `from` to `to`, which must not exist (`RENAME_NOREPLACE`), then `fsync` of the
    /// directory.
    pub fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        let (pf, pt) = (self.path(from), self.path(to));
        self.sys
            .rename(&pf, &pt, Rename::NoReplace)
            .map_err(|e| at(&pf, e))?;
        self.sync_dir_of(&pf)?;
        self.done.push(format!("{from} -> {to}"));
        Ok(())
    }

    /// Removes `name`, then `fsync` of its directory.
    pub fn remove(&mut self, name: &str) -> io::Result<()> {
        let path = self.path(name);
        self.sys.unlink(&path).map_err(|e| at(&path, e))?;
        self.sync_dir_of(&path)?;
        self.done.push(format!("{name} removed"));
        Ok(())
    }

    fn sync_dir_of(&mut self, path: &Path) -> io::Result<()> {
        let dir = path.parent().unwrap_or(&self.dir).to_path_buf();
        self.sys.fsync(&dir).map_err(|e| at(&dir, e))
    }

    /// `syncfs`, then read-only again; logs the window once. A failure to remount read-only
    /// (a program holds a file open for writing there) is said, and the card stays writable.
    pub fn close(self) {
        let Window {
            sys,
            dir,
            remount,
            opened,
            done,
            purpose,
        } = self;
        if let Err(e) = sys.syncfs(&dir) {
            log::warn!("card: syncfs of {} failed: {e}", dir.display());
        }
        let mut writable = false;
        if remount {
            if let Err(e) = sys.remount(&dir, bootpart::mount_flags(true)) {
                log::error!(
                    "card: cannot remount {} read-only after writing ({e}); it stays writable until shutdown (a program keeps a file open for writing there?)",
                    dir.display()
                );
                writable = true;
            }
        }
        let what = match done.as_slice() {
            [] => "nothing".to_string(),
            files => files.join(", "),
        };
        log::info!(
            "card: {purpose}: wrote {what} in {}ms{}",
            opened.elapsed().as_millis(),
            if writable { " (still writable)" } else { "" }
        );
    }
}

/// An error with the path it is about.
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recorder::{Call, Recorder};

    #[test]
    fn a_window_remounts_writes_syncs_and_remounts() {
        let mut rec = Recorder::new();
        let mut w = Window::open(&mut rec, Path::new("/boot"), true, "test").unwrap();
        w.overwrite("boxinit/state.txt", b"x\n").unwrap();
        w.create("box.failed.txt", b"why\n").unwrap();
        assert!(w.exchange("box.new", "box").unwrap());
        w.rename("box.new", "box.previous").unwrap();
        w.remove("box.new.sha256").unwrap();
        w.close();
        assert_eq!(
            rec.transcript(),
            "remount(/boot, MountFlags(NOATIME | NODEV | NOSUID))\n\
             overwrite(/boot/boxinit/state.txt, 2 bytes)\n\
             fdatasync(/boot/boxinit/state.txt)\n\
             create(/boot/box.failed.txt, 4 bytes)\n\
             fsync(/boot/box.failed.txt)\n\
             fsync(/boot)\n\
             renameat2(/boot/box.new, /boot/box, Exchange)\n\
             fsync(/boot)\n\
             renameat2(/boot/box.new, /boot/box.previous, NoReplace)\n\
             fsync(/boot)\n\
             unlink(/boot/box.new.sha256)\n\
             fsync(/boot)\n\
             syncfs(/boot)\n\
             remount(/boot, MountFlags(NOATIME | NODEV | NOSUID | RDONLY))\n"
        );
    }

    #[test]
    fn a_writable_card_is_not_remounted_and_an_old_kernel_cannot_exchange() {
        let mut rec = Recorder::new();
        rec.fail_when(|c| matches!(c, Call::Rename { .. }), 22);
        let mut w = Window::open(&mut rec, Path::new("/boot"), false, "test").unwrap();
        assert!(!w.exchange("box.new", "box").unwrap());
        w.close();
        assert_eq!(
            rec.transcript(),
            "renameat2(/boot/box.new, /boot/box, Exchange)\nsyncfs(/boot)\n"
        );
        // a write-protected card: the window does not open
        let mut rec = Recorder::new();
        rec.fail_when(|c| matches!(c, Call::Remount { .. }), 30);
        assert!(Window::open(&mut rec, Path::new("/boot"), true, "test").is_err());
    }
}
