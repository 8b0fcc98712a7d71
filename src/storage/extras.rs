//! The extras: gzip-compressed newc archives on the boot partition (`[boot] extras`) holding
//! what serves later than the box (Wi-Fi's supplicant with its libraries, the chip's firmware,
//! its kernel modules), unpacked into the root file system where coldplug's second pass starts
//! (`devices/hotplug.rs`), so that the initramfs the kernel unpacks before `/init` holds only
//! what it takes to start the box. Each archive is read whole, inflated and checked in memory
//! (gzip CRC and size, every newc header, names, types, a bound on the size) before anything
//! is written; then each file is written under a temporary name and renamed into place in the
//! archive's order (xtask puts programs after their libraries), so no program ever sees half a
//! file. An archive adds files: what the root file system already has is left as it is. A
//! missing, damaged or unwritable archive is one error line and nothing of it stays; the box
//! runs on. The format is `cpio.rs`'s and `gzip.rs`'s; writes go through `Sys`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::sys::{Rename, Sys};
use crate::{cpio, gzip};

/// The most an archive may unpack to (its gzip trailer says, and is checked before inflating):
/// it is inflated whole in memory, then lives in the root file system, which is RAM. Wi-Fi's
/// part is about 18 MiB.
pub const MAX_UNPACKED: usize = 64 << 20;
/// The most members an archive may have.
pub const MAX_MEMBERS: usize = 10_000;
/// Where kernel modules are unpacked: an archive with files here brings drivers.
const MODULES_DIR: &str = "lib/modules/";
/// The suffix of a file's temporary name (`.NAME.boxinit-new` beside it) until its rename.
const TEMP_SUFFIX: &str = ".boxinit-new";
/// A name part's longest length (`NAME_MAX`).
const MAX_PART: usize = 255;

/// The archives of `[boot] extras`, to unpack into a root file system.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    archives: Vec<PathBuf>,
    /// `/` (a temp dir in tests): where the files go
    root: PathBuf,
}

impl Extras {
    /// `names` (relative to the boot partition `boot_dir`) to unpack under `root`; none
    /// without a boot partition (`check` refuses `[boot] extras` with `device = "none"`).
    pub fn new(names: &[String], boot_dir: Option<&Path>, root: &Path) -> Extras {
        Extras {
            archives: boot_dir
                .map(|dir| names.iter().map(|n| dir.join(n)).collect())
                .unwrap_or_default(),
            root: root.to_path_buf(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.archives.is_empty()
    }

    /// Unpacks every archive, one log line each (what and how long, or why not); whether
    /// any of them brought kernel modules.
    pub fn unpack(&self, sys: &mut dyn Sys) -> bool {
        let mut modules = false;
        for path in &self.archives {
            let started = Instant::now();
            match unpack_archive(sys, path, &self.root) {
                Ok(done) => {
                    modules |= done.modules > 0;
                    log::info!(
                        "extras: {} unpacked: {} files, {} links, {} KiB in {}ms{}",
                        path.display(),
                        done.files,
                        done.links,
                        done.bytes.div_ceil(1024),
                        started.elapsed().as_millis(),
                        match done.kept {
                            0 => String::new(),
                            n => format!(" ({n} already there, left as they were)"),
                        }
                    );
                }
                Err(Failure::Unusable(why)) => log::error!(
                    "extras: {}: {why}; nothing of it was unpacked and the box runs without it: copy {} again from the folder cargo xtask made (bundle, image) onto the card",
                    path.display(),
                    path.file_name().unwrap_or_default().to_string_lossy()
                ),
                Err(Failure::Write(why)) => log::error!(
                    "extras: {}: {why}; what it had written was removed and the box runs without it (is the root file system full?)",
                    path.display()
                ),
            }
        }
        modules
    }
}

/// Why an archive was not unpacked.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// missing, unreadable, too large or damaged: nothing was written
    Unusable(String),
    /// a write failed: what was written is removed again
    Write(String),
}

/// What an archive put in place.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    pub files: usize,
    pub links: usize,
    /// file data, in bytes
    pub bytes: usize,
    /// files and links whose path was taken already (left as they were)
    pub kept: usize,
    /// files under `lib/modules/`
    pub modules: usize,
}

