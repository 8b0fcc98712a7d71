//! The benchmark's Raspberry Pi row: boxinit against the seed's busybox script on QEMU
//! `raspi3b`, with the same `rpi3` bundle (kernel, device tree, modules) and the same SD card;
//! interleaved boots, medians, the median of the per-round ratios, kernel start to box, and
//! the report's section of them with the bytes each board's bundle makes the firmware read
//! (`media/boot_bytes.rs` measures those). The statistics (`bench/stats.rs`), the x86_64
//! rows (`bench/overhead.rs`) and the rest of the report (`bench/report.rs`) are elsewhere;
//! this file prepares and boots the Pi's two variants.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bench::boot::console_until;
use crate::bench::inits::{applets, busybox_extras, busybox_script};
use crate::bench::markers::{kernel_start, parse_sample, stamp_of, Variant, BOX_ARGS, LAST_LINE};
use crate::bench::stats::Stats;
use crate::fetch::busybox;
use crate::media::board::Board;
use crate::media::boot_bytes::{self, BootBytes};
use crate::media::{bundle, init_toml};
use crate::pack::extra::Extra;
use crate::pack::initramfs;
use crate::qemu::machine::{self, Boot, Machine};
use crate::tools::arch::Arch;
use crate::{progress, target_dir};

/// What the busybox script insmods: the SD card's driver, FAT for the boot partition, and the
/// watchdog driver that powers the Pi off (boxinit finds the same by coldplug).
const SCRIPT_MODULES: &[&str] = &["bcm2835", "vfat", "nls_cp437", "nls_ascii", "bcm2835_wdt"];
/// A Pi boot under TCG takes 5-30 s.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// The Pi row's measurements: box start minus init start (ms) per variant, and the same
/// from the kernel's start.
#[derive(Debug, Default)]
pub struct PiRow {
    pub boxinit_ms: Vec<f64>,
    pub busybox_ms: Vec<f64>,
    /// boxinit / busybox per round (both boots of the round measured)
    pub round_ratios: Vec<f64>,
    /// the kernel's first timestamp to the box's start (ms), per variant
    pub boxinit_kernel_ms: Vec<f64>,
    pub busybox_kernel_ms: Vec<f64>,
    /// the kernel's first timestamp to `/init`'s start (ms), every boot
    pub kernel_to_init_ms: Vec<f64>,
    pub failures: Vec<String>,
}

/// The two initramfs and the card.
struct PiSetup {
    kernel: PathBuf,
    dtb: PathBuf,
    card: PathBuf,
    boxinit: PathBuf,
    busybox: PathBuf,
}

/// Makes the rpi3 bundle and the busybox variant, then `runs` rounds of one boot each,
/// alternating which goes first.
pub fn run(runs: usize) -> Result<PiRow> {
    machine::check_qemu(Arch::Aarch64)?;
    let setup = prepare()?;
    let mut row = PiRow::default();
    for round in 0..runs {
        let order = match round % 2 {
            0 => [Variant::Boxinit, Variant::Busybox],
            _ => [Variant::Busybox, Variant::Boxinit],
        };
        let mut overheads = [None, None];
        for variant in order {
            let initrd = match variant {
                Variant::Boxinit => &setup.boxinit,
                _ => &setup.busybox,
            };
            let console = boot(&setup, initrd)?;
            let log = target_dir().join("bench/pi").join(format!(
                "{}-{}.log",
                file_name(variant),
                round + 1
            ));
            let _ = std::fs::write(&log, &console);
            match parse_sample(variant, &console) {
                Ok(sample) => {
                    let ms = sample.overhead_ms();
                    // kernel start to /init on the kernel's clock, then /init to box on
                    // CLOCK_BOOTTIME (the two drift apart under QEMU: markers::stamp_of)
                    let kernel = kernel_start(&console).unwrap_or(0.0);
                    let to_init = stamp_of(&console, "Run /init as init process")
                        .map_or(sample.init_start - kernel, |at| at - kernel)
                        * 1e3;
                    row.kernel_to_init_ms.push(to_init);
                    let from_kernel = to_init + ms;
                    match variant {
                        Variant::Boxinit => {
                            overheads[0] = Some(ms);
                            row.boxinit_ms.push(ms);
                            row.boxinit_kernel_ms.push(from_kernel);
                        }
                        _ => {
                            overheads[1] = Some(ms);
                            row.busybox_ms.push(ms);
                            row.busybox_kernel_ms.push(from_kernel);
                        }
                    }
                }
                Err(e) => row.failures.push(format!(
                    "pi round {} {}: {e:#} (console: {})",
                    round + 1,
                    variant.name(),
                    crate::display_path(&log)
                )),
            }
        }
        if let [Some(b), Some(s)] = overheads {
            row.round_ratios.push(b / s);
        }
        progress!(
            "pi round {}/{runs}: boxinit {}, busybox script {}",
            round + 1,
            show(overheads[0]),
            show(overheads[1])
        );
    }
    Ok(row)
}

/// The log files' prefix.
fn file_name(variant: Variant) -> &'static str {
    match variant {
        Variant::Boxinit => "boxinit",
        _ => "busybox",
    }
}

