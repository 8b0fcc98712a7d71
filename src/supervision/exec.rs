//! `mode = "exec"`: the box replaces PID 1. PID 1 sets itself up as the box (console, umask,
//! rlimits, groups, ids) and calls `execve(2)`; if that fails, PID 1 must still be able to take
//! its rescue action, which needs root. So everything that can fail is checked first, while
//! nothing has changed ([`check_program`]: the file, its format, its loader or interpreter, the
//! working directory), and the steps are ordered so that each one can be undone: the user id is
//! set with the saved set-user-ID kept at 0 (`setresuid(uid, uid, 0)`), which a successful
//! `execve` replaces with the new id and a failed one lets PID 1 take back. Only
//! `no_new_privs` stays, which does not keep PID 1 from rebooting.
//!
//! The system calls here change PID 1 itself and are undone on failure: they are not phase
//! sequences for the recorder, and they run where no other thread of PID 1 is left.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::process::{Gid, Resource, Rlimit, Uid};

use crate::supervision::supervise::Program;
use crate::sys::exec::{ChildSetup, Exec};

/// The ELF machine (`e_machine`) of the programs this boxinit can run: its own.
#[cfg(target_arch = "x86_64")]
const OWN_MACHINE: u16 = 62;
#[cfg(target_arch = "aarch64")]
const OWN_MACHINE: u16 = 183;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const OWN_MACHINE: u16 = 0;

/// Who will run the program: the ids it gets (`[box] user`, `group`, `groups`; root when unset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl User {
    /// The ids `program` runs with.
    pub fn of(program: &Program) -> User {
        User {
            uid: program.setup.uid.unwrap_or(0),
            gid: program.setup.gid.unwrap_or(0),
            groups: program.setup.groups.clone(),
        }
    }

    /// Whether the `x` permission of a file with `mode`, `owner` and `group` lets this user
    /// execute it (or search it, for a directory). Root needs one `x` bit on a file, none on a
    /// directory (CAP_DAC_OVERRIDE, as `execve(2)` and path lookup apply it).
    fn may_execute(&self, mode: u32, owner: u32, group: u32, is_dir: bool) -> bool {
        if self.uid == 0 {
            return is_dir || mode & 0o111 != 0;
        }
        let bit = if owner == self.uid {
            0o100
        } else if group == self.gid || self.groups.contains(&group) {
            0o010
        } else {
            0o001
        };
        mode & bit != 0
    }
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// An ELF file: its class (1: 32-bit, 2: 64-bit), byte order (1: little-endian) and machine.
    Elf { class: u8, data: u8, machine: u16 },
    /// A `#!` script and the interpreter it names.
    Script { interpreter: String },
    /// Neither: `execve` fails with ENOEXEC.
    Unknown,
}

/// Reads the format from the first bytes of a file (up to 256: the kernel's
/// `BINPRM_BUF_SIZE`, which also bounds a `#!` line).
pub fn format_of(head: &[u8]) -> Format {
    if let Some(ident) = head.strip_prefix(b"\x7fELF") {
        let class = ident.first().copied().unwrap_or(0);
        let data = ident.get(1).copied().unwrap_or(0);
        let machine = match (data, head.get(18..20)) {
            (1, Some(&[lo, hi])) => u16::from_le_bytes([lo, hi]),
            (2, Some(&[hi, lo])) => u16::from_be_bytes([hi, lo]),
            _ => 0,
        };
        return Format::Elf {
            class,
            data,
            machine,
        };
    }
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let text = String::from_utf8_lossy(line);
        let interpreter = text.split_whitespace().next().unwrap_or("").to_string();
        return Format::Script { interpreter };
    }
    Format::Unknown
}

/// A name for an ELF machine number, for messages.
fn machine_name(machine: u16) -> String {
    match machine {
        3 => "x86 (32-bit)".to_string(),
        40 => "arm (32-bit)".to_string(),
        62 => "x86_64".to_string(),
        183 => "aarch64".to_string(),
        243 => "riscv".to_string(),
        n => format!("machine {n}"),
    }
}

