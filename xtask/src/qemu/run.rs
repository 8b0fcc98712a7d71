//! Task `run`: prepares `target/run/` (`qemu/prepare.rs`) and boots it with the serial
//! console on this terminal.

use anyhow::{Context as _, Result};

use crate::progress;
use crate::qemu::machine::{self, Machine};
use crate::qemu::prepare::{self, PrepareOptions};

/// `cargo xtask run`: prepares `target/run/` and boots it with the console on this terminal
/// (on `machine`, default the arch's). Returns QEMU's exit code.
pub fn run(opts: &PrepareOptions, machine: Option<Machine>, append: &str) -> Result<i32> {
    run_with(opts, machine, append, &[])
}

/// [`run`] with more QEMU arguments (e.g. [`machine::user_network`]'s).
pub fn run_with(
    opts: &PrepareOptions,
    machine: Option<Machine>,
    append: &str,
    extra_args: &[String],
) -> Result<i32> {
    machine::check_qemu(opts.arch)?;
    let out_dir = crate::target_dir().join("run");
    let prepared = match machine {
        Some(Machine::Raspi3b) => prepare::prepare_raspi3b(opts, &out_dir)?,
        _ => prepare::prepare(opts, &out_dir)?,
    };
    let mut boot = prepared.boot(append);
    boot.extra_args.extend(extra_args.iter().cloned());
    progress!(
        "booting {} with `{}`; quit with Ctrl-A X (QEMU also exits when the guest powers off)",
        boot.arch.qemu_binary(),
        boot.cmdline()
    );
    let status = machine::command(&boot, true)
        .status()
        .with_context(|| format!("cannot run {}", boot.arch.qemu_binary()))?;
    Ok(status.code().unwrap_or(1))
}
