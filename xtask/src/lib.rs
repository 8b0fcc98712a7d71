//! The xtask library, shared by `main.rs` (the CLI: flags and dispatch) and the test harness.
//! A folder per thing xtask does for the user, each a module file saying what it owns and
//! what it takes from the others. Each folder takes from those listed before it (`test/` and
//! `bench/` from each other too: the suite runs the benchmark's host checks, `bench-net`
//! boots a scenario), all of them from `tools/`, which takes from none; no two files import
//! each other, directly or round a longer circle (`tidy.rs` checks both):
//!
//! - `fetch/`: Debian's parts (apt, packages, kernels, busybox, firmware, Wi-Fi programs);
//! - `pack/`: the binaries, the module index, the initramfs;
//! - `media/`: the boot disk and the Raspberry Pi bundle;
//! - `qemu/`: machines, preparing a boot, the `run` task, reading the console;
//! - `test/`: `cargo xtask test`, the boot scenarios, fuzzing;
//! - `bench/`: `cargo xtask bench` and `bench-net`, and the figures they report;
//! - `tools/`: what they all share (architectures, decompression, cpio, ELF, config check).
//!
//! Everything here is pure Rust and needs no root: the cpio writer, gzip, the MBR, the FAT
//! image and the module index are built in memory, so a boot bundle can be made on any host.
//! The only host tools used are `cargo`/`rustup` (build), `apt-get`/`apt-cache` (fetching
//! Debian's kernels and the Raspberry Pi firmware; every fetched input can be given as a
//! path instead) and QEMU (run).

pub mod bench;
pub mod fetch;
pub mod media;
pub mod pack;
pub mod qemu;
pub mod test;
pub mod tools;

#[cfg(test)]
mod tidy;

use std::path::{Path, PathBuf};

/// The workspace root (the directory holding the top `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` or `<workspace>/target`; xtask's caches live
/// under it (`target/kernel/`, `target/run/`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// `1234567 bytes (1205.6 KiB)`: sizes as the CLI prints them.
pub fn format_size(bytes: u64) -> String {
    format!("{bytes} bytes ({:.1} KiB)", bytes as f64 / 1024.0)
}

/// A path relative to the workspace root when it lies inside it (shorter messages).
pub fn display_path(path: &Path) -> String {
    let root = workspace_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Prints one progress line on stderr, prefixed `xtask:`; stdout is kept for results.
#[macro_export]
macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("xtask: {}", format_args!($($arg)*)) };
}
