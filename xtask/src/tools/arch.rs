//! The target architectures: their Rust triples, QEMU binaries, consoles and default modules.

use std::fmt;

/// A machine boxinit is built for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Arch {
    /// x86_64 (QEMU's default PC; Debian's cloud kernel)
    #[default]
    #[value(name = "x86_64")]
    X86_64,
    /// aarch64 (Raspberry Pi 3/4/5, QEMU `virt`)
    #[value(name = "aarch64")]
    Aarch64,
}

impl Arch {
    /// The name used in paths and on the command line: `x86_64`, `aarch64`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The ELF `e_machine` of this architecture's programs (62 `EM_X86_64`, 183
    /// `EM_AARCH64`).
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62,
            Arch::Aarch64 => 183,
        }
    }

    /// The Rust target triple the static binaries are built for.
    pub fn triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }

    /// The QEMU system emulator for this architecture.
    pub fn qemu_binary(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// The Debian package that ships [`Arch::qemu_binary`].
    pub fn qemu_package(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86",
            Arch::Aarch64 => "qemu-system-arm",
        }
    }

    /// The serial console device of the QEMU machine xtask boots.
    pub fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        }
    }

    /// Modules packed when none are named: what it takes to mount the QEMU boot disk
    /// (a virtio-blk FAT partition). Their dependencies are added by the module index.
    pub fn default_modules(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &["virtio_pci", "virtio_blk", "vfat", "nls_cp437", "nls_ascii"],
            // QEMU `virt`: virtio over PCI as well
            Arch::Aarch64 => &["virtio_pci", "virtio_blk", "vfat", "nls_cp437", "nls_ascii"],
        }
    }
}

impl Arch {
    /// What `--modules auto` (the default) packs: the drivers of the devices QEMU gives this
    /// machine (its virtio family: disk, entropy, console, balloon, input, network) and the
    /// FAT boot partition's file system and code pages. The init's coldplug loads only those
    /// whose devices are present; packing one more costs only its size. Dependencies and
    /// softdeps are added by the module index.
    pub fn auto_modules(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &[
                "virtio_pci",
                "virtio_blk",
                "virtio_rng",
                "virtio_console",
                "virtio_balloon",
                "virtio_input",
                "virtio_net",
                "vfat",
                "nls_cp437",
                "nls_ascii",
                "nls_utf8",
            ],
            // QEMU `virt` has virtio over MMIO as well as PCI
            Arch::Aarch64 => &[
                "virtio_pci",
                "virtio_mmio",
                "virtio_blk",
                "virtio_rng",
                "virtio_console",
                "virtio_balloon",
                "virtio_input",
                "virtio_net",
                "vfat",
                "nls_cp437",
                "nls_ascii",
                "nls_utf8",
            ],
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
