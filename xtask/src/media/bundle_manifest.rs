//! The bundle folder's record of what `bundle` wrote (`.boxinit-bundle`: a line per file,
//! its CRC-32 and size), so that bundling again into the same folder keeps what the user
//! edited since (or put there: a file no bundle wrote) and removes what an earlier bundle wrote
//! that this one does not (another board's firmware and device trees). Which files a user
//! edits, and which are another board's by name, is said here; the bundle's steps are
//! `bundle.rs`'s.

use std::collections::BTreeMap;
use std::path::Path;

use crate::media::board::Board;

/// The record's file name in the bundle folder (the firmware reads no file of that name).
pub const MANIFEST: &str = ".boxinit-bundle";

/// The files a user edits or replaces in the folder: kept when they differ from what the
/// last bundle wrote, unless the command names their source (`--box`, `--config`).
pub const USER_FILES: &[&str] = &["box", "init.toml", "cmdline.txt", "config.txt"];

/// A file's CRC-32 and size.
pub type Digest = (u32, u64);

/// What the last bundle wrote into a folder, by file name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub files: BTreeMap<String, Digest>,
}

impl Manifest {
    /// The folder's record; empty when there is none (a new folder, or one made before
    /// bundles kept it) or it cannot be read.
    pub fn read(dir: &Path) -> Manifest {
        let text = std::fs::read_to_string(dir.join(MANIFEST)).unwrap_or_default();
        let files = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let mut words = l.splitn(3, ' ');
                let crc = u32::from_str_radix(words.next()?, 16).ok()?;
                let size = words.next()?.parse().ok()?;
                Some((words.next()?.to_string(), (crc, size)))
            })
            .collect();
        Manifest { files }
    }

    /// The record's text.
    pub fn text(&self) -> String {
        let mut out = String::from(
            "# what `cargo xtask bundle` wrote here: CRC-32, size, name. A file that differs \
             is kept by the next bundle.\n",
        );
        for (name, (crc, size)) in &self.files {
            out += &format!("{crc:08x} {size} {name}\n");
        }
        out
    }
}

/// The digest of the file at `path`, None when it cannot be read.
pub fn digest(path: &Path) -> Option<Digest> {
    let bytes = std::fs::read(path).ok()?;
    Some((boxinit::crc32::crc32(&bytes), bytes.len() as u64))
}

/// Of [`USER_FILES`], those in `dir` to keep: there, not named by the command (`given`), and
/// not as the last bundle wrote them (edited, or no bundle's).
pub fn kept(dir: &Path, last: &Manifest, given: &[&str]) -> Vec<String> {
    USER_FILES
        .iter()
        .filter(|name| !given.contains(name))
        .filter(|name| match digest(&dir.join(name)) {
            None => false,
            Some(now) => last.files.get(**name) != Some(&now),
        })
        .map(|name| name.to_string())
        .collect()
}

/// The files in `dir` to remove before this bundle's are counted: those the last bundle
/// wrote, unchanged since, that this one does not write; and without a record, any other
/// board's firmware or device tree by its name.
pub fn stale(dir: &Path, last: &Manifest, written: &[String]) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .filter(|name| !written.contains(name) && name != MANIFEST)
        .filter(|name| match last.files.get(name) {
            Some(recorded) => digest(&dir.join(name)).as_ref() == Some(recorded),
            None => last.files.is_empty() && is_pi_boot_file(name),
        })
        .collect()
}

/// Whether `name` is a Pi firmware file or device tree some board's bundle writes.
fn is_pi_boot_file(name: &str) -> bool {
    use clap::ValueEnum as _;
    let firmware = Board::value_variants()
        .iter()
        .flat_map(|b| [b.firmware(true), b.firmware(false)])
        .flatten()
        .any(|f| f == name);
    firmware || (name.starts_with("bcm2") && name.ends_with(".dtb"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edited_files_are_kept_and_another_boards_removed() {
        let dir = std::env::temp_dir().join(format!("xtask-manifest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let put = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        // no record: an older folder, an rpi4 bundle's firmware, a user's own note
        put("init.toml", "[box]\n");
        put("start4cd.elf", "fw");
        put("bcm2711-rpi-4-b.dtb", "dtb");
        put("notes.txt", "mine");
        let none = Manifest::read(&dir);
        assert_eq!(none, Manifest::default());
        assert_eq!(kept(&dir, &none, &[]), ["init.toml"]);
        assert!(kept(&dir, &none, &["init.toml"]).is_empty());
        let written = vec!["init.toml".to_string(), "start_cd.elf".to_string()];
        assert_eq!(
            stale(&dir, &none, &written),
            ["bcm2711-rpi-4-b.dtb", "start4cd.elf"]
        );
        // a record: what it lists, unchanged, goes when not written again; an edited file stays
        let mut last = Manifest::default();
        for name in ["init.toml", "start4cd.elf", "bcm2711-rpi-4-b.dtb"] {
            last.files
                .insert(name.into(), digest(&dir.join(name)).unwrap());
        }
        std::fs::write(dir.join(MANIFEST), last.text()).unwrap();
        let last = Manifest::read(&dir);
        assert_eq!(last.files.len(), 3);
        assert!(kept(&dir, &last, &[]).is_empty());
        put("init.toml", "[box]\nrestart = \"never\"\n");
        assert_eq!(kept(&dir, &last, &[]), ["init.toml"]);
        put("bcm2711-rpi-4-b.dtb", "edited");
        assert_eq!(stale(&dir, &last, &written), ["start4cd.elf"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
