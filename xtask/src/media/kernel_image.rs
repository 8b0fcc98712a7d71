//! The kernel as a bundle ships it: `kernel8.img` gzip-compressed, which the Pi's firmware
//! recognises by its first two bytes and inflates before it starts the kernel (since
//! September 2020; raspberrypi/documentation `config_txt/boot.adoc`, `arm_64bit`: "64-bit
//! kernels may be uncompressed image files or a gzip archive of an image (which can still
//! be called kernel8.img"), or the raw Image with `[board] gzip_kernel = false`. Compressed
//! once per kernel and cached under `target/bundle/`. Writing the folder is
//! `media/bundle.rs`'s.
//!
//! The level, measured on Debian's arm64 Image (6.1.0-57, 32,956,352 bytes) with this
//! crate's flate2 (miniz_oxide) on the 2-CPU AMD EPYC host, 2026-12-06, inflating best of 5:
//!
//! | level | bytes | of the Image | compress | inflate |
//! | ---: | ---: | ---: | ---: | ---: |
//! | 1 | 13,153,873 | 39.9 % | 0.21 s | 110 ms |
//! | 3 | 11,459,115 | 34.8 % | 0.75 s | 99 ms |
//! | 6 | 11,267,046 | 34.2 % | 1.64 s | 94 ms |
//! | 9 | 11,255,630 | 34.2 % | 3.34 s | 94 ms |
//!
//! (`gzip -9`: 11,261,133.) On the Pi both sides of the trade run at every boot: the
//! firmware reads the file from the card (tens of MB/s on a Pi 3) and then inflates it.
//! Inflating costs about the same at every level from 3 up (it follows the output, and a
//! smaller input has fewer codes to decode), so the level only moves the bytes read: 9 is
//! the smallest and no slower to inflate. Its 3.3 s of compression are paid once per kernel
//! (the cache), not per bundle.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};

use crate::target_dir;

/// The gzip level of a bundle's kernel (see the table above).
pub const LEVEL: u32 = 9;

/// Whether `data` starts with gzip's magic bytes, as the firmware checks.
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
}

/// `data` gzip-compressed at `level`.
pub fn gzip(data: &[u8], level: u32) -> Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3),
        flate2::Compression::new(level),
    );
    gz.write_all(data)?;
    Ok(gz.finish()?)
}

/// `data` inflated (one gzip member).
pub fn gunzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 3);
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .context("bad gzip data")?;
    Ok(out)
}

/// The file to copy as `kernel8.img`: `image` gzip-compressed at [`LEVEL`] when `compress`,
/// else the raw Image; an input already in the wanted form is used as it is (a Raspberry Pi
/// OS `kernel8.img` is gzipped already). A converted kernel is cached under
/// `target/bundle/` by the input's name, size and modification time.
pub fn for_bundle(image: &Path, compress: bool) -> Result<PathBuf> {
    let mut magic = [0u8; 2];
    std::fs::File::open(image)
        .and_then(|mut f| f.read_exact(&mut magic))
        .with_context(|| format!("cannot read the kernel {}", image.display()))?;
    if is_gzip(&magic) == compress {
        return Ok(image.to_path_buf());
    }
    let meta = std::fs::metadata(image)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let name = image
        .file_name()
        .map_or("kernel".into(), |n| n.to_string_lossy().into_owned());
    let suffix = if compress {
        format!("gz{LEVEL}")
    } else {
        "raw".to_string()
    };
    let dir = target_dir().join("bundle").join("kernels");
    let cached = dir.join(format!("{name}-{}-{mtime}.{suffix}", meta.len()));
    if cached.is_file() {
        return Ok(cached);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let data = std::fs::read(image).with_context(|| format!("cannot read {}", image.display()))?;
    let converted = if compress {
        gzip(&data, LEVEL)?
    } else {
        gunzip(&data).with_context(|| format!("cannot inflate {}", image.display()))?
    };
    // a temporary name first: another xtask may be reading the cache
    let partial = cached.with_extension(format!("{suffix}.{}.part", std::process::id()));
    std::fs::write(&partial, &converted)
        .and_then(|()| std::fs::rename(&partial, &cached))
        .with_context(|| format!("cannot write {}", cached.display()))?;
    Ok(cached)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Something shaped like a kernel Image: an ARM64 header, code-like and zero runs.
    fn image() -> Vec<u8> {
        let mut data = b"MZ\0\0ARMd".to_vec();
        for i in 0..20_000u32 {
            data.extend_from_slice(&(i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes());
            data.extend_from_slice(&[0; 12]);
        }
        data
    }

    #[test]
    fn gzip_round_trip_at_the_bundle_level() {
        let data = image();
        let gz = gzip(&data, LEVEL).unwrap();
        assert!(is_gzip(&gz) && !is_gzip(&data));
        assert!(gz.len() < data.len() / 2, "{} of {}", gz.len(), data.len());
        assert_eq!(gunzip(&gz).unwrap(), data);
        // the magic and the deflate method byte the firmware and the kernel's gunzip expect
        assert_eq!(gz[..3], [0x1f, 0x8b, 8]);
        assert!(gunzip(&gz[..gz.len() / 2]).is_err());
    }

    #[test]
    fn bundle_kernel_is_converted_once_and_kept_when_already_right() {
        let dir = crate::tools::testing::temp_dir("kernel-image");
        let raw = dir.join("Image");
        std::fs::write(&raw, image()).unwrap();
        let gz = for_bundle(&raw, true).unwrap();
        assert_ne!(gz, raw);
        let bytes = std::fs::read(&gz).unwrap();
        assert!(is_gzip(&bytes));
        assert_eq!(gunzip(&bytes).unwrap(), image());
        // cached: the same file again, and a gzipped input is used as it is
        assert_eq!(for_bundle(&raw, true).unwrap(), gz);
        assert_eq!(for_bundle(&gz, true).unwrap(), gz);
        // the raw Image when asked, from either
        assert_eq!(for_bundle(&raw, false).unwrap(), raw);
        let back = for_bundle(&gz, false).unwrap();
        assert_eq!(std::fs::read(back).unwrap(), image());
    }
}
