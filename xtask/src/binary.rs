//! Task `build`: the static musl binaries of boxinit and the demo box, built by cargo.
//!
//! It owns making sure the Rust target is installed; it does not package anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::arch::Arch;
use crate::{display_path, format_size, progress, target_dir, workspace_root};

/// The binaries `cargo xtask build` produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// `target/<triple>/release/boxinit`: the static PID 1
    pub init: PathBuf,
    /// `target/<triple>/release/box`: the demo program the init runs from the boot partition
    pub demo_box: PathBuf,
}

/// Builds `boxinit` and `demo-box` in release mode for `arch`, with the cargo that runs xtask.
pub fn build(arch: Arch) -> Result<Built> {
    let triple = arch.triple();
    ensure_target(triple)?;
    progress!("building boxinit and the demo box for {triple} (release)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(workspace_root())
        .args(["build", "--release", "--target", triple])
        .args(["--package", "boxinit", "--package", "demo-box"])
        .status()
        .with_context(|| format!("cannot run {}", Path::new(&cargo).display()))?;
    if !status.success() {
        bail!("cargo build for {triple} failed ({status}): see the compiler's messages above");
    }
    let release = target_dir().join(triple).join("release");
    let built = Built {
        init: release.join("boxinit"),
        demo_box: release.join("box"),
    };
    for path in [&built.init, &built.demo_box] {
        if !path.is_file() {
            bail!("cargo build succeeded but {} is missing", path.display());
        }
    }
    Ok(built)
}

/// One line per binary: `boxinit  target/.../boxinit  812345 bytes (793.3 KiB)`.
pub fn describe(built: &Built) -> Result<String> {
    let mut out = String::new();
    for (name, path) in [("boxinit", &built.init), ("box", &built.demo_box)] {
        let size = std::fs::metadata(path)
            .with_context(|| format!("cannot stat {}", path.display()))?
            .len();
        out += &format!("{name:8} {}  {}\n", display_path(path), format_size(size));
    }
    Ok(out)
}

/// Makes sure the Rust standard library for `triple` is installed: the toolchain's sysroot
/// has `lib/rustlib/<triple>/lib` when it is. Installs it with rustup when rustup exists.
fn ensure_target(triple: &str) -> Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(sysroot) = &sysroot {
        if sysroot
            .join("lib/rustlib")
            .join(triple)
            .join("lib")
            .is_dir()
        {
            return Ok(());
        }
    }
    let has_rustup = Command::new("rustup").arg("--version").output().is_ok();
    if !has_rustup {
        bail!(
            "the Rust target {triple} is not installed and rustup is not on PATH: install the \
             Rust standard library for {triple} (with rustup: `rustup target add {triple}`)"
        );
    }
    progress!("installing the Rust target with `rustup target add {triple}`");
    let status = Command::new("rustup")
        .args(["target", "add", triple])
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!("`rustup target add {triple}` failed ({status}): run it by hand and retry");
    }
    Ok(())
}