fn show(ms: Option<f64>) -> String {
    ms.map_or("failed".to_string(), |ms| format!("{ms:.0}ms"))
}

impl PiRow {
    /// The report's section: medians, the ratio, kernel start to box.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "\n## Raspberry Pi 3 (QEMU raspi3b)\n\n\
             The `rpi3` bundle (`cargo xtask bundle`): Debian's arm64 kernel (gzip-compressed \
             `kernel8.img`, which QEMU's `-kernel` inflates itself) and `bcm2837-rpi-3-b.dtb`, \
             the same SD card image for both; boxinit coldplugs, the seed's busybox script \
             insmods the SD host, FAT and watchdog modules and waits for `/dev/mmcblk0p1`. \
             Overhead: the box's start minus the init's start (`CLOCK_BOOTTIME`); kernel start \
             to box: the kernel's `Run /init as init process` line minus its first timestamp \
             (0.000000: QEMU starts the kernel at once, there is no firmware stage), on the \
             kernel's clock, plus the overhead (under QEMU the kernel's clock and \
             `CLOCK_BOOTTIME` drift about 1.2 s apart before `/init`). Interleaved boots, the \
             order alternating every round, TCG single-threaded.\n\n\
             | init | `/init` → box, median | IQR | kernel start → box, median | IQR | n |\n\
             | --- | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for (name, values, from_kernel) in [
            ("boxinit", &self.boxinit_ms, &self.boxinit_kernel_ms),
            ("busybox script", &self.busybox_ms, &self.busybox_kernel_ms),
        ] {
            match (Stats::of(values), Stats::of(from_kernel)) {
                (Some(s), Some(k)) => {
                    let _ = writeln!(
                        out,
                        "| {name} | {:.1} ms | {:.1}-{:.1} ms | {:.1} ms | {:.1}-{:.1} ms | {} |",
                        s.median, s.q1, s.q3, k.median, k.q1, k.q3, s.n
                    );
                }
                _ => {
                    let _ = writeln!(out, "| {name} | no measurement | | | | 0 |");
                }
            }
        }
        if let Some(s) = Stats::of(&self.kernel_to_init_ms) {
            let _ = writeln!(
                out,
                "\nKernel start → `/init`: {:.1} ms (median of {} boots, {:.1}-{:.1} ms).",
                s.median, s.n, s.min, s.max
            );
        }
        if let Some(s) = Stats::of(&self.round_ratios) {
            let _ = writeln!(
                out,
                "\nboxinit / busybox script: **{:.2}** (median of {} per-round ratios; IQR \
                 {:.2}-{:.2}; min-max {:.2}-{:.2})",
                s.median, s.n, s.q1, s.q3, s.min, s.max
            );
        }
        out
    }

    /// The report's section on what each board's bundle makes the firmware read before the
    /// kernel starts, and the kernel unpack before `/init`, to the byte.
    pub fn bytes_markdown(rows: &[BootBytes]) -> String {
        let mut out = String::from(
            "\n## Bytes before the kernel and before `/init` (the Pi bundles)\n\n\
             Each board's bundle (`cargo xtask bundle`) with the starter `init.toml`, with a \
             `[wifi]` one (ssid and passphrase: the supplicant and the chip's firmware packed) \
             and, for the Pi 3, with every `[board]` boot-time key back at the firmware's \
             default. *Read before the kernel*: the files `config.txt` makes the firmware load \
             (`bootcode.bin` where the board has one, the start/fixup pair, `config.txt`, \
             `cmdline.txt`, the model's device tree, the kernel, the initramfs); *unpacked*: \
             the initramfs's cpio, which the kernel unpacks before it starts `/init`.\n\n\
             | bundle | files the firmware reads (bytes) | read before the kernel | initramfs \
             compressed | unpacked before `/init` |\n| --- | --- | ---: | ---: | ---: |\n",
        );
        for row in rows {
            let files: Vec<String> = row
                .files
                .iter()
                .map(|(name, bytes)| format!("`{name}` {bytes}"))
                .collect();
            let _ = writeln!(
                out,
                "| `{}`, {} | {} | **{}** ({}) | {} | {} |",
                row.board.name(),
                row.config.label(),
                files.join(", "),
                row.total(),
                boot_bytes::mb(row.total()),
                row.initramfs(),
                row.unpacked
            );
        }
        out
    }

    /// One line for stdout.
    pub fn summary(&self) -> String {
        let median =
            |v: &[f64]| Stats::of(v).map_or("-".to_string(), |s| format!("{:.1} ms", s.median));
        format!(
            "raspi3b: boxinit overhead median {}, busybox script {}, ratio {}; kernel start to \
             box: boxinit {}, busybox script {}\n",
            median(&self.boxinit_ms),
            median(&self.busybox_ms),
            Stats::of(&self.round_ratios).map_or("-".to_string(), |s| format!("{:.2}", s.median)),
            median(&self.boxinit_kernel_ms),
            median(&self.busybox_kernel_ms),
        )
    }
}

