//! Task `bench`: boot overhead of boxinit against the seed's busybox script and a hand-written
//! floor, on the same kernel, modules and boot disk, plus the figures the project promises
//! (binary and initramfs size, PID 1's memory, reaping rate). Writes `BENCHMARKS.md` and the
//! timeline chart. Measuring happens inside the guest: each `/init` prints when it started
//! and the box prints when it started, both read from `CLOCK_BOOTTIME`; overhead is the
//! difference. The machine is shared and noisy, so the variants are booted interleaved and
//! the results are medians, ratios of medians and the spread of per-round ratios.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::fetch::busybox;
use crate::fetch::kernel::KernelArgs;
use crate::media::image;
use crate::pack::initramfs::{self, Extra, Initramfs};
use crate::qemu::machine::{self, Boot};
use crate::tools::arch::Arch;
use crate::{progress, target_dir, workspace_root};

/// What the box does in every boot: report PID 1's memory, then ask for power-off (the
/// benchmark stops QEMU as soon as it has seen that line).
pub const BOX_ARGS: &[&str] = &["rss", "poweroff"];
/// Zombies handed to boxinit at once to time its reaping.
pub const REAP_COUNT: u32 = 200;
/// How long one benchmark boot may take.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// The line that ends a benchmark boot: every marker has been printed by then.
pub const LAST_LINE: &str = "demo: asking init to poweroff";

/// What `cargo xtask bench` does.
#[derive(Clone, Debug)]
pub struct Options {
    pub kernel: KernelArgs,
    /// Boots per variant.
    pub runs: usize,
    /// Where to write the report (the chart goes beside it).
    pub report: PathBuf,
    /// Also build for aarch64 to report its binary size.
    pub aarch64: bool,
    /// Which build of boxinit (and the demo box) to benchmark.
    pub flavor: crate::pack::binaries::Flavor,
}

/// The `/init`s compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// boxinit as shipped.
    Boxinit,
    /// The seed's busybox shell script doing the same job.
    Busybox,
    /// The fewest syscalls that do the job (`bench/floor`).
    Floor,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Boxinit, Variant::Busybox, Variant::Floor];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Boxinit => "boxinit",
            Variant::Busybox => "busybox script",
            Variant::Floor => "floor",
        }
    }

    /// The prefix of the init's start marker: `<prefix>: started at 1.234s (CLOCK_BOOTTIME)`.
    fn marker(self) -> &'static str {
        match self {
            Variant::Boxinit => "boxinit",
            Variant::Busybox => "script",
            Variant::Floor => "floor",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Variant::Boxinit => "boxinit",
            Variant::Busybox => "busybox",
            Variant::Floor => "floor",
        }
    }
}

/// One boot's markers, in seconds of `CLOCK_BOOTTIME`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub init_start: f64,
    /// When the init was done with its setup and started the box (boxinit: `setup done in`,
    /// the others: `exec at`), if it said.
    pub exec: Option<f64>,
    pub box_start: f64,
}

impl Sample {
    /// Box start minus init start, in milliseconds.
    pub fn overhead_ms(&self) -> f64 {
        (self.box_start - self.init_start) * 1e3
    }
}

/// Reads the init's and the box's start markers from a console.
pub fn parse_sample(variant: Variant, console: &str) -> Result<Sample> {
    let init = format!("{}: started at ", variant.marker());
    let init_start = console
        .lines()
        .find_map(|l| seconds_after(l, &init))
        .with_context(|| format!("no `{init}X.XXXs` line"))?;
    let box_start = console
        .lines()
        .find_map(|l| seconds_after(l, "demo: uptime "))
        .context("no `demo: uptime X.XXXs` line")?;
    let exec = match variant {
        Variant::Boxinit => {
            number_after(console, "boxinit: setup done in ").map(|ms| init_start + ms / 1e3)
        }
        _ => {
            let exec = format!("{}: exec at ", variant.marker());
            console.lines().find_map(|l| seconds_after(l, &exec))
        }
    };
    Ok(Sample {
        init_start,
        exec,
        box_start,
    })
}

/// The number of seconds that follows `prefix` in `line` (`1.234s`), anywhere in the line
/// (the kernel's timestamp may come first, and a kernel line may follow with no newline
/// between: the box and the kernel share the console).
fn seconds_after(line: &str, prefix: &str) -> Option<f64> {
    let (_, rest) = line.split_once(prefix)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    if !rest[end..].starts_with('s') {
        return None;
    }
    rest[..end].parse().ok()
}

/// The first `demo: <prefix>N...` number, e.g. `init rss ` → the kB.
pub fn number_after(console: &str, prefix: &str) -> Option<f64> {
    console.lines().find_map(|l| {
        let (_, rest) = l.split_once(prefix)?;
        rest.split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?
            .parse()
            .ok()
    })
}

/// PID 1's anonymous memory (heap, stack, data) in kB, from the box's `rss` line:
/// `demo: init rss 804 kB (anon 80 kB, file 4 kB, shmem 720 kB)`. The rest of VmRSS is the
/// binary's mapped pages (shmem: initramfs files are tmpfs pages), in RAM whether mapped or not.
pub fn anon_rss_after(console: &str) -> Option<f64> {
    let line = console.lines().find(|l| l.contains("demo: init rss "))?;
    number_after(line, "(anon ")
}

/// `demo: reaped 200 zombies in 41.5ms: 4819 per second` → (41.5, 4819).
fn parse_reaping(console: &str) -> (Option<f64>, Option<f64>) {
    let Some(line) = console.lines().find(|l| l.contains("demo: reaped ")) else {
        return (None, None);
    };
    (
        number_after(line, " zombies in "),
        number_after(line, "ms: "),
    )
}

