//! The QEMU boot scenarios of `tests/boot/NNN_name/`: load one, prepare its initramfs and
//! disk, boot the real kernel, read the console until the expected lines have been seen (or
//! QEMU ends), then check the disk image. Cleaning and matching the console is
//! `transcript.rs`'s job; the file format is described in `tests/boot/README.md`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::fetch::kernel::KernelArgs;
use crate::media::image;
use crate::qemu::machine::{self, Machine};
use crate::qemu::prepare::{self, PrepareOptions};
use crate::tools::arch::Arch;
use crate::transcript::{self, Ending};

/// How long one boot may take before the scenario fails. TCG on a shared 2-core machine is
/// slow and noisy: a boot takes 2-3 s alone, more while cargo builds alongside.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// A scenario that stops early keeps QEMU running this much longer once its last expected
/// line is seen, so that a panic or a reboot right after it is seen too.
const SETTLE: Duration = Duration::from_secs(1);

/// One scenario folder.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub dir: PathBuf,
    /// Lines to find in order in the cleaned console.
    pub expected: Vec<String>,
    /// Extra kernel command-line words.
    pub cmdline: String,
    /// Checks on the disk image after QEMU exited.
    pub after: Vec<After>,
    /// More QEMU arguments (`qemu-args`, whitespace-separated, `#` comment lines), e.g.
    /// `-serial null` for ttyS1; `{NAME}` stands for the path of disk NAME.
    pub qemu_args: Vec<String>,
    /// Pack busybox as `/bin/sh` into the initramfs (a `busybox` file exists).
    pub busybox: bool,
    /// Extra FAT disk images to make (`disks`), for `qemu-args` and `monitor` to use.
    pub disks: Vec<ExtraDisk>,
    /// Monitor commands to send once a console line appears (`monitor`), in order.
    pub monitor: Vec<MonitorStep>,
    /// What to pack with `--modules` (`modules`); empty: auto.
    pub modules: Vec<String>,
    /// The machine to boot (`board`: `pc`, `virt`, `raspi3b`); None: `cargo xtask test`'s arch.
    pub machine: Option<Machine>,
    /// Boot the small build (`cargo xtask build --small`: nightly) instead of the stable one
    /// (a `small` file exists).
    pub small: bool,
    /// `raspi3b` only: the SD card made from the bundle folder by the host's `sfdisk`,
    /// `mkfs.vfat` and `mcopy` instead of xtask's writer (a `host-card` file exists).
    pub host_card: bool,
    /// Debian programs to pack with their libraries (`debian`: `wpa_supplicant hostapd`).
    pub debian: Vec<String>,
    /// `kernel`: `generic` boots Debian's generic amd64 kernel (wireless, mac80211_hwsim)
    /// instead of the cloud one; None: the default kernel.
    pub kernel: Option<String>,
    /// `sntp`: run a test SNTP server on the host answering with this time (seconds since
    /// 1970); `{sntp_port}` in `cmdline` and `qemu-args` is its port.
    pub sntp: Option<i64>,
    /// The demo box built for this architecture goes on the disk (`box-arch`), e.g. an
    /// aarch64 box on an x86_64 machine.
    pub box_arch: Option<Arch>,
    /// The boot disk has a GPT (a `gpt` file exists).
    pub gpt: bool,
    /// No `/dev/console` in the initramfs (a `no-console` file exists).
    pub no_console: bool,
    /// No `/boxinit-net` in the initramfs (a `no-net` file exists).
    pub no_net: bool,
}

/// A FAT disk image beside the boot disk: `NAME LABEL [SIZE_MiB]` in `disks`; the label `-`
/// makes a disk whose one partition holds no file system (zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraDisk {
    pub name: String,
    pub label: String,
    pub size_mib: u32,
}

/// `PATTERN => COMMAND` in `monitor`: when a cleaned console line matches PATTERN (`*`
/// wildcards, as in `expected`), COMMAND goes to QEMU's human monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorStep {
    pub when: String,
    pub command: String,
}

/// A check of the disk image once QEMU has exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// The FAT's dirty bit is clear: it was unmounted cleanly.
    FatClean,
    /// The file exists on the FAT with this text (plus a newline).
    File { name: String, text: String },
    /// The file holds exactly the lines `line 1` .. `line N` (the demo's `slow-write`).
    Lines { name: String, count: u32 },
}