/// The loader an ELF file asks for (its `PT_INTERP`), when it has one: read from the
/// program headers of a 64-bit little-endian file. Static programs have none.
pub fn elf_interpreter(file: &[u8]) -> Option<String> {
    let u16_at = |at: usize| {
        file.get(at..at.checked_add(2)?)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_le_bytes)
    };
    let u32_at = |at: usize| {
        file.get(at..at.checked_add(4)?)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let u64_at = |at: usize| {
        file.get(at..at.checked_add(8)?)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .and_then(|v| usize::try_from(v).ok())
    };
    const PT_INTERP: u32 = 3;
    let phoff = u64_at(32)?;
    let phentsize = usize::from(u16_at(54)?);
    let phnum = usize::from(u16_at(56)?);
    (0..phnum)
        .filter_map(|i| phoff.checked_add(i.checked_mul(phentsize)?))
        .find(|&header| u32_at(header) == Some(PT_INTERP))
        .and_then(|header| {
            let offset = u64_at(header.checked_add(8)?)?;
            let size = u64_at(header.checked_add(32)?)?;
            let bytes = file.get(offset..offset.checked_add(size)?)?;
            let name = bytes.split(|&b| b == 0).next()?;
            Some(String::from_utf8_lossy(name).into_owned())
        })
}

/// Checks that `user` can execute `path` on this machine: it exists, is a regular file with an
/// `x` permission for the user, every directory above it can be searched, and it is an ELF
/// for this machine whose loader exists, or a `#!` script whose interpreter passes the same
/// checks. The error says what is wrong and how to fix it.
pub fn check_program(path: &Path, user: &User) -> Result<(), String> {
    check_file(path, user, true)
}

fn check_file(path: &Path, user: &User, scripts_allowed: bool) -> Result<(), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{shown} does not exist"),
        _ => format!("{shown}: {e}"),
    })?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    for dir in path
        .ancestors()
        .skip(1)
        .filter(|d| !d.as_os_str().is_empty())
    {
        let searchable = std::fs::metadata(dir)
            .is_ok_and(|m| user.may_execute(m.permissions().mode(), m.uid(), m.gid(), true));
        if !searchable {
            return Err(format!(
                "{} cannot be searched by user {} (group {}): {shown} is out of its reach",
                dir.display(),
                user.uid,
                user.gid
            ));
        }
    }
    if !user.may_execute(meta.permissions().mode(), meta.uid(), meta.gid(), false) {
        return Err(format!(
            "{shown} is not executable for user {} (mode {:o}, owner {}, group {}): chmod +x it, or set [box] user/group",
            user.uid,
            meta.permissions().mode() & 0o7777,
            meta.uid(),
            meta.gid()
        ));
    }
    let file = read_start(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let head = file.get(..256).unwrap_or(&file);
    match format_of(head) {
        Format::Elf {
            class,
            data,
            machine,
        } => {
            if machine != OWN_MACHINE || class != 2 || data != 1 {
                return Err(format!(
                    "{shown} is a program for {} ({}-bit), this machine runs {}: build it for {}",
                    machine_name(machine),
                    if class == 1 { 32 } else { 64 },
                    machine_name(OWN_MACHINE),
                    machine_name(OWN_MACHINE)
                ));
            }
            if let Some(loader) = elf_interpreter(&file) {
                if !Path::new(&loader).exists() {
                    return Err(format!(
                        "{shown} is dynamically linked and needs {loader}, which is not in the initramfs: link it statically (e.g. the *-linux-musl targets)"
                    ));
                }
            }
            Ok(())
        }
        Format::Script { interpreter } if scripts_allowed => {
            if interpreter.is_empty() {
                return Err(format!("{shown} starts with #! but names no interpreter"));
            }
            check_file(Path::new(&interpreter), user, false).map_err(|why| {
                format!("{shown} is a script for {interpreter}, which cannot run: {why}")
            })
        }
        Format::Script { .. } | Format::Unknown => Err(format!(
            "{shown} is neither a program (ELF) nor a #! script for one"
        )),
    }
}

