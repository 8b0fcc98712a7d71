//! The benchmark's figures beside the three-init comparison (`bench/overhead.rs`): the small build
//! (size and PID 1's memory, booted), the initramfs and boot overhead with the kernel's whole
//! module tree (`--modules all`), and coldplug at scale (`bench/coldplug_scale.rs`). Each is a
//! section of its own, so that more rows (another board, another build) are one more entry.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::bench::boot::boot_initrd;
use crate::bench::coldplug_scale::{self, Measured};
use crate::bench::markers::{anon_rss_after, number_after, parse_sample, Variant, LAST_LINE};
use crate::bench::stats::{kib, median, verdict, Stats};
use crate::fetch::kernel::KernelArgs;
use crate::pack::binaries::{Built, Flavor};
use crate::pack::initramfs;
use crate::tools::arch::Arch;
use crate::{progress, target_dir};

/// Targets of the issue this section reports on.
const SMALL_MAX_BYTES: u64 = 500 * 1024;
const SMALL_MAX_RSS_KB: f64 = 550.0;
/// Resolving the devices through the index costs at most this share of the linear scan.
const SCALE_MAX_SHARE: f64 = 1.0 / 20.0;
/// Boots per extra variant (each is one more QEMU boot of boxinit).
const BOOTS: usize = 3;

/// What one more build or initramfs of boxinit measured when booted.
#[derive(Debug, Default)]
pub struct Booted {
    /// Box start minus `/init` start, ms, per boot.
    pub overhead_ms: Vec<f64>,
    /// PID 1's VmRSS (kB) while supervising, per boot.
    pub rss_kb: Vec<f64>,
    /// PID 1's anonymous memory (kB) in the same boots.
    pub anon_kb: Vec<f64>,
}

/// The small build's figures, or why there are none.
#[derive(Debug)]
pub enum Small {
    Measured {
        x86_64: u64,
        aarch64: Option<u64>,
        booted: Booted,
    },
    NotBuilt(String),
}

/// `--modules all`: the initramfs and the boots with it.
#[derive(Debug)]
pub struct AllModules {
    pub modules: usize,
    pub initramfs_bytes: u64,
    pub booted: Booted,
}

/// Everything this file adds to the report.
#[derive(Debug)]
pub struct Extra {
    pub small: Small,
    pub all_modules: Option<AllModules>,
    pub scale: Vec<Measured>,
    /// Instruction counts of the kernel-free phases (callgrind), or why there are none.
    pub instructions: Result<Vec<crate::bench::callgrind::Count>, String>,
    pub failures: Vec<String>,
}

/// What `bench/overhead.rs` prepared that the extra boots reuse.
pub struct Inputs<'a> {
    pub kernel: &'a KernelArgs,
    /// The boot disk (demo box, `rss poweroff`).
    pub disk: &'a Path,
    /// The modules boxinit's own initramfs packs.
    pub boot_modules: &'a [String],
    pub aarch64: bool,
}

