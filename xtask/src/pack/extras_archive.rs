//! The extras archive, `extras.cpio.gz` beside `box` on the card: what serves later than the
//! box, taken out of the initramfs (Wi-Fi's supplicant with its libraries, the chip's
//! firmware, its kernel modules) and unpacked by the init where coldplug's second pass
//! starts (`boxinit::storage::extras`, `[boot] extras`). Written as the initramfs is (gzip
//! newc, `tools/cpio.rs`), the directories first and then the entries in the order given (a
//! program after its libraries: the init renames them into place in this order), and named
//! in the built-in config ([`list_in_config`]), so a user never has to list it. Which
//! entries and modules move here is `pack/initramfs.rs`'s choice ([`Later`]).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use boxinit::config::{Layer, Place};

use crate::pack::extra::Extra;
use crate::tools::cpio;
use crate::{display_path, format_size};

/// The archive's name on the card, beside `box`.
pub const ARCHIVE: &str = "extras.cpio.gz";

/// What an initramfs moves into its extras archive.
#[derive(Clone, Debug, Default)]
pub struct Later {
    /// files and links, in the order they should appear at boot (a program after its
    /// libraries); a path the initramfs holds itself stays there
    pub entries: Vec<Extra>,
    /// kernel modules (names or aliases) whose `.ko` files go into the archive, with the
    /// dependencies the initramfs's own modules do not need; the initramfs's module index
    /// still lists them all, so coldplug finds them once they are unpacked
    pub modules: Vec<String>,
}

impl Later {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.modules.is_empty()
    }
}

/// What [`write`] wrote.
#[derive(Clone, Debug)]
pub struct Archive {
    pub path: PathBuf,
    /// the compressed file, in bytes: what the card holds
    pub size: u64,
    /// the uncompressed archive, in bytes: what the init inflates
    pub unpacked: u64,
    /// files and links in it
    pub members: usize,
}

/// Writes `entries` (files and links; each path once, the first wins) as a gzip-compressed
/// newc archive to `out`: every directory above them first, then the entries in order.
pub fn write(entries: &[Extra], out: &Path) -> Result<Archive> {
    let mut dirs = BTreeSet::new();
    for entry in entries {
        let path = match entry {
            Extra::File { path, .. } | Extra::Symlink { path, .. } => path,
            Extra::Omit { .. } => continue,
        };
        let mut parent = path.as_str();
        while let Some((dir, _)) = parent.rsplit_once('/') {
            dirs.insert(dir.to_string());
            parent = dir;
        }
    }
    let mut writer = cpio::Writer::new(Vec::new());
    let mut seen = BTreeSet::new();
    let mut members = 0;
    for dir in &dirs {
        writer.dir(dir, 0o755)?;
    }
    for entry in entries {
        match entry {
            Extra::File { path, mode, data } if seen.insert(path.clone()) => {
                writer.file(path, *mode, data)?;
                members += 1;
            }
            Extra::Symlink { path, target } if seen.insert(path.clone()) => {
                writer.symlink(path, target)?;
                members += 1;
            }
            _ => {}
        }
    }
    let cpio = writer.finish()?;
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    // The card is read at every boot that uses it; its inflating costs the same at any level.
    let mut gzip =
        flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::best());
    gzip.write_all(&cpio)
        .and_then(|()| gzip.try_finish())
        .and_then(|()| gzip.get_mut().flush())
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(Archive {
        path: out.to_path_buf(),
        size: std::fs::metadata(out)?.len(),
        unpacked: cpio.len() as u64,
        members,
    })
}

/// The line that [`list_in_config`] adds under `[boot]`.
const LISTING: &str =
    "extras = [\"extras.cpio.gz\"]   # added by cargo xtask: what serves later, on the card";

