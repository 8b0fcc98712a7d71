//! The few facts of an ELF file that decide whether and how it runs: its class, byte order and
//! machine (`e_ident`, `e_machine`), the dynamic linker it asks for (`PT_INTERP`) and the
//! libraries it needs (`DT_NEEDED`, from the `PT_DYNAMIC` segment), and whether a copy is
//! whole (`whole`: a new box copied onto the card). Read by hand from the
//! program headers, not with a crate (the init must stay small): the init checks a box before
//! it runs it (`supervision::runnable`), xtask packs a program with its libraries. Pure: it
//! takes the file's bytes; a short or malformed file gives None, never a panic. Segments are
//! read for 64-bit little-endian files (x86_64 and aarch64: every program boxinit runs and
//! packs); the header of any ELF file.

use crate::bytes::{byte, le16, le32, le64};

/// `e_ident[EI_CLASS]` of a 64-bit file.
pub const CLASS_64: u8 = 2;
/// `e_ident[EI_DATA]` of a little-endian file.
pub const LITTLE_ENDIAN: u8 = 1;
/// `e_ident[EI_DATA]` of a big-endian file.
pub const BIG_ENDIAN: u8 = 2;
/// `e_machine` of x86_64 (`EM_X86_64`).
pub const MACHINE_X86_64: u16 = 62;
/// `e_machine` of aarch64 (`EM_AARCH64`).
pub const MACHINE_AARCH64: u16 = 183;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;

/// What `e_ident` and `e_machine` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `EI_CLASS`: 1 for 32-bit, 2 for 64-bit ([`CLASS_64`]).
    pub class: u8,
    /// `EI_DATA`: 1 little-endian ([`LITTLE_ENDIAN`]), 2 big-endian ([`BIG_ENDIAN`]).
    pub data: u8,
    /// `e_machine` (62 x86_64, 183 aarch64, ...), read in the file's byte order; 0 when the
    /// byte order is neither.
    pub machine: u16,
}

/// The `\x7fELF` file's header fields; None for anything else (a script, too few bytes).
pub fn header(file: &[u8]) -> Option<Header> {
    if !file.starts_with(b"\x7fELF") {
        return None;
    }
    let class = byte(file, 4).unwrap_or(0);
    let data = byte(file, 5).unwrap_or(0);
    let machine = match data {
        LITTLE_ENDIAN => le16(file, 18),
        BIG_ENDIAN => le16(file, 18).map(u16::swap_bytes),
        _ => None,
    };
    Some(Header {
        class,
        data,
        machine: machine.unwrap_or(0),
    })
}

/// The smallest 64-bit little-endian ELF file the checks read: the header for `machine`, and
/// with `loader` one `PT_INTERP` program header naming it (a dynamically linked program's
/// loader). Not a program that runs; the one fixture of the init's box check tests
/// (`supervision::runnable`) and xtask's (`pack/box_check.rs`), so both check the same bytes.
pub fn minimal(machine: u16, loader: Option<&str>) -> Vec<u8> {
    let (phoff, phentsize, phnum) = match loader {
        Some(_) => (64u64, 56u16, 1u16),
        None => (0, 0, 0),
    };
    let mut file = Vec::with_capacity(128);
    file.extend_from_slice(b"\x7fELF");
    file.extend_from_slice(&[CLASS_64, LITTLE_ENDIAN]);
    file.resize(18, 0); // the rest of e_ident, e_type
    file.extend_from_slice(&machine.to_le_bytes());
    file.resize(32, 0); // e_version, e_entry
    file.extend_from_slice(&phoff.to_le_bytes());
    file.resize(54, 0); // e_shoff, e_flags, e_ehsize
    file.extend_from_slice(&phentsize.to_le_bytes());
    file.extend_from_slice(&phnum.to_le_bytes());
    file.resize(64, 0);
    if let Some(loader) = loader {
        // p_type, p_flags; p_offset: the name after this header; p_vaddr, p_paddr; p_filesz
        file.extend_from_slice(&PT_INTERP.to_le_bytes());
        file.resize(72, 0);
        file.extend_from_slice(&120u64.to_le_bytes());
        file.resize(96, 0);
        let size = u64::try_from(loader.len()).unwrap_or(0).saturating_add(1);
        file.extend_from_slice(&size.to_le_bytes());
        file.resize(120, 0);
        file.extend_from_slice(loader.as_bytes());
        file.push(0);
    }
    file
}