/// The first 64 KiB of a file: the ELF header, its program headers and the loader's name are
/// there in any program a linker wrote.
fn read_start(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut start = Vec::new();
    std::fs::File::open(path)?
        .take(64 * 1024)
        .read_to_end(&mut start)?;
    Ok(start)
}

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
/// rescue action can run.
pub fn exec(spec: &Program) -> String {
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
    error
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Where a test puts its files.
    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("boxinit-exec-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn root() -> User {
        User {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        }
    }

    fn write(path: &Path, bytes: &[u8], mode: u32) {
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A minimal 64-bit little-endian ELF header for `machine`, with a `PT_INTERP` naming
    /// `loader` when given.
    fn elf(machine: u16, loader: Option<&str>) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        if let Some(loader) = loader {
            f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
            f[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
            f[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&3u32.to_le_bytes());
            ph[8..16].copy_from_slice(&120u64.to_le_bytes());
            ph[32..40].copy_from_slice(&(loader.len() as u64 + 1).to_le_bytes());
            f.extend(ph);
            f.extend(loader.as_bytes());
            f.push(0);
        }
        f
    }

    #[test]
    fn formats() {
        assert_eq!(
            format_of(&elf(183, None)),
            Format::Elf {
                class: 2,
                data: 1,
                machine: 183
            }
        );
        assert_eq!(
            format_of(b"#! /bin/busybox sh -e\necho"),
            Format::Script {
                interpreter: "/bin/busybox".into()
            }
        );
        assert_eq!(format_of(b"MZ\x90\0"), Format::Unknown);
        assert_eq!(format_of(b""), Format::Unknown);
        assert_eq!(
            format_of(b"\x7fELF"),
            Format::Elf {
                class: 0,
                data: 0,
                machine: 0
            }
        );
        assert_eq!(
            elf_interpreter(&elf(62, Some("/lib/ld-musl-x86_64.so.1"))).as_deref(),
            Some("/lib/ld-musl-x86_64.so.1")
        );
        assert_eq!(elf_interpreter(&elf(62, None)), None);
        // A header that points outside the file is no loader, and no panic.
        let mut broken = elf(62, Some("/x"));
        broken[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(elf_interpreter(&broken), None);
    }

    #[test]
    fn permissions_per_user() {
        let user = User {
            uid: 1000,
            gid: 100,
            groups: vec![20],
        };
        // (mode, owner, group, directory, may execute)
        let table = [
            (0o700, 1000, 0, false, true),
            (0o700, 0, 0, false, false),
            (0o070, 0, 100, false, true),
            (0o070, 0, 20, false, true),
            (0o001, 0, 0, false, true),
            (0o755, 0, 0, true, true),
            (0o700, 0, 0, true, false),
        ];
        for (mode, owner, group, dir, want) in table {
            assert_eq!(
                user.may_execute(mode, owner, group, dir),
                want,
                "{mode:o} {owner} {group} {dir}"
            );
        }
        assert!(root().may_execute(0o100, 5, 5, false));
        assert!(!root().may_execute(0o644, 0, 0, false));
        assert!(root().may_execute(0o700, 5, 5, true));
    }

    #[test]
    fn what_cannot_run_is_found_before_anything_changes() {
        let dir = temp("check");
        let own = elf(OWN_MACHINE, None);
        let foreign = elf(if OWN_MACHINE == 62 { 183 } else { 62 }, None);
        write(&dir.join("box"), &own, 0o755);
        write(&dir.join("arm-box"), &foreign, 0o755);
        write(&dir.join("rootonly"), &own, 0o700);
        write(&dir.join("noexec"), &own, 0o644);
        write(
            &dir.join("dynamic"),
            &elf(OWN_MACHINE, Some("/nonexistent/ld.so.1")),
            0o755,
        );
        write(&dir.join("script"), b"#!/nonexistent/sh\necho hi\n", 0o755);
        write(
            &dir.join("good-script"),
            format!("#!{}\n", dir.join("box").display()).as_bytes(),
            0o755,
        );
        write(&dir.join("text"), b"echo hi\n", 0o755);
        std::fs::create_dir_all(dir.join("adir")).unwrap();
        let user = User {
            uid: 1000,
            gid: 1000,
            groups: vec![],
        };
        let check = |name: &str, who: &User| check_program(&dir.join(name), who);
        assert_eq!(check("box", &root()), Ok(()));
        assert_eq!(check("box", &user), Ok(()));
        assert_eq!(check("good-script", &root()), Ok(()));
        let err = |name: &str, who: &User| check(name, who).unwrap_err();
        assert!(err("missing", &root()).ends_with("missing does not exist"));
        assert!(err("adir", &root()).contains("not a regular file"));
        assert!(
            err("arm-box", &root()).contains("is a program for"),
            "{}",
            err("arm-box", &root())
        );
        assert!(err("arm-box", &root())
            .contains(&format!("build it for {}", machine_name(OWN_MACHINE))));
        assert!(err("rootonly", &user).contains("not executable for user 1000"));
        assert!(err("noexec", &root()).contains("not executable for user 0"));
        assert!(err("dynamic", &root()).contains("needs /nonexistent/ld.so.1"));
        assert!(err("script", &root()).contains("a script for /nonexistent/sh"));
        assert!(err("text", &root()).contains("neither a program"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn this_test_binary_passes_its_own_check() {
        let me = std::env::current_exe().unwrap();
        assert_eq!(check_program(&me, &root()), Ok(()));
        assert_eq!(check_program(Path::new("/bin/sh"), &root()), Ok(()));
    }
}