/// boxinit's `phase NAME: Nus` debug lines as (name, ms), in order.
pub fn parse_phases(lines: &[String]) -> Vec<(String, f64)> {
    lines
        .iter()
        .filter_map(|l| {
            let (_, rest) = l.split_once("boxinit: phase ")?;
            let (name, rest) = rest.split_once(": ")?;
            let us: f64 = rest.split("us").next()?.parse().ok()?;
            Some((name.to_string(), us / 1e3))
        })
        .collect()
}

/// Median, quartiles and extremes of a set of numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub n: usize,
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// `None` for an empty set. Quantiles interpolate linearly between the sorted values.
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            let pos = q * (sorted.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        };
        Some(Stats {
            n: sorted.len(),
            median: quantile(0.5),
            q1: quantile(0.25),
            q3: quantile(0.75),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }
}

/// The order of the variants in round `round`: rotated each round, so that none always
/// follows another (caches, a neighbour's build starting) in the same place.
pub fn round_order(round: usize) -> [Variant; 3] {
    let mut order = Variant::ALL;
    order.rotate_left(round % Variant::ALL.len());
    order
}

/// The seed's `/init` (see shared/seed: the blog post), doing boxinit's job with busybox:
/// mount proc, sys, a tmpfs `/dev` and devpts, create the nodes, insmod the modules in
/// dependency order, `mdev -s`, wait for the partition, mount it, exec the box. The applet
/// links are packed in the initramfs instead of `busybox --install -s` at boot (that would
/// only add to its time). proc must be mounted to read the clock from /proc/uptime (10 ms
/// steps), so its marker comes after that mount.
pub fn busybox_script(modules: &[String], device: &str, box_args: &[&str]) -> String {
    let mut s = String::from(
        "#!/bin/sh\n\
         # The seed's init script doing boxinit's job, for `cargo xtask bench`.\n\
         mount -t proc proc /proc\n\
         read up idle < /proc/uptime\n\
         echo \"script: started at ${up}s (CLOCK_BOOTTIME)\"\n\
         mount -t sysfs sysfs /sys\n\
         mount -t tmpfs -o size=64k,mode=0755 tmpfs /dev\n\
         mkdir /dev/pts\n\
         mount -t devpts devpts /dev/pts\n\
         mknod /dev/null c 1 3\n\
         mknod /dev/tty c 5 0\n\
         mknod /dev/console c 5 1\n",
    );
    for module in modules {
        let _ = writeln!(s, "insmod {module}");
    }
    let _ = write!(
        s,
        "mdev -s\n\
         while [ ! -b {device} ]; do sleep 0.01; mdev -s; done\n\
         mount -t vfat -o ro,nosuid,nodev,noatime {device} /boot\n\
         cd /boot\n\
         read up idle < /proc/uptime\n\
         echo \"script: exec at ${{up}}s (CLOCK_BOOTTIME)\"\n\
         exec /boot/box {}\n",
        box_args.join(" ")
    );
    s
}

/// Busybox's coldplug, as a second `/init` in the busybox image (`rdinit=/coldplug.sh`):
/// `mdev -s`, then `modprobe` every modalias sysfs shows, again until the boot disk's
/// partition node is there (a bus's devices appear only once its driver is loaded). Its two
/// markers time it.
pub const COLDPLUG_SCRIPT: &str = "#!/bin/sh\n\
# busybox coldplug for `cargo xtask bench`: mdev -s, then modprobe every modalias, until\n\
# the boot disk's partition shows up\n\
mount -t proc proc /proc\n\
mount -t sysfs sysfs /sys\n\
mount -t tmpfs -o size=64k,mode=0755 tmpfs /dev\n\
read up idle < /proc/uptime\n\
echo \"coldplug: started at ${up}s (CLOCK_BOOTTIME)\"\n\
n=0\n\
until mdev -s; [ -b /dev/vda1 ] || [ $n -ge 100 ]; do\n\
  find /sys/devices -name modalias | xargs cat | sort -u | xargs -r modprobe -a -q\n\
  n=$((n+1))\n\
done\n\
read up idle < /proc/uptime\n\
echo \"coldplug: done at ${up}s after $n passes (CLOCK_BOOTTIME)\"\n";
/// Targets (issue 10): boxinit's overhead against the floor's and the busybox script's (the
/// median of the per-round ratios), the stable x86_64 binary, PID 1's memory while it
/// supervises.
const FLOOR_TARGET: f64 = 1.10;
const SCRIPT_TARGET: f64 = 0.75;
const SIZE_TARGET: u64 = 800 * 1024;
const RSS_TARGET_KB: f64 = 850.0;

/// Boots at `boxinit.loglevel=debug` for the profile of the boot path.
const PROFILE_RUNS: usize = 3;
/// The profile's last phase, measured from the box's side.
const STARTING_THE_BOX: &str = "starting the box: setup done until the box's first words";
/// Boots of the busybox coldplug.
const COLDPLUG_RUNS: usize = 3;

