//! The benchmark's Raspberry Pi row: boxinit against the seed's busybox script on QEMU
//! `raspi3b`, with the same `rpi3` bundle (kernel, device tree, modules) and the same SD card;
//! interleaved boots, medians, one ratio, and the report's section of them. The statistics
//! (`bench/stats.rs`), the x86_64 rows (`bench/overhead.rs`) and the rest of the report
//! (`bench/report.rs`) are elsewhere; this file prepares and boots the Pi's two variants.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bench::boot::console_until;
use crate::bench::inits::{applets, busybox_extras, busybox_script};
use crate::bench::markers::{parse_sample, Variant, BOX_ARGS, LAST_LINE};
use crate::bench::stats::Stats;
use crate::fetch::busybox;
use crate::media::board::Board;
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

/// The Pi row's measurements: box start minus init start (ms) per variant.
#[derive(Debug, Default)]
pub struct PiRow {
    pub boxinit_ms: Vec<f64>,
    pub busybox_ms: Vec<f64>,
    /// boxinit / busybox per round (both boots of the round measured)
    pub round_ratios: Vec<f64>,
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
                    match variant {
                        Variant::Boxinit => {
                            overheads[0] = Some(ms);
                            row.boxinit_ms.push(ms);
                        }
                        _ => {
                            overheads[1] = Some(ms);
                            row.busybox_ms.push(ms);
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
    /// The report's section: medians and the ratio.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "\n## Raspberry Pi 3 (QEMU raspi3b)\n\n\
             The `rpi3` bundle (`cargo xtask bundle`): Debian's arm64 kernel and \
             `bcm2837-rpi-3-b.dtb`, the same SD card image for both; boxinit coldplugs, the \
             seed's busybox script insmods the SD host, FAT and watchdog modules and waits for \
             `/dev/mmcblk0p1`. Overhead: the box's start minus the init's start \
             (`CLOCK_BOOTTIME`), interleaved boots, TCG single-threaded.\n\n\
             | init | median | IQR | n |\n| --- | --- | --- | --- |\n",
        );
        for (name, values) in [
            ("boxinit", &self.boxinit_ms),
            ("busybox script", &self.busybox_ms),
        ] {
            match Stats::of(values) {
                Some(s) => {
                    let _ = writeln!(
                        out,
                        "| {name} | {:.1} ms | {:.1}-{:.1} ms | {} |",
                        s.median, s.q1, s.q3, s.n
                    );
                }
                None => {
                    let _ = writeln!(out, "| {name} | no measurement | | 0 |");
                }
            }
        }
        if let Some(s) = Stats::of(&self.round_ratios) {
            let _ = writeln!(
                out,
                "\nboxinit / busybox script: **{:.2}** (median of {} per-round ratios; IQR \
                 {:.2}-{:.2})",
                s.median, s.n, s.q1, s.q3
            );
        }
        out
    }

    /// One line for stdout.
    pub fn summary(&self) -> String {
        let median =
            |v: &[f64]| Stats::of(v).map_or("-".to_string(), |s| format!("{:.1} ms", s.median));
        format!(
            "raspi3b: boxinit overhead median {}, busybox script {}, ratio {}\n",
            median(&self.boxinit_ms),
            median(&self.busybox_ms),
            Stats::of(&self.round_ratios).map_or("-".to_string(), |s| format!("{:.2}", s.median))
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
            failures: Vec::new(),
        };
        let text = row.markdown();
        assert!(text.contains("## Raspberry Pi 3 (QEMU raspi3b)"), "{text}");
        assert!(text.contains("| boxinit | 2000.0 ms |"), "{text}");
        assert!(text.contains("| busybox script | 900.0 ms |"), "{text}");
        assert!(
            text.contains("boxinit / busybox script: **2.22**"),
            "{text}"
        );
        assert!(row.summary().contains("ratio 2.22"));
        let empty = PiRow::default();
        assert!(empty.markdown().contains("| boxinit | no measurement |"));
    }
}
