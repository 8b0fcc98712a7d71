//! What an ELF file asks of the dynamic linker: `PT_INTERP` and `DT_NEEDED`, read with the
//! init's own ELF reader (`boxinit::elf`, the one that checks a box before it runs). For a
//! program's closure (`fetch/closure.rs`); what it means for the initramfs is the caller's.

use anyhow::{bail, Result};

/// What an ELF file asks of the dynamic linker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElfDeps {
    /// `PT_INTERP`: the dynamic linker's absolute path; None for a static binary or a library
    pub interpreter: Option<String>,
    /// `DT_NEEDED` sonames, in order
    pub needed: Vec<String>,
}

/// Reads `PT_INTERP` and `DT_NEEDED` of a 64-bit little-endian ELF file (every program
/// xtask packs: x86_64 and aarch64).
pub fn elf_deps(data: &[u8]) -> Result<ElfDeps> {
    let Some(needed) = boxinit::elf::needed(data) else {
        bail!("not a 64-bit little-endian ELF file, or its dynamic section is cut off");
    };
    Ok(ElfDeps {
        interpreter: boxinit::elf::interpreter(data),
        needed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_elf_interpreter_and_needed() {
        let bytes = std::fs::read("/bin/sh").unwrap();
        let deps = elf_deps(&bytes).unwrap();
        assert_eq!(
            deps.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert!(deps.needed.iter().any(|n| n == "libc.so.6"), "{deps:?}");
        // glibc's libc.so.6 runs as a program too (it has an interpreter) and needs the linker
        let libc = elf_deps(&std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap()).unwrap();
        assert!(
            libc.needed.iter().any(|n| n == "ld-linux-x86-64.so.2"),
            "{libc:?}"
        );
        assert!(elf_deps(b"#!/bin/sh\n").is_err());
    }
}