/// What was built and packed for the run.
struct Setup {
    kernel: PathBuf,
    disk: PathBuf,
    reap_disk: PathBuf,
    initramfs: Vec<(Variant, Initramfs)>,
    /// What boxinit's initramfs packs (the boot disk's modules).
    boot_modules: Vec<String>,
    boxinit_size: u64,
    floor_size: u64,
    box_size: u64,
    net_size: u64,
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
    fn overheads(&self, variant: Variant) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|(v, _)| *v == variant)
            .flat_map(|(_, s)| s.iter().map(Sample::overhead_ms))
            .collect()
    }

    fn init_starts(&self, variant: Variant) -> Vec<f64> {
        self.each(variant, |s| Some(s.init_start * 1e3))
    }

    /// `f` of each sample of `variant` that has it.
    fn each(&self, variant: Variant, f: impl Fn(&Sample) -> Option<f64>) -> Vec<f64> {
        self.samples
            .iter()
            .filter(|(v, _)| *v == variant)
            .flat_map(|(_, s)| s.iter().filter_map(&f))
            .collect()
    }
}

/// `cargo xtask bench`.
pub fn run(opts: &Options) -> Result<()> {
    let arch = Arch::X86_64;
    if opts.runs == 0 {
        bail!("--runs must be at least 1");
    }
    machine::check_qemu(arch)?;
    let started = Instant::now();
    let setup = prepare(arch, &opts.kernel, opts.flavor)?;
    let aarch64_size = if opts.aarch64 {
        match crate::pack::binaries::build_as(Arch::Aarch64, opts.flavor) {
            Ok(built) => Some(std::fs::metadata(&built.init)?.len()),
            Err(e) => {
                progress!("aarch64 build failed, its size is not reported: {e:#}");
                None
            }
        }
    } else {
        None
    };

    let mut results = Results {
        samples: Variant::ALL.iter().map(|v| (*v, Vec::new())).collect(),
        ..Results::default()
    };
    for round in 0..opts.runs {
        let mut overheads = [None; 3];
        for variant in round_order(round) {
            let console = boot(&setup, variant, &setup.disk, "", LAST_LINE)?;
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
            opts.runs,
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
            &setup,
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
        &setup,
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
            &setup,
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

    // the small build, --modules all, coldplug at scale (bench_extra.rs)
    let extra = crate::bench_extra::run(&crate::bench_extra::Inputs {
        kernel: &opts.kernel,
        disk: &setup.disk,
        boot_modules: &setup.boot_modules,
        aarch64: opts.aarch64,
    })?;
    results.failures.extend(extra.failures.iter().cloned());

    // the Raspberry Pi row (bench_pi.rs): the rpi3 bundle on QEMU raspi3b
    progress!("raspberry pi: boxinit and the busybox script on raspi3b, the rpi3 bundle");
    let pi = crate::bench_pi::run(opts.runs.min(5))?;
    results.failures.extend(pi.failures.iter().cloned());

    let report = Report {
        results: &results,
        setup: &setup,
        extra: &extra,
        aarch64_size,
        runs: opts.runs,
        elapsed: started.elapsed(),
        machine: machine(),
    };
    let chart = opts.report.with_file_name("bench-timeline.svg");
    std::fs::write(&chart, report.svg())
        .with_context(|| format!("cannot write {}", chart.display()))?;
    let kept = std::fs::read_to_string(&opts.report)
        .ok()
        .and_then(|old| kept_analysis(&old).map(str::to_string));
    let mut text = report.markdown(&chart);
    text.push_str(&extra.markdown());
    text.push_str(&pi.markdown());
    text.push_str(kept.as_deref().unwrap_or(ANALYSIS_MARKER));
    std::fs::write(&opts.report, &text)
        .with_context(|| format!("cannot write {}", opts.report.display()))?;
    print!("{}{}", report.summary(), pi.summary());
    progress!(
        "wrote {} and {} in {:.0}s",
        crate::display_path(&opts.report),
        crate::display_path(&chart),
        started.elapsed().as_secs_f64()
    );
    if !results.failures.is_empty() {
        for f in &results.failures {
            eprintln!("xtask: bench: {f}");
        }
        bail!("{} boot(s) gave no measurement", results.failures.len());
    }
    Ok(())
}

/// Builds the three inits and the box, packs the initramfs of each and the two disks.
fn prepare(
    arch: Arch,
    kernel: &KernelArgs,
    flavor: crate::pack::binaries::Flavor,
) -> Result<Setup> {
    let built = crate::pack::binaries::built_as(arch, flavor)?;
    let floor = build_floor(arch)?;
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
    let mut extra = busybox_extras(&busybox, applets(&busybox)?)?;
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
        },
    )?;
    Ok(disk)
}

/// Builds `bench/floor` for `arch` (static musl, release) and returns the binary.
fn build_floor(arch: Arch) -> Result<PathBuf> {
    let triple = arch.triple();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--release", "--quiet", "--target", triple])
        .args(["--package", "boxinit-floor"])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build of the floor (bench/floor) failed");
    }
    Ok(target_dir().join(triple).join("release/floor"))
}

/// What the busybox script's initramfs adds: `/bin/busybox`, an empty `/etc/mdev.conf`,
/// and the `applets` linked to busybox.
pub fn busybox_extras(busybox: &Path, applets: Vec<String>) -> Result<Vec<Extra>> {
    let mut extra = vec![
        Extra::File {
            path: "bin/busybox".into(),
            mode: 0o755,
            data: std::fs::read(busybox)
                .with_context(|| format!("cannot read {}", busybox.display()))?,
        },
        Extra::File {
            path: "etc/mdev.conf".into(),
            mode: 0o644,
            data: Vec::new(),
        },
    ];
    for applet in applets {
        extra.push(Extra::Symlink {
            path: applet,
            target: "/bin/busybox".into(),
        });
    }
    Ok(extra)
}

