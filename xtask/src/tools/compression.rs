//! Decompression by file name suffix (`.gz`, `.xz`, `.zst`), all in pure Rust: for the kernel
//! package's `data.tar.*` and for compressed modules (`.ko.xz`, ...). No compression here.

use std::io::Read;

use anyhow::{anyhow, Context, Result};

/// The compressions xtask can undo, named after their file suffixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    /// Splits a known compression suffix off `name`: `fat.ko.xz` → (`fat.ko`, `Xz`).
    pub fn split(name: &str) -> (&str, Compression) {
        for (suffix, kind) in [
            (".gz", Compression::Gzip),
            (".xz", Compression::Xz),
            (".zst", Compression::Zstd),
        ] {
            if let Some(stem) = name.strip_suffix(suffix) {
                return (stem, kind);
            }
        }
        (name, Compression::None)
    }

    /// Decompresses `data` (returned as is for [`Compression::None`]).
    pub fn decompress(self, data: Vec<u8>) -> Result<Vec<u8>> {
        if self == Compression::None {
            return Ok(data);
        }
        let mut out = Vec::with_capacity(data.len() * 3);
        self.reader(&data[..])?
            .read_to_end(&mut out)
            .with_context(|| format!("bad {self:?} data"))?;
        Ok(out)
    }

    /// A reader of the decompressed stream of `input`: for archives too big to hold
    /// decompressed in memory (a kernel package's data.tar is 400 MB).
    pub fn reader<'a, R: Read + 'a>(self, input: R) -> Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(input),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
            Compression::Xz => Box::new(lzma_rust2::XzReader::new(input, true)),
            Compression::Zstd => Box::new(
                ruzstd::decoding::StreamingDecoder::new(input)
                    .map_err(|e| anyhow!("bad zstd data: {e}"))?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn split_suffixes() {
        assert_eq!(Compression::split("a.ko.xz"), ("a.ko", Compression::Xz));
        assert_eq!(Compression::split("a.ko.zst"), ("a.ko", Compression::Zstd));
        assert_eq!(Compression::split("a.ko.gz"), ("a.ko", Compression::Gzip));
        assert_eq!(Compression::split("a.ko"), ("a.ko", Compression::None));
    }

    #[test]
    fn gzip_and_xz_round_trip() {
        let text = b"depends=virtio\0alias=virtio:d00000002v*\0".repeat(50);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(Compression::Gzip.decompress(gz).unwrap(), text);
        let mut xz = lzma_rust2::XzWriter::new(Vec::new(), Default::default()).unwrap();
        xz.write_all(&text).unwrap();
        let xz = xz.finish().unwrap();
        assert_eq!(Compression::Xz.decompress(xz).unwrap(), text);
        assert!(Compression::Zstd.decompress(b"not zstd".to_vec()).is_err());
    }
}