impl Scenario {
    /// Reads a scenario folder.
    pub fn load(dir: &Path) -> Result<Scenario> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        let expected = transcript::expected_lines(&read("expected"));
        let cmdline = read("cmdline")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let after =
            parse_after(&read("after")).with_context(|| format!("{}/after", dir.display()))?;
        let qemu_args = data_lines(&read("qemu-args"))
            .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect();
        let disks =
            parse_disks(&read("disks")).with_context(|| format!("{}/disks", dir.display()))?;
        let monitor = parse_monitor(&read("monitor"))
            .with_context(|| format!("{}/monitor", dir.display()))?;
        let modules = data_lines(&read("modules"))
            .flat_map(|l| l.split(|c: char| c == ',' || c.is_whitespace()))
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect();
        let box_arch = match data_lines(&read("box-arch")).next() {
            Some(name) => Some(
                <Arch as clap::ValueEnum>::from_str(name, true)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("{}/box-arch", dir.display()))?,
            ),
            None => None,
        };
        let machine = match data_lines(&read("board")).next() {
            Some(name) => {
                Some(Machine::from_name(name).with_context(|| format!("{}/board", dir.display()))?)
            }
            None => None,
        };
        let words = |file: &str| -> Vec<String> {
            data_lines(&read(file))
                .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .collect()
        };
        let kernel = words("kernel").into_iter().next();
        if let Some(k) = kernel.as_deref().filter(|k| *k != "generic") {
            bail!(
                "{}/kernel: unknown kernel `{k}` (known: generic)",
                dir.display()
            );
        }
        Ok(Scenario {
            debian: words("debian"),
            kernel,
            name,
            dir: dir.to_path_buf(),
            expected,
            cmdline,
            after,
            qemu_args,
            busybox: dir.join("busybox").exists(),
            disks,
            monitor,
            modules,
            machine,
            host_card: dir.join("host-card").exists(),
            sntp: match read("sntp").trim() {
                "" => None,
                text => Some(text.parse().with_context(|| {
                    format!("{}/sntp: `{text}` is not seconds since 1970", dir.display())
                })?),
            },
            box_arch,
            gpt: dir.join("gpt").exists(),
            no_console: dir.join("no-console").exists(),
            no_net: dir.join("no-net").exists(),
            small: dir.join("small").exists(),
        })
    }

    /// The architecture and kernel it boots: its board's architecture with Debian's kernel,
    /// or `cargo xtask test`'s (`arch`, `kernel`) when it has no board or the same arch.
    pub fn target(&self, arch: Arch, kernel: &KernelArgs) -> (Arch, KernelArgs) {
        match self.machine {
            Some(machine) if machine.arch() != arch => (machine.arch(), KernelArgs::default()),
            _ => (arch, kernel.clone()),
        }
    }

    /// The file in the folder, when it exists.
    fn file(&self, name: &str) -> Option<PathBuf> {
        let path = self.dir.join(name);
        path.exists().then_some(path)
    }

    /// Whether the scenario waits for QEMU to exit (its last expected line is `qemu: ...`).
    fn waits_for_exit(&self) -> bool {
        transcript::expects_ending(&self.expected)
    }
}

/// The lines of a scenario file that are not blank or `#` comments, trimmed.
fn data_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

fn parse_disks(text: &str) -> Result<Vec<ExtraDisk>> {
    let mut disks = Vec::new();
    for line in data_lines(text) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (name, label, size) = match words.as_slice() {
            [name, label] => (*name, *label, image::DEFAULT_SIZE_MIB),
            [name, label, size] => (
                *name,
                *label,
                size.parse()
                    .with_context(|| format!("`{size}` is not a size in MiB"))?,
            ),
            _ => bail!("expected `NAME LABEL [SIZE_MiB]`, found `{line}`"),
        };
        if label.len() > 11 {
            bail!("the FAT label `{label}` is longer than 11 characters");
        }
        disks.push(ExtraDisk {
            name: name.to_string(),
            label: label.to_string(),
            size_mib: size,
        });
    }
    Ok(disks)
}

fn parse_monitor(text: &str) -> Result<Vec<MonitorStep>> {
    data_lines(text)
        .map(|line| match line.split_once("=>") {
            Some((when, command)) if !when.trim().is_empty() && !command.trim().is_empty() => {
                Ok(MonitorStep {
                    when: when.trim().to_string(),
                    command: command.trim().to_string(),
                })
            }
            _ => bail!("expected `CONSOLE LINE PATTERN => MONITOR COMMAND`, found `{line}`"),
        })
        .collect()
}

