//! Packing what boots: the static binaries (`binaries`, the `build` task, built once per
//! process), the module index read from a kernel's `.ko` files and kmod's index files written
//! for a selection (`modinfo`), the kernel and index shared by every pack (`context`), Debian's
//! programs and firmware as initramfs entries (`debian`) beside the others an initramfs can be
//! given (`extra`), the gzip-compressed cpio itself with its built-in config (`initramfs`,
//! the `initramfs` task), and the card's archive of what serves later than the box
//! (`extras_archive`: Wi-Fi's supplicant, firmware and modules, out of the initramfs), and the
//! box checked against an initramfs with the init's own check (`box_check`). Takes `fetch/` (kernels, Debian's packages) and `tools/`; writes no
//! disk and boots nothing.

pub mod binaries;
pub mod box_check;
pub mod context;
pub mod debian;
pub mod extra;
pub mod extras_archive;
pub mod initramfs;
pub mod modinfo;
