//! Running a boot scenario: its initramfs and disks prepared, the real kernel booted in QEMU,
//! the console read until the expected lines have been seen (or QEMU ends) and judged, then
//! the disk image checked; and every scenario in a row with one line each. Reading the
//! scenario's folder is `test/scenario.rs`'s, watching and cleaning the console `qemu/`'s.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::fetch::kernel::KernelArgs;
use crate::media::image;
use crate::qemu::console::{self, Monitor, MonitorStep};
use crate::qemu::machine::{self, Machine};
use crate::qemu::prepare::{self, PrepareOptions};
use crate::qemu::transcript::{self, Ending};
use crate::test::scenario::{After, Scenario};
use crate::tools::arch::Arch;

/// How long one boot may take before the scenario fails. TCG on a shared 2-core machine is
/// slow and noisy: a boot takes 2-3 s alone, more while cargo builds alongside.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// A scenario that stops early keeps QEMU running this much longer once its last expected
/// line is seen, so that a panic or a reboot right after it is seen too.
const SETTLE: Duration = Duration::from_secs(1);

/// What one run of a scenario saw.
#[derive(Debug)]
pub struct Outcome {
    pub transcript: Vec<String>,
    pub matched: usize,
    pub failures: Vec<String>,
    pub elapsed: Duration,
}

