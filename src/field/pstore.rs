//! The kernel's pstore records (`/sys/fs/pstore`: a panic's or oops's log kept across the
//! reset by ramoops or EFI variables), read at boot into the report of the boot they are
//! about, then removed (which frees their slot: the kernel keeps only a few). Debian's kernel
//! has pstore built in and `ramoops` as a module without console or pmsg records: panic dumps
//! only, and only where a board reserves the memory.

use std::path::{Path, PathBuf};

use crate::sys::{MountFlags, Sys};

/// Where the kernel shows them.
pub const DIR: &str = "sys/fs/pstore";

/// Mounts the pstore file system on `/sys/fs/pstore` when the kernel has it and it is not
/// mounted yet; quietly nothing otherwise (no pstore in this kernel).
pub fn mount(sys: &mut dyn Sys, root: &Path) {
    let dir = root.join(DIR);
    if !dir.is_dir() {
        return;
    }
    let mounts = std::fs::read_to_string(root.join("proc/mounts")).unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("pstore"))
    {
        return;
    }
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    if let Err(e) = sys.mount("pstore", &dir, "pstore", flags, "") {
        log::debug!("pstore: cannot mount {}: {e}", dir.display());
    }
}

/// The records, oldest name first: (name, text, path).
pub fn read(root: &Path) -> Vec<(String, String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(root.join(DIR)) else {
        return Vec::new();
    };
    let mut records: Vec<(String, String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            let text = std::fs::read(e.path())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), text, e.path())
        })
        .collect();
    records.sort_unstable();
    records
}

/// Removes the records (once they are on the card).
pub fn clear(sys: &mut dyn Sys, records: &[(String, String, PathBuf)]) {
    for (name, _, path) in records {
        if let Err(e) = sys.unlink(path) {
            log::debug!("pstore: cannot remove {name}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recorder::Recorder;

    #[test]
    fn records_are_read_then_removed() {
        let root = std::env::temp_dir().join(format!("boxinit-pstore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join(DIR)).unwrap();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(root.join("proc/mounts"), "sysfs /sys sysfs rw 0 0\n").unwrap();
        std::fs::write(root.join(DIR).join("dmesg-ramoops-1"), "Oops 2\n").unwrap();
        std::fs::write(root.join(DIR).join("dmesg-ramoops-0"), "Kernel panic\n").unwrap();
        let mut rec = Recorder::new();
        mount(&mut rec, &root);
        assert!(
            rec.transcript().starts_with("mount(pstore, "),
            "{}",
            rec.transcript()
        );
        let records = read(&root);
        let names: Vec<&str> = records.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(names, ["dmesg-ramoops-0", "dmesg-ramoops-1"]);
        assert_eq!(records[0].1, "Kernel panic\n");
        let mut rec = Recorder::new();
        clear(&mut rec, &records);
        assert_eq!(rec.calls.len(), 2);
        // already mounted: left alone; no pstore in the kernel: nothing at all
        std::fs::write(
            root.join("proc/mounts"),
            "pstore /sys/fs/pstore pstore rw 0 0\n",
        )
        .unwrap();
        let mut rec = Recorder::new();
        mount(&mut rec, &root);
        assert_eq!(rec.transcript(), "");
        std::fs::remove_dir_all(&root).unwrap();
        assert!(read(&root).is_empty());
    }
}