/// The applet links of `busybox --list-full` (`bin/sh`, `sbin/mdev`, ...), what
/// `busybox --install -s` would make at boot.
pub fn applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} --list-full", busybox.display()))?;
    let list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "bin/busybox")
        .map(str::to_string)
        .collect();
    for needed in ["bin/sh", "sbin/mdev", "sbin/insmod", "bin/mount"] {
        if !list.iter().any(|l| l == needed) {
            bail!("{} --list-full has no {needed}", busybox.display());
        }
    }
    Ok(list)
}

/// The line after which BENCHMARKS.md is written by hand (the analysis of the figures): a
/// new run rewrites everything above it and keeps everything from it on.
const ANALYSIS_MARKER: &str =
    "<!-- Everything below is written by hand and kept by `cargo xtask bench`. -->\n";

/// The hand-written part of an earlier report, marker included.
fn kept_analysis(report: &str) -> Option<&str> {
    report.find(ANALYSIS_MARKER).map(|at| &report[at..])
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

/// Boots x86_64 `kernel` with `initrd` and `disk`; returns the console once a line matching
/// `until` was printed (QEMU is then stopped).
pub fn boot_initrd(
    kernel: &Path,
    initrd: &Path,
    disk: &Path,
    append: &str,
    until: &str,
) -> Result<String> {
    let mut boot = Boot::new(Arch::X86_64, kernel, initrd);
    boot.disk = Some(disk.to_path_buf());
    boot.append = append.to_string();
    let mut child = machine::command(&boot, false)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run QEMU")?;
    let (console, _) =
        crate::qemu::console::watch(&mut child, &[until.to_string()], false, BOOT_TIMEOUT, None)?;
    Ok(console)
}

/// Keeps a boot's console as target/bench/`name` and returns its path.
fn save_console(name: &str, console: &str) -> String {
    let path = target_dir().join("bench").join(name);
    let _ = std::fs::write(&path, console);
    crate::display_path(&path)
}

/// `nproc`, the CPU model and the load average, for the report.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpus} CPUs ({model}), load average {load} at the end of the run; QEMU TCG (no KVM), 1 vCPU, 256 MiB")
}

/// The report: markdown, the chart, the summary on stdout.
struct Report<'a> {
    results: &'a Results,
    setup: &'a Setup,
    extra: &'a crate::bench_extra::Extra,
    aarch64_size: Option<u64>,
    runs: usize,
    elapsed: Duration,
    machine: String,
}

/// One targets-table verdict.
fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

