//! The benchmark's main comparison: boxinit's boot overhead against the seed's busybox script
//! and the floor, on the same kernel, modules and disk, booted in interleaved rounds; then
//! boxinit's profile (its phases at debug level), its reaping rate, and busybox's coldplug.
//! [`prepare`] builds and packs, [`measure`] boots; the report is `bench/report.rs`'s.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::bench::boot::{boot_initrd, save_console};
use crate::bench::inits::{self, busybox_script, COLDPLUG_SCRIPT};
use crate::bench::markers::{
    anon_rss_after, number_after, parse_phases, parse_reaping, parse_sample, seconds_after, Sample,
    Variant, BOX_ARGS, LAST_LINE, REAP_COUNT,
};
use crate::fetch::busybox;
use crate::fetch::kernel::KernelArgs;
use crate::media::image;
use crate::pack::binaries::{self, Flavor};
use crate::pack::extra::Extra;
use crate::pack::initramfs::{self, Initramfs};
use crate::tools::arch::Arch;
use crate::{progress, target_dir};

/// Boots at `boxinit.loglevel=debug` for the profile of the boot path.
pub const PROFILE_RUNS: usize = 3;
/// The profile's last phase, measured from the box's side.
const STARTING_THE_BOX: &str = "starting the box: setup done until the box's first words";
/// Boots of the busybox coldplug.
const COLDPLUG_RUNS: usize = 3;

/// What was built and packed for the run.
pub struct Setup {
    pub kernel: PathBuf,
    pub disk: PathBuf,
    pub reap_disk: PathBuf,
    pub initramfs: Vec<(Variant, Initramfs)>,
    /// What boxinit's initramfs packs (the boot disk's modules).
    pub boot_modules: Vec<String>,
    pub boxinit_size: u64,
    pub floor_size: u64,
    pub box_size: u64,
    pub net_size: u64,
}

/// Everything one benchmark run measured.
#[derive(Debug, Default)]
pub struct Results {
    pub samples: Vec<(Variant, Vec<Sample>)>,
    /// boxinit / floor and boxinit / busybox overhead ratios, one per round.
    pub round_ratios: Vec<(f64, f64)>,
    pub failures: Vec<String>,
    pub rss_kb: Vec<f64>,
    /// PID 1's anonymous memory (kB) in the same boots: [`anon_rss_after`].
    pub anon_kb: Vec<f64>,
    pub reap_rate: Option<f64>,
    pub reap_ms: Option<f64>,
    /// boxinit's own lines of a `boxinit.loglevel=debug` boot, with kernel timestamps.
    pub profile: Vec<String>,
    pub profile_sample: Option<Sample>,
    /// Each phase's durations (ms) over the profile boots, in boot order; the last entry is
    /// starting the box (setup done until the box's first words).
    pub profile_phases: Vec<(String, Vec<f64>)>,
    /// Busybox coldplug durations (ms), `coldplug: started` to `done`.
    pub coldplug_ms: Vec<f64>,
}

impl Results {
    pub fn overheads(&self, variant: Variant) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|(v, _)| *v == variant)
            .flat_map(|(_, s)| s.iter().map(Sample::overhead_ms))
            .collect()
    }

    pub fn init_starts(&self, variant: Variant) -> Vec<f64> {
        self.each(variant, |s| Some(s.init_start * 1e3))
    }

    /// `f` of each sample of `variant` that has it.
    pub fn each(&self, variant: Variant, f: impl Fn(&Sample) -> Option<f64>) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|(v, _)| *v == variant)
            .flat_map(|(_, s)| s.iter().filter_map(&f))
            .collect()
    }
}

/// The order of the variants in round `round`: rotated each round, so that none always
/// follows another (caches, a neighbour's build starting) in the same place.
pub fn round_order(round: usize) -> [Variant; 3] {
    let mut order = Variant::ALL;
    order.rotate_left(round % Variant::ALL.len());
    order
}

