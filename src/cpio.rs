//! The cpio "newc" format, as the kernel unpacks an initramfs: its constants, a member's header
//! made (`xtask`'s writer, `xtask/src/tools/cpio.rs`) and an archive read back, strictly and
//! without a panic on any bytes (the init's extras from the card, `storage/extras.rs`; xtask's
//! tests). One description of the format for both sides. Pure.
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
//!     46     8  mtime        seconds since the epoch; 0 from xtask, for reproducible archives
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

/// The mask of the file type bits of `mode`, and the types.
pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;

/// The newc magic, without checksums.
pub const MAGIC: &[u8; 6] = b"070701";
/// The header's length: the magic and 13 fields of 8 hex digits.
pub const HEADER_LEN: usize = 110;
/// The name of the member that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";
/// The longest name the reader takes (`PATH_MAX`, its NUL included).
pub const MAX_NAME: usize = 4096;

/// A member's header fields, in the order they are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub filesize: u32,
    pub devmajor: u32,
    pub devminor: u32,
    pub rdevmajor: u32,
    pub rdevminor: u32,
    pub namesize: u32,
    pub check: u32,
}

impl Fields {
    fn to_array(self) -> [u32; 13] {
        [
            self.ino,
            self.mode,
            self.uid,
            self.gid,
            self.nlink,
            self.mtime,
            self.filesize,
            self.devmajor,
            self.devminor,
            self.rdevmajor,
            self.rdevminor,
            self.namesize,
            self.check,
        ]
    }

    fn from_array(a: [u32; 13]) -> Fields {
        let [ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check] =
            a;
        Fields {
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            filesize,
            devmajor,
            devminor,
            rdevmajor,
            rdevminor,
            namesize,
            check,
        }
    }
}

/// `n` rounded up to a multiple of 4, the format's alignment (None past `usize`).
pub fn align4(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

/// The bytes that start a member: its header with `namesize` set from `name`, the name, its
/// NUL and the padding; the data (`fields.filesize` bytes) and its padding follow.
pub fn member_start(fields: Fields, name: &str) -> Vec<u8> {
    let fields = Fields {
        namesize: u32::try_from(name.len() + 1).unwrap_or(u32::MAX),
        ..fields
    };
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 4);
    out.extend_from_slice(MAGIC);
    for field in fields.to_array() {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

/// One member read from an archive; its name and data borrow the archive's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member<'a> {
    pub name: &'a str,
    pub fields: Fields,
    /// file contents, or a symlink's target
    pub data: &'a [u8],
}

impl Member<'_> {
    /// The file type bits of its mode (`S_IFREG`, ...).
    pub fn file_type(&self) -> u32 {
        self.fields.mode & S_IFMT
    }
}

/// Why an archive cannot be read: where and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// byte offset in the archive
    pub offset: usize,
    pub what: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

fn error(offset: usize, what: impl Into<String>) -> Error {
    Error {
        offset,
        what: what.into(),
    }
}

/// Every member of an uncompressed newc archive, up to its trailer (not returned), of which
/// there must be one; after it only NUL padding. Strict about the format: magic, hex fields,
/// a UTF-8 name of at most [`MAX_NAME`] bytes ending in NUL, NUL padding, data inside the
/// bytes. At most `max_members` members.
pub fn read(bytes: &[u8], max_members: usize) -> Result<Vec<Member<'_>>, Error> {
    let mut members = Vec::new();
    let mut pos = 0;
    loop {
        let header = bytes
            .get(pos..)
            .and_then(|rest| rest.get(..HEADER_LEN))
            .ok_or_else(|| error(pos, "truncated: a header is cut short"))?;
        if header.get(..6) != Some(MAGIC.as_slice()) {
            return Err(error(pos, "not a newc cpio header (no magic 070701)"));
        }
        let mut values = [0u32; 13];
        for (i, value) in values.iter_mut().enumerate() {
            let digits = header.get(6 + 8 * i..14 + 8 * i).unwrap_or_default();
            *value = std::str::from_utf8(digits)
                .ok()
                .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|d| u32::from_str_radix(d, 16).ok())
                .ok_or_else(|| error(pos + 6 + 8 * i, "a header field is not 8 hex digits"))?;
        }
        let fields = Fields::from_array(values);
        let namesize = fields.namesize as usize;
        if namesize == 0 || namesize > MAX_NAME {
            return Err(error(pos, format!("a name of {namesize} bytes")));
        }
        let name_start = pos + HEADER_LEN;
        let name = bytes
            .get(name_start..name_start + namesize)
            .ok_or_else(|| error(name_start, "truncated: a name is cut short"))?;
        let Some((0, name)) = name.split_last() else {
            return Err(error(name_start, "a name does not end in NUL"));
        };
        if name.contains(&0) {
            return Err(error(name_start, "a name holds a NUL byte"));
        }
        let name =
            std::str::from_utf8(name).map_err(|_| error(name_start, "a name is not UTF-8 text"))?;
        let name_end = name_start + namesize;
        let data_start = align4(name_end).ok_or_else(|| error(name_end, "too large"))?;
        padding(bytes, name_end, data_start)?;
        if name == TRAILER {
            let rest = bytes.get(data_start..).unwrap_or_default();
            if let Some(at) = rest.iter().position(|&b| b != 0) {
                return Err(error(data_start + at, "bytes after the trailer"));
            }
            return Ok(members);
        }
        if members.len() >= max_members {
            return Err(error(pos, format!("more than {max_members} members")));
        }
        let data_end = data_start
            .checked_add(fields.filesize as usize)
            .ok_or_else(|| error(data_start, "too large"))?;
        let data = bytes.get(data_start..data_end).ok_or_else(|| {
            error(
                data_start,
                format!("truncated: the data of {name} is cut short"),
            )
        })?;
        let next = align4(data_end).ok_or_else(|| error(data_end, "too large"))?;
        padding(bytes, data_end, next)?;
        members.push(Member { name, fields, data });
        pos = next;
    }
}

