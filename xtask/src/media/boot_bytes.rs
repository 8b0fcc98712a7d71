//! What a bundle folder makes the Pi read before its kernel starts, in bytes: the files
//! `config.txt` makes the firmware load (`bootcode.bin` where the board has it, the
//! start/fixup pair, `config.txt`, `cmdline.txt`, the device tree, the kernel, the
//! initramfs), and what the kernel then unpacks before `/init` starts (the initramfs,
//! compressed and unpacked). Measured on real bundles of each board with the default card
//! config, a `[wifi]` one and one with every boot-time switch back at the firmware's default;
//! the README's table of them (between its `pi-bytes` markers) is checked against those
//! bundles by `cargo xtask test` and rewritten with `UPDATE_README=1`, and `cargo xtask
//! bench` reports the exact bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::media::board::Board;
use crate::media::bundle;
use crate::media::config_txt::{self, INITRAMFS};
use crate::{progress, target_dir};

/// A card config a bundle is measured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardConfig {
    /// No `init.toml` given: the starter file, every boot-time switch on.
    Default,
    /// `[wifi]` with an ssid and passphrase: the supplicant and the chip's firmware packed.
    Wifi,
    /// Every `[board]` boot-time key at the firmware's default: the bundle as it was before
    /// these switches (full firmware, `boot_delay` 1 s, raw Image, HDMI console).
    Before,
}

impl CardConfig {
    /// The `init.toml` given to the bundle (None: the starter file).
    pub fn text(self) -> Option<&'static str> {
        match self {
            CardConfig::Default => None,
            CardConfig::Wifi => Some("[wifi]\nssid = \"puzzlebox\"\npsk = \"correct horse\"\n"),
            CardConfig::Before => Some(
                "[board]\ndisplay = true\ncut_down_firmware = false\nboot_delay = 1\n\
                 splash = true\npoe_fan = true\nhat_eeprom = true\ngzip_kernel = false\n",
            ),
        }
    }

    /// How the tables name it.
    pub fn label(self) -> &'static str {
        match self {
            CardConfig::Default => "default",
            CardConfig::Wifi => "`[wifi]`",
            CardConfig::Before => "every switch back",
        }
    }
}

/// The bundles the README and the benchmark report: each board with the default and a
/// Wi-Fi config, and the Pi 3's with every switch back.
pub const MEASURED: &[(Board, CardConfig)] = &[
    (Board::Rpi3, CardConfig::Default),
    (Board::Rpi3, CardConfig::Wifi),
    (Board::Rpi3, CardConfig::Before),
    (Board::Rpi4, CardConfig::Default),
    (Board::Rpi4, CardConfig::Wifi),
    (Board::Rpi02w, CardConfig::Default),
    (Board::Rpi02w, CardConfig::Wifi),
];

/// One bundle's bytes before `/init`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootBytes {
    pub board: Board,
    pub config: CardConfig,
    /// What the firmware reads, in order: (file name, bytes)
    pub files: Vec<(String, u64)>,
    /// The initramfs once the kernel has unpacked it (the cpio's bytes)
    pub unpacked: u64,
}

impl BootBytes {
    /// Everything the firmware reads before the kernel starts.
    pub fn total(&self) -> u64 {
        self.files.iter().map(|(_, b)| b).sum()
    }

    /// The bytes of the files whose names `pick` accepts.
    pub fn bytes_of(&self, pick: impl Fn(&str) -> bool) -> u64 {
        self.files
            .iter()
            .filter(|(name, _)| pick(name))
            .map(|(_, b)| b)
            .sum()
    }

    /// The initramfs as the firmware reads it (compressed).
    pub fn initramfs(&self) -> u64 {
        self.bytes_of(|n| n == INITRAMFS)
    }
}

/// The files the firmware reads from `dir` before it starts the kernel, with their sizes:
/// the firmware `config.txt` makes `board` load, `config.txt` and `cmdline.txt`, the device
/// tree `dtb` (the firmware reads the one of the model it runs on), then every file
/// `config.txt` names (the kernel, the initramfs).
pub fn firmware_reads(dir: &Path, board: Board, dtb: &str) -> Result<Vec<(String, u64)>> {
    let config = std::fs::read_to_string(dir.join("config.txt"))
        .with_context(|| format!("{} has no config.txt", dir.display()))?;
    let firmware = config_txt::firmware_files(&config, board);
    let mut names = firmware.clone();
    names.extend(["config.txt", "cmdline.txt", dtb].map(str::to_string));
    names.extend(
        config_txt::files_named(&config)
            .into_iter()
            .filter(|n| !firmware.contains(n)),
    );
    names
        .into_iter()
        .map(|name| {
            let bytes = std::fs::metadata(dir.join(&name))
                .with_context(|| format!("{} has no {name}", dir.display()))?
                .len();
            Ok((name, bytes))
        })
        .collect()
}