/// The bundle (boxinit's initramfs, the card) and the busybox initramfs beside it.
fn prepare() -> Result<PiSetup> {
    let dir = target_dir().join("bench/pi");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let config = dir.join("init.toml");
    let args = toml::Value::Array(BOX_ARGS.iter().map(|a| toml::Value::from(*a)).collect());
    std::fs::write(&config, format!("[box]\nargs = {args}\n"))?;
    let builtin = dir.join("builtin.toml");
    std::fs::write(&builtin, init_toml::builtin_config_for_qemu(Board::Rpi3))?;
    let folder = dir.join("bundle");
    let _ = std::fs::remove_dir_all(&folder);
    let card = dir.join("card.img");
    let made = bundle::make(&bundle::Options {
        config: Some(config),
        builtin_config: Some(builtin.clone()),
        image: Some(card.clone()),
        ..bundle::Options::new(Board::Rpi3, &folder)
    })?;
    let context = crate::pack::context::context(Arch::Aarch64, &Default::default())?;
    let script_modules = context.index.packed_paths(
        &context.kernel.release,
        &context.index.select(SCRIPT_MODULES)?.load_order,
    );
    let script = dir.join("busybox-init.sh");
    std::fs::write(
        &script,
        busybox_script(&script_modules, "/dev/mmcblk0p1", BOX_ARGS),
    )?;
    let busybox = busybox::fetch(Arch::Aarch64)?;
    let busybox_initrd = dir.join("busybox.cpio.gz");
    initramfs::make_with(
        &initramfs::Options {
            arch: Arch::Aarch64,
            init: &script,
            net: None,
            kernel: &context.kernel,
            index: &context.index,
            // the bundle's modules, packed the same
            modules: &made.initramfs.selection.load_order,
            config: Some(&builtin),
            busybox: None,
        },
        &pi_busybox_extras(&busybox)?,
        &busybox_initrd,
    )?;
    Ok(PiSetup {
        kernel: made.kernel.clone(),
        dtb: made.dtb("bcm2837-rpi-3-b.dtb"),
        card,
        boxinit: made.initramfs.path.clone(),
        busybox: busybox_initrd,
    })
}

/// busybox, an empty `mdev.conf`, and its applet links — listed by the host's x86_64
/// busybox of the same Debian release (the arm64 one cannot run here).
fn pi_busybox_extras(busybox: &Path) -> Result<Vec<Extra>> {
    let host = busybox::fetch(Arch::X86_64)?;
    busybox_extras(busybox, applets(&host)?)
}

/// One raspi3b boot of `initrd` with the card, until the box asks for power-off.
fn boot(setup: &PiSetup, initrd: &Path) -> Result<String> {
    let mut boot = Boot::new(Arch::Aarch64, &setup.kernel, initrd);
    boot.machine = Machine::Raspi3b;
    boot.dtb = Some(setup.dtb.clone());
    boot.disk = Some(setup.card.clone());
    console_until(&boot, LAST_LINE, BOOT_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_reports_medians_and_ratio() {
        let row = PiRow {
            boxinit_ms: vec![1900.0, 2600.0, 2000.0],
            busybox_ms: vec![870.0, 1000.0, 900.0],
            round_ratios: vec![2.18, 2.6, 2.22],
            boxinit_kernel_ms: vec![4900.0, 5600.0, 5000.0],
            busybox_kernel_ms: vec![3870.0, 4000.0, 3900.0],
            kernel_to_init_ms: vec![3000.0; 6],
            failures: Vec::new(),
        };
        let text = row.markdown();
        assert!(text.contains("## Raspberry Pi 3 (QEMU raspi3b)"), "{text}");
        assert!(text.contains("| boxinit | 2000.0 ms |"), "{text}");
        assert!(
            text.contains("| 5000.0 ms | 4950.0-5300.0 ms | 3 |"),
            "{text}"
        );
        assert!(text.contains("| busybox script | 900.0 ms |"), "{text}");
        assert!(text.contains("Kernel start → `/init`: 3000.0 ms"), "{text}");
        assert!(
            text.contains("boxinit / busybox script: **2.22**"),
            "{text}"
        );
        assert!(row.summary().contains("ratio 2.22"));
        assert!(row.summary().contains("box: boxinit 5000.0 ms"));
        let empty = PiRow::default();
        assert!(empty.markdown().contains("| boxinit | no measurement |"));
    }

    #[test]
    fn bytes_section_has_every_file_to_the_byte() {
        let row = BootBytes {
            board: Board::Rpi4,
            config: boot_bytes::CardConfig::Wifi,
            files: vec![
                ("start4cd.elf".into(), 803_964),
                ("kernel8.img".into(), 11_255_630),
                ("initramfs.cpio.gz".into(), 9_369_072),
            ],
            unpacked: 16_000_000,
        };
        let text = PiRow::bytes_markdown(&[row]);
        assert!(
            text.contains(
                "| `rpi4`, `[wifi]` | `start4cd.elf` 803964, `kernel8.img` 11255630, \
                 `initramfs.cpio.gz` 9369072 | **21428666** (21.43 MB) | 9369072 | 16000000 |"
            ),
            "{text}"
        );
    }
}
