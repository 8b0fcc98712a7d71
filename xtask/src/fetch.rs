//! Fetching Debian's parts, each once into a cache under `target/`: the apt client (`apt`: the
//! host's apt, or a private one for another architecture), packages unpacked in pure Rust
//! (`deb`), a program's shared-library closure (`closure`), the kernels (`kernel`, the `kernel`
//! task; `generic_kernel`, the Wi-Fi test's), busybox (`busybox`), the Debian programs xtask
//! packs and Wi-Fi's regulatory database (`programs`), and the Raspberry Pi's firmware
//! (`firmware`). Every fetched input can also be given as a path. Takes only
//! `tools/` (architectures, decompression, ELF reading); it packs nothing.

pub mod apt;
pub mod busybox;
pub mod closure;
pub mod deb;
pub mod firmware;
pub mod generic_kernel;
pub mod kernel;
pub mod programs;