/// The bytes of the cpio in a gzip-compressed initramfs (every member, as the kernel reads
/// concatenated archives).
pub fn unpacked_size(initramfs: &Path) -> Result<u64> {
    let file = std::fs::File::open(initramfs)
        .with_context(|| format!("cannot open {}", initramfs.display()))?;
    let mut reader = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("cannot inflate {}", initramfs.display()))?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

/// Makes the bundle of `board` with `config` under `target/boot-bytes/` and measures it.
pub fn measure(board: Board, config: CardConfig) -> Result<BootBytes> {
    let folder = folder(board, config);
    let _ = std::fs::remove_dir_all(&folder);
    let dir = target_dir().join("boot-bytes");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let card = match config.text() {
        Some(text) => {
            let path = folder.with_extension("toml");
            std::fs::write(&path, text)?;
            Some(path)
        }
        None => None,
    };
    let made = bundle::make(&bundle::Options {
        config: card,
        ..bundle::Options::new(board, &folder)
    })
    .with_context(|| {
        format!(
            "cannot make the {} bundle ({})",
            board.name(),
            config.label()
        )
    })?;
    let dtb = made.dtbs.first().context("the bundle has no device tree")?;
    Ok(BootBytes {
        board,
        config,
        files: firmware_reads(&folder, board, dtb)?,
        unpacked: unpacked_size(&made.initramfs.path)?,
    })
}

/// Every bundle of [`MEASURED`], measured.
pub fn measure_all() -> Result<Vec<BootBytes>> {
    MEASURED
        .iter()
        .map(|&(board, config)| {
            progress!(
                "bytes before the kernel: the {} bundle, {} config",
                board.name(),
                config.label()
            );
            measure(board, config)
        })
        .collect()
}

/// `bytes` in kB (1000 bytes), rounded, with thousands separators: `11,256 kB`.
pub fn kb(bytes: u64) -> String {
    let n = (bytes + 500) / 1000;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out + " kB"
}

/// `bytes` in MB (10^6 bytes) with two decimals: `13.67 MB`.
pub fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

/// The README's table: a row per measured bundle, rounded to kB.
pub fn readme_table(rows: &[BootBytes]) -> String {
    let mut out = String::from(
        "| `--board`, card config | firmware | `config.txt` + `cmdline.txt` | device tree | \
         `kernel8.img` | `initramfs.cpio.gz` | **read before the kernel** | initramfs unpacked \
         before `/init` |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for row in rows {
        let firmware: Vec<String> = row
            .files
            .iter()
            .filter(|(n, _)| is_firmware(n))
            .map(|(n, b)| format!("`{n}` {}", kb(*b)))
            .collect();
        out += &format!(
            "| `{}`, {} | {} | {} | {} | {} | {} | **{}** | {} |\n",
            row.board.name(),
            row.config.label(),
            firmware.join(", "),
            kb(row.bytes_of(|n| n == "config.txt" || n == "cmdline.txt")),
            kb(row.bytes_of(|n| n.ends_with(".dtb"))),
            kb(row.bytes_of(|n| n == config_txt::KERNEL)),
            kb(row.initramfs()),
            mb(row.total()),
            kb(row.unpacked),
        );
    }
    out
}

fn is_firmware(name: &str) -> bool {
    name == "bootcode.bin" || name.ends_with(".elf") || name.ends_with(".dat")
}

/// The README's markers around the table.
pub const README_START: &str = "<!-- pi-bytes: start (written by `UPDATE_README=1 cargo xtask \
     test`, checked by `cargo xtask test`) -->";
pub const README_END: &str = "<!-- pi-bytes: end -->";

/// The table between the markers of `readme`.
pub fn readme_block(readme: &str) -> Option<&str> {
    let start = readme.find(README_START)? + README_START.len();
    let end = start + readme.get(start..)?.find(README_END)?;
    readme.get(start..end).map(|s| s.trim_matches('\n'))
}

