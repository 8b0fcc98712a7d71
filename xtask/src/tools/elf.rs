//! What an ELF file asks of the dynamic linker: `PT_INTERP` and `DT_NEEDED`, read with the
//! `object` crate (64-bit, either byte order). For a program's closure (`fetch/closure.rs`);
//! what it means for the initramfs is the caller's.

use anyhow::{Context, Result};
use object::elf;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::Endianness;

/// What an ELF file asks of the dynamic linker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElfDeps {
    /// `PT_INTERP`: the dynamic linker's absolute path; None for a static binary or a library
    pub interpreter: Option<String>,
    /// `DT_NEEDED` sonames, in order
    pub needed: Vec<String>,
}

/// Reads `PT_INTERP` and `DT_NEEDED` of a 64-bit ELF file (either byte order).
pub fn elf_deps(data: &[u8]) -> Result<ElfDeps> {
    let file = ElfFile64::<Endianness>::parse(data).context("not a 64-bit ELF file")?;
    let endian = file.endian();
    let mut deps = ElfDeps::default();
    for header in file.elf_program_headers() {
        if let Some(interp) = header.interpreter(endian, data)? {
            deps.interpreter = Some(String::from_utf8_lossy(interp).into_owned());
        }
    }
    let dynamic = file.elf_section_table().dynamic_table(endian, data)?;
    for entry in &dynamic {
        if entry.tag == elf::DT_NEEDED {
            let name = dynamic.string(entry)?;
            deps.needed.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    Ok(deps)
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