/// Reads, checks and unpacks the archive at `path` under `root`.
fn unpack_archive(sys: &mut dyn Sys, path: &Path, root: &Path) -> Result<Unpacked, Failure> {
    let started = Instant::now();
    let (cpio, read, read_in) = {
        let file = read_bounded(path).map_err(|e| {
            Failure::Unusable(match e.kind() {
                io::ErrorKind::NotFound => "it is missing".to_string(),
                _ => format!("cannot read it: {e}"),
            })
        })?;
        let read_in = started.elapsed();
        let cpio = gzip::decompress_all(&file, MAX_UNPACKED).map_err(|e| Failure::Unusable(e.0))?;
        (cpio, file.len(), read_in)
    };
    let inflated_in = started.elapsed();
    let items = verify(&cpio).map_err(Failure::Unusable)?;
    let done = write(sys, root, &items).map_err(Failure::Write)?;
    log::debug!(
        "extras: {}: {read} bytes read in {}ms, inflated and checked in {}ms, written in {}ms",
        path.display(),
        read_in.as_millis(),
        (inflated_in - read_in).as_millis(),
        (started.elapsed() - inflated_in).as_millis()
    );
    Ok(done)
}

/// The file's bytes, if it is no larger than an archive may be: a gzip file is never much
/// larger than what it holds.
fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let limit = MAX_UNPACKED + MAX_UNPACKED / 8 + 4096;
    let len = std::fs::metadata(path)?.len();
    if len > limit as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{len} bytes, more than an archive of at most {MAX_UNPACKED} bytes can be"),
        ));
    }
    // the boot partition is read-only by default, and nothing else writes it at this point
    std::fs::read(path)
}

/// A member checked, and what it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    /// relative to the root, every part a plain name
    pub path: &'a str,
    pub kind: Kind<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    /// a directory with these permission bits
    Dir(u32),
    /// a file with these permission bits and contents
    File(u32, &'a [u8]),
    /// a symbolic link to this target
    Symlink(&'a str),
}

/// Every member of the uncompressed archive `cpio`, checked: the newc format, names that stay
/// inside the root (relative, no `.`, `..` or empty part, none under a link or file of the
/// archive itself), each once, only directories, regular files (no hard links) and symbolic
/// links. Permission bits only (no set-user-ID, set-group-ID or sticky bit).
pub fn verify(cpio: &[u8]) -> Result<Vec<Item<'_>>, String> {
    let members = cpio::read(cpio, MAX_MEMBERS).map_err(|e| format!("corrupt: {e}"))?;
    let mut items = Vec::with_capacity(members.len());
    for m in &members {
        check_name(m.name)?;
        let mode = m.fields.mode & 0o777;
        let kind = match m.file_type() {
            cpio::S_IFDIR => Kind::Dir(mode),
            cpio::S_IFREG if m.fields.nlink > 1 => {
                return Err(format!(
                    "{} is a hard link, which extras cannot hold",
                    m.name
                ))
            }
            cpio::S_IFREG => Kind::File(mode, m.data),
            cpio::S_IFLNK => match std::str::from_utf8(m.data) {
                Ok(target) if !target.is_empty() && !target.contains('\0') => Kind::Symlink(target),
                _ => return Err(format!("the link {} has no usable target", m.name)),
            },
            _ => {
                return Err(format!(
                    "{} is a device node or other special file, which extras cannot hold",
                    m.name
                ))
            }
        };
        items.push(Item { path: m.name, kind });
    }
    // the names, and those of files and links, each sorted: each name once, nothing under a
    // file or link
    let mut names: Vec<&str> = Vec::with_capacity(items.len());
    let mut not_dirs: Vec<&str> = Vec::new();
    for item in &items {
        match names.binary_search(&item.path) {
            Ok(_) => return Err(format!("{} is in it twice", item.path)),
            Err(at) => names.insert(at, item.path),
        }
        if !matches!(item.kind, Kind::Dir(_)) {
            if let Err(at) = not_dirs.binary_search(&item.path) {
                not_dirs.insert(at, item.path);
            }
        }
    }
    for item in &items {
        for parent in parents(item.path) {
            if not_dirs.binary_search(&parent).is_ok() {
                return Err(format!(
                    "{} lies under {parent}, which it holds as a file or link",
                    item.path
                ));
            }
        }
    }
    Ok(items)
}

/// A member name that stays inside the root: relative, no empty, `.` or `..` part.
fn check_name(name: &str) -> Result<(), String> {
    let bad = name.starts_with('/')
        || name
            .split('/')
            .any(|part| matches!(part, "" | "." | "..") || part.len() > MAX_PART);
    if bad {
        return Err(format!(
            "the name {name:?} would leave the root file system or is not a plain path"
        ));
    }
    Ok(())
}

