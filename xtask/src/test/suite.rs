//! Task `test` (`cargo xtask test`): makes sure the tools are there (QEMU, the musl target, the kernel),
//! runs the unit tests of the whole workspace, the repo checks that need the kernel (the
//! coldplug and instruction-count baselines, the README's Pi bytes table when a `raspi3b`
//! scenario runs), then every QEMU boot scenario, then the fuzz targets for a bounded time
//! (`test/fuzz.rs`). A missing tool is installed when this machine can
//! (root with apt-get, rustup, cargo install) or named precisely; never skipped.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::fetch::kernel::KernelArgs;
use crate::progress;
use crate::qemu::machine;
use crate::test::{boot, scenario};
use crate::tools::arch::Arch;

/// What `cargo xtask test` runs.
pub struct Options {
    pub arch: Arch,
    pub kernel: KernelArgs,
    /// Only the scenarios whose name contains this.
    pub filter: Option<String>,
    /// Skip `cargo test` (the unit tests) and the fuzzing: run the scenarios only.
    pub scenarios_only: bool,
    /// Seconds per fuzz target (`cargo xtask fuzz`), run after the scenarios unless a filter
    /// or `scenarios_only` narrows the run.
    pub fuzz_seconds: u64,
}

/// Runs everything; fails when any test failed.
pub fn run(opts: &Options) -> Result<()> {
    let scenarios = scenario::discover(
        &crate::workspace_root().join("tests/boot"),
        opts.filter.as_deref(),
    )?;
    if scenarios.is_empty() {
        bail!("no scenario in tests/boot matches {:?}", opts.filter);
    }
    // every architecture and kernel the scenarios boot (a `board` file picks one)
    let mut targets = Vec::new();
    for target in scenarios.iter().map(|s| s.target(opts.arch, &opts.kernel)) {
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    for (arch, _) in &targets {
        ensure_qemu(*arch)?;
    }
    if !opts.scenarios_only {
        unit_tests()?;
    }
    // Build and fetch once, before the first scenario, so their progress lines come first.
    let update_readme = std::env::var_os("UPDATE_README").is_some_and(|v| v == "1");
    for (arch, kernel) in &targets {
        let built = crate::pack::binaries::built(*arch)?;
        // README's size of /init against this build: it cannot go stale
        crate::test::readme_size::check(*arch, &built.init, update_readme)?;
        let context = crate::pack::context::context(*arch, kernel)?;
        // The alias index against the linear scan on every device of the coldplug benchmark.
        let scale = crate::bench::coldplug_scale::setup(*arch, &context.index);
        let matched = crate::bench::coldplug_scale::check(&scale)?;
        progress!(
            "coldplug at scale ({arch}): the alias index and the linear scan agree on all {} \
             devices ({matched} claimed by a module) against {} aliases",
            scale.devices.len(),
            scale.index.alias_count()
        );
    }
    if !opts.scenarios_only {
        // Instruction counts of the init's kernel-free phases against the committed baseline,
        // always on Debian's arm64 module tree (the larger alias list), whatever the filter
        // boots: a baseline written by a filtered run must hold for the full one.
        let context = crate::pack::context::context(Arch::Aarch64, &KernelArgs::default())?;
        crate::bench::callgrind::check(Arch::Aarch64, &context.index)?;
    }
    if scenarios.iter().any(|s| s.small) {
        crate::pack::binaries::built_as(opts.arch, crate::pack::binaries::Flavor::Small)?;
    }
    if scenarios
        .iter()
        .any(|s| s.machine == Some(machine::Machine::Raspi3b))
    {
        // The README's table of the bytes each Pi bundle makes the firmware read, against
        // bundles made now (`UPDATE_README=1` rewrites it): it cannot go stale.
        let rows = crate::media::boot_bytes::measure_all()?;
        let update = std::env::var_os("UPDATE_README").is_some_and(|v| v == "1");
        crate::media::boot_bytes::check_readme(&rows, update)?;
    }
    progress!("running {} QEMU boot scenario(s)", scenarios.len());
    let (passed, failed) = boot::run_all(&scenarios, opts.arch, &opts.kernel);
    println!("scenarios: {passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} scenario(s) failed; each one's console is under target/scenarios/NAME/console.log");
    }
    if opts.filter.is_none() && !opts.scenarios_only {
        crate::test::fuzz::run(&crate::test::fuzz::Options {
            seconds: opts.fuzz_seconds,
            filter: None,
        })?;
    }
    Ok(())
}

/// `cargo test --workspace`: the init's, xtask's and the demo box's unit tests.
fn unit_tests() -> Result<()> {
    progress!("unit tests: cargo test --workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--workspace", "--quiet"])
        .current_dir(crate::workspace_root())
        .status()
        .context("cannot run cargo test")?;
    if !status.success() {
        bail!("unit tests failed (cargo test --workspace)");
    }
    Ok(())
}

/// QEMU for `arch`, installed with apt-get when missing and this is root on Debian/Ubuntu.
fn ensure_qemu(arch: Arch) -> Result<()> {
    if machine::check_qemu(arch).is_ok() {
        return Ok(());
    }
    let is_root = is_root();
    let has_apt = Command::new("apt-get").arg("--version").output().is_ok();
    if !(is_root && has_apt) {
        return machine::check_qemu(arch);
    }
    progress!(
        "{} missing: apt-get install {}",
        arch.qemu_binary(),
        arch.qemu_package()
    );
    let ok = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            arch.qemu_package(),
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!(
            "apt-get install {} failed: run `apt-get update` and try again",
            arch.qemu_package()
        );
    }
    machine::check_qemu(arch)
}

fn is_root() -> bool {
    // `id -u` rather than a libc call: xtask has no unsafe and no libc dependency.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}