/// A 64-bit little-endian ELF file's bytes, read field by field.
struct Elf64<'a> {
    file: &'a [u8],
}

impl<'a> Elf64<'a> {
    fn new(file: &'a [u8]) -> Option<Elf64<'a>> {
        let h = header(file)?;
        (h.class == CLASS_64 && h.data == LITTLE_ENDIAN).then_some(Elf64 { file })
    }

    fn u16(&self, at: usize) -> Option<u16> {
        le16(self.file, at)
    }

    fn u32(&self, at: usize) -> Option<u32> {
        le32(self.file, at)
    }

    fn u64(&self, at: usize) -> Option<u64> {
        le64(self.file, at)
    }

    /// Where each program header starts, in order (whether it lies within the file or not:
    /// its fields are read when needed, and are None past the end).
    fn headers(&self) -> impl Iterator<Item = usize> {
        let table = (|| {
            let phoff = usize::try_from(self.u64(32)?).ok()?;
            Some((
                phoff,
                usize::from(self.u16(54)?),
                usize::from(self.u16(56)?),
            ))
        })();
        let (phoff, size, count) = table.unwrap_or((0, 0, 0));
        (0..count).filter_map(move |i| phoff.checked_add(i.checked_mul(size)?))
    }

    /// The first program header of type `kind`.
    fn find(&self, kind: u32) -> Option<usize> {
        self.headers().find(|&at| self.u32(at) == Some(kind))
    }

    /// The bytes the segment of the header at `at` holds in the file (`p_offset`,
    /// `p_filesz`); None when they run past its end.
    fn contents(&self, at: usize) -> Option<&'a [u8]> {
        let start = usize::try_from(self.u64(at.checked_add(8)?)?).ok()?;
        let len = usize::try_from(self.u64(at.checked_add(32)?)?).ok()?;
        self.file.get(start..start.checked_add(len)?)
    }

    /// The file offset of a virtual address, through the `PT_LOAD` segment that maps it
    /// (`p_vaddr` up to `p_filesz` past it).
    fn offset_of(&self, vaddr: u64) -> Option<usize> {
        self.headers().find_map(|at| {
            let start = self.u64(at.checked_add(16)?)?;
            let len = self.u64(at.checked_add(32)?)?;
            let inside = self.u32(at)? == PT_LOAD && start <= vaddr && vaddr - start < len;
            let offset = self.u64(at.checked_add(8)?)?;
            inside.then(|| usize::try_from(offset.checked_add(vaddr - start)?).ok())?
        })
    }
}

/// The text up to the first NUL of `bytes` (all of it when there is none), lossily.
fn c_string(bytes: &[u8]) -> String {
    let text = bytes.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(text).into_owned()
}

/// The dynamic linker a 64-bit little-endian ELF file asks for (`PT_INTERP`), when it has one: static
/// programs and libraries have none, and neither has a file whose segment runs past its end.
pub fn interpreter(file: &[u8]) -> Option<String> {
    let elf = Elf64::new(file)?;
    Some(c_string(elf.contents(elf.find(PT_INTERP)?)?))
}

