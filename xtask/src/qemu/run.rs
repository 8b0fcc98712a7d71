//! Task `run`: prepares `target/run/` (`qemu/prepare.rs`) and boots it with the serial
//! console on this terminal.

use anyhow::{Context as _, Result};

use crate::pack::box_check;
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
    // the box checked as the init will check it (the bundle checks its own); the scenarios,
    // which boot wrong boxes on purpose, do not come through here
    if let (Some(box_path), false) = (&opts.box_path, machine == Some(Machine::Raspi3b)) {
        box_check::check(
            box_path,
            opts.arch,
            Some(&box_check::Contents::read(&prepared.initrd)?),
        )?;
    }
    let mut boot = prepared.boot(append);
    boot.extra_args.extend(extra_args.iter().cloned());
    interactive(&boot)
}

/// `cargo xtask run --board rpi3 --card DIR`: boots a bundle folder as it is
/// ([`prepare::prepare_card`]), the console on this terminal. Returns QEMU's exit code.
pub fn run_card(
    dir: &std::path::Path,
    machine: Option<Machine>,
    append: &str,
    extra_args: &[String],
) -> Result<i32> {
    if machine != Some(Machine::Raspi3b) {
        anyhow::bail!("--card and --image boot a Raspberry Pi 3's: add --board rpi3");
    }
    machine::check_qemu(crate::tools::arch::Arch::Aarch64)?;
    let out_dir = crate::target_dir().join("run");
    // a folder, or an SD card image (`run --image`)
    let mut boot = match dir.is_file() {
        true => prepare::prepare_image(dir, &out_dir)?,
        false => prepare::prepare_card(dir, &out_dir)?,
    };
    // DESIGN.md: QEMU 7.2's raspi3b resets the machine the moment bcm2835_wdt is armed
    progress!(
        "note: QEMU's raspi3b resets as soon as the watchdog is armed: a folder whose built-in \
         config has [watchdog] (bundle's default) ends there; bundle it with a \
         --builtin-config without [watchdog] to watch the box in QEMU"
    );
    boot.append = append.to_string();
    boot.extra_args.extend(extra_args.iter().cloned());
    interactive(&boot)
}

/// Boots `boot` with the console on this terminal; QEMU's exit code.
fn interactive(boot: &machine::Boot) -> Result<i32> {
    if boot.card_cmdline.is_some() {
        progress!(
            "the card as a Pi boots it, but for the firmware's part: QEMU loads kernel8.img, \
             the device tree and the initramfs itself and starts the kernel with cmdline.txt \
             (bootcode.bin, start*.elf and config.txt are not read)"
        );
    }
    progress!(
        "booting {} with `{}`; quit with Ctrl-A X (QEMU also exits when the guest powers off)",
        boot.arch.qemu_binary(),
        boot.cmdline()
    );
    let status = machine::command(boot, true)
        .status()
        .with_context(|| format!("cannot run {}", boot.arch.qemu_binary()));
    restore_line_wrap();
    Ok(status?.code().unwrap_or(1))
}

/// Turns the terminal's line wrap back on: the PC's firmware (SeaBIOS) turns it off
/// (`ESC[?7l`) and nothing turns it back on when QEMU exits.
fn restore_line_wrap() {
    use std::io::IsTerminal as _;
    let out = std::io::stdout();
    let terminal = out.is_terminal();
    let _ = line_wrap_on(&mut out.lock(), terminal);
}

/// Writes DECAWM on (`ESC[?7h`: the terminal wraps long lines again) to `out` when it is a
/// terminal; a pipe or file gets nothing.
fn line_wrap_on(out: &mut dyn std::io::Write, terminal: bool) -> std::io::Result<()> {
    if terminal {
        out.write_all(b"\x1b[?7h")?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_wrap_is_turned_back_on_for_a_terminal_only() {
        let mut terminal = Vec::new();
        line_wrap_on(&mut terminal, true).unwrap();
        assert_eq!(terminal, b"\x1b[?7h");
        let mut pipe = Vec::new();
        line_wrap_on(&mut pipe, false).unwrap();
        assert!(pipe.is_empty());
    }
}
