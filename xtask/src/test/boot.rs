//! Running a boot scenario: its initramfs and disks prepared, the real kernel booted in QEMU,
//! the console read until the expected lines have been seen (or QEMU ends) and judged, then
//! the disk image checked; and every scenario in a row with one line each. A scenario whose
//! `expected` holds more than one ending boots the same disk again after each (the files of
//! `files-N/` copied onto it before boot N, as from a computer); `qemu: power cut` kills QEMU
//! once the boot's lines are seen. Reading the scenario's folder is `test/scenario.rs`'s,
//! watching and cleaning the console `qemu/`'s, cuts at random instants `test/power_cuts.rs`'s.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::fetch::kernel::KernelArgs;
use crate::media::image;
use crate::qemu::console::{self, Monitor, MonitorStep, Watch};
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
    // `big-config`: an init.toml of that many MiB, made now (50 MB are not committed).
    let big_config = match scenario.file("big-config") {
        Some(spec) => Some(big_config(&spec, &out_dir)?),
        None => None,
    };
    let opts = PrepareOptions {
        // a big init.toml twice over, or two slots beside the root files (three kernels and
        // initramfs)
        disk_size_mib: match (&big_config, scenario.slots.is_some()) {
            (Some((_, mib)), _) => mib.saturating_mul(2) + 64,
            (None, true) => 256,
            (None, false) => scenario.disk_size_mib.unwrap_or(0),
        },
        arch,
        kernel,
        debian_programs: scenario.debian.clone(),
        files: scenario.file("files"),
        builtin_config: scenario.file("builtin.toml"),
        config: big_config
            .map(|(path, _)| path)
            .or_else(|| scenario.file("init.toml")),
        busybox: scenario.busybox,
        modules: scenario.modules.clone(),
        box_path: match (scenario.file("box"), scenario.box_arch) {
            (Some(file), _) => Some(file),
            (None, Some(box_arch)) => Some(crate::pack::binaries::built(box_arch)?.demo_box),
            (None, None) => None,
        },
        gpt: scenario.gpt,
        rebundle: scenario.rebundle.clone(),
        no_console: scenario.no_console,
        no_net: scenario.no_net,
        hand_made: scenario.hand_made,
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
    if let Some(words) = &scenario.slots {
        crate::test::firmware::lay_out(&prepared.disk, words, &out_dir.join("slots"))
            .context("cannot lay the card out in two slots")?;
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
    let mut base = prepared.boot(&append);
    base.disk_options.clone_from(&scenario.boot_drive);
    // `boot-nbd`: the boot disk through the NBD server that dies at a sector (QEMU takes the
    // URL where a path goes); released with the hung disks
    if let Some(trip) = scenario.boot_nbd {
        let server = crate::test::nbd_hang::HungDisk::image_until(&prepared.disk, trip)
            .context("cannot serve the boot disk over NBD")?;
        base.disk = Some(PathBuf::from(server.url()));
        hung.push(server);
    }
    if let Some(mib) = scenario.memory_mib {
        base.memory_mib = mib;
    }
    let timeout = scenario.timeout.unwrap_or(DEFAULT_TIMEOUT);
    base.extra_args.extend(
        scenario
            .qemu_args
            .iter()
            .map(|a| port(&substitute(a, &disks))),
    );
    // `forward`: the network card and forwards `run --forward` gives, from free host ports
    let forwards = free_forwards(&scenario.forward)?;
    if !forwards.is_empty() {
        base.extra_args
            .extend(machine::user_network(prepared.machine, &forwards));
    }
    let boots = transcript::split_boots(&scenario.expected);
    let cuts_power = scenario.power_cuts.is_some()
        || boots
            .iter()
            .any(|b| b.last().and_then(|l| Ending::named(l)) == Some(Ending::PowerCut));
    if cuts_power {
        // the guest's completed writes are in the image when QEMU is killed, in order
        base.disk_cache = Some("writethrough".to_string());
    }
    let pristine = out_dir.join("pristine.img");
    if scenario.power_cuts.is_some() {
        std::fs::copy(&prepared.disk, &pristine).context("cannot keep the disk's first state")?;
    }
    let marks: Vec<String> = scenario
        .power_cuts
        .iter()
        .flat_map(|c| [c.trigger.clone(), c.end.clone()])
        .collect();
    let started = Instant::now();
    let (mut transcript, mut raw_all, mut failures) = (Vec::new(), String::new(), Vec::new());
    let mut matched = 0;
    let mut last_ending = Ending::Exited;
    let mut window = (None, None);
    // QEMU cannot exit while a hung disk's read is held: let them fail once the guest ends.
    let mut release = || hung.iter().for_each(|h| h.release());
    let mut last_raw = String::new();
    for (n, expected) in boots.iter().enumerate() {
        if n > 0 {
            if let Some(dir) = scenario.files_for_boot(n + 1) {
                image::write_files(&prepared.disk, &dir)
                    .with_context(|| format!("cannot copy {} onto the disk", dir.display()))?;
            }
        }
        let mut boot = base.clone();
        if scenario.slots.is_some() {
            let tryboot = last_raw.contains(crate::test::firmware::TRYBOOT_LINE);
            let dir = out_dir.join(format!("firmware-{}", n + 1));
            let picked = crate::test::firmware::prepare(&prepared.disk, tryboot, &dir, &mut boot)
                .context("the firmware's stand-in")?;
            println!(
                "    boot {}: firmware: {} ({})",
                n + 1,
                picked.config,
                match picked.prefix.as_str() {
                    "" => "the root files",
                    slot => slot,
                }
            );
        }
        let monitor_steps: Vec<MonitorStep> = match n {
            0 => scenario
                .monitor
                .iter()
                .map(|m| MonitorStep {
                    when: m.when.clone(),
                    command: substitute(&m.command, &disks),
                })
                .collect(),
            _ => Vec::new(),
        };
        if !monitor_steps.is_empty() {
            let socket = out_dir.join("monitor.sock");
            let _ = std::fs::remove_file(&socket);
            boot.monitor = Some(socket);
        }
        let mut command = machine::command(&boot, false);
        let console_input = match n {
            0 => scenario.console_input.clone(),
            _ => Vec::new(),
        };
        if !console_input.is_empty() {
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
            senders.push(Monitor::console(stdin, console_input));
        }
        if n == 0 && !scenario.forward.is_empty() {
            let ports = forwards.iter().map(|f| (f.guest, f.host)).collect();
            senders.push(Monitor::http(ports, scenario.forward.clone()));
        }
        let cut = expected.last().and_then(|l| Ending::named(l)) == Some(Ending::PowerCut);
        let watched = console::watch_with(
            &mut child,
            Watch {
                expected: lines_to_watch(expected, cut, update),
                wait_for_exit: !cut && (update || transcript::expects_ending(expected)),
                timeout,
                settle: SETTLE,
                senders,
                cut: None,
                marks: if n == 0 { &marks } else { &[] },
                cut_when_seen: cut,
                on_ending: &mut release,
            },
        )?;
        if n == 0 && scenario.prompt_last {
            let typed = scenario
                .console_input
                .first()
                .map_or("", |s| s.command.as_str());
            failures.extend(transcript::prompt_stays_last(&watched.raw, typed).err());
        }
        if n == 0 {
            window = (
                watched.marks.first().copied().flatten(),
                watched.marks.get(1).copied().flatten(),
            );
        }
        raw_all.push_str(&watched.raw);
        last_raw.clone_from(&watched.raw);
        let mut seen = transcript::clean(&watched.raw);
        seen.push(watched.ending.line().to_string());
        if n == 0 {
            // what the bundle said (a Pi's card), first
            let notes = prepared.notes.iter().map(|n| format!("qemu: bundle: {n}"));
            seen.splice(0..0, notes);
        }
        last_ending = watched.ending;
        let boot_name = match boots.len() {
            1 => String::new(),
            _ => format!("boot {}: ", n + 1),
        };
        let missing = transcript::first_missing(expected, &seen);
        if let Some((i, line)) = missing.and_then(|i| expected.get(i).map(|l| (i, l))) {
            failures.push(format!(
                "{boot_name}expected line {} not seen (in order): {line}",
                matched + i + 1
            ));
        }
        matched += missing.unwrap_or(expected.len());
        failures.extend(
            transcript::verdict(expected, &watched.raw, watched.ending)
                .into_iter()
                .map(|f| format!("{boot_name}{f}")),
        );
        transcript.extend(seen);
        if !failures.is_empty() && !update {
            break;
        }
    }
    std::fs::write(out_dir.join("console.log"), &raw_all).ok();
    if update {
        let mut text = transcript.join("\n");
        text.push('\n');
        std::fs::write(scenario.dir.join("expected"), text)?;
    }
    for w in &scenario.within {
        match transcript::seconds_between(&raw_all, &w.from, &w.to) {
            Ok(took) if took <= w.seconds => {}
            Ok(took) => failures.push(format!(
                "`{}` to `{}` took {took:.3}s of guest time, more than {}s",
                w.from, w.to, w.seconds
            )),
            Err(e) => failures.push(format!("within: {e}")),
        }
    }
    if failures.is_empty() && last_ending != Ending::StoppedByTest {
        failures.extend(check_after(&scenario.after, &prepared.disk));
    }
    if let (true, Some(cuts)) = (failures.is_empty(), &scenario.power_cuts) {
        match crate::test::power_cuts::run(cuts, &base, &prepared.disk, &pristine, window, timeout)
        {
            Ok(summary) => {
                println!("    {summary}");
                transcript.push(format!("qemu: {summary}"));
            }
            Err(e) => failures.push(format!("power cuts: {e:#}")),
        }
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

/// A TCP forward from a free port of the host's 127.0.0.1 to each guest port the steps name.
fn free_forwards(steps: &[MonitorStep]) -> Result<Vec<machine::Forward>> {
    let mut forwards: Vec<machine::Forward> = Vec::new();
    for step in steps {
        let guest: u16 = step.command.parse()?;
        if forwards.iter().any(|f| f.guest == guest) {
            continue;
        }
        // the port is free now; QEMU binds it a moment later
        let host = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot find a free port on 127.0.0.1")?
            .port();
        forwards.push(machine::Forward {
            udp: false,
            host,
            guest,
        });
    }
    Ok(forwards)
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
            After::Fsck => match crate::test::power_cuts::fsck(disk) {
                Ok(v) if v.problems.is_empty() => {}
                Ok(v) => failures.push(format!(
                    "fsck.fat -n would repair: {}",
                    v.problems.join("; ")
                )),
                Err(e) => failures.push(format!("cannot run fsck.fat: {e:#}")),
            },
            After::Absent { name } => match image::read_file(disk, name) {
                Ok(None) => {}
                Ok(Some(_)) => failures.push(format!("{name} is on the disk, it should not be")),
                Err(e) => failures.push(format!("cannot read {name} from the disk: {e:#}")),
            },
            After::Contains { name, text } => match image::read_file(disk, name) {
                Ok(Some(bytes)) if String::from_utf8_lossy(&bytes).contains(text.as_str()) => {}
                Ok(Some(bytes)) => failures.push(format!(
                    "{name} on the disk does not hold {text:?}; it holds {:?}",
                    String::from_utf8_lossy(&bytes).trim_end()
                )),
                Ok(None) => failures.push(format!("{name} is not on the disk")),
                Err(e) => failures.push(format!("cannot read {name} from the disk: {e:#}")),
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

/// The lines a boot is watched for. A boot cut by power is cut once its lines are seen, also
/// when updating; its last line (`qemu: power cut`) is the harness's own, never on the console,
/// so it is not waited for (else the cut never comes and the boot times out).
fn lines_to_watch(expected: &[String], cut: bool, update: bool) -> &[String] {
    match (cut, update) {
        (true, _) => expected.split_last().map_or(expected, |(_, lines)| lines),
        (false, true) => &[],
        (false, false) => expected,
    }
}

/// `big-config`: a valid init.toml of `SIZE_MiB` (the file's one number), written into
/// `out_dir`: `[box] args` with a word per 6 bytes, as many as fit — the most work for a
/// TOML parser per byte. Returns its path and size.
fn big_config(spec: &Path, out_dir: &Path) -> Result<(PathBuf, u32)> {
    let text = std::fs::read_to_string(spec)?;
    let mib: u32 = text
        .split('#')
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .with_context(|| format!("{}: expected a size in MiB", spec.display()))?;
    let size = usize::try_from(mib)? << 20;
    let mut toml = String::with_capacity(size);
    toml.push_str("# made by the harness (big-config)\n[box]\nargs = [\n");
    while toml.len() + 8 < size {
        toml.push_str("\"ab\",\n");
    }
    toml.push_str("]\n");
    std::fs::create_dir_all(out_dir)?;
    let path = out_dir.join("big-init.toml");
    std::fs::write(&path, toml)?;
    Ok((path, mib))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_boot_waits_for_its_lines_not_for_the_cut() {
        let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cut = lines(&["demo: a", "qemu: power cut"]);
        let off = lines(&["demo: a", "qemu: power-off"]);
        for (expected, cut, update, watched) in [
            (&cut, true, false, lines(&["demo: a"])),
            (&cut, true, true, lines(&["demo: a"])),
            (&off, false, false, off.clone()),
            (&off, false, true, lines(&[])),
        ] {
            assert_eq!(
                lines_to_watch(expected, cut, update),
                watched,
                "{expected:?} {update}"
            );
        }
    }

    #[test]
    fn disks_are_named_in_arguments() {
        let disks = vec![("stick".to_string(), "/t/stick.img".to_string())];
        assert_eq!(
            substitute("drive_add 0 if=none,id=s,file={stick},format=raw", &disks),
            "drive_add 0 if=none,id=s,file=/t/stick.img,format=raw"
        );
    }
}