/// The libraries a 64-bit little-endian ELF file needs (`DT_NEEDED` of its `PT_DYNAMIC` segment, names in
/// the string table `DT_STRTAB` points to), in order: empty for a static program; None when
/// the file is not a 64-bit little-endian ELF or its dynamic section or string table is cut off.
pub fn needed(file: &[u8]) -> Option<Vec<String>> {
    let elf = Elf64::new(file)?;
    let Some(at) = elf.find(PT_DYNAMIC) else {
        return Some(Vec::new());
    };
    let dynamic = elf.contents(at)?;
    let sub = Elf64 { file: dynamic };
    let mut names = Vec::new();
    let (mut strtab, mut strsz) = (None, None);
    for at in (0..dynamic.len() / 16).map(|i| i * 16) {
        let (tag, value) = (sub.u64(at)?, sub.u64(at + 8)?);
        match tag {
            DT_NULL => break,
            DT_NEEDED => names.push(value),
            DT_STRTAB => strtab = Some(value),
            DT_STRSZ => strsz = Some(value),
            _ => {}
        }
    }
    if names.is_empty() {
        return Some(Vec::new());
    }
    let start = elf.offset_of(strtab?)?;
    let len = usize::try_from(strsz?).ok()?;
    let table = file.get(start..start.checked_add(len)?)?;
    names
        .into_iter()
        .map(|offset| {
            let rest = table.get(usize::try_from(offset).ok()?..)?;
            // a name must end inside the table
            rest.contains(&0).then(|| c_string(rest))
        })
        .collect()
}

/// `sh_type` of a string table.
const SHT_STRTAB: u32 = 3;
/// `e_shstrndx` when the index is in section 0's `sh_link` instead.
const SHN_XINDEX: u16 = 0xffff;

