//! A QEMU boot scenario, `tests/boot/NNN_name/`, read from its folder: the expected console
//! lines, the command line, the disks, the monitor steps, the checks of the disk afterwards,
//! and what the initramfs packs. The file format is described in `tests/boot/README.md`;
//! running a scenario is `test/boot.rs`'s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::fetch::kernel::KernelArgs;
use crate::media::image;
use crate::qemu::console::MonitorStep;
use crate::qemu::machine::Machine;
use crate::qemu::transcript;
use crate::tools::arch::Arch;

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
    /// Lines typed on the console once a console line appears (`console-input`), in order.
    pub console_input: Vec<MonitorStep>,
    /// HTTP requests from the host once a console line appears (`forward`: `PATTERN =>
    /// GUEST_PORT`): the harness gives the guest a network card on QEMU's user network with a
    /// free host port forwarded to each guest port, as `cargo xtask run --forward` does.
    pub forward: Vec<MonitorStep>,
    /// The box's first `demo> ` prompt must stay the console's last output until the first
    /// `console-input` line is typed: no boot message lands after it (a `prompt-last` file).
    pub prompt_last: bool,
    /// `raspi3b` only: bundled first for the Pi 4 into the card's folder, this file written
    /// over its `init.toml`, then the `rpi3` bundle made there as the card
    /// (`rebundle-init.toml`; see [`crate::qemu::prepare::PrepareOptions::rebundle`]).
    pub rebundle: Option<PathBuf>,
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
    /// Disks that stop answering (`nbd-hang`: `NAME [SIZE_MiB]` a line), each served by the
    /// harness's NBD server (`test/nbd_hang.rs`); `{NAME}` in `qemu-args` is its
    /// `nbd://127.0.0.1:PORT`.
    pub hung_disks: Vec<HungDiskSpec>,
    /// Bounds on guest time between two init lines (`within`: `DURATION FROM => TO` a line),
    /// by the kernel's timestamps.
    pub within: Vec<Within>,
    /// The boot disk has a GPT (a `gpt` file exists).
    pub gpt: bool,
    /// No `/dev/console` in the initramfs (a `no-console` file exists).
    pub no_console: bool,
    /// No `/boxinit-net` in the initramfs (a `no-net` file exists).
    pub no_net: bool,
    /// The boot disk lacks boxinit's preallocated files, as a card made by hand (a
    /// `hand-made` file exists).
    pub hand_made: bool,
    /// Power cuts at random instants (`power-cuts`), after the boots of `expected`.
    pub power_cuts: Option<PowerCuts>,
    /// `raspi3b`: the card in two slots and the firmware's stand-in before every boot
    /// (`slots`: words added to `b/cmdline.txt`, often none; `test/firmware.rs`).
    pub slots: Option<String>,
    /// How long each boot may take (`timeout`: seconds); None: the harness's default.
    pub timeout: Option<Duration>,
    /// Guest memory in MiB (`memory`); None: the machine's default (256 MiB).
    pub memory_mib: Option<u32>,
    /// The boot disk's size in MiB (`disk-size`); None: the image writer's default.
    pub disk_size_mib: Option<u32>,
    /// Options added to the boot disk's `-drive` (`boot-drive`: whitespace-separated, e.g.
    /// `throttling.bps-write=163840`, a slow card).
    pub boot_drive: Vec<String>,
    /// `boot-nbd`: a sector of the boot disk; the harness serves the disk (the image as built)
    /// from its NBD server (`test/nbd_hang.rs`), which holds every read and write after the
    /// guest's first request touching that sector: a card that dies while in use.
    pub boot_nbd: Option<u64>,
}

/// `power-cuts`: `COUNT TRIGGER => END => CHECK`. The first boot of `expected` times TRIGGER
/// to END (the window cuts may land in); then COUNT times: the disk as it was before the first
/// boot, a boot killed at a random instant from TRIGGER to a little past END, a boot that must
/// show CHECK, and `fsck.fat -n` of the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerCuts {
    pub count: u32,
    pub trigger: String,
    pub end: String,
    pub check: String,
}

/// A FAT disk image beside the boot disk: `NAME LABEL [SIZE_MiB]` in `disks`; the label `-`
/// makes a disk whose one partition holds no file system (zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraDisk {
    pub name: String,
    pub label: String,
    pub size_mib: u32,
}

/// A disk that answers its partition table and nothing else: `NAME [SIZE_MiB]` in `nbd-hang`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HungDiskSpec {
    pub name: String,
    pub size_mib: u32,
}

/// `DURATION FROM => TO` in `within`: from the first init line matching FROM to the first one
/// after it matching TO (patterns as in `expected`) at most DURATION of guest time.
#[derive(Debug, Clone, PartialEq)]
pub struct Within {
    pub seconds: f64,
    pub from: String,
    pub to: String,
}