/// `text` with every `{NAME}` of `disks` replaced by that disk's path.
fn substitute(text: &str, disks: &[(String, PathBuf)]) -> String {
    let mut out = text.to_string();
    for (name, path) in disks {
        out = out.replace(&format!("{{{name}}}"), &path.display().to_string());
    }
    out
}

fn parse_after(text: &str) -> Result<Vec<After>> {
    let mut checks = Vec::new();
    for line in data_lines(text) {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("fat-clean"), None, None) => checks.push(After::FatClean),
            (Some("lines"), Some(name), Some(count)) => checks.push(After::Lines {
                name: name.to_string(),
                count: count
                    .trim()
                    .parse()
                    .with_context(|| format!("`{line}`: not a line count"))?,
            }),
            (Some("file"), Some(name), text) => checks.push(After::File {
                name: name.to_string(),
                text: text.unwrap_or("").to_string(),
            }),
            _ => bail!(
                "unknown check `{line}` (known: `fat-clean`, `file NAME TEXT`, `lines NAME N`)"
            ),
        }
    }
    Ok(checks)
}

/// Every scenario under `root` whose name contains `filter`, in name order.
pub fn discover(root: &Path, filter: Option<&str>) -> Result<Vec<Scenario>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("cannot list {}", root.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter(|p| {
            filter.is_none_or(|f| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(f))
            })
        })
        .collect();
    dirs.sort();
    dirs.iter().map(|d| Scenario::load(d)).collect()
}

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
        disks.push((disk.name.clone(), path));
    }
    let responder = scenario
        .sntp
        .map(crate::sntp_responder::Responder::start)
        .transpose()?;
    let port = |text: &str| match &responder {
        Some(r) => text.replace("{sntp_port}", &r.port.to_string()),
        None => text.to_string(),
    };
    let mut boot = prepared.boot(&port(&scenario.cmdline));
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
    let mut child = machine::command(&boot, false)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", arch.qemu_binary()))?;
    let monitor = match &boot.monitor {
        Some(socket) => Some(Monitor::connect(socket, monitor_steps)?),
        None => None,
    };
    let expected = if update {
        Vec::new()
    } else {
        scenario.expected.clone()
    };
    let wait_for_exit = update || scenario.waits_for_exit();
    let (raw, ending) = watch_settled(
        &mut child,
        &expected,
        wait_for_exit,
        DEFAULT_TIMEOUT,
        SETTLE,
        monitor,
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

/// Reads the console until every expected line is seen (then stops QEMU, unless the scenario
/// waits for it to exit), QEMU exits, or `timeout` passes. Returns the raw console and how
/// QEMU ended.
pub fn watch(
    child: &mut Child,
    expected: &[String],
    wait_for_exit: bool,
    timeout: Duration,
    monitor: Option<Monitor>,
) -> Result<(String, Ending)> {
    watch_settled(
        child,
        expected,
        wait_for_exit,
        timeout,
        Duration::ZERO,
        monitor,
    )
}

/// [`watch`], but QEMU is stopped only `settle` after every expected line was seen.
pub fn watch_settled(
    child: &mut Child,
    expected: &[String],
    wait_for_exit: bool,
    timeout: Duration,
    settle: Duration,
    mut monitor: Option<Monitor>,
) -> Result<(String, Ending)> {
    let Some(mut stdout) = child.stdout.take() else {
        bail!("QEMU's stdout is not piped")
    };
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut raw = Vec::new();
    // monitor commands sent, added to the transcript at the end (not amid a console line)
    let mut sent: Vec<String> = Vec::new();
    // When every expected line has been seen (and QEMU is to be stopped), stop it then.
    let mut stop_at: Option<Instant> = None;
    let ending = loop {
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            raw.extend_from_slice(
                format!("\nqemu: timeout after {}s\n", timeout.as_secs()).as_bytes(),
            );
            break Ending::Exited;
        }
        match rx.recv_timeout((deadline - now).min(Duration::from_millis(200))) {
            Ok(bytes) => raw.extend_from_slice(&bytes),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.wait();
                break transcript::ending_of(&String::from_utf8_lossy(&raw));
            }
        }
        if let Some(monitor) = &mut monitor {
            let seen = transcript::clean(&String::from_utf8_lossy(&raw));
            sent.extend(monitor.send_due(&seen));
        }
        if !wait_for_exit && !expected.is_empty() && stop_at.is_none() {
            let seen = transcript::clean(&String::from_utf8_lossy(&raw));
            if transcript::first_missing(expected, &seen).is_none() {
                stop_at = Some(Instant::now() + settle);
            }
        }
        if stop_at.is_some_and(|at| Instant::now() >= at) {
            let _ = child.kill();
            let _ = child.wait();
            break Ending::StoppedByTest;
        }
    };
    let _ = reader.join();
    for line in sent {
        raw.extend_from_slice(format!("\nqemu: monitor: {line}\n").as_bytes());
    }
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let mut text = String::from_utf8_lossy(&raw).into_owned();
    if !stderr.trim().is_empty() {
        text.push_str("\nqemu stderr: ");
        text.push_str(&stderr);
    }
    Ok((text, ending))
}

