//! Boot media: the disk image (`image`, the `image` task: an MBR or GPT disk with one FAT
//! partition, written in memory, and read back for tests) and the Raspberry Pi bundle
//! (`bundle`, the `bundle` task: the folder a Pi boots from, and its SD card image; `fat_dots`
//! repairs the folders fatfs writes, `fat_time` dates their files), with what
//! the bundle is made of: the boards (`board`), the files the Pi's firmware reads
//! (`config_txt`) and their bytes (`boot_bytes`), the gzip-compressed kernel
//! (`kernel_image`), the `init.toml` files (`init_toml`), Wi-Fi's part (`pi_wifi`) and the
//! device tree format (`fdt`). Takes `pack/` (binaries, initramfs), `fetch/` (kernel, firmware,
//! busybox) and `tools/`; boots nothing (`qemu/` does).

pub mod board;
pub mod boot_bytes;
pub mod bundle;
pub mod bundle_manifest;
pub mod config_txt;
pub mod fat_dots;
pub mod fat_time;
pub mod fdt;
pub mod image;
pub mod init_toml;
pub mod kernel_image;
pub mod pi_wifi;
pub mod slots;
