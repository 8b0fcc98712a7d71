//! Whether a program can run on this machine for its user, said in words before anything is
//! started or changed: the file exists and is a regular file, the user may search every
//! directory above it and execute it, it is an ELF for this machine whose loader is there, or
//! a `#!` script whose interpreter passes the same checks. `mode = "exec"` checks the box with
//! it before PID 1 changes itself; the supervisor asks it why a start failed.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::elf;
use crate::supervision::program::Program;

/// The ELF machine (`e_machine`) of the programs this boxinit can run: its own.
#[cfg(target_arch = "x86_64")]
const OWN_MACHINE: u16 = elf::MACHINE_X86_64;
#[cfg(target_arch = "aarch64")]
const OWN_MACHINE: u16 = elf::MACHINE_AARCH64;
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
    /// `crlf`: the line ends in a carriage return, which the kernel keeps (a file saved with
    /// Windows line endings): it is part of the interpreter's name or of its argument.
    Script { interpreter: String, crlf: bool },
    /// Neither: `execve` fails with ENOEXEC.
    Unknown,
}

/// Reads the format from the first bytes of a file (up to 256: the kernel's
/// `BINPRM_BUF_SIZE`, which also bounds a `#!` line).
pub fn format_of(head: &[u8]) -> Format {
    if let Some(h) = elf::header(head) {
        return Format::Elf {
            class: h.class,
            data: h.data,
            machine: h.machine,
        };
    }
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        let crlf = line.ends_with(b"\r");
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // As the kernel reads it (fs/binfmt_script.c): blanks are spaces and tabs only.
        let interpreter = line
            .split(|&b| b == b' ' || b == b'\t')
            .find(|word| !word.is_empty())
            .unwrap_or_default();
        return Format::Script {
            interpreter: String::from_utf8_lossy(interpreter).into_owned(),
            crlf,
        };
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

/// Checks that `user` can execute `path` on this machine: it exists, is a regular file with an
/// `x` permission for the user, every directory above it can be searched, and it is an ELF
/// for this machine whose loader exists, or a `#!` script whose interpreter passes the same
/// checks. The error says what is wrong and how to fix it.
pub fn check_program(path: &Path, user: &User) -> Result<(), String> {
    check_file(path, user, true)
}

/// How long the loop waits for [`diagnose`]: a card that answers reads the file in a few ms
/// (the box's was read ahead at boot); a loaded machine gets leeway, the watchdog (seconds)
/// does not notice.
pub const DIAGNOSIS_LIMIT: Duration = Duration::from_millis(500);

/// A diagnosis thread is under way (at most one: a crash-looping start on a hung card would
/// otherwise leave a thread stuck per restart).
static DIAGNOSING: AtomicBool = AtomicBool::new(false);

/// [`check_program`] for a start that failed, from PID 1's loop: the file is on the card,
/// whose reads may take seconds or never end, so the check runs on a thread and is waited for
/// up to `limit`. `None`: no answer in time (a slow or hung disk; the thread's late answer is
/// dropped), the last diagnosis is still reading, or no thread could be made.
pub fn diagnose(path: &Path, user: &User, limit: Duration) -> Option<Result<(), String>> {
    let (path, user) = (path.to_path_buf(), user.clone());
    within(&DIAGNOSING, limit, move || check_program(&path, &user))
}

/// `work`'s answer if it comes within `limit`, on a thread of its own while `busy` is not set
/// (it is while the thread runs: a second one is not started).
fn within<T: Send + 'static>(
    busy: &'static AtomicBool,
    limit: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if busy.swap(true, Ordering::SeqCst) {
        return None;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("diagnose".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let answer = work();
            busy.store(false, Ordering::SeqCst);
            // Nobody waits any more when it came too late.
            let _ = tx.send(answer);
        });
    if spawned.is_err() {
        busy.store(false, Ordering::SeqCst);
        return None;
    }
    rx.recv_timeout(limit).ok()
}

fn check_file(path: &Path, user: &User, scripts_allowed: bool) -> Result<(), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => missing_error(&shown.to_string()),
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
    let loader_exists = |loader: &str| Path::new(loader).exists();
    match check_contents(
        &shown.to_string(),
        &file,
        OWN_MACHINE,
        &loader_exists,
        scripts_allowed,
    )? {
        None => Ok(()),
        Some(interpreter) => check_file(Path::new(&interpreter), user, false)
            .map_err(|why| script_error(&shown.to_string(), &interpreter, &why)),
    }
}

