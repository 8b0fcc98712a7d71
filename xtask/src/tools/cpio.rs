//! The cpio "newc" archive format, as the kernel unpacks an initramfs: a writer, and a reader
//! for tests and for listing what an initramfs holds. No compression here (see `pack/initramfs.rs`).
//!
//! Format (`man 5 cpio`, kernel `Documentation/driver-api/early-userspace/buffer-format.rst`):
//! each member is a 110-byte ASCII header, the path name, then the data.
//!
//! ```text
//! offset  size  field        notes
//!      0     6  magic        "070701" (newc, no checksum)
//!      6     8  ino          each field is 8 ASCII hex digits, upper or lower case
//!     14     8  mode         file type bits | permission bits (S_IFREG 0o100000, ...)
//!     22     8  uid
//!     30     8  gid
//!     38     8  nlink
//!     46     8  mtime        seconds since the epoch; 0 here, for reproducible archives
//!     54     8  filesize     data bytes; for a symlink, the target's length
//!     62     8  devmajor     device holding the file (unused by the kernel)
//!     70     8  devminor
//!     78     8  rdevmajor    for character and block device nodes
//!     86     8  rdevminor
//!     94     8  namesize     name length including its terminating NUL
//!    102     8  check        0 (only the "070702" crc format uses it)
//!    110        name, NUL, then NUL padding so that header + name is a multiple of 4
//!               data, then NUL padding to a multiple of 4 (a symlink's data is its target)
//! ```
//!
//! The archive ends with a member named `TRAILER!!!` (all fields 0, nlink 1). Names carry no
//! leading `/`. The kernel creates members in order, so a directory must precede its contents.

use std::io::{self, Write};

use anyhow::{bail, Context, Result};

/// `S_IFDIR`, `S_IFREG`, `S_IFLNK`, `S_IFCHR`, `S_IFBLK` and the mask of file type bits.
pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;

const MAGIC: &[u8; 6] = b"070701";
const HEADER_LEN: usize = 110;
const TRAILER: &str = "TRAILER!!!";

/// Writes a newc archive member by member; call [`Writer::finish`] to add the trailer.
pub struct Writer<W: Write> {
    out: W,
    next_ino: u32,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Writer { out, next_ino: 1 }
    }

    /// A directory, `mode` being the permission bits (e.g. `0o755`).
    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        self.member(path, S_IFDIR | (mode & 0o7777), 2, (0, 0), b"")
    }

    /// A regular file with its contents.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.member(path, S_IFREG | (mode & 0o7777), 1, (0, 0), data)
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.member(path, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// A character device node `major:minor`.
    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        self.member(path, S_IFCHR | (mode & 0o7777), 1, (major, minor), b"")
    }

    /// Writes the `TRAILER!!!` member and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.next_ino = 0;
        self.member(TRAILER, 0, 1, (0, 0), b"")?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn member(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> io::Result<()> {
        let name = name.trim_start_matches('/');
        if name.is_empty() || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad cpio member name {name:?}"),
            ));
        }
        let filesize = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "member over 4 GiB"))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let fields = [
            ino,
            mode,
            0, // uid: root
            0, // gid: root
            nlink,
            0, // mtime
            filesize,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        let mut header = Vec::with_capacity(HEADER_LEN + name.len() + 4);
        header.extend_from_slice(MAGIC);
        for field in fields {
            header.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        header.extend_from_slice(name.as_bytes());
        header.push(0);
        header.resize(align4(header.len()), 0);
        self.out.write_all(&header)?;
        self.out.write_all(data)?;
        let padding = align4(data.len()) - data.len();
        self.out.write_all(&[0; 3][..padding])?;
        Ok(())
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One member read back from an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub rdev: (u32, u32),
    /// file contents, or a symlink's target
    pub data: Vec<u8>,
}

impl Entry {
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }
}