impl Report<'_> {
    fn stats(&self, variant: Variant) -> Option<Stats> {
        Stats::of(&self.results.overheads(variant))
    }

    /// boxinit / floor and boxinit / busybox script: the medians of the per-round ratios,
    /// which the machine's noise moves least (each round boots the three back to back).
    fn ratios(&self) -> (Option<f64>, Option<f64>) {
        let r = &self.results.round_ratios;
        let floor = Stats::of(&r.iter().map(|r| r.0).collect::<Vec<_>>());
        let script = Stats::of(&r.iter().map(|r| r.1).collect::<Vec<_>>());
        (floor.map(|s| s.median), script.map(|s| s.median))
    }

    fn summary(&self) -> String {
        let mut out = String::new();
        for v in Variant::ALL {
            if let Some(s) = self.stats(v) {
                let _ = writeln!(
                    out,
                    "{:15} overhead median {:6.1} ms  (IQR {:.1}-{:.1}, min {:.1}, max {:.1}, n {})",
                    v.name(),
                    s.median,
                    s.q1,
                    s.q3,
                    s.min,
                    s.max,
                    s.n
                );
            }
        }
        let (floor, script) = self.ratios();
        if let (Some(f), Some(s)) = (floor, script) {
            let _ = writeln!(
                out,
                "boxinit / floor {f:.3} (target <= {FLOOR_TARGET}), boxinit / busybox script {s:.3} (target <= {SCRIPT_TARGET}); medians of the per-round ratios"
            );
        }
        out
    }

    fn markdown(&self, chart: &Path) -> String {
        let r = self.results;
        let mut md = String::new();
        let date = Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(
            md,
            "Written by `cargo xtask bench --runs {}` on {date} ({:.0} s). Do not edit by hand: \
             run it again. How it measures and what the figures mean: see *Method* below.\n",
            self.runs,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(md, "Machine: {}.\n", self.machine);

        let _ = writeln!(md, "## Boot overhead: box start minus `/init` start\n");
        let _ = writeln!(
            md,
            "| variant | median | IQR | min – max | runs | setup: `/init` → exec (median) | exec → box start (median) | `/init` start (median) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for v in Variant::ALL {
            let starts = Stats::of(&r.init_starts(v));
            let median = |values: Vec<f64>| {
                Stats::of(&values).map_or("–".to_string(), |s| format!("{:.0} ms", s.median))
            };
            let setup = median(r.each(v, |s| Some((s.exec? - s.init_start) * 1e3)));
            let start = median(r.each(v, |s| Some((s.box_start - s.exec?) * 1e3)));
            match self.stats(v) {
                Some(s) => {
                    let _ = writeln!(
                        md,
                        "| {} | {:.0} ms | {:.0} – {:.0} ms | {:.0} – {:.0} ms | {} | {setup} | {start} | {:.0} ms |",
                        v.name(),
                        s.median,
                        s.q1,
                        s.q3,
                        s.min,
                        s.max,
                        s.n,
                        starts.map_or(0.0, |s| s.median)
                    );
                }
                None => {
                    let _ = writeln!(md, "| {} | no run succeeded | | | 0 | |", v.name());
                }
            }
        }
        let _ = writeln!(
            md,
            "\n![boot timeline per variant]({})\n",
            chart_name(chart)
        );

        let (floor, script) = self.ratios();
        let per_round_floor = Stats::of(&r.round_ratios.iter().map(|r| r.0).collect::<Vec<_>>());
        let per_round_script = Stats::of(&r.round_ratios.iter().map(|r| r.1).collect::<Vec<_>>());
        let rss = Stats::of(&r.rss_kb);
        let _ = writeln!(
            md,
            "## Targets (ratios: the median of the {} per-round ratios of this run)\n",
            r.round_ratios.len()
        );
        let _ = writeln!(
            md,
            "| target | measured | per-round spread (min – median – max) | verdict |\n| --- | ---: | ---: | --- |"
        );
        let spread = |s: Option<Stats>| {
            s.map_or("–".to_string(), |s| {
                format!("{:.2} – {:.2} – {:.2}", s.min, s.median, s.max)
            })
        };
        if let Some(f) = floor {
            let _ = writeln!(
                md,
                "| boxinit overhead ≤ {FLOOR_TARGET} × floor | {f:.3} × | {} | {} |",
                spread(per_round_floor),
                verdict(f <= FLOOR_TARGET)
            );
        }
        if let Some(s) = script {
            let _ = writeln!(
                md,
                "| boxinit overhead ≤ {SCRIPT_TARGET} × busybox script | {s:.3} × | {} | {} |",
                spread(per_round_script),
                verdict(s <= SCRIPT_TARGET)
            );
        }
        let _ = writeln!(
            md,
            "| static binary ≤ 800 KiB (x86_64) | {} | | {} |",
            kib(self.setup.boxinit_size),
            verdict(self.setup.boxinit_size <= SIZE_TARGET)
        );
        match self.aarch64_size {
            Some(size) => {
                let _ = writeln!(
                    md,
                    "| static binary < 1 MiB (aarch64) | {} | | {} |",
                    kib(size),
                    verdict(size < 1 << 20)
                );
            }
            None => {
                let _ = writeln!(
                    md,
                    "| static binary < 1 MiB (aarch64) | not built (`--no-aarch64`) | | |"
                );
            }
        }
        if let Some(rss) = rss {
            let _ = writeln!(
                md,
                "| PID 1 VmRSS ≤ 850 kB while supervising | {:.0} kB | {:.0} – {:.0} kB | {} |",
                rss.median,
                rss.min,
                rss.max,
                verdict(rss.max <= RSS_TARGET_KB)
            );
        }
        md.push_str(&self.extra.target_rows());

        let _ = writeln!(md, "\n## Other figures\n");
        let _ = writeln!(md, "| what | figure |\n| --- | ---: |");
        for (v, i) in &self.setup.initramfs {
            let _ = writeln!(
                md,
                "| initramfs, {} (gzip cpio, {} modules) | {} |",
                v.name(),
                i.selection.load_order.len(),
                kib(i.size)
            );
        }
        let _ = writeln!(
            md,
            "| floor binary (static, std) | {} |",
            kib(self.setup.floor_size)
        );
        let _ = writeln!(md, "| demo box binary | {} |", kib(self.setup.box_size));
        let _ = writeln!(
            md,
            "| network programs' binary (`boxinit-net`, packed beside `/init`) | {} |",
            kib(self.setup.net_size)
        );
        if let Some(anon) = Stats::of(&r.anon_kb) {
            let _ = writeln!(
                md,
                "| PID 1's own memory while supervising (RssAnon: heap, stack, data; the rest of VmRSS is its binary's pages, which the initramfs holds in RAM anyway) | {:.0} kB |",
                anon.median
            );
        }
        match (r.reap_rate, r.reap_ms) {
            (Some(rate), Some(ms)) => {
                let _ = writeln!(
                    md,
                    "| reaping: {REAP_COUNT} zombies handed to PID 1 at once | {ms:.1} ms, {rate:.0} per second |"
                );
            }
            _ => {
                let _ = writeln!(md, "| reaping | not measured (see the failures) |");
            }
        }
        match Stats::of(&r.coldplug_ms) {
            Some(s) => {
                let _ = writeln!(
                    md,
                    "| coldplug, busybox `mdev -s` + `modprobe` of every modalias until `/dev/vda1` (median of {}, min – max) | {:.0} ms ({:.0} – {:.0}) |",
                    s.n, s.median, s.min, s.max
                );
            }
            None => {
                let _ = writeln!(
                    md,
                    "| coldplug, busybox | not measured (see the failures) |"
                );
            }
        }
        let modules = r
            .profile
            .iter()
            .find(|l| l.contains("boxinit: modules: "))
            .and_then(|l| number_after(l, "failed in "));
        // the summary line of the modules phase, which names coldplug's part
        let coldplug = r
            .profile
            .iter()
            .find(|l| l.contains("boxinit: modules: ") && l.contains("coldplug"));
        let _ = writeln!(
            md,
            "| coldplug, boxinit | {} |",
            match (coldplug, modules) {
                (Some(line), _) => format!("`{}`", line.trim()),
                (None, Some(ms)) => format!(
                    "no coldplug in this build (issue 3); its explicit `modules.load` took {ms:.0} ms in the last profile boot"
                ),
                (None, None) => "no coldplug in this build (issue 3)".to_string(),
            }
        );

        let _ = writeln!(md, "\n## Where boxinit's time goes\n");
        let _ = writeln!(
            md,
            "{PROFILE_RUNS} boots with `boxinit.loglevel=debug` (the phases logged by `main.rs`), \
             then the last one's log lines with the kernel's timestamps (its clock differs \
             from `CLOCK_BOOTTIME` by a constant). Debug logging itself costs a little.\n"
        );
        if !r.profile_phases.is_empty() {
            let _ = writeln!(
                md,
                "| phase | median ms | min – max |\n| --- | ---: | ---: |"
            );
            for (name, all) in &r.profile_phases {
                if let Some(s) = Stats::of(all) {
                    let _ = writeln!(
                        md,
                        "| {name} | {:.1} | {:.1} – {:.1} |",
                        s.median, s.min, s.max
                    );
                }
            }
            md.push('\n');
        }
        let _ = writeln!(md, "```");
        for line in &r.profile {
            let _ = writeln!(md, "{}", line.trim_end_matches('\r'));
        }
        if let Some(s) = r.profile_sample {
            let _ = writeln!(
                md,
                "(this boot: /init at {:.3}s, box at {:.3}s: {:.0} ms)",
                s.init_start,
                s.box_start,
                s.overhead_ms()
            );
        }
        let _ = writeln!(md, "```\n");

        if !r.failures.is_empty() {
            let _ = writeln!(md, "## Failures\n");
            for f in &r.failures {
                let _ = writeln!(md, "- {f}");
            }
            md.push('\n');
        }

        md.push_str(METHOD);
        md
    }

    /// The chart: per variant a bar from boot to the box's start, the kernel's part grey,
    /// the init's part coloured, with the spread of the box's start as a whisker.
    fn svg(&self) -> String {
        let r = self.results;
        let rows: Vec<Row> = Variant::ALL
            .iter()
            .filter_map(|v| {
                Some(Row {
                    variant: *v,
                    init: Stats::of(&r.init_starts(*v))?,
                    setup: Stats::of(&r.each(*v, |s| Some((s.exec? - s.init_start) * 1e3))),
                    start: Stats::of(&r.each(*v, |s| Some((s.box_start - s.exec?) * 1e3))),
                    overhead: Stats::of(&r.overheads(*v))?,
                })
            })
            .collect();
        timeline_svg(&rows)
    }
}