/// A check of the disk image once QEMU has exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// The FAT's dirty bit is clear: it was unmounted cleanly.
    FatClean,
    /// The file exists on the FAT with this text (plus a newline).
    File { name: String, text: String },
    /// The file exists on the FAT and holds this text somewhere.
    Contains { name: String, text: String },
    /// No such file on the FAT.
    Absent { name: String },
    /// `fsck.fat -n` finds nothing to repair (the dirty bit a cut leaves aside).
    Fsck,
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
        let hung_disks = parse_hung_disks(&read("nbd-hang"))
            .with_context(|| format!("{}/nbd-hang", dir.display()))?;
        let within =
            parse_within(&read("within")).with_context(|| format!("{}/within", dir.display()))?;
        let monitor = parse_monitor(&read("monitor"))
            .with_context(|| format!("{}/monitor", dir.display()))?;
        let console_input = parse_monitor(&read("console-input"))
            .with_context(|| format!("{}/console-input", dir.display()))?;
        let forward = parse_monitor(&read("forward"))
            .and_then(|steps| {
                for step in &steps {
                    if step.command.parse::<u16>().is_err() {
                        bail!("`{}` is not a guest port", step.command);
                    }
                }
                Ok(steps)
            })
            .with_context(|| format!("{}/forward", dir.display()))?;
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
            hung_disks,
            within,
            monitor,
            console_input,
            forward,
            prompt_last: dir.join("prompt-last").exists(),
            rebundle: Some(dir.join("rebundle-init.toml")).filter(|p| p.exists()),
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
            hand_made: dir.join("hand-made").exists(),
            slots: dir
                .join("slots")
                .exists()
                .then(|| data_lines(&read("slots")).collect::<Vec<_>>().join(" ")),
            power_cuts: parse_power_cuts(&read("power-cuts"))
                .with_context(|| format!("{}/power-cuts", dir.display()))?,
            timeout: number(dir, "timeout", &read("timeout"))?.map(Duration::from_secs),
            memory_mib: number(dir, "memory", &read("memory"))?,
            disk_size_mib: number(dir, "disk-size", &read("disk-size"))?,
            boot_drive: words("boot-drive"),
            boot_nbd: number(dir, "boot-nbd", &read("boot-nbd"))?,
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
    pub fn file(&self, name: &str) -> Option<PathBuf> {
        let path = self.dir.join(name);
        path.exists().then_some(path)
    }

    /// The folder whose files go onto the disk before boot `n` (2, 3, ...): `files-N/`.
    pub fn files_for_boot(&self, n: usize) -> Option<PathBuf> {
        self.file(&format!("files-{n}")).filter(|p| p.is_dir())
    }

    /// Whether the scenario waits for QEMU to exit (its last expected line is `qemu: ...`).
    pub fn waits_for_exit(&self) -> bool {
        transcript::expects_ending(&self.expected)
    }
}

/// The lines of a scenario file that are not blank or `#` comments, trimmed.
fn data_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// The one number of a scenario file (`timeout`, `memory`, `disk-size`); None when absent.
fn number<T: std::str::FromStr>(dir: &Path, file: &str, text: &str) -> Result<Option<T>> {
    data_lines(text)
        .next()
        .map(|word| {
            word.parse()
                .ok()
                .with_context(|| format!("{}/{file}: `{word}` is not a number", dir.display()))
        })
        .transpose()
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

fn parse_hung_disks(text: &str) -> Result<Vec<HungDiskSpec>> {
    data_lines(text)
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let (name, size_mib) = match words.as_slice() {
                [name] => (*name, image::DEFAULT_SIZE_MIB),
                [name, size] => (
                    *name,
                    size.parse()
                        .with_context(|| format!("`{size}` is not a size in MiB"))?,
                ),
                _ => bail!("expected `NAME [SIZE_MiB]`, found `{line}`"),
            };
            if size_mib < 2 {
                bail!("`{line}`: a hung disk needs at least 2 MiB (its partition starts at 1 MiB)");
            }
            Ok(HungDiskSpec {
                name: name.to_string(),
                size_mib,
            })
        })
        .collect()
}

