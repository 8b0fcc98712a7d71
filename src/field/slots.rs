//! The Pi firmware's two slots on one FAT partition, pure parts and the two endings of a
//! bundle trial: what the firmware and kernel say of this boot (`chosen/bootloader/tryboot`,
//! `chosen/os_prefix`, the kernel release), the `os_prefix=` of `config.txt` and
//! `tryboot.txt`, whether a kernel passes `tryboot` on, a slot's `bundle.sha256` checked,
//! and, inside a write window, a slot committed (`config.txt` and `tryboot.txt` exchanged) or
//! set aside (`bundle.failed.sha256` and `.txt`). The card's decisions are `bundle.rs`'s.

use std::io;
use std::path::Path;

use super::files::now_text;
use super::window::Window;

/// The firmware's config of an ordinary boot.
pub const CONFIG_TXT: &str = "config.txt";
/// The firmware's config of a `tryboot`.
pub const TRYBOOT_TXT: &str = "tryboot.txt";
/// In a slot: the new bundle, complete (written last).
pub const MANIFEST: &str = "bundle.sha256";
/// In a slot: the manifest of a bundle that was tried and kept.
pub const GOOD: &str = "bundle.good.sha256";
/// In a slot: the manifest of a bundle that failed, and why.
pub const FAILED: &str = "bundle.failed.sha256";
pub const FAILED_TXT: &str = "bundle.failed.txt";

/// What the firmware and the kernel say of this boot, and a `tryboot` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleRun {
    /// `chosen/bootloader/tryboot` is 1: the firmware booted `tryboot.txt`.
    pub tryboot: bool,
    /// `chosen/os_prefix`: the slot the firmware booted (None: none, or the root files).
    pub os_prefix: Option<String>,
    /// The running kernel's release (`/proc/sys/kernel/osrelease`).
    pub release: String,
    /// This boot records a bundle trial and reboots with `tryboot`.
    pub requesting: bool,
}

impl BundleRun {
    /// Reads the device tree's `chosen` properties and the kernel release under `root`.
    pub fn read(root: &Path) -> BundleRun {
        let chosen = root.join("proc/device-tree/chosen");
        let tryboot = std::fs::read(chosen.join("bootloader/tryboot"))
            .ok()
            .and_then(|b| be_u32(&b))
            == Some(1);
        let os_prefix = std::fs::read(chosen.join("os_prefix"))
            .ok()
            .map(|b| dt_string(&b))
            .filter(|p| !p.is_empty());
        let release = std::fs::read_to_string(root.join("proc/sys/kernel/osrelease"))
            .unwrap_or_default()
            .trim()
            .to_string();
        BundleRun {
            tryboot,
            os_prefix,
            release,
            requesting: false,
        }
    }
}

/// A device-tree cell: a big-endian u32.
fn be_u32(bytes: &[u8]) -> Option<u32> {
    let cell: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(cell))
}

/// A device-tree string property, without its NUL.
fn dt_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(bytes.get(..end).unwrap_or_default())
        .trim()
        .to_string()
}

/// The lines of a `config.txt` or `tryboot.txt` that `board`'s firmware reads (trimmed; `#`
/// lines and section headers left out): those for every board (before any section, or after
/// `[all]`) and, with a `board` (`pi3`), those under `[board]`. Other conditional sections
/// (`[pi4]`, `[cm4]`, `[tryboot]`, `[none]`) are not evaluated: their lines are left out.
pub fn lines_for<'a>(text: &'a str, board: Option<&'a str>) -> impl Iterator<Item = &'a str> {
    let mut applies = true;
    text.lines().map(str::trim).filter(move |line| {
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            applies = section.eq_ignore_ascii_case("all")
                || board.is_some_and(|b| section.eq_ignore_ascii_case(b));
            return false;
        }
        applies && !line.starts_with('#')
    })
}

/// The `os_prefix=` of a `config.txt` or `tryboot.txt`: the last one that applies to every
/// board ([`lines_for`]), so the slot files must name their slot unconditionally.
pub fn os_prefix(text: &str) -> Option<String> {
    lines_for(text, None)
        .filter_map(|l| l.strip_prefix("os_prefix="))
        .last()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
}

/// `config` (a `config.txt`) with `os_prefix=slot` added at its end, for every board: after
/// an `[all]` when the text ends inside a conditional section (`[pi4]`), so that the firmware
/// and [`os_prefix`] both read it.
pub fn with_os_prefix(config: &str, slot: &str) -> String {
    let mut text = config.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let last_section = text.lines().map(str::trim).rfind(|l| l.starts_with('['));
    if last_section.is_some_and(|l| !l.eq_ignore_ascii_case("[all]")) {
        text.push_str("[all]\n");
    }
    text.push_str(&format!("os_prefix={slot}\n"));
    text
}

