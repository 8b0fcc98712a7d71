//! boxinit as a library: everything the init does, for the `boxinit` binary (`main.rs`, the
//! boot sequence), the network programs' `boxinit-net` (`bin/boxinit-net/`) and for `xtask`,
//! which packs what the init reads and so must parse, match and validate it with the same code
//! (the config schema, the module index, fnmatch, the partition and FAT parsers, ELF reading).
//! The folders group the concerns: `config` (what to do), `devices` (modules, coldplug,
//! hotplug, nodes), `storage` (partitions, the boot partition), `supervision` (running the
//! box, the watchdog, shutdown), `field` (trials of a new box or config, the boot-loop brake,
//! the shutdown reports: what boxinit keeps on the card), `net` (network and time), `sys` (the
//! syscall seam). The files at the top are used across them: the loop's events, early mounts,
//! the logger, and the pure `bytes`, `elf`, `fnmatch`, `sha256`, `crc32` and the archive
//! formats `cpio` and `gzip` (the extras on the card; xtask writes them).

pub mod bytes;
pub mod config;
pub mod cpio;
pub mod crc32;
pub mod devices;
pub mod elf;
pub mod events;
pub mod field;
pub mod fnmatch;
pub mod gzip;
pub mod kmsg;
pub mod mounts;
pub mod net;
pub mod sha256;
pub mod storage;
pub mod supervision;
pub mod sys;

/// Command-line arguments as text, if all of them are (the multi-call tools take only text;
/// `std::env::args()` would panic on the first that is not).
pub fn utf8_args(args: &[std::ffi::OsString]) -> Option<Vec<String>> {
    args.iter()
        .map(|a| a.to_str().map(str::to_string))
        .collect()
}
