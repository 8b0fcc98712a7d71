//! Task `bench`: builds and boots everything the report measures, in order (the three inits'
//! overhead, the extra rows, the Raspberry Pi row), then writes `BENCHMARKS.md` and its chart.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::bench::overhead;
use crate::bench::report::{self, Report, ANALYSIS_MARKER};
use crate::fetch::kernel::KernelArgs;
use crate::progress;
use crate::qemu::machine;
use crate::tools::arch::Arch;

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
    /// Only the Raspberry Pi row, `runs` rounds; its summary printed, no report written.
    pub pi_only: bool,
}

/// `cargo xtask bench`.
pub fn run(opts: &Options) -> Result<()> {
    let arch = Arch::X86_64;
    if opts.runs == 0 {
        bail!("--runs must be at least 1");
    }
    machine::check_qemu(arch)?;
    let started = Instant::now();
    if opts.pi_only {
        let pi = crate::bench::pi::run(opts.runs)?;
        print!("{}", pi.summary());
        for f in &pi.failures {
            eprintln!("xtask: bench: {f}");
        }
        return Ok(());
    }
    let setup = overhead::prepare(arch, &opts.kernel, opts.flavor)?;
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

    let mut results = overhead::measure(&setup, opts.runs)?;

    // the small build, --modules all, coldplug at scale (bench/extra.rs)
    let extra = crate::bench::extra::run(&crate::bench::extra::Inputs {
        kernel: &opts.kernel,
        disk: &setup.disk,
        boot_modules: &setup.boot_modules,
        aarch64: opts.aarch64,
    })?;
    results.failures.extend(extra.failures.iter().cloned());

    // the Raspberry Pi row (bench/pi.rs): the rpi3 bundle on QEMU raspi3b, as many rounds
    // as the others (10 by default), and the bytes each board's bundle reads before /init
    progress!("raspberry pi: boxinit and the busybox script on raspi3b, the rpi3 bundle");
    let pi = crate::bench::pi::run(opts.runs)?;
    results.failures.extend(pi.failures.iter().cloned());
    let pi_bytes = crate::media::boot_bytes::measure_all()?;

    let report = Report {
        results: &results,
        setup: &setup,
        extra: &extra,
        aarch64_size,
        runs: opts.runs,
        elapsed: started.elapsed(),
        machine: report::machine(),
    };
    let chart = opts.report.with_file_name("bench-timeline.svg");
    std::fs::write(&chart, report.svg())
        .with_context(|| format!("cannot write {}", chart.display()))?;
    let kept = std::fs::read_to_string(&opts.report)
        .ok()
        .and_then(|old| report::kept_analysis(&old).map(str::to_string));
    let mut text = report.markdown(&chart);
    text.push_str(&extra.markdown());
    text.push_str(&pi.markdown());
    text.push_str(&crate::bench::pi::PiRow::bytes_markdown(&pi_bytes));
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