/// The built-in config `text` with [`ARCHIVE`] in its `[boot] extras`: as it is when it lists
/// it, else with the key added under its `[boot]` header (or a `[boot]` section added at the
/// end). An `extras` list of the user's own that lacks it is an error asking to add it.
pub fn list_in_config(text: &str) -> Result<String> {
    let listed = |text: &str| {
        let (config, errors) = boxinit::config::load(&[Layer::File {
            name: "the built-in config".into(),
            bytes: text.as_bytes().to_vec(),
            place: Place::Early,
        }]);
        (config.boot.extras, errors)
    };
    let (extras, errors) = listed(text);
    if extras.iter().any(|name| name == ARCHIVE) {
        return Ok(text.to_string());
    }
    if !errors.is_empty() || !extras.is_empty() {
        bail!(
            "the built-in config's [boot] extras ({extras:?}) does not list {ARCHIVE}, which \
             holds what this initramfs leaves for later: add it to the list"
        );
    }
    let is_boot_header = |line: &str| line.split('#').next().is_some_and(|l| l.trim() == "[boot]");
    let mut lines: Vec<&str> = text.lines().collect();
    let edited = match lines.iter().position(|l| is_boot_header(l)) {
        Some(at) => {
            lines.insert(at + 1, LISTING);
            lines.join("\n") + "\n"
        }
        None => format!("{}\n[boot]\n{LISTING}\n", text.trim_end()),
    };
    match listed(&edited) {
        (extras, errors) if errors.is_empty() && extras == [ARCHIVE] => Ok(edited),
        _ => bail!(
            "cannot add [boot] extras to the built-in config: add `extras = [\"{ARCHIVE}\"]` \
             under its [boot] yourself"
        ),
    }
}

/// One line for the user: the archive, its sizes, what it holds.
pub fn describe(archive: &Archive) -> String {
    format!(
        "extras {}  {} ({} unpacked, {} files and links): copy it onto the card beside box",
        display_path(&archive.path),
        format_size(archive.size),
        format_size(archive.unpacked),
        archive.members
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_with_directories_first_then_in_order() {
        let dir = crate::tools::testing::temp_dir("extras-archive");
        let out = dir.join(ARCHIVE);
        let file = |path: &str, data: &[u8]| Extra::File {
            path: path.into(),
            mode: 0o644,
            data: data.to_vec(),
        };
        let made = write(
            &[
                file("usr/lib/libssl.so.3", b"ssl"),
                Extra::Symlink {
                    path: "lib/ld.so".into(),
                    target: "../usr/lib/ld.so".into(),
                },
                file("sbin/wpa_supplicant", b"elf"),
                file("usr/lib/libssl.so.3", b"again"),
            ],
            &out,
        )
        .unwrap();
        assert_eq!(made.members, 3);
        // the init's own reader and checks take it, in this order
        let cpio = boxinit::gzip::decompress_all(&std::fs::read(&out).unwrap(), 1 << 20).unwrap();
        assert_eq!(cpio.len() as u64, made.unpacked);
        let items = boxinit::storage::extras::verify(&cpio).unwrap();
        let names: Vec<&str> = items.iter().map(|i| i.path).collect();
        assert_eq!(
            names,
            [
                "lib",
                "sbin",
                "usr",
                "usr/lib",
                "usr/lib/libssl.so.3",
                "lib/ld.so",
                "sbin/wpa_supplicant"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_built_in_config_lists_it() {
        let extras = |text: &str| {
            let text = list_in_config(text).unwrap();
            let (config, errors) = boxinit::config::load(&[Layer::Text {
                name: "t".into(),
                text: text.clone(),
            }]);
            assert!(errors.is_empty(), "{errors:?}\n{text}");
            (config, text)
        };
        // under an existing [boot], its other keys kept
        let (config, text) =
            extras("# mine\n[boot] # the card\ndevice = \"auto\"\n[box]\npath = \"b\"\n");
        assert_eq!(config.boot.extras, [ARCHIVE]);
        assert_eq!(config.box_.path, "b");
        assert!(
            text.starts_with("# mine\n[boot] # the card\nextras = "),
            "{text}"
        );
        // a new [boot] at the end
        let (config, text) = extras("[modules]\ncoldplug = true\n");
        assert_eq!(config.boot.extras, [ARCHIVE]);
        assert!(text.ends_with("[boot]\nextras = [\"extras.cpio.gz\"]   # added by cargo xtask: what serves later, on the card\n"));
        // listed already: unchanged
        let listed = "[boot]\nextras = [\"mine.gz\", \"extras.cpio.gz\"]\n";
        assert_eq!(list_in_config(listed).unwrap(), listed);
        // a list of the user's own without it, or a file where a key cannot go: say so
        let err = list_in_config("[boot]\nextras = [\"mine.gz\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not list extras.cpio.gz"), "{err}");
        let err = list_in_config("boot.read_only = true\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("add `extras = "), "{err}");
    }
}
