//! Instruction counts of the init's kernel-free phases: `bench/phases` (the init's own code,
//! release profile) run under `valgrind --tool=callgrind` on fixed inputs, one phase a run.
//! The same binary on the same input executes the same instructions, so unlike a QEMU boot's
//! milliseconds the counts do not move with the machine's load. `cargo xtask test` fails when
//! a count grows more than [`TOLERANCE`] over the committed baseline (`bench/callgrind.txt`);
//! `UPDATE_CALLGRIND=1` rewrites the baseline (review its diff like code); `cargo xtask bench`
//! reports the table.
//!
//! The inputs, made under `target/callgrind/`: the full example `config/init.toml` (as the
//! built-in layer, with command-line overrides, and as the boot partition's); the whole
//! arm64 (else x86_64) kernel's `modules.alias` with the alias index xtask packs for it (the
//! init's load as it is at boot) and the coldplug benchmark's 300 devices; a
//! boot disk made by xtask (MBR, FAT16 `BOOT`) under a fake `/sys/class/block` and `/dev`;
//! one netlink uevent message per recorded QEMU device (`bench/modaliases/`), as the kernel
//! sends them for an `add`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::bench::coldplug_scale;
use crate::media::image;
use crate::pack::modinfo::ModIndex;
use crate::tools::arch::Arch;
use crate::{progress, target_dir, workspace_root};

/// How much a count may grow over the baseline before the test fails.
pub const TOLERANCE: f64 = 0.10;
/// The committed baseline, `PHASE COUNT` lines.
pub const BASELINE: &str = "bench/callgrind.txt";
/// Set to rewrite the baseline with the counts measured.
pub const UPDATE_ENV: &str = "UPDATE_CALLGRIND";

/// One phase's count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub phase: String,
    /// Instructions executed (callgrind's `Ir`), the whole process.
    pub instructions: u64,
    /// What the harness printed.
    pub summary: String,
}

/// Builds the harness and the inputs, and counts every phase. `tree` is the module tree whose
/// aliases the modules phase resolves.
pub fn measure(arch: Arch, tree: &ModIndex) -> Result<Vec<Count>> {
    which_valgrind()?;
    let harness = build_harness()?;
    let dir = target_dir().join("callgrind");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let inputs = inputs(&dir, arch, tree)?;
    let mut counts = Vec::new();
    for (phase, args) in inputs {
        counts.push(count(&harness, &dir, &phase, &args)?);
    }
    Ok(counts)
}

fn which_valgrind() -> Result<()> {
    match Command::new("valgrind").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => bail!(
            "valgrind is not installed: the instruction counts need it \
             (Debian: `apt-get install valgrind`; .ci/run installs it)"
        ),
    }
}

/// `cargo build --release -p boxinit-phases` for the host: the workspace's release profile,
/// fixed, so that the counts are of the code as it ships.
fn build_harness() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "boxinit-phases",
        ])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build of the phase harness (bench/phases) failed");
    }
    Ok(target_dir().join("release/phases"))
}

/// Writes the inputs and returns each phase with its arguments.
fn inputs(dir: &Path, arch: Arch, tree: &ModIndex) -> Result<Vec<(String, Vec<String>)>> {
    let s = |p: &Path| p.display().to_string();
    let config = workspace_root().join("config/init.toml");

    let aliases = dir.join("modules.alias");
    let alias_text = coldplug_scale::full_alias_text(tree);
    std::fs::write(&aliases, &alias_text)?;
    let packed = dir.join(boxinit::devices::aliasindex::PACKED_FILE);
    std::fs::write(
        &packed,
        boxinit::devices::modindex::pack_alias_index(&alias_text),
    )?;
    let devices = dir.join("devices.txt");
    std::fs::write(
        &devices,
        coldplug_scale::devices(arch, &alias_text).join("\n") + "\n",
    )?;

    let root = dir.join("root");
    fake_block_root(&root)?;

    let uevents = dir.join("uevents.bin");
    std::fs::write(&uevents, uevent_messages())?;

    Ok(vec![
        ("config".into(), vec![s(&config)]),
        ("modules".into(), vec![s(&aliases), s(&packed), s(&devices)]),
        ("partitions".into(), vec![s(&root)]),
        ("uevents".into(), vec![s(&uevents)]),
    ])
}

/// `root/sys/class/block/{vda,vda1}` and `root/dev/{vda,vda1}`: a boot disk made by xtask
/// (MBR, one FAT16 partition labelled BOOT) and its partition's first 4 MiB.
fn fake_block_root(root: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(root);
    let class = root.join("sys/class/block");
    std::fs::create_dir_all(class.join("vda"))?;
    std::fs::create_dir_all(class.join("vda1"))?;
    std::fs::write(class.join("vda1/partition"), "1\n")?;
    std::fs::create_dir_all(root.join("dev"))?;
    let disk = root.join("dev/vda");
    let empty = root.join("init.toml");
    std::fs::write(&empty, "[box]\nargs = [\"poweroff\"]\n")?;
    image::make(
        &disk,
        &image::ImageOptions {
            size_mib: 32,
            box_path: None,
            config: Some(empty),
            files: None,
            label: None,
            gpt: false,
            hand_made: false,
            beside: Vec::new(),
        },
    )?;
    let bytes = std::fs::read(&disk)?;
    let mbr = boxinit::storage::partition::parse_mbr(bytes.get(..512).unwrap_or_default())
        .context("the disk xtask made has no MBR")?;
    let first = mbr
        .partitions
        .first()
        .context("the disk has no partition")?;
    let start = usize::try_from(first.start_lba)? * 512;
    let part = bytes
        .get(start..(start + (4 << 20)).min(bytes.len()))
        .unwrap_or_default();
    std::fs::write(root.join("dev/vda1"), part)?;
    Ok(())
}