/// `bytes[from..to]` is there and all NUL.
fn padding(bytes: &[u8], from: usize, to: usize) -> Result<(), Error> {
    match bytes.get(from..to) {
        Some(pad) if pad.iter().all(|&b| b == 0) => Ok(()),
        Some(_) => Err(error(from, "padding that is not NUL")),
        None => Err(error(from, "truncated: the padding is cut short")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
        let mut out = member_start(
            Fields {
                ino: 1,
                mode,
                nlink: 1,
                filesize: data.len() as u32,
                ..Fields::default()
            },
            name,
        );
        out.extend_from_slice(data);
        out.resize(align4(out.len()).unwrap(), 0);
        out
    }

    fn archive(members: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, mode, data) in members {
            out.extend(member(name, *mode, data));
        }
        out.extend(member(TRAILER, 0, b""));
        out
    }

    #[test]
    fn header_layout_and_round_trip() {
        let bytes = archive(&[
            ("dev", S_IFDIR | 0o755, b""),
            ("init", S_IFREG | 0o755, b"hello"),
            ("sbin/modprobe", S_IFLNK | 0o777, b"/init"),
        ]);
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(&bytes[14..22], b"000041ed"); // S_IFDIR | 0755
        assert_eq!(&bytes[94..102], b"00000004"); // "dev\0"
        assert_eq!(&bytes[110..114], b"dev\0");
        let members = read(&bytes, 10).unwrap();
        let names: Vec<&str> = members.iter().map(|m| m.name).collect();
        assert_eq!(names, ["dev", "init", "sbin/modprobe"]);
        assert_eq!(members[1].data, b"hello");
        assert_eq!(members[1].file_type(), S_IFREG);
        assert_eq!(members[2].file_type(), S_IFLNK);
        assert_eq!(members[2].data, b"/init");
        // trailing NULs (a tape's block padding) are fine
        let mut padded = bytes.clone();
        padded.extend([0; 512]);
        assert_eq!(read(&padded, 10).unwrap().len(), 3);
    }

    #[test]
    fn any_damage_is_an_error_never_a_panic() {
        let good = archive(&[
            ("a", S_IFREG | 0o644, b"12345"),
            ("b", S_IFDIR | 0o755, b""),
        ]);
        // every truncation
        for len in 0..good.len() {
            assert!(read(&good[..len], 10).is_err(), "cut at {len}");
        }
        let with = |at: usize, byte: u8| {
            let mut b = good.clone();
            b[at] = byte;
            read(&b, 10).map(|m| m.len())
        };
        assert!(with(0, b'1').unwrap_err().what.contains("magic"));
        assert!(with(20, b'g').unwrap_err().what.contains("hex"));
        assert!(with(118, b'x').unwrap_err().what.contains("padding"));
        assert!(with(good.len() - 1, 7)
            .unwrap_err()
            .what
            .contains("padding"));
        let mut extra = good.clone();
        extra.extend(b"junk");
        assert!(read(&extra, 10)
            .unwrap_err()
            .what
            .contains("after the trailer"));
        assert!(read(&good, 1)
            .unwrap_err()
            .what
            .contains("more than 1 members"));
        // a file size past the end
        let mut big = good.clone();
        big[54..62].copy_from_slice(b"7fffffff");
        assert!(read(&big, 10).unwrap_err().what.contains("cut short"));
        // a name that is not UTF-8, or holds a NUL
        let mut bad = archive(&[("ab", S_IFREG, b"")]);
        bad[110] = 0xff;
        assert!(read(&bad, 10).unwrap_err().what.contains("UTF-8"));
        bad[110] = 0;
        assert!(read(&bad, 10).unwrap_err().what.contains("NUL"));
        // no trailer at all
        assert!(read(&member("a", S_IFREG, b"x"), 10).is_err());
    }
}
