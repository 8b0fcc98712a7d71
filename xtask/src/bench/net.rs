//! `cargo xtask bench-net`: how long after `/init` starts the machine has an address (DHCP
//! from QEMU's user network) and a clock set by SNTP (the test responder on the host), over
//! several boots of scenario 101; the figures go into BENCHMARKS.md between the
//! `<!-- net: ... -->` markers of its hand-written part, which `cargo xtask bench` keeps.
//! Separate from `bench/overhead.rs` (boot overhead), which boots no network.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::fetch::kernel::KernelArgs;
use crate::progress;
use crate::test::boot;
use crate::test::scenario::Scenario;
use crate::tools::arch::Arch;

/// The scenario booted: DHCP on eth0, SNTP against the host's test responder, clock in 1970.
const SCENARIO: &str = "tests/boot/101_sntp_from_1970";
const START: &str = "<!-- net: start (written by `cargo xtask bench-net`) -->";
const END: &str = "<!-- net: end -->";

/// One boot's times, in seconds since the kernel started (kmsg timestamps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Times {
    pub init: f64,
    pub box_start: f64,
    pub address: f64,
    pub synced: f64,
}

/// The kmsg timestamp of the first console line containing `text`: `[    8.245987] ...`.
fn stamp(console: &str, text: &str) -> Option<f64> {
    let line = console.lines().find(|l| l.contains(text))?;
    let inner = line.trim_start().strip_prefix('[')?.split(']').next()?;
    inner.trim().parse().ok()
}

/// The times of one boot's console, when every step is there.
pub fn times(console: &str) -> Option<Times> {
    Some(Times {
        init: stamp(console, "boxinit: started at")?,
        box_start: stamp(console, "boxinit: started box")?,
        address: stamp(console, "boxinit: dhcp: eth0: 10.0.2.15/24")?,
        synced: stamp(console, "boxinit: time: clock set to")?,
    })
}

/// `2026-11-30` (the host's `date`).
fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Boots the scenario `runs` times and writes the medians into `report`.
pub fn run(runs: usize, kernel: &KernelArgs, report: &Path) -> Result<()> {
    crate::qemu::machine::check_qemu(Arch::X86_64)?;
    let scenario = Scenario::load(&crate::workspace_root().join(SCENARIO))?;
    let mut all = Vec::new();
    for i in 0..runs {
        let outcome = boot::run(&scenario, Arch::X86_64, kernel, false)?;
        if !outcome.failures.is_empty() {
            bail!("boot {} failed: {}", i + 1, outcome.failures.join("; "));
        }
        let log = crate::target_dir()
            .join("scenarios")
            .join(&scenario.name)
            .join("console.log");
        let console = std::fs::read_to_string(&log)
            .with_context(|| format!("cannot read {}", log.display()))?;
        let t = times(&console).with_context(|| format!("{}: a step is missing", log.display()))?;
        progress!(
            "boot {}: address {:.0} ms, synced {:.0} ms after /init",
            i + 1,
            (t.address - t.init) * 1000.0,
            (t.synced - t.init) * 1000.0
        );
        all.push(t);
    }
    let ms = |f: fn(&Times) -> f64| median(all.iter().map(f).collect()) * 1000.0;
    let section = format!(
        "{START}\n| from `/init` start to | median over {runs} boots |\n| --- | ---: |\n\
         | the box starts | {:.0} ms |\n| eth0 has its DHCP address (10.0.2.15) | {:.0} ms |\n\
         | the clock is set by SNTP (`/run/boxinit/time-synced`) | {:.0} ms |\n\n\
         QEMU TCG, 1 vCPU, virtio-net on the user network, scenario 101 (`{SCENARIO}`); kmsg \
         timestamps. Measured on {}.\n{END}\n",
        ms(|t| t.box_start - t.init),
        ms(|t| t.address - t.init),
        ms(|t| t.synced - t.init),
        today(),
    );
    let text = std::fs::read_to_string(report).unwrap_or_default();
    let text = replace_section(&text, &section);
    std::fs::write(report, text).with_context(|| format!("cannot write {}", report.display()))?;
    progress!("wrote the network figures into {}", report.display());
    Ok(())
}

/// `text` with the section between the markers replaced (or appended).
fn replace_section(text: &str, section: &str) -> String {
    match (text.find(START), text.find(END)) {
        (Some(a), Some(b)) if b > a => {
            let end = b + END.len();
            let rest = text.get(end..).unwrap_or("").trim_start_matches('\n');
            format!("{}{section}{rest}", text.get(..a).unwrap_or(""))
        }
        _ => format!("{}\n\n## Network and time\n\n{section}", text.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_from_a_console() {
        let console = "[    4.963139] boxinit: started at 4.956s (CLOCK_BOOTTIME)\n\
            [    5.799474] boxinit: started box /boot/box (pid 78)\n\
            [    8.245987] boxinit: dhcp: eth0: 10.0.2.15/24 router 10.0.2.2\n\
            [    8.906750] boxinit: time: clock set to 2030-01-01 00:00:13 UTC by x\n";
        let t = times(console).unwrap();
        assert_eq!(
            (t.init, t.box_start, t.address, t.synced),
            (4.963139, 5.799474, 8.245987, 8.90675)
        );
        assert!(times("[ 1.0] boxinit: started at 1s\n").is_none());
    }

    #[test]
    fn the_section_is_replaced_in_place() {
        let a = replace_section("# B\n", "S1\n");
        assert_eq!(a, "# B\n\n## Network and time\n\nS1\n");
        let with = format!("# B\n{START}\nold\n{END}\nafter\n");
        assert_eq!(replace_section(&with, "new\n"), "# B\nnew\nafter\n");
    }
}