fn chart_name(chart: &Path) -> String {
    chart
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One bar of the chart: when `/init` started, when it started the box (exec), when the box
/// started, in ms of `CLOCK_BOOTTIME`.
pub struct Row {
    pub variant: Variant,
    /// when `/init` started
    pub init: Stats,
    /// `/init` start to exec of the box
    pub setup: Option<Stats>,
    /// exec of the box to its first words
    pub start: Option<Stats>,
    /// `/init` start to the box's start
    pub overhead: Stats,
}

/// The chart's SVG: one bar per variant from `/init`'s start (0) to the box's: the init's
/// setup, then exec until the box's first words; the whisker spans the fastest and the
/// slowest run. The kernel's part (when `/init` started) is in the label: it is the same
/// kernel in all three and only adds noise to the picture.
pub fn timeline_svg(rows: &[Row]) -> String {
    const LEFT: f64 = 190.0;
    const WIDTH: f64 = 900.0;
    const ROW: f64 = 50.0;
    const TOP: f64 = 48.0;
    let end = rows
        .iter()
        .map(|r| r.overhead.max)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    // a round scale: the next 100 ms above the slowest box start
    let scale_end = (end.min(5000.0) / 100.0).ceil() * 100.0;
    let x = |ms: f64| LEFT + ms.clamp(0.0, scale_end) / scale_end * (WIDTH - LEFT - 250.0);
    let height = TOP + ROW * rows.len() as f64 + 96.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="12" y="22" font-size="15" font-weight="bold">From /init's start to the box's start (CLOCK_BOOTTIME, medians of interleaved runs)</text>"#
    );
    let axis_y = TOP + ROW * rows.len() as f64 + 4.0;
    let step = match scale_end {
        e if e > 1500.0 => 500.0,
        e if e > 600.0 => 200.0,
        e if e > 300.0 => 100.0,
        _ => 50.0,
    };
    let mut tick = 0.0;
    while tick <= scale_end + 0.1 {
        let tx = x(tick);
        let _ = writeln!(
            s,
            r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{axis_y}" stroke="#ddd"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#444">{tick:.0}</text>"##,
            axis_y + 16.0
        );
        tick += step;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">ms after /init started</text>"##,
        x(scale_end / 2.0),
        axis_y + 34.0
    );
    let _ = writeln!(
        s,
        r##"<text x="12" y="{:.1}" fill="#444">dark: the init's setup (mounts, modules, boot partition, config) until it execs the box</text><text x="12" y="{:.1}" fill="#444">pale: from exec to the box's first words; whisker: the fastest and the slowest run</text>"##,
        axis_y + 58.0,
        axis_y + 76.0
    );
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64 + 8.0;
        let colour = match row.variant {
            Variant::Boxinit => "#2b7bb9",
            Variant::Busybox => "#d9822b",
            Variant::Floor => "#4a9e5c",
        };
        let total = row.overhead.median;
        let setup = row.setup.map_or(total, |s| s.median.clamp(0.0, total));
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-weight="bold">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#666" font-size="11">/init at {:.2} s</text>"##,
            LEFT - 10.0,
            y + 12.0,
            row.variant.name(),
            LEFT - 10.0,
            y + 26.0,
            row.init.median / 1e3
        );
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="28" fill="{colour}"/>"##,
            x(0.0),
            x(setup) - x(0.0)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="28" fill="{colour}" fill-opacity="0.45"/>"##,
            x(setup),
            (x(total) - x(setup)).max(0.0)
        );
        let (w0, w1) = (x(row.overhead.min), x(row.overhead.max));
        let wy = y + 14.0;
        let _ = writeln!(
            s,
            r##"<line x1="{w0:.1}" y1="{wy:.1}" x2="{w1:.1}" y2="{wy:.1}" stroke="#222"/><line x1="{w0:.1}" y1="{:.1}" x2="{w0:.1}" y2="{:.1}" stroke="#222"/><line x1="{w1:.1}" y1="{:.1}" x2="{w1:.1}" y2="{:.1}" stroke="#222"/>"##,
            wy - 6.0,
            wy + 6.0,
            wy - 6.0,
            wy + 6.0
        );
        let parts = match (&row.setup, &row.start) {
            (Some(setup), Some(start)) => {
                format!(": setup {:.0} + start {:.0}", setup.median, start.median)
            }
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#222">{total:.0} ms{parts}</text>"##,
            w1.max(x(total)) + 8.0,
            y + 19.0
        );
    }
    s.push_str("</svg>\n");
    s
}