/// The interleaved rounds (`runs` boots of each init), then the profile boots, the reaping
/// boot and the busybox coldplug boots, on what [`prepare`] made.
pub fn measure(setup: &Setup, runs: usize) -> Result<Results> {
    let mut results = Results {
        samples: Variant::ALL.iter().map(|v| (*v, Vec::new())).collect(),
        ..Results::default()
    };
    for round in 0..runs {
        let mut overheads = [None; 3];
        for variant in round_order(round) {
            let console = boot(setup, variant, &setup.disk, "", LAST_LINE)?;
            let log = save_console(&format!("{}-{}.log", variant.dir(), round + 1), &console);
            let index = Variant::ALL.iter().position(|v| *v == variant).unwrap_or(0);
            match parse_sample(variant, &console) {
                Ok(sample) => {
                    overheads[index] = Some(sample.overhead_ms());
                    if let Some((_, samples)) =
                        results.samples.iter_mut().find(|(v, _)| *v == variant)
                    {
                        samples.push(sample);
                    }
                    if variant == Variant::Boxinit {
                        results
                            .rss_kb
                            .extend(number_after(&console, "demo: init rss "));
                        results.anon_kb.extend(anon_rss_after(&console));
                    }
                }
                Err(e) => {
                    results.failures.push(format!(
                        "round {} {}: {e:#} (console: {log})",
                        round + 1,
                        variant.name()
                    ));
                }
            }
        }
        let show = |o: Option<f64>| o.map_or("failed".to_string(), |o| format!("{o:.0}ms"));
        progress!(
            "round {}/{}: boxinit {}, busybox script {}, floor {}",
            round + 1,
            runs,
            show(overheads[0]),
            show(overheads[1]),
            show(overheads[2])
        );
        if let [Some(b), Some(s), Some(f)] = overheads {
            results.round_ratios.push((b / f, b / s));
        }
    }

    progress!("profile: {PROFILE_RUNS} boxinit boots with boxinit.loglevel=debug");
    for _ in 0..PROFILE_RUNS {
        // loglevel=8: the kernel prints debug records (boxinit's phases) on the console too
        let console = boot(
            setup,
            Variant::Boxinit,
            &setup.disk,
            "boxinit.loglevel=debug loglevel=8",
            LAST_LINE,
        )?;
        save_console("boxinit-profile.log", &console);
        results.profile = console
            .lines()
            .filter(|l| l.contains("] boxinit: ") || l.contains("Run /init"))
            .map(str::to_string)
            .collect();
        results.profile_sample = parse_sample(Variant::Boxinit, &console).ok();
        let mut phases = parse_phases(&results.profile);
        if let Some(Sample {
            exec: Some(exec),
            box_start,
            ..
        }) = results.profile_sample
        {
            phases.push((STARTING_THE_BOX.to_string(), (box_start - exec) * 1e3));
        }
        for (name, ms) in phases {
            match results.profile_phases.iter_mut().find(|(n, _)| *n == name) {
                Some((_, all)) => all.push(ms),
                None => results.profile_phases.push((name, vec![ms])),
            }
        }
    }

    progress!("reaping: {REAP_COUNT} zombies handed to boxinit at once");
    let console = boot(
        setup,
        Variant::Boxinit,
        &setup.reap_disk,
        "",
        "demo: reaped * per second",
    )?;
    (results.reap_ms, results.reap_rate) = parse_reaping(&console);
    let log = save_console("boxinit-reap.log", &console);
    if results.reap_rate.is_none() {
        results
            .failures
            .push(format!("reaping: no `demo: reaped` line (console: {log})"));
    }

    progress!("coldplug: busybox mdev -s + modprobe, {COLDPLUG_RUNS} boots");
    for run in 0..COLDPLUG_RUNS {
        let console = boot(
            setup,
            Variant::Busybox,
            &setup.disk,
            "rdinit=/coldplug.sh",
            "coldplug: done at * (CLOCK_BOOTTIME)",
        )?;
        let log = save_console(&format!("coldplug-{}.log", run + 1), &console);
        let start = console
            .lines()
            .find_map(|l| seconds_after(l, "coldplug: started at "));
        let done = console
            .lines()
            .find_map(|l| seconds_after(l, "coldplug: done at "));
        match (start, done) {
            (Some(start), Some(done)) => results.coldplug_ms.push((done - start) * 1e3),
            _ => results.failures.push(format!(
                "coldplug: no start and done markers (console: {log})"
            )),
        }
    }
    Ok(results)
}