/// Builds, packs and boots the extra variants and times coldplug at scale.
pub fn run(inputs: &Inputs) -> Result<Extra> {
    let arch = Arch::X86_64;
    let mut failures = Vec::new();
    let context = crate::pack::context::context(arch, inputs.kernel)?;
    let dir = target_dir().join("bench");
    let pack = |built: &Built, modules: &[String], name: &str| {
        let options = initramfs::Options {
            arch,
            init: &built.init,
            net: Some(&built.net),
            kernel: &context.kernel,
            index: &context.index,
            modules,
            config: None,
            busybox: None,
        };
        initramfs::make_with(&options, &[], &dir.join(format!("{name}.cpio.gz")))
    };

    progress!("small build: size, and {BOOTS} boots of it");
    let small = match crate::pack::binaries::built_as(arch, Flavor::Small) {
        Ok(built) => {
            let initramfs = pack(&built, inputs.boot_modules, "boxinit-small")?;
            // aarch64's small build is `cargo xtask build --small --arch aarch64` (minutes of
            // build-std): reported when it was built, not built here.
            let small_aarch64 = crate::target_dir()
                .join("small")
                .join(Arch::Aarch64.triple())
                .join("release/boxinit");
            let aarch64 = small_aarch64.is_file().then(|| size(&small_aarch64));
            Small::Measured {
                x86_64: size(&built.init),
                aarch64,
                booted: boots(
                    &context.kernel.image,
                    &initramfs.path,
                    inputs.disk,
                    "small",
                    &mut failures,
                )?,
            }
        }
        Err(e) => Small::NotBuilt(format!("{e:#}")),
    };

    progress!("--modules all: the whole module tree packed, {BOOTS} boots");
    let stable = crate::pack::binaries::built(arch)?;
    let all = pack(&stable, &["all".to_string()], "boxinit-all-modules")?;
    let all_modules = Some(AllModules {
        modules: all.selection.load_order.len(),
        initramfs_bytes: all.size,
        booted: boots(
            &context.kernel.image,
            &all.path,
            inputs.disk,
            "all-modules",
            &mut failures,
        )?,
    });

    progress!("coldplug at scale: the alias index against the linear scan");
    let mut scale = Vec::new();
    let mut instructions = Err("no module tree".to_string());
    let mut arches = vec![(arch, inputs.kernel.clone())];
    if inputs.aarch64 {
        arches.push((Arch::Aarch64, KernelArgs::default()));
    }
    for (arch, kernel) in arches {
        match crate::pack::context::context(arch, &kernel) {
            Ok(context) => {
                let setup = coldplug_scale::setup(arch, &context.index);
                scale.push(coldplug_scale::measure(&setup, 5)?);
                // the last tree (arm64's when there is one), as `cargo xtask test` counts it
                progress!("instruction counts ({arch}): the kernel-free phases under callgrind");
                instructions = crate::bench::callgrind::measure(arch, &context.index)
                    .map_err(|e| format!("{e:#}"));
            }
            Err(e) => failures.push(format!("coldplug at scale ({arch}): no kernel: {e:#}")),
        }
    }
    Ok(Extra {
        small,
        all_modules,
        scale,
        instructions,
        failures,
    })
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// [`BOOTS`] boots of `initrd` on `disk`, each until the box asks for power-off.
fn boots(
    kernel: &Path,
    initrd: &Path,
    disk: &Path,
    name: &str,
    failures: &mut Vec<String>,
) -> Result<Booted> {
    let mut booted = Booted::default();
    for n in 0..BOOTS {
        let console = boot_initrd(kernel, initrd, disk, "", LAST_LINE)?;
        let log: PathBuf = target_dir()
            .join("bench")
            .join(format!("boxinit-{name}-{}.log", n + 1));
        let _ = std::fs::write(&log, &console);
        match parse_sample(Variant::Boxinit, &console) {
            Ok(sample) => booted.overhead_ms.push(sample.overhead_ms()),
            Err(e) => failures.push(format!(
                "{name} boot {}: {e:#} (console: {})",
                n + 1,
                log.display()
            )),
        }
        booted
            .rss_kb
            .extend(number_after(&console, "demo: init rss "));
        booted.anon_kb.extend(anon_rss_after(&console));
    }
    Ok(booted)
}

impl Extra {
    /// Rows for the report's targets table.
    pub fn target_rows(&self) -> String {
        let mut md = String::new();
        match &self.small {
            Small::Measured { x86_64, booted, .. } => {
                let _ = writeln!(
                    md,
                    "| small build (`--small`) ≤ 500 KiB (x86_64) | {} | | {} |",
                    kib(*x86_64),
                    verdict(*x86_64 <= SMALL_MAX_BYTES)
                );
                if let Some(rss) = Stats::of(&booted.rss_kb) {
                    let _ = writeln!(
                        md,
                        "| small build: PID 1 VmRSS ≤ 550 kB while supervising | {:.0} kB (anonymous: {} kB) | {:.0} – {:.0} kB | {} |",
                        rss.median,
                        median(&booted.anon_kb),
                        rss.min,
                        rss.max,
                        verdict(rss.max <= SMALL_MAX_RSS_KB)
                    );
                }
            }
            Small::NotBuilt(why) => {
                let _ = writeln!(
                    md,
                    "| small build (`--small`) | not built: {} | | |",
                    why.replace('\n', " ")
                );
            }
        }
        for m in self.scale.iter().filter(|m| m.arch == Arch::Aarch64) {
            let share = m.indexed.as_secs_f64() / m.linear.as_secs_f64().max(1e-9);
            let _ = writeln!(
                md,
                "| coldplug at scale: {} devices against the arm64 alias list ≤ 1/20 of the linear scan | 1/{:.0} | | {} |",
                m.devices,
                1.0 / share.max(1e-9),
                verdict(share <= SCALE_MAX_SHARE)
            );
        }
        md
    }

    /// The sections after the other figures.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "\n## The small build and the whole module tree\n");
        let _ = writeln!(
            md,
            "| what | binary | initramfs | boot overhead (median of {BOOTS}) | PID 1 VmRSS (median) |\n| --- | ---: | ---: | ---: | ---: |"
        );
        match &self.small {
            Small::Measured {
                x86_64,
                aarch64,
                booted,
            } => {
                let _ = writeln!(
                    md,
                    "| small build, x86_64 (aarch64: {}) | {} | | {} ms | {} kB |",
                    aarch64.map_or("not built".to_string(), kib),
                    kib(*x86_64),
                    median(&booted.overhead_ms),
                    median(&booted.rss_kb)
                );
            }
            Small::NotBuilt(why) => {
                let _ = writeln!(
                    md,
                    "| small build | not built: {} | | | |",
                    why.replace('\n', " ")
                );
            }
        }
        if let Some(all) = &self.all_modules {
            let _ = writeln!(
                md,
                "| stable build, `--modules all` ({} modules) | | {} | {} ms | {} kB |",
                all.modules,
                kib(all.initramfs_bytes),
                median(&all.booted.overhead_ms),
                median(&all.booted.rss_kb)
            );
        }
        let _ = writeln!(md, "\n## Coldplug at scale\n");
        let _ = writeln!(
            md,
            "The kernel's whole module tree indexed by xtask (as `--modules all` packs it) and {} \
             devices: the modaliases read from QEMU's machines (`bench/modaliases/`) and generated \
             ones of the same shapes, resolved by the init's own code (`modindex`) on the host, \
             best of 5. *Load*: parsing `modules.alias` with the alias index xtask packs beside \
             it (`modules.alias.boxinit`), as the init does at boot, and building the index \
             instead, as it does without that file. The packed index is the built one, and both \
             lookups give the same modules for every device (checked here and by `cargo xtask \
             test`).\n",
            coldplug_scale::DEVICES
        );
        let _ = writeln!(
            md,
            "| kernel | modules | aliases | `modules.alias` | devices (claimed) | load, packed index | load, index built | linear scan | alias index | index / linear |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for m in &self.scale {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} ({}) | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | 1/{:.0} |",
                m.arch,
                m.modules,
                m.aliases,
                kib(m.alias_bytes as u64),
                m.devices,
                m.matched,
                m.load_packed.as_secs_f64() * 1e3,
                m.load_built.as_secs_f64() * 1e3,
                m.linear.as_secs_f64() * 1e3,
                m.indexed.as_secs_f64() * 1e3,
                m.linear.as_secs_f64() / m.indexed.as_secs_f64().max(1e-9)
            );
        }
        let _ = writeln!(md, "\n## Instruction counts of the kernel-free phases\n");
        let _ = writeln!(
            md,
            "`bench/phases` (the init's own code, release profile) under `valgrind \
             --tool=callgrind`, one phase a run; the same binary on the same input gives the same \
             count. `cargo xtask test` fails when one grows more than 10 % over \
             `bench/callgrind.txt` (`UPDATE_CALLGRIND=1` rewrites it). Inputs: \
             `xtask/src/bench/callgrind.rs`.\n"
        );
        match &self.instructions {
            Ok(counts) => {
                let _ = writeln!(
                    md,
                    "| phase | instructions | what it did |\n| --- | ---: | --- |"
                );
                for c in counts {
                    let _ = writeln!(md, "| {} | {} | {} |", c.phase, c.instructions, c.summary);
                }
            }
            Err(why) => {
                let _ = writeln!(md, "Not measured: {}", why.replace('\n', " "));
            }
        }
        md
    }
}
