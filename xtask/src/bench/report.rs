//! The benchmark's report: `BENCHMARKS.md` (the tables, the targets, the profile, the method;
//! the hand-written analysis below its marker kept), the chart's rows, the summary on stdout.
//! Writes what `bench/overhead.rs`, `bench/extra.rs` and `bench/pi.rs` measured; measures
//! nothing.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::bench::chart::{timeline_svg, Row};
use crate::bench::extra::Extra;
use crate::bench::markers::{number_after, Variant, REAP_COUNT};
use crate::bench::overhead::{Results, Setup, PROFILE_RUNS};
use crate::bench::stats::{kib, verdict, Stats};

/// Targets (issue 10): boxinit's overhead against the floor's and the busybox script's (the
/// median of the per-round ratios), the stable x86_64 binary, PID 1's memory while it
/// supervises.
const FLOOR_TARGET: f64 = 1.10;
const SCRIPT_TARGET: f64 = 0.75;
const SIZE_TARGET: u64 = 800 * 1024;
const RSS_TARGET_KB: f64 = 850.0;

/// The line after which BENCHMARKS.md is written by hand (the analysis of the figures): a
/// new run rewrites everything above it and keeps everything from it on.
pub const ANALYSIS_MARKER: &str =
    "<!-- Everything below is written by hand and kept by `cargo xtask bench`. -->\n";

/// The hand-written part of an earlier report, marker included.
pub fn kept_analysis(report: &str) -> Option<&str> {
    report.find(ANALYSIS_MARKER).map(|at| &report[at..])
}

/// `nproc`, the CPU model and the load average, for the report.
pub fn machine() -> String {
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
pub struct Report<'a> {
    pub results: &'a Results,
    pub setup: &'a Setup,
    pub extra: &'a Extra,
    pub aarch64_size: Option<u64>,
    pub runs: usize,
    pub elapsed: Duration,
    pub machine: String,
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

    pub fn summary(&self) -> String {
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

    pub fn markdown(&self, chart: &Path) -> String {
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
    pub fn svg(&self) -> String {
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

    #[test]
    fn the_analysis_is_kept() {
        let old = format!("# Benchmarks\nold table\n{ANALYSIS_MARKER}\n## Analysis\nmine\n");
        assert_eq!(
            kept_analysis(&old),
            Some(format!("{ANALYSIS_MARKER}\n## Analysis\nmine\n").as_str())
        );
        assert_eq!(kept_analysis("# Benchmarks\nno marker\n"), None);
    }
}