/// Builds the three inits and the box, packs the initramfs of each and the two disks.
pub fn prepare(arch: Arch, kernel: &KernelArgs, flavor: Flavor) -> Result<Setup> {
    let built = binaries::built_as(arch, flavor)?;
    let floor = inits::build_floor(arch)?;
    let busybox = busybox::fetch(arch)?;
    let context = crate::pack::context::context(arch, kernel)?;
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let disk = make_disk(&dir, "disk", &built.demo_box, BOX_ARGS)?;
    let reap_arg = format!("reap={REAP_COUNT}");
    let reap_disk = make_disk(&dir, "reap", &built.demo_box, &[&reap_arg, "poweroff"])?;

    // What the boot disk needs, not `auto` (which packs every QEMU virtio driver): boxinit
    // finds them by coldplug, the busybox script and the floor insmod this same list.
    let boot_modules: Vec<String> = arch
        .default_modules()
        .iter()
        .map(|m| m.to_string())
        .collect();
    let options = |init, net| initramfs::Options {
        arch,
        init,
        net,
        kernel: &context.kernel,
        index: &context.index,
        modules: &boot_modules,
        config: None,
        busybox: None,
    };
    let mut packed = Vec::new();
    let boxinit = pack(
        &options(built.init.as_path(), Some(built.net.as_path())),
        &[],
        &dir,
        Variant::Boxinit,
    )?;
    // The same modules, in the same order, for the other two.
    let modules = context
        .index
        .packed_paths(&context.kernel.release, &boxinit.selection.load_order);
    packed.push((Variant::Boxinit, boxinit));

    let script = busybox_script(&modules, "/dev/vda1", BOX_ARGS);
    let script_path = dir.join("busybox-init.sh");
    std::fs::write(&script_path, &script)?;
    let mut extra = inits::busybox_extras(&busybox, inits::applets(&busybox)?)?;
    extra.push(Extra::File {
        path: "coldplug.sh".into(),
        mode: 0o755,
        data: COLDPLUG_SCRIPT.as_bytes().to_vec(),
    });
    packed.push((
        Variant::Busybox,
        pack(
            &options(script_path.as_path(), None),
            &extra,
            &dir,
            Variant::Busybox,
        )?,
    ));

    let extra = vec![
        Extra::File {
            path: "etc/floor.modules".into(),
            mode: 0o644,
            data: (modules.join("\n") + "\n").into_bytes(),
        },
        Extra::File {
            path: "etc/floor.args".into(),
            mode: 0o644,
            data: (BOX_ARGS.join("\n") + "\n").into_bytes(),
        },
    ];
    packed.push((
        Variant::Floor,
        pack(
            &options(floor.as_path(), None),
            &extra,
            &dir,
            Variant::Floor,
        )?,
    ));

    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Ok(Setup {
        kernel: context.kernel.image.clone(),
        disk,
        reap_disk,
        initramfs: packed,
        boot_modules,
        boxinit_size: size(&built.init),
        floor_size: size(&floor),
        box_size: size(&built.demo_box),
        net_size: size(&built.net),
    })
}

fn pack(
    opts: &initramfs::Options,
    extra: &[Extra],
    dir: &Path,
    variant: Variant,
) -> Result<Initramfs> {
    let out = dir.join(format!("{}.cpio.gz", variant.dir()));
    let made = initramfs::make_with(opts, extra, &out)?;
    progress!("{}: {}", variant.name(), initramfs::describe(&made));
    Ok(made)
}

/// A boot disk with the demo box and an init.toml that runs it with `args`.
fn make_disk(dir: &Path, name: &str, demo_box: &Path, args: &[&str]) -> Result<PathBuf> {
    let config = dir.join(format!("{name}.toml"));
    let args = toml::Value::Array(args.iter().map(|a| toml::Value::from(*a)).collect());
    std::fs::write(&config, format!("[box]\nargs = {args}\n"))?;
    let disk = dir.join(format!("{name}.img"));
    image::make(
        &disk,
        &image::ImageOptions {
            size_mib: 0,
            box_path: Some(demo_box.to_path_buf()),
            config: Some(config),
            files: None,
            label: None,
            gpt: false,
            hand_made: false,
            beside: Vec::new(),
        },
    )?;
    Ok(disk)
}

/// Boots `variant` with `disk` and `append` on the kernel command line; returns the console
/// once a line matching `until` (`*` for any text) was printed, then QEMU is stopped.
fn boot(setup: &Setup, variant: Variant, disk: &Path, append: &str, until: &str) -> Result<String> {
    let initrd = setup
        .initramfs
        .iter()
        .find(|(v, _)| *v == variant)
        .map(|(_, i)| i.path.clone())
        .context("no initramfs for this variant")?;
    boot_initrd(&setup.kernel, &initrd, disk, append, until)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_rotate_the_order() {
        assert_eq!(round_order(0), Variant::ALL);
        assert_eq!(
            round_order(1),
            [Variant::Busybox, Variant::Floor, Variant::Boxinit]
        );
        assert_eq!(round_order(3), Variant::ALL);
    }
}
