//! Tests only: archives as xtask writes them, for the extras' tests and hotplug's.

use crate::cpio::{self, Fields};

/// A newc archive of `(name, mode, data)` members, as xtask writes one.
pub fn archive(members: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, mode, data) in members.iter().chain([&(cpio::TRAILER, 0, &b""[..])]) {
        out.extend(cpio::member_start(
            Fields {
                mode: *mode,
                nlink: 1,
                filesize: data.len() as u32,
                ..Fields::default()
            },
            name,
        ));
        out.extend(*data);
        out.resize(cpio::align4(out.len()).unwrap(), 0);
    }
    out
}

/// `data` as a gzip file.
pub fn gzipped(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend(crate::crc32::crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}