/// Prepares and boots one scenario; `update` rewrites its `expected` with what was seen.
pub fn run(scenario: &Scenario, arch: Arch, kernel: &KernelArgs, update: bool) -> Result<Outcome> {
    let (arch, kernel) = scenario.target(arch, kernel);
    let kernel = &kernel;
    let out_dir = crate::target_dir().join("scenarios").join(&scenario.name);
    let kernel = match scenario.kernel.as_deref() {
        Some(_) => {
            let generic = crate::fetch::generic_kernel::fetch()?;
            KernelArgs {
                kernel: Some(generic.image),
                modules_dir: Some(generic.modules_dir),
                dtb_dir: None,
            }
        }
        None => kernel.clone(),
    };
    let opts = PrepareOptions {
        arch,
        kernel,
        debian_programs: scenario.debian.clone(),
        files: scenario.file("files"),
        builtin_config: scenario.file("builtin.toml"),
        config: scenario.file("init.toml"),
        busybox: scenario.busybox,
        modules: scenario.modules.clone(),
        box_path: match (scenario.file("box"), scenario.box_arch) {
            (Some(file), _) => Some(file),
            (None, Some(box_arch)) => Some(crate::pack::binaries::built(box_arch)?.demo_box),
            (None, None) => None,
        },
        gpt: scenario.gpt,
        no_console: scenario.no_console,
        no_net: scenario.no_net,
        flavor: match scenario.small {
            true => crate::pack::binaries::Flavor::Small,
            false => crate::pack::binaries::Flavor::Stable,
        },
        ..Default::default()
    };
    let prepared = match scenario.machine {
        Some(Machine::Raspi3b) => prepare::prepare_raspi3b(&opts, &out_dir)?,
        _ => prepare::prepare(&opts, &out_dir)?,
    };
    if scenario.host_card {
        let folder = prepared.initrd.parent().unwrap_or(&out_dir);
        crate::test::host_card::card_by_host_tools(folder, &prepared.disk, 128)?;
    }
    let mut disks = Vec::new();
    for disk in &scenario.disks {
        let path = out_dir.join(format!("{}.img", disk.name));
        let made = match disk.label.as_str() {
            "-" => blank_disk(&path, disk.size_mib),
            label => image::make(
                &path,
                &image::ImageOptions {
                    size_mib: disk.size_mib,
                    label: Some(label.to_string()),
                    ..Default::default()
                },
            )
            .map(|_| ()),
        };
        made.with_context(|| format!("cannot make the disk {}", disk.name))?;
        disks.push((disk.name.clone(), path.display().to_string()));
    }
    // Dropped (their connections closed) when the run ends, also on an error.
    let mut hung = Vec::new();
    for disk in &scenario.hung_disks {
        let server = crate::test::nbd_hang::HungDisk::start(disk.size_mib)
            .with_context(|| format!("cannot serve the hung disk {}", disk.name))?;
        disks.push((disk.name.clone(), server.url()));
        hung.push(server);
    }
    let responder = scenario
        .sntp
        .map(crate::test::sntp_responder::Responder::start)
        .transpose()?;
    let port = |text: &str| match &responder {
        Some(r) => text.replace("{sntp_port}", &r.port.to_string()),
        None => text.to_string(),
    };
    // a Pi card's cmdline.txt has `panic=10`: QEMU (`-no-reboot`) exits at a panic at once
    let append = match prepared.card_cmdline {
        Some(_) => format!("panic=-1 {}", port(&scenario.cmdline)),
        None => port(&scenario.cmdline),
    };
    let mut boot = prepared.boot(&append);
    boot.extra_args.extend(
        scenario
            .qemu_args
            .iter()
            .map(|a| port(&substitute(a, &disks))),
    );
    let monitor_steps: Vec<MonitorStep> = scenario
        .monitor
        .iter()
        .map(|m| MonitorStep {
            when: m.when.clone(),
            command: substitute(&m.command, &disks),
        })
        .collect();
    if !monitor_steps.is_empty() {
        let socket = out_dir.join("monitor.sock");
        let _ = std::fs::remove_file(&socket);
        boot.monitor = Some(socket);
    }
    let started = Instant::now();
    let mut command = machine::command(&boot, false);
    if !scenario.console_input.is_empty() {
        // what is typed on the console: QEMU's stdin is the serial port (-serial stdio)
        command.stdin(Stdio::piped());
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", arch.qemu_binary()))?;
    let mut senders = Vec::new();
    if let Some(socket) = &boot.monitor {
        senders.push(Monitor::connect(socket, monitor_steps)?);
    }
    if let Some(stdin) = child.stdin.take() {
        senders.push(Monitor::console(stdin, scenario.console_input.clone()));
    }
    let expected = if update {
        Vec::new()
    } else {
        scenario.expected.clone()
    };
    let wait_for_exit = update || scenario.waits_for_exit();
    // QEMU cannot exit while a hung disk's read is held: let them fail once the guest ends.
    let mut release = || hung.iter().for_each(|h| h.release());
    let (raw, ending) = console::watch_settled(
        &mut child,
        &expected,
        wait_for_exit,
        (DEFAULT_TIMEOUT, SETTLE),
        senders,
        &mut release,
    )?;
    std::fs::write(out_dir.join("console.log"), &raw).ok();
    let mut transcript = transcript::clean(&raw);
    transcript.push(ending.line().to_string());
    if update {
        let mut text = transcript.join("\n");
        text.push('\n');
        std::fs::write(scenario.dir.join("expected"), text)?;
    }
    let missing = transcript::first_missing(&scenario.expected, &transcript);
    let mut failures = Vec::new();
    if let Some((i, line)) = missing.and_then(|i| scenario.expected.get(i).map(|l| (i, l))) {
        failures.push(format!(
            "expected line {} not seen (in order): {line}",
            i + 1
        ));
    }
    let matched = missing.unwrap_or(scenario.expected.len());
    failures.extend(transcript::verdict(&scenario.expected, &raw, ending));
    for w in &scenario.within {
        match transcript::seconds_between(&raw, &w.from, &w.to) {
            Ok(took) if took <= w.seconds => {}
            Ok(took) => failures.push(format!(
                "`{}` to `{}` took {took:.3}s of guest time, more than {}s",
                w.from, w.to, w.seconds
            )),
            Err(e) => failures.push(format!("within: {e}")),
        }
    }
    if failures.is_empty() && ending != Ending::StoppedByTest {
        failures.extend(check_after(&scenario.after, &prepared.disk));
    }
    Ok(Outcome {
        transcript,
        matched,
        failures,
        elapsed: started.elapsed(),
    })
}

/// A disk of `size_mib` with an MBR and one partition (type 0x83) holding only zeros: a
/// partition that is not FAT.
fn blank_disk(path: &Path, size_mib: u32) -> Result<()> {
    use std::io::Write;
    let start = image::PARTITION_START_SECTOR;
    let sectors = (u64::from(size_mib) << 20) / image::SECTOR - u64::from(start);
    let mbr = image::mbr(0xB1A4_0001, 0x83, start, u32::try_from(sectors)?);
    let mut file = std::fs::File::create(path)?;
    file.set_len(u64::from(size_mib) << 20)?;
    file.write_all(&mbr)?;
    Ok(())
}

/// `text` with every `{NAME}` of `disks` replaced by that disk's path (or a hung disk's URL).
fn substitute(text: &str, disks: &[(String, String)]) -> String {
    let mut out = text.to_string();
    for (name, path) in disks {
        out = out.replace(&format!("{{{name}}}"), path);
    }
    out
}

fn check_after(checks: &[After], disk: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    for check in checks {
        match check {
            After::FatClean => match image::fat_state(disk) {
                Ok(state) if !state.dirty => {}
                Ok(state) => failures.push(format!("the FAT is dirty after shutdown: {state:?}")),
                Err(e) => failures.push(format!("cannot read the FAT state: {e:#}")),
            },
            After::File { name, text } => match image::read_file(disk, name) {
                Ok(Some(bytes)) if bytes == format!("{text}\n").as_bytes() => {}
                Ok(Some(bytes)) => failures.push(format!(
                    "{name} on the disk holds {:?}, not {text:?}",
                    String::from_utf8_lossy(&bytes)
                )),
                Ok(None) => failures.push(format!("{name} is not on the disk")),
                Err(e) => failures.push(format!("cannot read {name} from the disk: {e:#}")),
            },
            After::Lines { name, count } => {
                let want: String = (1..=*count).map(|i| format!("line {i}\n")).collect();
                match image::read_file(disk, name) {
                    Ok(Some(bytes)) if bytes == want.as_bytes() => {}
                    Ok(Some(bytes)) => {
                        let text = String::from_utf8_lossy(&bytes);
                        failures.push(format!(
                            "{name} on the disk is incomplete: {} bytes, {} lines, ends {:?}; expected {count} lines",
                            bytes.len(),
                            text.lines().count(),
                            text.lines().last().unwrap_or("")
                        ))
                    }
                    Ok(None) => failures.push(format!("{name} is not on the disk")),
                    Err(e) => failures.push(format!("cannot read {name} from the disk: {e:#}")),
                }
            }
        }
    }
    failures
}

/// Runs every scenario, prints one line each and the failures' transcripts; returns
/// (passed, failed).
pub fn run_all(scenarios: &[Scenario], arch: Arch, kernel: &KernelArgs) -> (usize, usize) {
    let update = std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1");
    let (mut passed, mut failed) = (0, 0);
    for scenario in scenarios {
        match run(scenario, arch, kernel, update) {
            Ok(outcome) if outcome.failures.is_empty() => {
                passed += 1;
                println!(
                    "scenario {} ... ok ({:.1}s)",
                    scenario.name,
                    outcome.elapsed.as_secs_f64()
                );
            }
            Ok(outcome) => {
                failed += 1;
                println!(
                    "scenario {} ... FAILED ({:.1}s)",
                    scenario.name,
                    outcome.elapsed.as_secs_f64()
                );
                for f in &outcome.failures {
                    println!("    {f}");
                }
                println!(
                    "    cleaned console ({} of {} expected lines matched):",
                    outcome.matched,
                    scenario.expected.len()
                );
                for line in &outcome.transcript {
                    println!("    | {line}");
                }
                println!(
                    "    raw console: target/scenarios/{}/console.log",
                    scenario.name
                );
            }
            Err(e) => {
                failed += 1;
                println!("scenario {} ... FAILED to start: {e:#}", scenario.name);
            }
        }
    }
    (passed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_are_named_in_arguments() {
        let disks = vec![("stick".to_string(), "/t/stick.img".to_string())];
        assert_eq!(
            substitute("drive_add 0 if=none,id=s,file={stick},format=raw", &disks),
            "drive_add 0 if=none,id=s,file=/t/stick.img,format=raw"
        );
    }
}