/// QEMU's human monitor on a unix socket, and the steps still to send.
pub struct Monitor {
    stream: std::os::unix::net::UnixStream,
    pending: std::collections::VecDeque<MonitorStep>,
}

impl Monitor {
    /// Connects to the socket QEMU creates at start-up (waiting up to 10 s for it); what the
    /// monitor answers is read and dropped by a thread, so QEMU never blocks writing to it.
    fn connect(socket: &Path, steps: Vec<MonitorStep>) -> Result<Monitor> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match std::os::unix::net::UnixStream::connect(socket) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("cannot connect to QEMU's monitor at {}", socket.display())
                    })
                }
            }
        };
        let mut reader = stream.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
        });
        Ok(Monitor {
            stream,
            pending: steps.into(),
        })
    }

    /// Sends every step whose line has appeared in `seen` (in order: a step waits for the
    /// one before it); returns what was sent, for the transcript.
    fn send_due(&mut self, seen: &[String]) -> Vec<String> {
        use std::io::Write;
        let mut sent = Vec::new();
        while let Some(step) = self.pending.front() {
            if !seen.iter().any(|l| transcript::line_matches(&step.when, l)) {
                break;
            }
            let command = step.command.clone();
            self.pending.pop_front();
            let ok = self
                .stream
                .write_all(format!("{command}\n").as_bytes())
                .is_ok();
            sent.push(if ok {
                command
            } else {
                format!("cannot send `{command}`")
            });
        }
        sent
    }
}

fn check_after(checks: &[After], disk: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    for check in checks {
        match check {
            After::FatClean => match image::fat_is_clean(disk) {
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
    fn after_checks_parse() {
        let checks =
            parse_after("# c\nfat-clean\nfile hello.txt two words\nfile empty\nlines data.txt 3\n")
                .unwrap();
        assert_eq!(
            checks,
            [
                After::FatClean,
                After::File {
                    name: "hello.txt".into(),
                    text: "two words".into()
                },
                After::File {
                    name: "empty".into(),
                    text: String::new()
                },
                After::Lines {
                    name: "data.txt".into(),
                    count: 3
                },
            ]
        );
        assert!(parse_after("fat-dirty\n").is_err());
    }

    #[test]
    fn scenario_files_parse() {
        let disks = parse_disks("# extra\nstick STICK\nbig DATA 128\n").unwrap();
        assert_eq!(
            disks,
            [
                ExtraDisk {
                    name: "stick".into(),
                    label: "STICK".into(),
                    size_mib: image::DEFAULT_SIZE_MIB
                },
                ExtraDisk {
                    name: "big".into(),
                    label: "DATA".into(),
                    size_mib: 128
                },
            ]
        );
        assert!(parse_disks("stick\n").is_err());
        assert!(parse_disks("stick WAYTOOLONGLABEL\n").is_err());
        let steps = parse_monitor("demo: hello * => device_add virtio-rng-pci,id=rng1\n").unwrap();
        assert_eq!(
            steps,
            [MonitorStep {
                when: "demo: hello *".into(),
                command: "device_add virtio-rng-pci,id=rng1".into()
            }]
        );
        assert!(parse_monitor("no arrow\n").is_err());
        assert!(parse_monitor("x =>\n").is_err());
        let disks = vec![("stick".to_string(), PathBuf::from("/t/stick.img"))];
        assert_eq!(
            substitute("drive_add 0 if=none,id=s,file={stick},format=raw", &disks),
            "drive_add 0 if=none,id=s,file=/t/stick.img,format=raw"
        );
    }

    #[test]
    fn every_scenario_in_the_repo_loads() {
        let root = crate::workspace_root().join("tests/boot");
        let scenarios = discover(&root, None).unwrap();
        assert!(scenarios.len() >= 5);
        for s in &scenarios {
            assert!(!s.expected.is_empty(), "{}: empty expected", s.name);
        }
    }
}
