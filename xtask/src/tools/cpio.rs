//! The cpio "newc" archive format, as the kernel unpacks an initramfs: the writer, and a
//! reader for tests and for listing what an initramfs holds. No compression here (see
//! `pack/initramfs.rs`). The format itself (its constants, a member's header, the strict
//! reader) is the init's `boxinit::cpio`, which reads the extras archives xtask writes: one
//! description of the format for both.

use std::io::{self, Write};

use anyhow::{anyhow, Result};
use boxinit::cpio::{self as newc, Fields, TRAILER};

pub use boxinit::cpio::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};

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
        let header = newc::member_start(
            Fields {
                ino,
                mode,
                nlink,
                filesize,
                rdevmajor: rdev.0,
                rdevminor: rdev.1,
                ..Fields::default()
            },
            name,
        );
        self.out.write_all(&header)?;
        self.out.write_all(data)?;
        let padding = data.len().next_multiple_of(4) - data.len();
        self.out.write_all(&[0; 3][..padding])?;
        Ok(())
    }
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

/// Reads an uncompressed newc archive up to its trailer (which is not returned), with the
/// init's strict reader (`boxinit::cpio::read`).
pub fn read_archive(bytes: &[u8]) -> Result<Vec<Entry>> {
    let members = newc::read(bytes, usize::MAX).map_err(|e| anyhow!("cpio: {e}"))?;
    Ok(members
        .into_iter()
        .map(|m| Entry {
            name: m.name.to_string(),
            ino: m.fields.ino,
            mode: m.fields.mode,
            uid: m.fields.uid,
            gid: m.fields.gid,
            nlink: m.fields.nlink,
            mtime: m.fields.mtime,
            rdev: (m.fields.rdevmajor, m.fields.rdevminor),
            data: m.data.to_vec(),
        })
        .collect())
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
        let header = &bytes[at - newc::HEADER_LEN..at];
        assert_eq!(&header[..6], b"070701");
        assert_eq!(&header[94..102], b"0000000b");
        // header (aligned) 110 + name 11 = 121 -> padded to 124, the end of the archive
        assert_eq!((at - newc::HEADER_LEN) % 4, 0);
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