fn parse_within(text: &str) -> Result<Vec<Within>> {
    data_lines(text)
        .map(|line| {
            let parsed = line.split_once(' ').and_then(|(limit, rest)| {
                let seconds = match limit.strip_suffix("ms") {
                    Some(ms) => ms.parse::<f64>().ok()? / 1000.0,
                    None => limit.strip_suffix('s')?.parse::<f64>().ok()?,
                };
                let (from, to) = rest.split_once("=>")?;
                let (from, to) = (from.trim(), to.trim());
                (!from.is_empty() && !to.is_empty()).then(|| Within {
                    seconds,
                    from: from.to_string(),
                    to: to.to_string(),
                })
            });
            parsed.with_context(|| {
                format!("expected `DURATION FROM => TO` (e.g. `3s boxinit: a * => boxinit: b *`), found `{line}`")
            })
        })
        .collect()
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
            _ => bail!("expected `CONSOLE LINE PATTERN => COMMAND OR TEXT`, found `{line}`"),
        })
        .collect()
}

fn parse_power_cuts(text: &str) -> Result<Option<PowerCuts>> {
    let Some(line) = data_lines(text).next() else {
        return Ok(None);
    };
    let (count, rest) = line
        .split_once(' ')
        .with_context(|| format!("expected `COUNT TRIGGER => END => CHECK`, found `{line}`"))?;
    let parts: Vec<&str> = rest.split("=>").map(str::trim).collect();
    let [trigger, end, check] = parts.as_slice() else {
        bail!("expected `COUNT TRIGGER => END => CHECK`, found `{line}`");
    };
    Ok(Some(PowerCuts {
        count: count
            .parse()
            .with_context(|| format!("`{count}` is not a count"))?,
        trigger: trigger.to_string(),
        end: end.to_string(),
        check: check.to_string(),
    }))
}

fn parse_after(text: &str) -> Result<Vec<After>> {
    let mut checks = Vec::new();
    for line in data_lines(text) {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("fat-clean"), None, None) => checks.push(After::FatClean),
            (Some("fsck"), None, None) => checks.push(After::Fsck),
            (Some("absent"), Some(name), None) => checks.push(After::Absent {
                name: name.to_string(),
            }),
            (Some("contains"), Some(name), Some(text)) => checks.push(After::Contains {
                name: name.to_string(),
                text: text.to_string(),
            }),
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
                "unknown check `{line}` (known: `fat-clean`, `fsck`, `file NAME TEXT`, `contains NAME TEXT`, `absent NAME`, `lines NAME N`)"
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
        assert_eq!(
            parse_after("fsck\nabsent box.new\ncontains box.failed.txt exited with\n").unwrap(),
            [
                After::Fsck,
                After::Absent {
                    name: "box.new".into()
                },
                After::Contains {
                    name: "box.failed.txt".into(),
                    text: "exited with".into()
                },
            ]
        );
        let cuts = parse_power_cuts("# c\n12 demo: a * => boxinit: b => boxinit: c *\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            cuts,
            PowerCuts {
                count: 12,
                trigger: "demo: a *".into(),
                end: "boxinit: b".into(),
                check: "boxinit: c *".into()
            }
        );
        assert!(parse_power_cuts("12 a => b\n").is_err());
        assert_eq!(parse_power_cuts("").unwrap(), None);
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
        assert_eq!(
            parse_hung_disks("# a dead disk\nhung\nslow 16\n").unwrap(),
            [
                HungDiskSpec {
                    name: "hung".into(),
                    size_mib: image::DEFAULT_SIZE_MIB
                },
                HungDiskSpec {
                    name: "slow".into(),
                    size_mib: 16
                },
            ]
        );
        assert!(parse_hung_disks("hung 1\n").is_err());
        assert_eq!(
            parse_within("# bound\n2.5s boxinit: a * => boxinit: b\n300ms x=>y\n").unwrap(),
            [
                Within {
                    seconds: 2.5,
                    from: "boxinit: a *".into(),
                    to: "boxinit: b".into()
                },
                Within {
                    seconds: 0.3,
                    from: "x".into(),
                    to: "y".into()
                },
            ]
        );
        assert!(parse_within("3 boxinit: a => boxinit: b\n").is_err());
        assert!(parse_within("3s boxinit: a\n").is_err());
        assert!(parse_hung_disks("hung big\n").is_err());
        let steps = parse_monitor("demo: hello * => device_add virtio-rng-pci,id=rng1\n").unwrap();
        assert_eq!(
            steps,
            [MonitorStep {
                when: "demo: hello *".into(),
                command: "device_add virtio-rng-pci,id=rng1".into()
            }]
        );
        assert!(parse_monitor("no arrow\n").is_err());
        let dir = Path::new("/t/155");
        assert_eq!(
            number::<u64>(dir, "timeout", "# long\n240\n").unwrap(),
            Some(240)
        );
        assert_eq!(number::<u32>(dir, "memory", "").unwrap(), None);
        assert!(number::<u32>(dir, "memory", "512M\n").is_err());
        assert!(parse_monitor("x =>\n").is_err());
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