/// The differences between the README's table and the measured one, as lines; empty when
/// they agree: the same rows, files and columns, and every figure within 2 % (or 2 kB) of
/// what was measured, so that a few kB more of boxinit do not make it stale but a new
/// kernel, firmware or packing does.
pub fn compare(readme: &str, measured: &str) -> Vec<String> {
    let words = |text: &str| -> Vec<String> {
        text.split(['|', ',', ' '])
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut problems = Vec::new();
    for (i, (old, new)) in readme.lines().zip(measured.lines()).enumerate() {
        let (a, b) = (words(old), words(new));
        let same = a.len() == b.len()
            && a.iter().zip(&b).all(|(x, y)| match (figure(x), figure(y)) {
                (Some(x), Some(y)) => (x - y).abs() <= (y.abs() * 0.02).max(2.0),
                _ => x == y,
            });
        if !same {
            problems.push(format!("line {}: README `{old}`, measured `{new}`", i + 1));
        }
    }
    if readme.lines().count() != measured.lines().count() {
        problems.push(format!(
            "the README's table has {} lines, the measured one {}",
            readme.lines().count(),
            measured.lines().count()
        ));
    }
    problems
}

/// A figure of the table in kB: `11` of `11,256 kB` is read with its neighbours, so the
/// cells are compared as numbers once the separators are gone.
fn figure(word: &str) -> Option<f64> {
    let w = word.trim_matches('*');
    if w.is_empty() || !w.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    w.parse().ok()
}

/// Checks the README's table against the bundles (made here), or rewrites it when
/// `update`. The figures it holds are those of `rows`.
pub fn check_readme(rows: &[BootBytes], update: bool) -> Result<()> {
    let path = crate::workspace_root().join("README.md");
    let readme = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let table = readme_table(rows);
    if update {
        let text = replace_block(&readme, &table)
            .context("README.md has no pi-bytes markers to write the table between")?;
        std::fs::write(&path, text)?;
        progress!("wrote the bytes each Pi bundle makes the firmware read into README.md");
        return Ok(());
    }
    let Some(block) = readme_block(&readme) else {
        bail!("README.md has no pi-bytes markers (`{README_START}`)");
    };
    // numbers are compared without their thousands separators
    let problems = compare(&block.replace(',', ""), &table.replace(',', ""));
    if !problems.is_empty() {
        bail!(
            "README.md's table of the bytes each Pi bundle makes the firmware read is stale:\n  \
             {}\nrewrite it with `UPDATE_README=1 cargo xtask test raspi3b` and review the diff",
            problems.join("\n  ")
        );
    }
    progress!(
        "README.md's Pi bytes table agrees with the {} bundles",
        rows.len()
    );
    Ok(())
}

/// `readme` with `table` between its markers.
pub fn replace_block(readme: &str, table: &str) -> Option<String> {
    let start = readme.find(README_START)? + README_START.len();
    let end = start + readme.get(start..)?.find(README_END)?;
    Some(format!(
        "{}\n{}{}",
        readme.get(..start)?,
        table,
        readme.get(end..)?
    ))
}

/// Where [`measure`] writes a bundle.
fn folder(board: Board, config: CardConfig) -> PathBuf {
    target_dir()
        .join("boot-bytes")
        .join(format!("{}-{config:?}", board.name()).to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: usize) {
        std::fs::write(dir.join(name), vec![0u8; bytes]).unwrap();
    }

    #[test]
    fn reads_follow_config_txt() {
        let dir = crate::tools::testing::temp_dir("boot-bytes");
        let features = boxinit::config::board::Board::default();
        let text = config_txt::config_txt(
            Board::Rpi3,
            crate::media::board::DtbNames::Upstream,
            &features,
        );
        std::fs::write(dir.join("config.txt"), &text).unwrap();
        for (name, bytes) in [
            ("bootcode.bin", 52_460),
            ("start_cd.elf", 803_964),
            ("fixup_cd.dat", 3_170),
            ("start.elf", 2_973_536),
            ("fixup.dat", 7_262),
            ("cmdline.txt", 31),
            ("bcm2837-rpi-3-b.dtb", 30_000),
            ("kernel8.img", 11_255_630),
            ("initramfs.cpio.gz", 1_487_294),
        ] {
            write(&dir, name, bytes);
        }
        let reads = firmware_reads(&dir, Board::Rpi3, "bcm2837-rpi-3-b.dtb").unwrap();
        let names: Vec<&str> = reads.iter().map(|(n, _)| n.as_str()).collect();
        // the full firmware lies in the folder but config.txt does not load it
        assert_eq!(
            names,
            [
                "bootcode.bin",
                "start_cd.elf",
                "fixup_cd.dat",
                "config.txt",
                "cmdline.txt",
                "bcm2837-rpi-3-b.dtb",
                "kernel8.img",
                "initramfs.cpio.gz"
            ]
        );
        let row = BootBytes {
            board: Board::Rpi3,
            config: CardConfig::Default,
            files: reads,
            unpacked: 4_000_000,
        };
        assert_eq!(
            row.total(),
            52_460 + 803_964 + 3_170 + text.len() as u64 + 31 + 30_000 + 11_255_630 + 1_487_294
        );
        assert_eq!(row.initramfs(), 1_487_294);
        // the Pi 4 reads no bootcode.bin, and the full firmware without the switch
        let full = boxinit::config::board::Board {
            cut_down_firmware: false,
            ..Default::default()
        };
        let text =
            config_txt::config_txt(Board::Rpi4, crate::media::board::DtbNames::Upstream, &full);
        std::fs::write(dir.join("config.txt"), text).unwrap();
        write(&dir, "start4.elf", 2_249_280);
        write(&dir, "fixup4.dat", 5_399);
        write(&dir, "bcm2711-rpi-4-b.dtb", 50_000);
        let reads = firmware_reads(&dir, Board::Rpi4, "bcm2711-rpi-4-b.dtb").unwrap();
        assert_eq!(reads[0], ("start4.elf".to_string(), 2_249_280));
        assert_eq!(reads[1], ("fixup4.dat".to_string(), 5_399));
        // a file config.txt names that is not there is an error naming it
        std::fs::remove_file(dir.join("kernel8.img")).unwrap();
        let err = firmware_reads(&dir, Board::Rpi4, "bcm2711-rpi-4-b.dtb").unwrap_err();
        assert!(err.to_string().contains("kernel8.img"), "{err}");
    }

    #[test]
    fn unpacked_size_counts_every_member() {
        let dir = crate::tools::testing::temp_dir("boot-bytes-unpacked");
        let mut data = crate::media::kernel_image::gzip(&[7u8; 5000], 9).unwrap();
        data.extend(crate::media::kernel_image::gzip(&[1u8; 300], 1).unwrap());
        std::fs::write(dir.join("i.gz"), data).unwrap();
        assert_eq!(unpacked_size(&dir.join("i.gz")).unwrap(), 5300);
    }

    #[test]
    fn readme_table_is_checked_with_a_tolerance() {
        let row = |initramfs: u64| BootBytes {
            board: Board::Rpi3,
            config: CardConfig::Default,
            files: vec![
                ("bootcode.bin".into(), 52_460),
                ("start_cd.elf".into(), 803_964),
                ("fixup_cd.dat".into(), 3_170),
                ("config.txt".into(), 1_900),
                ("cmdline.txt".into(), 31),
                ("bcm2837-rpi-3-b.dtb".into(), 30_000),
                ("kernel8.img".into(), 11_255_630),
                ("initramfs.cpio.gz".into(), initramfs),
            ],
            unpacked: 4_000_000,
        };
        let table = readme_table(&[row(1_487_294)]);
        assert!(
            table.contains(
                "| `rpi3`, default | `bootcode.bin` 52 kB, `start_cd.elf` 804 kB, \
             `fixup_cd.dat` 3 kB | 2 kB | 30 kB | 11,256 kB | 1,487 kB | **13.63 MB** | 4,000 kB |"
            ),
            "{table}"
        );
        let readme = format!("intro\n{README_START}\n{table}{README_END}\nafter\n");
        let block = readme_block(&readme).unwrap();
        assert_eq!(format!("{block}\n"), table);
        let plain = |t: &str| t.replace(',', "");
        // a little more init: still current
        assert!(compare(&plain(block), &plain(&readme_table(&[row(1_500_000)]))).is_empty());
        // the Wi-Fi parts gone from the initramfs, or another kernel: stale
        let problems = compare(&plain(block), &plain(&readme_table(&[row(1_700_000)])));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(!compare(&plain(block), "").is_empty());
        // rewriting puts the new table between the markers and keeps the rest
        let new = replace_block(&readme, &readme_table(&[row(1_700_000)])).unwrap();
        assert!(new.starts_with("intro\n") && new.ends_with(&format!("{README_END}\nafter\n")));
        assert!(new.contains("1,700 kB"), "{new}");
        assert_eq!(kb(999), "1 kB");
        assert_eq!(kb(1_234_567_890), "1,234,568 kB");
        assert_eq!(mb(13_630_000), "13.63 MB");
    }
}