/// What a program's bytes (its first 64 KiB: the ELF header, the program headers, the
/// loader's name; or the `#!` line) say about running it on a machine of ELF machine number
/// `machine` (62 x86_64, 183 aarch64), whose files `loader_exists` answers for: `Ok(None)`, an
/// ELF for that machine, static or with its loader there; `Ok(Some(interpreter))`, a `#!`
/// script (when `scripts_allowed`) whose interpreter must pass the same checks (the caller's:
/// on the running system or in an initramfs, [`script_error`] its message); or why it cannot
/// run, `shown` naming it. The init's check of a box and xtask's before it packs one (the same
/// words at build time as at boot).
pub fn check_contents(
    shown: &str,
    file: &[u8],
    machine: u16,
    loader_exists: &dyn Fn(&str) -> bool,
    scripts_allowed: bool,
) -> Result<Option<String>, String> {
    let head = file.get(..256).unwrap_or(file);
    match format_of(head) {
        Format::Elf {
            class,
            data,
            machine: its,
        } => {
            if its != machine || class != elf::CLASS_64 || data != elf::LITTLE_ENDIAN {
                return Err(format!(
                    "{shown} is a program for {} ({}-bit), this machine runs {}: build it for {}",
                    machine_name(its),
                    if class == 1 { 32 } else { 64 },
                    machine_name(machine),
                    machine_name(machine)
                ));
            }
            if let Some(loader) = elf::interpreter(file) {
                if !loader_exists(&loader) {
                    return Err(format!(
                        "{shown} is dynamically linked and needs {loader}, which is not in the initramfs: link it statically (e.g. the *-linux-musl targets)"
                    ));
                }
            }
            Ok(None)
        }
        Format::Script { crlf: true, .. } if scripts_allowed => Err(format!(
            "{shown}: its #! line ends in CR: the script has Windows (CRLF) line endings; convert it with dos2unix"
        )),
        Format::Script { interpreter, .. } if scripts_allowed => {
            if interpreter.is_empty() {
                return Err(format!("{shown} starts with #! but names no interpreter"));
            }
            Ok(Some(interpreter))
        }
        Format::Script { .. } | Format::Unknown => Err(format!(
            "{shown} is neither a program (ELF) nor a #! script for one"
        )),
    }
}

/// Why the script `shown` cannot run: its `interpreter` cannot, for the reason `why`.
pub fn script_error(shown: &str, interpreter: &str, why: &str) -> String {
    format!("{shown} is a script for {interpreter}, which cannot run: {why}")
}

/// Why a program cannot run when its file is not there.
pub fn missing_error(shown: &str) -> String {
    format!("{shown} does not exist")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::minimal as elf;
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
                interpreter: "/bin/busybox".into(),
                crlf: false
            }
        );
        // Saved on Windows: the kernel keeps the CR (in the name, or in the last argument).
        for (head, interpreter) in [
            (&b"#!/bin/sh\r\necho"[..], "/bin/sh"),
            (b"#!/bin/sh -e\r\n", "/bin/sh"),
            (b"#!\t/bin/sh\r", "/bin/sh"),
        ] {
            assert_eq!(
                format_of(head),
                Format::Script {
                    interpreter: interpreter.into(),
                    crlf: true
                },
                "{head:?}"
            );
        }
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
        // /bin/sh exists, but the kernel looks for "/bin/sh\r".
        write(&dir.join("crlf"), b"#!/bin/sh\r\necho hi\r\n", 0o755);
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
        assert!(err("crlf", &root()).ends_with(
            "crlf: its #! line ends in CR: the script has Windows (CRLF) line endings; convert it with dos2unix"
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn this_test_binary_passes_its_own_check() {
        let me = std::env::current_exe().unwrap();
        assert_eq!(check_program(&me, &root()), Ok(()));
        assert_eq!(check_program(Path::new("/bin/sh"), &root()), Ok(()));
    }

    /// Issue 17, item 11: a failed start's diagnosis whose reads hang (a dying card) holds
    /// the loop for its limit only, and a second one is not started while the first is stuck;
    /// one that answers in time is waited for.
    #[test]
    fn a_diagnosis_that_hangs_is_given_up_after_its_limit() {
        static BUSY: AtomicBool = AtomicBool::new(false);
        let (release, hung) = std::sync::mpsc::channel::<()>();
        let started = std::time::Instant::now();
        let answer = within(&BUSY, Duration::from_millis(100), move || {
            hung.recv_timeout(Duration::from_secs(3)).is_ok()
        });
        assert_eq!(answer, None);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the loop waited"
        );
        // still stuck: the next one is not even started
        assert_eq!(within(&BUSY, Duration::from_secs(5), || true), None);
        release.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while BUSY.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(within(&BUSY, Duration::from_secs(5), || 42), Some(42));
        let me = std::env::current_exe().unwrap();
        assert_eq!(diagnose(&me, &root(), Duration::from_secs(5)), Some(Ok(())));
    }
}
