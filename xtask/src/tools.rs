//! What every task shares, importing no task: the target architectures (`arch`), decompression
//! (`compression`), the cpio format (`cpio`), ELF reading (`elf`), and the check of a config
//! file with the init's own code (`config`). Tasks import these; nothing here imports a task
//! (a repo check, `tidy.rs`, holds that).

pub mod arch;
pub mod compression;
pub mod config;
pub mod cpio;
pub mod elf;
#[cfg(test)]
pub mod testing;