/// One `add` message per recorded QEMU device, as the kernel's netlink sends it
/// (`add@DEVPATH`, then `KEY=value` fields, NUL-separated), each after its length (4 bytes,
/// little-endian).
fn uevent_messages() -> Vec<u8> {
    let mut out = Vec::new();
    let mut seqnum = 1000;
    for arch in [Arch::X86_64, Arch::Aarch64] {
        for modalias in coldplug_scale::real_devices(arch) {
            let bus = modalias.split(':').next().unwrap_or("platform").to_string();
            seqnum += 1;
            let devpath = format!("/devices/{bus}/{bus}{seqnum}");
            let mut message = format!("add@{devpath}\0ACTION=add\0DEVPATH={devpath}\0");
            let _ = write!(
                message,
                "SUBSYSTEM={bus}\0MODALIAS={modalias}\0SEQNUM={seqnum}\0"
            );
            out.extend((message.len() as u32).to_le_bytes());
            out.extend(message.as_bytes());
        }
    }
    out
}

/// Runs one phase under callgrind and reads its total instruction count.
fn count(harness: &Path, dir: &Path, phase: &str, args: &[String]) -> Result<Count> {
    let out_file = dir.join(format!("{phase}.callgrind.out"));
    let output = Command::new("valgrind")
        .env_clear()
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(harness)
        .arg(phase)
        .args(args)
        .output()
        .context("cannot run valgrind")?;
    let summary = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() {
        bail!(
            "phase {phase} under callgrind failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = std::fs::read_to_string(&out_file)
        .with_context(|| format!("cannot read {}", out_file.display()))?;
    let instructions = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no summary line in {}", out_file.display()))?;
    Ok(Count {
        phase: phase.to_string(),
        instructions,
        summary,
    })
}

/// The baseline file's counts.
pub fn read_baseline(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (phase, n) = l.split_once(char::is_whitespace)?;
            Some((phase.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

/// The baseline file for `counts`.
pub fn write_baseline(counts: &[Count]) -> String {
    let mut out = String::from(
        "# Instructions executed by each phase of bench/phases under callgrind (cargo xtask test\n\
         # fails when one grows more than 10 % over this). Rewrite on purpose: UPDATE_CALLGRIND=1\n",
    );
    for c in counts {
        let _ = writeln!(out, "{} {}", c.phase, c.instructions);
    }
    out
}

/// What grew too much, one line per phase; empty when all is within the tolerance.
pub fn regressions(counts: &[Count], baseline: &[(String, u64)]) -> Vec<String> {
    let mut out = Vec::new();
    for c in counts {
        match baseline.iter().find(|(p, _)| *p == c.phase) {
            Some((_, base)) if c.instructions as f64 > *base as f64 * (1.0 + TOLERANCE) => {
                out.push(format!(
                    "phase {}: {} instructions, {:+.1} % over the baseline's {base} (at most +{:.0} %)",
                    c.phase,
                    c.instructions,
                    (c.instructions as f64 / *base as f64 - 1.0) * 100.0,
                    TOLERANCE * 100.0
                ));
            }
            Some(_) => {}
            None => out.push(format!("phase {}: not in {BASELINE}", c.phase)),
        }
    }
    out
}

/// `cargo xtask test`'s check: counts against the baseline, or the baseline rewritten.
pub fn check(arch: Arch, tree: &ModIndex) -> Result<()> {
    let counts = measure(arch, tree)?;
    let path = workspace_root().join(BASELINE);
    if std::env::var_os(UPDATE_ENV).is_some() {
        std::fs::write(&path, write_baseline(&counts))?;
        progress!("instruction counts: wrote {BASELINE}");
        return Ok(());
    }
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("cannot read {BASELINE}: make it with {UPDATE_ENV}=1 cargo xtask test")
    })?;
    let baseline = read_baseline(&text);
    for c in &counts {
        let base = baseline
            .iter()
            .find(|(p, _)| *p == c.phase)
            .map(|(_, n)| *n);
        progress!(
            "instructions: {} {} (baseline {}): {}",
            c.phase,
            c.instructions,
            base.map_or("none".to_string(), |b| b.to_string()),
            c.summary
        );
    }
    let grown = regressions(&counts, &baseline);
    if !grown.is_empty() {
        bail!(
            "instruction counts grew: {}; if that is meant, rewrite the baseline with {UPDATE_ENV}=1",
            grown.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_round_trip_and_tolerance() {
        let counts = vec![
            Count {
                phase: "config".into(),
                instructions: 1000,
                summary: String::new(),
            },
            Count {
                phase: "modules".into(),
                instructions: 2201,
                summary: String::new(),
            },
        ];
        let baseline = read_baseline(&write_baseline(&counts));
        assert_eq!(
            baseline,
            [("config".to_string(), 1000), ("modules".to_string(), 2201)]
        );
        let old = [("config".to_string(), 950), ("modules".to_string(), 2000)];
        let grown = regressions(&counts, &old);
        assert_eq!(grown.len(), 1, "{grown:?}");
        assert!(
            grown[0].starts_with("phase modules: 2201 instructions, +10.1 %"),
            "{grown:?}"
        );
        assert_eq!(
            regressions(&counts, &old[..1]),
            ["phase modules: not in bench/callgrind.txt"]
        );
    }

    #[test]
    fn uevent_messages_parse_as_the_kernel_sends_them() {
        let bytes = uevent_messages();
        let (len, rest) = bytes.split_first_chunk::<4>().unwrap();
        let len = u32::from_le_bytes(*len) as usize;
        let event = boxinit::devices::uevent::parse(&rest[..len]).unwrap();
        assert!(event.vars.contains_key("MODALIAS"), "{event:?}");
    }
}