/// Reads an uncompressed newc archive up to its trailer (which is not returned).
/// Strict about the format: magic, hex fields, NUL after the name, and the padding.
pub fn read_archive(bytes: &[u8]) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut pos = 0;
    loop {
        let header = bytes
            .get(pos..pos + HEADER_LEN)
            .with_context(|| format!("truncated cpio header at offset {pos}"))?;
        if &header[..6] != MAGIC {
            bail!("bad cpio magic at offset {pos}: {:?}", &header[..6]);
        }
        let mut fields = [0u32; 13];
        for (i, field) in fields.iter_mut().enumerate() {
            let hex = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i])?;
            *field = u32::from_str_radix(hex, 16)
                .with_context(|| format!("bad cpio field {i} at offset {pos}: {hex:?}"))?;
        }
        let [ino, mode, uid, gid, nlink, mtime, filesize, _, _, rmaj, rmin, namesize, _] = fields;
        let name_start = pos + HEADER_LEN;
        let name_end = name_start + namesize as usize;
        let name = bytes
            .get(name_start..name_end)
            .with_context(|| format!("truncated cpio name at offset {name_start}"))?;
        let Some((0, name)) = name.split_last() else {
            bail!("cpio name at offset {name_start} is not NUL-terminated");
        };
        let name = String::from_utf8(name.to_vec())?;
        let data_start = align4(name_end);
        if bytes[name_end..data_start.min(bytes.len())]
            .iter()
            .any(|&b| b != 0)
        {
            bail!("non-NUL name padding in {name}");
        }
        if name == TRAILER {
            return Ok(entries);
        }
        let data_end = data_start + filesize as usize;
        let data = bytes
            .get(data_start..data_end)
            .with_context(|| format!("truncated data of {name}"))?;
        entries.push(Entry {
            name,
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            rdev: (rmaj, rmin),
            data: data.to_vec(),
        });
        pos = align4(data_end);
        if pos > bytes.len() {
            bail!("truncated data padding at end of archive");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        w.dir("dev", 0o755).unwrap();
        w.char_dev("/dev/console", 0o600, 5, 1).unwrap();
        w.file("init", 0o755, b"hello").unwrap();
        w.symlink("sbin/modprobe", "/init").unwrap();
        w.file("empty", 0o644, b"").unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn header_layout_is_newc() {
        let bytes = sample();
        // first member: "dev", a directory
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(&bytes[6..14], b"00000001"); // ino
        assert_eq!(&bytes[14..22], b"000041ed"); // S_IFDIR | 0755
        assert_eq!(&bytes[38..46], b"00000002"); // nlink
        assert_eq!(&bytes[94..102], b"00000004"); // "dev\0"
        assert_eq!(&bytes[110..114], b"dev\0");
        // 110 + 4 = 114, padded to 116: the next header starts there
        assert_eq!(&bytes[114..116], b"\0\0");
        assert_eq!(&bytes[116..122], b"070701");
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let entries = read_archive(&bytes).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["dev", "dev/console", "init", "sbin/modprobe", "empty"]
        );
        assert_eq!(entries[1].file_type(), S_IFCHR);
        assert_eq!(entries[1].mode & 0o7777, 0o600);
        assert_eq!(entries[1].rdev, (5, 1));
        assert_eq!(entries[2].mode, S_IFREG | 0o755);
        assert_eq!(entries[2].data, b"hello");
        assert_eq!(entries[3].file_type(), S_IFLNK);
        assert_eq!(entries[3].data, b"/init");
        assert!(entries[4].data.is_empty());
        assert!(entries
            .iter()
            .all(|e| e.uid == 0 && e.gid == 0 && e.mtime == 0));
        // inode numbers are unique
        let mut inos: Vec<_> = entries.iter().map(|e| e.ino).collect();
        inos.dedup();
        assert_eq!(inos.len(), entries.len());
    }

    #[test]
    fn ends_with_trailer_and_padding() {
        let bytes = sample();
        let trailer = b"TRAILER!!!\0";
        let at = bytes
            .windows(trailer.len())
            .rposition(|w| w == trailer)
            .unwrap();
        let header = &bytes[at - HEADER_LEN..at];
        assert_eq!(&header[..6], b"070701");
        assert_eq!(&header[94..102], b"0000000b");
        // header (aligned) 110 + name 11 = 121 -> padded to 124, the end of the archive
        assert_eq!((at - HEADER_LEN) % 4, 0);
        assert_eq!(bytes.len(), at + trailer.len() + 3);
    }

    #[test]
    fn data_is_padded_to_four_bytes() {
        let mut w = Writer::new(Vec::new());
        w.file("a", 0o644, b"12345").unwrap();
        let bytes = w.finish().unwrap();
        // header 110 + "a\0" = 112 (aligned), data 5 -> 8
        assert_eq!(&bytes[112..117], b"12345");
        assert_eq!(&bytes[117..120], b"\0\0\0");
        assert_eq!(&bytes[120..126], b"070701");
        assert!(read_archive(&bytes[..bytes.len() - 4]).is_err());
    }
}