/// Whether a kernel release is a Raspberry Pi kernel, whose firmware driver passes the
/// reboot's `tryboot` to the firmware: Raspberry Pi OS's `6.6.51+rpt-rpi-v8`,
/// `6.1.0-rpi7-rpi-v8`, and the older `6.1.21-v8+`. Debian's `6.1.0-28-arm64` and mainline's
/// are not.
pub fn kernel_can_tryboot(release: &str) -> bool {
    release.contains("+rpt") || release.contains("-rpi-") || {
        let base = release.trim_end_matches('+');
        base.len() < release.len() && base.rsplit('-').next().is_some_and(|t| t.starts_with('v'))
    }
}

/// The files a manifest names, with their digests: `sha256sum` lines (`HEX  NAME` or
/// `HEX *NAME`), `\r` and blank lines allowed. Err on a line that is not one.
pub fn manifest_lines(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut files = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (sha, name) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("\"{line}\" is not a sha256sum line (HEX  NAME)"))?;
        let name = name.trim_start().trim_start_matches('*').trim();
        if !super::state::is_digest(sha) || name.is_empty() || name.contains("..") {
            return Err(format!("\"{line}\" is not a sha256sum line (HEX  NAME)"));
        }
        files.push((sha.to_ascii_lowercase(), name.to_string()));
    }
    Ok(files)
}

/// Whether the slot `slot` of the card at `dir` holds a complete new bundle: its manifest's
/// digest, or why not (a file missing or different: a copy not finished; no kernel or device
/// tree named: the firmware would boot the root files instead).
pub fn check_slot(dir: &Path, slot: &str) -> Result<String, String> {
    let manifest = dir.join(slot).join(MANIFEST);
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| format!("cannot read {slot}{MANIFEST}: {e}"))?;
    let files = manifest_lines(&text).map_err(|e| format!("{slot}{MANIFEST}: {e}"))?;
    let named = |f: &dyn Fn(&str) -> bool| files.iter().any(|(_, n)| f(n));
    if !named(&|n| n.starts_with("kernel")) || !named(&|n| n.ends_with(".dtb")) {
        return Err(format!("{slot}{MANIFEST} names no kernel*.img or no .dtb: the firmware would boot the root files instead of the slot"));
    }
    for (sha, name) in &files {
        match crate::sha256::file_hex(&dir.join(slot).join(name)) {
            Ok(found) if found == *sha => {}
            Ok(_) => return Err(format!("{slot}{name} does not match its digest in {MANIFEST}: the copy is not finished, or was cut")),
            Err(e) => return Err(format!("{slot}{name}, named in {MANIFEST}: {e}")),
        }
    }
    Ok(crate::sha256::hex(&crate::sha256::digest(text.as_bytes())))
}

/// The slot a firmware config file names, read from the card.
pub fn slot_of(dir: &Path, file: &str) -> Option<String> {
    os_prefix(&std::fs::read_to_string(dir.join(file)).ok()?)
}

/// Commits the tried slot: `config.txt` and `tryboot.txt` exchanged (unless `config.txt`
/// names the slot already: a cut after the exchange), the manifest kept as `bundle.good`.
/// Redone from any point a cut left it at.
pub fn commit(w: &mut Window, slot: &str) -> io::Result<()> {
    let dir = w.path("");
    if slot_of(&dir, CONFIG_TXT).as_deref() != Some(slot) && !w.exchange(CONFIG_TXT, TRYBOOT_TXT)? {
        return Err(io::Error::other("this kernel cannot exchange config.txt and tryboot.txt (RENAME_EXCHANGE on vfat needs Linux 6.0)"));
    }
    replace_mark(w, slot, MANIFEST, GOOD)
}

/// Sets the tried slot aside: its manifest becomes `bundle.failed.sha256`, `bundle.failed.txt`
/// says why. `config.txt` is not touched: the firmware boots the old slot.
pub fn set_aside(w: &mut Window, slot: &str, why: &str) -> io::Result<()> {
    replace_mark(w, slot, MANIFEST, FAILED)?;
    let txt = format!("{slot}{FAILED_TXT}");
    if w.path(&txt).exists() {
        w.remove(&txt)?;
    }
    w.create(&txt, why.as_bytes())
}

/// `SLOT/from` renamed `SLOT/to` (an older `to` removed first); nothing when `from` is gone.
fn replace_mark(w: &mut Window, slot: &str, from: &str, to: &str) -> io::Result<()> {
    let (from, to) = (format!("{slot}{from}"), format!("{slot}{to}"));
    if !w.path(&from).is_file() {
        return Ok(());
    }
    if w.path(&to).exists() {
        w.remove(&to)?;
    }
    w.rename(&from, &to)
}

/// The text of `bundle.failed.txt`.
pub fn failed_text(slot: &str, why: &str, boot: u64) -> String {
    format!(
        "boxinit did not keep the bundle in {slot} (its {MANIFEST} is now {FAILED}):\r\n{why}\r\n\r\nwhen: boot {boot}, {}\r\nwhat runs instead: the slot config.txt names\r\nTo try again, copy the fixed files into {slot} and its {MANIFEST} last.\r\n",
        now_text()
    )
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