const METHOD: &str = "## Method\n\
\n\
- Reproduce: `cargo xtask bench` (default `--runs 10`; `--no-aarch64` skips the aarch64 \
build). It builds boxinit, the demo box and the floor (`bench/floor`), fetches Debian's \
`busybox-static` with `apt-get download`, packs three initramfs images with the same kernel \
modules (Debian's linux-image-cloud-amd64, the default QEMU set: virtio PCI/blk, vfat, nls) \
and boots each in QEMU on the same disk: a FAT partition with the demo box and an `init.toml` \
giving it `args = [\"rss\", \"poweroff\"]`.\n\
- The variants: **boxinit** as shipped (its built-in config: `auto`, the first FAT partition, the modules; the \
disk's `init.toml` gives the box its args); **busybox script**: the seed blog post's `/init` \
shell script doing the same job (mount proc, sysfs, a tmpfs `/dev`, devpts; `mknod`; `insmod` \
each module in dependency order; `mdev -s`; poll every 10 ms for `/dev/vda1` with `mdev -s`; \
mount it; `exec /boot/box rss poweroff`), with the applet links packed rather than made by \
`busybox --install -s` at boot; **floor**: `bench/floor`, the fewest syscalls for the job \
(mount proc, sysfs, devtmpfs, devpts; `finit_module` each module; poll every 1 ms for \
`/dev/vda1`; mount it; exec the box).\n\
- Markers, all `CLOCK_BOOTTIME`: boxinit logs `boxinit: started at X (CLOCK_BOOTTIME)` with \
the time read first thing in `main`; the floor prints `floor: started at X` likewise; the \
script can only read the clock once proc is mounted (`/proc/uptime`, 10 ms steps, \
truncated), so its marker misses the shell's start and one mount (making it look faster) and \
is up to 10 ms early (making it look slower). The box prints `demo: uptime X` as its third \
line. Overhead = box start − `/init` start.\n\
- Each round boots the three variants once, in an order rotated every round; a boot ends when \
the box has printed `asking init to poweroff` (QEMU is then stopped). Figures are medians \
over the rounds; the ratios are the medians of the per-round ratios (boxinit's overhead over \
the floor's, and over the script's, within each round), which cancel most of the noise of \
the shared machine.\n\
- Setup versus starting the box: boxinit's `setup done in N ms` (from the same start as its \
marker), the floor's and the script's `exec at X` printed just before they exec the box.\n\
- Profile: 3 more boxinit boots with `boxinit.loglevel=debug loglevel=8`, whose `phase NAME: \
N us` lines (`main.rs`) give the per-phase medians.\n\
- Coldplug: the busybox image carries a second script, booted with `rdinit=/coldplug.sh`: \
mount proc, sysfs, a tmpfs `/dev`; then `mdev -s` and `modprobe -a` of every modalias under \
`/sys/devices`, again until `/dev/vda1` exists (virtio's devices appear only once \
virtio_pci is loaded); timed by its two `/proc/uptime` markers, 3 boots.\n\
- PID 1's memory is the box's `rss` word: VmRSS from `/proc/1/status`, read while boxinit \
supervises it. Reaping: one more boxinit boot whose box runs `reap=200`: a child makes 200 \
children that exit at once, then exits itself, handing 200 zombies to PID 1 together; the \
box times from that exit until `/proc/1/task/1/children` is back to what it was.\n\
- Sizes: the release binaries (`opt-level = \"z\"`, LTO, stripped, static musl, no \
unwinder: README's *Size*) and the gzip-compressed initramfs images. The small build is \
`cargo xtask build --small` (nightly), booted 3 times on the same disk; `--modules all` packs \
the kernel's whole module tree with the stable build, booted 3 times. Coldplug at scale runs \
on the host (see its section).\n";

#[cfg(test)]
mod tests {
    use super::*;

    const BOXINIT_CONSOLE: &str = "[    2.717904] Run /init as init process\r\n\
        [    2.779341] boxinit: started at 2.808s (CLOCK_BOOTTIME)\r\n\
        [    3.358710] boxinit: modules: 10 loaded, 0 already there, 0 failed in 520ms\r\n\
        [    3.438870] boxinit: setup done in 650ms\r\n\
        demo: hello from the box\r\n\
        demo: pid 78\r\n\
        demo: uptime 3.530s\r\n\
        demo: init rss 796 kB (anon 80 kB, file 4 kB, shmem 712 kB)\r\n\
        demo: asking init to poweroff\r\n";

