//! One benchmark boot: QEMU started on a prepared kernel, initramfs and disk, its console
//! read until the line the benchmark waits for (QEMU is then stopped), and kept under
//! `target/bench/`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::qemu::console;
use crate::qemu::machine::{self, Boot};
use crate::target_dir;
use crate::tools::arch::Arch;

/// How long one benchmark boot may take.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// Boots `boot`; returns the console once a line matching `until` (`*` for any text) was
/// printed (QEMU is then stopped), or what it printed in `timeout`.
pub fn console_until(boot: &Boot, until: &str, timeout: Duration) -> Result<String> {
    let mut child = machine::command(boot, false)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run QEMU")?;
    let (console, _) = console::watch(&mut child, &[until.to_string()], false, timeout, None)?;
    Ok(console)
}

/// Boots x86_64 `kernel` with `initrd` and `disk`; returns the console once a line matching
/// `until` was printed (QEMU is then stopped).
pub fn boot_initrd(
    kernel: &Path,
    initrd: &Path,
    disk: &Path,
    append: &str,
    until: &str,
) -> Result<String> {
    let mut boot = Boot::new(Arch::X86_64, kernel, initrd);
    boot.disk = Some(disk.to_path_buf());
    boot.append = append.to_string();
    console_until(&boot, until, BOOT_TIMEOUT)
}

/// Keeps a boot's console as target/bench/`name` and returns its path.
pub fn save_console(name: &str, console: &str) -> String {
    let path = target_dir().join("bench").join(name);
    let _ = std::fs::write(&path, console);
    crate::display_path(&path)
}
