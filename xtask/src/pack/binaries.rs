//! Task `build`: the static musl binaries of boxinit and the demo box, built by cargo: the
//! stable build, or with `--small` nightly's `-Z build-std` with `panic = "immediate-abort"`.
//!
//! It owns making sure the Rust target is installed, and builds once per process what the
//! scenarios and the benchmark ask for again ([`built`]); it does not package anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};

use crate::tools::arch::Arch;
use crate::{display_path, format_size, progress, target_dir, workspace_root};

/// The binaries `cargo xtask build` produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// `target/<triple>/release/boxinit`: the static PID 1
    pub init: PathBuf,
    /// `target/<triple>/release/boxinit-net`: the network programs PID 1 supervises
    pub net: PathBuf,
    /// `target/<triple>/release/box`: the demo program the init runs from the boot partition
    pub demo_box: PathBuf,
}

/// Which build: the one stable Rust makes, or the small one (`--small`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// `cargo build --release` with the toolchain that runs xtask.
    #[default]
    Stable,
    /// Nightly: the standard library rebuilt for size (`-Z build-std`, `optimize_for_size`)
    /// with `panic = "immediate-abort"` (no panic machinery at all: a panic is an abort) and no
    /// source locations in the binary. Into `target/small/`.
    Small,
}

/// The nightly toolchain the small build uses, and how to install it (`.ci/run` does).
pub const NIGHTLY: &str = "nightly";
const NIGHTLY_INSTALL: &str =
    "rustup toolchain install nightly --profile minimal --component rust-src";

/// What nightly's rustc needs for the small build, on top of the release profile (which
/// `.cargo/config.toml`'s per-target flags still apply to: cargo joins config arrays).
const SMALL_RUSTFLAGS: &str =
    r#"["-Zunstable-options", "-Cpanic=immediate-abort", "-Zlocation-detail=none"]"#;

/// Builds `boxinit` and `demo-box` in release mode for `arch`, with the cargo that runs xtask.
pub fn build(arch: Arch) -> Result<Built> {
    build_as(arch, Flavor::Stable)
}

/// Builds `boxinit` and `demo-box` in release mode for `arch` as `flavor` says.
pub fn build_as(arch: Arch, flavor: Flavor) -> Result<Built> {
    let triple = arch.triple();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command.current_dir(workspace_root());
    let target_dir = match flavor {
        Flavor::Stable => {
            ensure_target(triple)?;
            progress!("building boxinit and the demo box for {triple} (release)");
            command.args(["build", "--release", "--target", triple]);
            target_dir()
        }
        Flavor::Small => {
            ensure_nightly(triple)?;
            progress!("building boxinit and the demo box for {triple} (small: nightly, build-std)");
            let dir = target_dir().join("small");
            // rustup's `cargo +nightly` (the cargo that runs xtask is the stable one's).
            command = Command::new("cargo");
            command
                .current_dir(workspace_root())
                .arg(format!("+{NIGHTLY}"))
                .env_remove("RUSTC")
                .args(["build", "--release", "--target", triple])
                .arg("--target-dir")
                .arg(&dir)
                .args(["-Z", "build-std=std,panic_abort"])
                .args(["-Z", "build-std-features=optimize_for_size"])
                .arg("--config")
                .arg(format!("target.{triple}.rustflags={SMALL_RUSTFLAGS}"));
            dir
        }
    };
    let status = command
        .args(["--package", "boxinit", "--package", "demo-box"])
        .status()
        .with_context(|| format!("cannot run {}", Path::new(&cargo).display()))?;
    if !status.success() {
        bail!("cargo build for {triple} failed ({status}): see the compiler's messages above");
    }
    let release = target_dir.join(triple).join("release");
    let built = Built {
        init: release.join("boxinit"),
        net: release.join(boxinit::net::PROGRAM),
        demo_box: release.join("box"),
    };
    for path in [&built.init, &built.net, &built.demo_box] {
        if !path.is_file() {
            bail!("cargo build succeeded but {} is missing", path.display());
        }
    }
    Ok(built)
}

/// [`build`] once per process and architecture.
pub fn built(arch: Arch) -> Result<Built> {
    built_as(arch, Flavor::Stable)
}

/// [`build_as`] once per process, architecture and flavor.
pub fn built_as(arch: Arch, flavor: Flavor) -> Result<Built> {
    static CACHE: OnceLock<Mutex<HashMap<(Arch, Flavor), Built>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (arch, flavor);
    if let Some(built) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(built);
    }
    let built = build_as(arch, flavor)?;
    if let Ok(mut cache) = cache.lock() {
        cache.insert(key, built.clone());
    }
    Ok(built)
}

/// One line per binary: `boxinit  target/.../boxinit  812345 bytes (793.3 KiB)`.
pub fn describe(built: &Built) -> Result<String> {
    let mut out = String::new();
    let binaries = [
        ("boxinit", &built.init),
        (boxinit::net::PROGRAM, &built.net),
        ("box", &built.demo_box),
    ];
    for (name, path) in binaries {
        let size = std::fs::metadata(path)
            .with_context(|| format!("cannot stat {}", path.display()))?
            .len();
        out += &format!("{name:12} {}  {}\n", display_path(path), format_size(size));
    }
    Ok(out)
}

/// Makes sure the nightly toolchain and its `rust-src` (which `-Z build-std` compiles) are
/// installed, and says how to install them when not: a nightly is a choice (`.ci/run` makes
/// it). Once there is one, its target `triple` is added like the stable one's
/// ([`ensure_target`]): `-Z build-std` compiles std but links with the musl C runtime
/// (`crt1.o`, `libc.a`) that only the target's rust-std ships (`lib/self-contained`).
fn ensure_nightly(triple: &str) -> Result<()> {
    let sysroot = Command::new("rustc")
        .args([&format!("+{NIGHTLY}"), "--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let Some(sysroot) = sysroot else {
        bail!(
            "the small build (--small) needs a nightly Rust toolchain, and `rustc +{NIGHTLY}` \
             does not run: install it with `{NIGHTLY_INSTALL}`, or build without --small"
        );
    };
    if !sysroot.join("lib/rustlib/src/rust/library").is_dir() {
        bail!(
            "the small build (--small) rebuilds the standard library, but nightly's rust-src \
             is missing ({} has no lib/rustlib/src/rust/library): install it with \
             `{NIGHTLY_INSTALL}`",
            sysroot.display()
        );
    }
    let crt = sysroot
        .join("lib/rustlib")
        .join(triple)
        .join("lib/self-contained/crt1.o");
    if crt.is_file() {
        return Ok(());
    }
    progress!("installing nightly's musl runtime with `rustup +{NIGHTLY} target add {triple}`");
    let status = Command::new("rustup")
        .args([&format!("+{NIGHTLY}"), "target", "add", triple])
        .status()
        .context("cannot run rustup")?;
    if !status.success() {
        bail!(
            "the small build links with the musl C runtime of nightly's rust-std for {triple} \
             ({} is missing) and `rustup +{NIGHTLY} target add {triple}` failed ({status}): \
             run it by hand, or build without --small",
            crt.display()
        );
    }
    Ok(())
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