/// Whether a 64-bit little-endian ELF file is whole, as far as its own tables tell: the
/// program headers and every segment's bytes lie inside the file, and so do the section
/// header table (which linkers put at the very end) and the section-name string table, which
/// must be of type `SHT_STRTAB`. A copy cut short loses the section headers first; one whose
/// tail is zeros (a copy that set the size before the data came) has a zero `sh_type` there.
/// A file without section headers (`sstrip`) is judged by its segments alone. `Err` says what
/// is missing, in words.
pub fn whole(file: &[u8]) -> Result<(), String> {
    let Some(h) = header(file) else {
        return Err("not an ELF file".into());
    };
    let Some(elf) = Elf64::new(file) else {
        return Err(format!(
            "a {}-bit {} ELF file, whose structure boxinit does not read (give a .sha256 file)",
            if h.class == CLASS_64 { 64 } else { 32 },
            if h.data == BIG_ENDIAN {
                "big-endian"
            } else {
                "little-endian"
            }
        ));
    };
    let len = file.len() as u64;
    let cut = |what: &str, end: Option<u64>| match end {
        Some(end) if end <= len => Ok(()),
        _ => Err(format!(
            "{what} lies past the end of the file ({len} bytes): the copy is cut short"
        )),
    };
    let field = |at: usize| elf.u64(at);
    let phoff = field(32).ok_or("the ELF header is cut short")?;
    let phentsize = u64::from(elf.u16(54).ok_or("the ELF header is cut short")?);
    let phnum = u64::from(elf.u16(56).ok_or("the ELF header is cut short")?);
    cut(
        "the program header table",
        phnum
            .checked_mul(phentsize)
            .and_then(|n| n.checked_add(phoff)),
    )?;
    for at in elf.headers() {
        let offset = at.checked_add(8).and_then(field);
        let size = at.checked_add(32).and_then(field);
        let end = offset.zip(size).and_then(|(o, s)| o.checked_add(s));
        cut("a segment", end)?;
    }
    let shoff = field(40).ok_or("the ELF header is cut short")?;
    let shentsize = u64::from(elf.u16(58).ok_or("the ELF header is cut short")?);
    let shnum_field = elf.u16(60).ok_or("the ELF header is cut short")?;
    let shstrndx_field = elf.u16(62).ok_or("the ELF header is cut short")?;
    if shoff == 0 {
        // no section headers at all: the segments are all there is to check
        return Ok(());
    }
    let section = |i: u64| -> Option<usize> {
        usize::try_from(shoff.checked_add(i.checked_mul(shentsize)?)?).ok()
    };
    // more than 0xff00 sections: the count is section 0's sh_size, the index its sh_link
    let zeroth = section(0).ok_or("the section header table lies past the end of the file")?;
    cut("the section header table", shoff.checked_add(shentsize))?;
    let shnum = match shnum_field {
        0 => zeroth.checked_add(32).and_then(field).unwrap_or(0),
        n => u64::from(n),
    };
    cut(
        "the section header table",
        shnum
            .checked_mul(shentsize)
            .and_then(|n| n.checked_add(shoff)),
    )?;
    let shstrndx = match shstrndx_field {
        SHN_XINDEX => zeroth
            .checked_add(40)
            .and_then(|at| elf.u32(at))
            .map_or(u64::MAX, u64::from),
        n => u64::from(n),
    };
    if shstrndx >= shnum {
        return Err(format!(
            "the section-name string table's index ({shstrndx}) is not one of its {shnum} sections: the copy is damaged"
        ));
    }
    let names =
        section(shstrndx).ok_or("the section header table lies past the end of the file")?;
    if elf.u32(names.saturating_add(4)) != Some(SHT_STRTAB) {
        return Err("the section-name string table is not a string table (zeros where the end of the file should be?): the copy is incomplete".into());
    }
    let offset = names.checked_add(24).and_then(field);
    let size = names.checked_add(32).and_then(field);
    cut(
        "the section-name string table",
        offset.zip(size).and_then(|(o, s)| o.checked_add(s)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit ELF for `machine` in the given byte order with these segments, each
    /// (type, contents), laid out one after the other after the program headers; each
    /// `PT_LOAD` maps its contents at its file offset (vaddr = offset).
    fn elf(big: bool, machine: u16, segments: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let put16 = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let put32 = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let put64 = |v: u64| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = CLASS_64;
        f[5] = if big { BIG_ENDIAN } else { LITTLE_ENDIAN };
        f[18..20].copy_from_slice(&put16(machine));
        f[32..40].copy_from_slice(&put64(64));
        f[54..56].copy_from_slice(&put16(56));
        f[56..58].copy_from_slice(&put16(segments.len() as u16));
        let mut offset = 64 + 56 * segments.len() as u64;
        let mut data: Vec<u8> = Vec::new();
        for (kind, contents) in segments {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&put32(*kind));
            ph[8..16].copy_from_slice(&put64(offset));
            ph[16..24].copy_from_slice(&put64(offset));
            ph[32..40].copy_from_slice(&put64(contents.len() as u64));
            f.extend(ph);
            data.extend(contents);
            offset += contents.len() as u64;
        }
        f.extend(data);
        f
    }

    /// A dynamic segment's entries, in the byte order.
    fn dynamic(big: bool, entries: &[(u64, u64)]) -> Vec<u8> {
        let put64 = |v: u64| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        entries
            .iter()
            .flat_map(|(tag, value)| [put64(*tag), put64(*value)].concat())
            .collect()
    }

    /// An ELF needing `names`: a string table in a PT_LOAD segment (vaddr = file offset),
    /// a dynamic segment pointing into it, and a PT_INTERP.
    fn dynamic_elf(big: bool, names: &[&str]) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut offsets = Vec::new();
        for name in names {
            offsets.push(strings.len() as u64);
            strings.extend(name.as_bytes());
            strings.push(0);
        }
        // interp first, then the string table (PT_LOAD), then the dynamic segment
        let interp = b"/lib/ld-test.so.1\0".to_vec();
        let strtab_at = 64 + 56 * 3 + interp.len() as u64;
        let mut entries: Vec<(u64, u64)> = offsets.iter().map(|o| (DT_NEEDED, *o)).collect();
        entries.extend([
            (DT_STRTAB, strtab_at),
            (DT_STRSZ, strings.len() as u64),
            (0, 0),
        ]);
        elf(
            big,
            62,
            &[
                (PT_INTERP, interp),
                (PT_LOAD, strings),
                (PT_DYNAMIC, dynamic(big, &entries)),
            ],
        )
    }

    #[test]
    fn headers() {
        let le = elf(false, 183, &[]);
        assert_eq!(
            header(&le),
            Some(Header {
                class: 2,
                data: 1,
                machine: 183
            })
        );
        assert_eq!(header(&elf(true, 62, &[])).map(|h| h.machine), Some(62));
        assert_eq!(
            header(b"\x7fELF"),
            Some(Header {
                class: 0,
                data: 0,
                machine: 0
            })
        );
        assert_eq!(header(b"#!/bin/sh\n"), None);
        assert_eq!(header(b""), None);
    }

    #[test]
    fn interpreter_and_needed() {
        let file = dynamic_elf(false, &["libc.so.6", "libm.so.6"]);
        assert_eq!(interpreter(&file).as_deref(), Some("/lib/ld-test.so.1"));
        assert_eq!(
            needed(&file),
            Some(vec!["libc.so.6".to_string(), "libm.so.6".to_string()])
        );
        // big-endian files: the header only
        let big = dynamic_elf(true, &["libc.so.6"]);
        assert_eq!(
            header(&big).map(|h| (h.data, h.machine)),
            Some((BIG_ENDIAN, 62))
        );
        assert_eq!((interpreter(&big), needed(&big)), (None, None));
        // a static program: no loader, needs nothing
        let fixed = elf(false, 62, &[(PT_LOAD, vec![0x90; 16])]);
        assert_eq!(interpreter(&fixed), None);
        assert_eq!(needed(&fixed), Some(Vec::new()));
        // 32-bit files are not read
        let mut file32 = dynamic_elf(false, &["libc.so.6"]);
        file32[4] = 1;
        assert_eq!((interpreter(&file32), needed(&file32)), (None, None));
    }

    #[test]
    fn a_cut_or_broken_file_is_none_never_a_panic() {
        let file = dynamic_elf(false, &["libc.so.6"]);
        let whole = needed(&file);
        for len in 0..file.len() {
            let cut = &file[..len];
            // every prefix is read without a panic; the names only come whole
            assert_ne!(needed(cut), whole, "cut at {len}");
            let _ = interpreter(cut);
        }
        // program headers out of the file
        let mut far = file.clone();
        far[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!((interpreter(&far), needed(&far)), (None, Some(Vec::new())));
        // a string table address no segment maps
        let mut unmapped = dynamic_elf(false, &["libc.so.6"]);
        let entries_at = unmapped.len() - 4 * 16;
        let strtab_value_at = entries_at + 16 + 8;
        unmapped[strtab_value_at..strtab_value_at + 8]
            .copy_from_slice(&0xdead_0000u64.to_le_bytes());
        assert_eq!(needed(&unmapped), None);
        // a name offset past the table, or a name without its NUL inside it
        let mut past = dynamic_elf(false, &["libc.so.6"]);
        past[entries_at + 8..entries_at + 16].copy_from_slice(&1000u64.to_le_bytes());
        assert_eq!(needed(&past), None);
        let mut short = dynamic_elf(false, &["libc.so.6"]);
        let strsz_value_at = entries_at + 2 * 16 + 8;
        short[strsz_value_at..strsz_value_at + 8].copy_from_slice(&5u64.to_le_bytes());
        assert_eq!(needed(&short), None);
    }

    /// `file` with a section-name string table and a section header table (null section,
    /// `.shstrtab`) appended at its end, as linkers lay them out.
    fn with_sections(mut file: Vec<u8>) -> Vec<u8> {
        let names = b"\0.shstrtab\0";
        let names_at = file.len() as u64;
        file.extend(names);
        let shoff = file.len() as u64;
        file.extend([0u8; 64]);
        let mut sh = [0u8; 64];
        sh[..4].copy_from_slice(&1u32.to_le_bytes());
        sh[4..8].copy_from_slice(&SHT_STRTAB.to_le_bytes());
        sh[24..32].copy_from_slice(&names_at.to_le_bytes());
        sh[32..40].copy_from_slice(&(names.len() as u64).to_le_bytes());
        file.extend(sh);
        file[40..48].copy_from_slice(&shoff.to_le_bytes());
        file[58..60].copy_from_slice(&64u16.to_le_bytes());
        file[60..62].copy_from_slice(&2u16.to_le_bytes());
        file[62..64].copy_from_slice(&1u16.to_le_bytes());
        file
    }

    #[test]
    fn a_whole_file_and_every_cut_or_zero_tailed_copy() {
        let file = with_sections(elf(false, 62, &[(PT_LOAD, vec![0x90; 300])]));
        assert_eq!(whole(&file), Ok(()));
        for len in 0..file.len() {
            assert!(whole(&file[..len]).is_err(), "cut at {len} looks whole");
        }
        // the size was set first and the data stopped coming: zeros at the end
        for zeros in [64, 128, 200] {
            let mut tail = file.clone();
            let at = tail.len() - zeros;
            tail[at..].fill(0);
            let e = whole(&tail).unwrap_err();
            assert!(e.contains("incomplete") || e.contains("damaged"), "{e}");
        }
        // a segment past the end
        let mut far = file.clone();
        far[64 + 32..64 + 40].copy_from_slice(&1_000_000u64.to_le_bytes());
        assert!(whole(&far).unwrap_err().contains("segment"));
        // no section headers at all (sstrip): the segments decide
        let bare = elf(false, 62, &[(PT_LOAD, vec![0x90; 300])]);
        assert_eq!(whole(&bare), Ok(()));
        assert!(whole(&bare[..bare.len() - 1]).is_err());
        // not an ELF; an ELF boxinit does not read
        assert!(whole(b"#!/bin/sh\n").is_err());
        let mut file32 = file.clone();
        file32[4] = 1;
        assert!(whole(&file32).unwrap_err().contains("32-bit"));
    }

    #[test]
    fn this_hosts_programs_are_whole() {
        for path in ["/bin/ls", "/bin/sh"] {
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(whole(&bytes), Ok(()), "{path}");
            assert!(whole(&bytes[..bytes.len() - 1]).is_err(), "{path}");
        }
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(whole(&me), Ok(()));
    }

    /// Real programs of this host, read as the dynamic linker reads them.
    #[test]
    fn this_hosts_programs() {
        let ls = std::fs::read("/bin/ls").unwrap();
        let h = header(&ls).unwrap();
        assert_eq!((h.class, h.data), (CLASS_64, LITTLE_ENDIAN));
        let own = if cfg!(target_arch = "aarch64") {
            183
        } else {
            62
        };
        assert_eq!(h.machine, own);
        let loader = interpreter(&ls).unwrap();
        assert!(
            loader.starts_with("/lib") && loader.contains("ld-linux"),
            "{loader}"
        );
        assert!(std::path::Path::new(&loader).exists(), "{loader}");
        let libs = needed(&ls).unwrap();
        assert!(libs.iter().any(|l| l == "libc.so.6"), "{libs:?}");
        // the C library needs the loader, by its soname
        let libc = std::fs::read(format!(
            "/lib/{}-linux-gnu/libc.so.6",
            std::env::consts::ARCH
        ))
        .unwrap();
        let libc_needs = needed(&libc).unwrap();
        let loader_name = loader.rsplit('/').next().unwrap();
        assert!(
            libc_needs.iter().any(|l| l == loader_name),
            "{libc_needs:?} lacks {loader_name}"
        );
        // this test binary reads too
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(needed(&me).is_some());
    }
}