/// The directories above `path` (`a`, `a/b` for `a/b/c`), outermost first.
fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').filter_map(|(at, _)| path.get(..at))
}

/// The temporary name under `root` of the member `path` until its rename:
/// `.NAME.boxinit-new` beside it.
fn temp_name(root: &Path, path: &str) -> PathBuf {
    match path.rsplit_once('/') {
        Some((dir, name)) => root.join(format!("{dir}/.{name}{TEMP_SUFFIX}")),
        None => root.join(format!(".{path}{TEMP_SUFFIX}")),
    }
}

/// Writes `items` under `root`: directories (and any missing above a member) at once, each
/// file and link under its temporary name, then every one renamed into place in order.
/// A failed write removes every temporary file and every file already renamed.
pub fn write(sys: &mut dyn Sys, root: &Path, items: &[Item]) -> Result<Unpacked, String> {
    let mut done = Unpacked::default();
    // (temporary name, target) of each file and link, in order
    let mut pending: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut renamed: Vec<&Path> = Vec::new();
    let mut result = make_all(sys, root, items, &mut done, &mut pending);
    if result.is_ok() {
        for (temp, target) in &pending {
            match sys.rename(temp, target, Rename::NoReplace) {
                Ok(()) => renamed.push(target),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // the root file system has this path already: it stays as it is
                    let _ = sys.unlink(temp);
                    done.kept += 1;
                }
                Err(e) => {
                    result = Err((target.clone(), e));
                    break;
                }
            }
        }
    }
    let Err((path, e)) = result else {
        return Ok(done);
    };
    // Errors here change nothing: a temporary file that was never made, or is gone already.
    for (temp, target) in &pending {
        if !renamed.contains(&target.as_path()) {
            let _ = sys.unlink(temp);
        }
    }
    for target in renamed {
        let _ = sys.unlink(target);
    }
    Err(format!("cannot write {}: {e}", path.display()))
}

/// Every directory made and every file and link written under its temporary name, each
/// (temporary name, target) added to `pending` before it is tried.
fn make_all(
    sys: &mut dyn Sys,
    root: &Path,
    items: &[Item],
    done: &mut Unpacked,
    pending: &mut Vec<(PathBuf, PathBuf)>,
) -> Result<(), (PathBuf, io::Error)> {
    // sorted: each directory made once
    let mut made_dirs: Vec<&str> = Vec::new();
    for item in items {
        let target = root.join(item.path);
        for dir in parents(item.path) {
            if let Err(at) = made_dirs.binary_search(&dir) {
                made_dirs.insert(at, dir);
                make_dir(sys, &root.join(dir), 0o755)?;
            }
        }
        let temp = temp_name(root, item.path);
        match item.kind {
            Kind::Dir(mode) => {
                if let Err(at) = made_dirs.binary_search(&item.path) {
                    made_dirs.insert(at, item.path);
                }
                make_dir(sys, &target, mode)?;
            }
            Kind::File(mode, data) => {
                pending.push((temp.clone(), target.clone()));
                retry_once(sys, &temp, &mut |sys| sys.create_file(&temp, mode, data))
                    .map_err(|e| (target, e))?;
                done.files += 1;
                done.bytes += data.len();
                if item.path.starts_with(MODULES_DIR) {
                    done.modules += 1;
                }
            }
            Kind::Symlink(to) => {
                pending.push((temp.clone(), target.clone()));
                retry_once(sys, &temp, &mut |sys| sys.symlink(Path::new(to), &temp))
                    .map_err(|e| (target, e))?;
                done.links += 1;
            }
        }
    }
    Ok(())
}

/// `mkdir(path, mode)`, which may exist already.
fn make_dir(sys: &mut dyn Sys, path: &Path, mode: u32) -> Result<(), (PathBuf, io::Error)> {
    match sys.mkdir(path, mode) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err((path.to_path_buf(), e)),
        _ => Ok(()),
    }
}

/// `make(sys)`; when `temp` exists (left by an earlier attempt), removed and made again.
fn retry_once(
    sys: &mut dyn Sys,
    temp: &Path,
    make: &mut dyn FnMut(&mut dyn Sys) -> io::Result<()>,
) -> io::Result<()> {
    match make(sys) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            sys.unlink(temp)?;
            make(sys)
        }
        other => other,
    }
}

#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;
