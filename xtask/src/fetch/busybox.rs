//! Debian's `busybox-static`: a static shell and tools for the guest, fetched once with
//! `apt-get download` into `target/busybox/` and unpacked in pure Rust. The boxinit init does
//! not need it; the benchmark's busybox-script variant and the shell scenarios do.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::fetch::apt::{self, Apt};
use crate::fetch::deb;
use crate::tools::arch::Arch;
use crate::{progress, target_dir};

const PACKAGE: &str = "busybox-static";

/// The path of a static busybox binary for `arch` (x86_64 through the host's apt, aarch64
/// through the private arm64 list of `fetch/apt.rs`).
pub fn fetch(arch: Arch) -> Result<PathBuf> {
    let dir = target_dir().join("busybox").join(arch.name());
    let binary = dir.join("root/bin/busybox");
    if binary.is_file() {
        return Ok(binary);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let package = match (apt::find_deb(&dir, PACKAGE), arch) {
        (Some(found), _) => found,
        (None, Arch::X86_64) => apt::download(&dir, PACKAGE)?,
        (None, Arch::Aarch64) => Apt::new("arm64").download(PACKAGE, &dir)?,
    };
    progress!("unpacking {}", package.display());
    deb::unpack(&package, &dir.join("root"), &|_| true)?;
    if !binary.is_file() {
        bail!("{} holds no bin/busybox", package.display());
    }
    Ok(binary)
}