    #[test]
    fn markers_parse() {
        let s = parse_sample(Variant::Boxinit, BOXINIT_CONSOLE).unwrap();
        assert_eq!((s.init_start, s.box_start), (2.808, 3.53));
        assert!((s.exec.unwrap() - 3.458).abs() < 1e-9);
        assert!((s.overhead_ms() - 722.0).abs() < 1e-6);
        assert_eq!(
            number_after(BOXINIT_CONSOLE, "demo: init rss "),
            Some(796.0)
        );
        assert_eq!(anon_rss_after(BOXINIT_CONSOLE), Some(80.0));
        assert_eq!(anon_rss_after("demo: init rss 796 kB\n"), None);
        // the kernel's line may follow the box's on the same line
        let console = "floor: started at 2.7s (x)\ndemo: uptime 1.994s[    1.97] boxinit: x\n";
        let s = parse_sample(Variant::Floor, console).unwrap();
        assert_eq!((s.init_start, s.box_start), (2.7, 1.994));
        assert_eq!(seconds_after("demo: uptime 1.99", "demo: uptime "), None);
        assert_eq!(seconds_after("demo: uptime unknown", "demo: uptime "), None);
        assert_eq!(s.exec, None);
        let script = "script: started at 2.91s (CLOCK_BOOTTIME)\n\
                      script: exec at 3.95s (CLOCK_BOOTTIME)\ndemo: uptime 4.102s\n";
        let s = parse_sample(Variant::Busybox, script).unwrap();
        assert_eq!(
            (s.init_start, s.exec, s.box_start),
            (2.91, Some(3.95), 4.102)
        );
        let floor = "floor: started at 2.700s (CLOCK_BOOTTIME)\n";
        let err = parse_sample(Variant::Floor, floor).unwrap_err();
        assert!(format!("{err:#}").contains("demo: uptime"), "{err:#}");
        let err = parse_sample(Variant::Floor, BOXINIT_CONSOLE).unwrap_err();
        assert!(format!("{err:#}").contains("floor: started at"), "{err:#}");
        let reap = "boxinit: in 3ms: x\ndemo: reaped 200 zombies in 41.5ms: 4819 per second\n";
        assert_eq!(parse_reaping(reap), (Some(41.5), Some(4819.0)));
        assert_eq!(parse_reaping("demo: hello\n"), (None, None));
    }

    #[test]
    fn the_analysis_is_kept() {
        let old = format!("# Benchmarks\nold table\n{ANALYSIS_MARKER}\n## Analysis\nmine\n");
        assert_eq!(
            kept_analysis(&old),
            Some(format!("{ANALYSIS_MARKER}\n## Analysis\nmine\n").as_str())
        );
        assert_eq!(kept_analysis("# Benchmarks\nno marker\n"), None);
    }

    #[test]
    fn phases_parse() {
        let lines = [
            "[    1.645688] boxinit: phase start and early mounts: 8441us".to_string(),
            "[    1.646383] boxinit: phase built-in config: 12782us (done at 1.629246s)".into(),
            "[    1.871540] boxinit: modules: 10 loaded in 222ms".into(),
        ];
        assert_eq!(
            parse_phases(&lines),
            [
                ("start and early mounts".to_string(), 8.441),
                ("built-in config".to_string(), 12.782)
            ]
        );
    }

    #[test]
    fn statistics() {
        assert_eq!(Stats::of(&[]), None);
        let s = Stats::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!(
            (s.n, s.median, s.q1, s.q3, s.min, s.max),
            (5, 3.0, 2.0, 4.0, 1.0, 5.0)
        );
        let s = Stats::of(&[4.0, 1.0]).unwrap();
        assert_eq!((s.median, s.q1, s.q3), (2.5, 1.75, 3.25));
        assert_eq!(Stats::of(&[7.0]).unwrap().median, 7.0);
    }

    #[test]
    fn rounds_rotate_the_order() {
        assert_eq!(round_order(0), Variant::ALL);
        assert_eq!(
            round_order(1),
            [Variant::Busybox, Variant::Floor, Variant::Boxinit]
        );
        assert_eq!(round_order(3), Variant::ALL);
    }

    #[test]
    fn script_does_the_job_in_order() {
        let s = busybox_script(
            &[
                "/lib/modules/6.1/a.ko".into(),
                "/lib/modules/6.1/b.ko".into(),
            ],
            "/dev/vda1",
            BOX_ARGS,
        );
        let at = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle}"));
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(at("mount -t proc") < at("script: started at"));
        assert!(at("insmod /lib/modules/6.1/a.ko") < at("insmod /lib/modules/6.1/b.ko"));
        assert!(at("insmod /lib/modules/6.1/b.ko") < at("mdev -s"));
        assert!(at("mdev -s") < at("mount -t vfat"));
        assert!(s.ends_with("exec /boot/box rss poweroff\n"));
    }

    #[test]
    fn chart_has_a_row_per_variant() {
        let st = |m: f64| Stats::of(&[m - 10.0, m, m + 10.0]).unwrap();
        let svg = timeline_svg(&[
            Row {
                variant: Variant::Boxinit,
                init: st(2800.0),
                setup: Some(st(650.0)),
                start: Some(st(50.0)),
                overhead: st(700.0),
            },
            Row {
                variant: Variant::Floor,
                init: st(2790.0),
                setup: None,
                start: None,
                overhead: st(610.0),
            },
        ]);
        if let Some(out) = std::env::var_os("BENCH_SVG_OUT") {
            std::fs::write(out, &svg).unwrap();
        }
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains(">boxinit</text>") && svg.contains(">floor</text>"));
        assert!(svg.contains(">700 ms: setup 650 + start 50<"), "{svg}");
        assert!(svg.contains(">610 ms<"), "{svg}");
    }
}
