//! `cargo xtask`: the command line. Flags live here; every task is a module of the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use boxinit::config::Place;
use xtask::display_path;
use xtask::fetch::kernel;
use xtask::fetch::kernel::KernelArgs;
use xtask::media::board::Board;
use xtask::media::{bundle, image};
use xtask::pack::{binaries as binary, initramfs};
use xtask::qemu::machine::{self, Forward, Machine};
use xtask::qemu::prepare::PrepareOptions;
use xtask::tools::arch::Arch;

/// Build boxinit, pack its initramfs, make a boot disk and boot them in QEMU.
///
/// Progress goes to stderr, prefixed `xtask:`; results (paths, sizes) to stdout.
/// Caches live under target/: target/kernel/<arch>/ (the fetched kernel), target/run/ (run).
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Check an init.toml as boxinit will read it (`boxinit check` on this machine, the
    /// init's own code): each error as file:line:column, or `FILE: ok`
    Check {
        /// The init.toml to check (the card's, unless --builtin)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Check it as the initramfs's built-in /etc/init.toml (it may then set [boot]
        /// device and timeout, and lock keys)
        #[arg(long)]
        builtin: bool,
    },
    /// Build boxinit and the demo box as static musl binaries (cargo build --release) and
    /// print their paths and sizes
    Build {
        /// Target architecture
        #[arg(long, value_enum, default_value_t)]
        arch: Arch,
        /// The small build: nightly Rust rebuilding the standard library for size, with
        /// panic = "immediate-abort" (needs `rustup toolchain install nightly --component rust-src`)
        #[arg(long)]
        small: bool,
    },
    /// Find the kernel, its module tree and device trees (default: Debian's
    /// linux-image-cloud-amd64 for x86_64, linux-image-arm64 for aarch64, fetched once with
    /// apt-get download) and print their paths
    Kernel {
        /// Target architecture
        #[arg(long, value_enum, default_value_t)]
        arch: Arch,
        #[command(flatten)]
        kernel: KernelFlags,
    },
    /// Pack the initramfs (gzip newc cpio): /init, /dev/console, the modules with their
    /// dependencies and modules.dep/alias/softdep, and /etc/init.toml
    Initramfs {
        /// Where to write the initramfs, e.g. initramfs.cpio.gz
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Target architecture
        #[arg(long, value_enum, default_value_t)]
        arch: Arch,
        #[command(flatten)]
        modules: ModuleArgs,
        /// TOML file to install as /etc/init.toml, as it is, once checked as `boxinit check
        /// --builtin` does. Default: a generated one (coldplug; no module list needed)
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Leave /dev/console out: the kernel then starts /init without fds 0-2 (to test
        /// boxinit in that case)
        #[arg(long)]
        no_console: bool,
        /// The small build: nightly Rust rebuilding the standard library for size, with
        /// panic = "immediate-abort" (needs `rustup toolchain install nightly --component rust-src`)
        #[arg(long)]
        small: bool,
        #[command(flatten)]
        kernel: KernelFlags,
    },
    /// Make a boot disk: an MBR image with one FAT partition labelled BOOT holding box,
    /// init.toml and any other files
    Image {
        /// Where to write the disk image, e.g. disk.img
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        disk: DiskArgs,
        /// Disk size in MiB (FAT16 below ~512 MiB, FAT32 above)
        #[arg(long, value_name = "MiB", default_value_t = image::DEFAULT_SIZE_MIB)]
        size: u32,
        /// Architecture of the demo box used when --box is not given
        #[arg(long, value_enum, default_value_t)]
        arch: Arch,
        /// A GPT (protective MBR, primary and backup tables) instead of an MBR; the
        /// partition is then PARTUUID=b0c50001-0000-4000-8000-000000000001
        #[arg(long)]
        gpt: bool,
        /// The small build: nightly Rust rebuilding the standard library for size, with
        /// panic = "immediate-abort" (needs `rustup toolchain install nightly --component rust-src`)
        #[arg(long)]
        small: bool,
        /// The initramfs the disk boots with: the box's loader or script interpreter is
        /// looked for there, as boxinit will (default: what `cargo xtask initramfs` packs,
        /// which has no loader and no shell)
        #[arg(long, value_name = "FILE")]
        initramfs: Option<PathBuf>,
    },
    /// Build everything into target/run/ and boot it in QEMU, the serial console on this
    /// terminal (quit with Ctrl-A X)
    Run {
        #[command(flatten)]
        disk: DiskArgs,
        /// Extra kernel command line words, after `console=... panic=-1`
        /// (e.g. "boxinit.loglevel=debug")
        #[arg(
            long,
            value_name = "WORDS",
            default_value = "",
            hide_default_value = true
        )]
        append: String,
        /// Target architecture
        #[arg(long, value_enum, default_value_t)]
        arch: Arch,
        #[command(flatten)]
        modules: ModuleArgs,
        /// TOML file for the initramfs's /etc/init.toml, as `initramfs --config`
        #[arg(long, value_name = "FILE")]
        builtin_config: Option<PathBuf>,
        /// Boot a Raspberry Pi bundle's card in QEMU instead (only rpi3: QEMU's raspi3b);
        /// implies --arch aarch64
        #[arg(long, value_enum)]
        board: Option<Board>,
        /// With --board rpi3: boot this bundle folder as it is (your `cargo xtask bundle
        /// --out DIR`, edited or not) instead of making one: its kernel, device tree,
        /// initramfs and cmdline.txt, on an SD card made of the folder
        #[arg(long, value_name = "DIR", requires = "board", conflicts_with = "image")]
        card: Option<PathBuf>,
        /// With --board rpi3: boot this SD card image as it is (`bundle --image`, or a card
        /// read with dd): the files --card takes, read from its FAT partition
        #[arg(long, value_name = "FILE", requires = "board")]
        image: Option<PathBuf>,
        /// The small build: nightly Rust rebuilding the standard library for size, with
        /// panic = "immediate-abort" (needs `rustup toolchain install nightly --component rust-src`)
        #[arg(long)]
        small: bool,
        #[command(flatten)]
        kernel: KernelFlags,
        /// Give the guest a network card on QEMU's user network (with `[network] dhcp =
        /// ["eth0"]` in its init.toml it gets 10.0.2.15)
        #[arg(long)]
        net: bool,
        /// Forward a port of the host's 127.0.0.1 to the guest: HOST:GUEST, e.g. 8080:80
        /// (TCP; `udp:5353:53` for UDP); repeatable; implies --net
        #[arg(long, value_name = "HOST:GUEST")]
        forward: Vec<Forward>,
    },
    /// Make the folder a Raspberry Pi boots from (copy it onto any FAT card): GPU firmware,
    /// kernel, device trees, config.txt, cmdline.txt, the initramfs, init.toml and box; with
    /// --image also an SD card image of it. Every fetched input can be given as a path
    #[command(
        mut_arg("box_path", |a| a.help(
            "Static aarch64 program to put on the card as `box`, checked as boxinit will check \
             it (default: the demo box, built)"
        )),
        mut_arg("config", |a| a.help(
            "init.toml for the card, checked as `cargo xtask check` does; its [board] keys \
             shape config.txt (default: a short commented starter file)"
        )),
        mut_arg("modules", |a| a.help(
            "More modules to pack besides the board's (SD host, FAT, watchdog, USB, HID, and \
             what init.toml's [board] asks for): names, aliases; comma-separated or repeated"
        )),
    )]
    Bundle {
        /// The board: rpi3 (3 B/B+/A+, CM3), rpi4 (4 B, 400, CM4), rpi02w (Zero 2 W)
        #[arg(long, value_enum)]
        board: Board,
        /// The folder to write
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        disk: DiskArgs,
        /// Also write an SD card image (MBR + FAT) of the folder
        #[arg(long, value_name = "FILE")]
        image: Option<PathBuf>,
        /// The image's size in MiB (default: the next power of two that fits, at least 64)
        #[arg(long, value_name = "MiB", requires = "image")]
        size: Option<u32>,
        /// Folder with the GPU firmware (bootcode.bin, start*.elf, fixup*.dat), e.g. the
        /// boot/ folder of github.com/raspberrypi/firmware (default: Debian's raspi-firmware)
        #[arg(long, value_name = "DIR", env = "BOXINIT_FIRMWARE_DIR")]
        firmware: Option<PathBuf>,
        /// A static aarch64 busybox to pack as /bin/sh (default: Debian's busybox-static,
        /// fetched only when init.toml's [board] usb_serial = "shell" needs a shell)
        #[arg(long, value_name = "PATH")]
        busybox: Option<PathBuf>,
        #[command(flatten)]
        modules: ModuleArgs,
        /// TOML file for the initramfs's /etc/init.toml (default: the first FAT partition,
        /// coldplug, the watchdog armed)
        #[arg(long, value_name = "FILE")]
        builtin_config: Option<PathBuf>,
        #[command(flatten)]
        kernel: KernelFlags,
        /// Lay the folder out for whole-bundle trials ([update] tryboot): the kernel,
        /// initramfs, cmdline.txt and device trees also in a/ (config.txt: os_prefix=a/),
        /// tryboot.txt naming b/ for the next bundle
        #[arg(long, conflicts_with = "update_card")]
        slots: bool,
        /// After making the bundle in --out, copy its kernel, initramfs, cmdline.txt and device
        /// trees into the slot the card folder CARD's tryboot.txt names, b/bundle.sha256 last
        /// (CARD: a card made with --slots, mounted or copied)
        #[arg(long, value_name = "CARD")]
        update_card: Option<PathBuf>,
    },
    /// Benchmark boot overhead: boxinit against the seed's busybox script and a hand-written
    /// floor, interleaved boots on the same kernel and disk; plus sizes, PID 1's memory and
    /// reaping. Writes BENCHMARKS.md and bench-timeline.svg (x86_64)
    Bench {
        /// Boots per variant
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Where to write the report (the chart goes beside it)
        #[arg(long, value_name = "FILE", default_value = "BENCHMARKS.md")]
        report: PathBuf,
        /// Do not build for aarch64 (its binary size is then not reported)
        #[arg(long)]
        no_aarch64: bool,
        /// Benchmark the small build (`build --small`) as boxinit
        #[arg(long)]
        small: bool,
        /// Only the Raspberry Pi row, `--runs` rounds: print its figures, write no report
        #[arg(long)]
        pi_only: bool,
        #[command(flatten)]
        kernel: KernelFlags,
    },
    /// Time from /init to a DHCP address and to a clock set by SNTP (scenario 101 booted
    /// several times); writes the figures into BENCHMARKS.md's network section
    BenchNet {
        /// Boots
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// The report to update
        #[arg(long, value_name = "FILE", default_value = "BENCHMARKS.md")]
        report: PathBuf,
        #[command(flatten)]
        kernel: KernelFlags,
    },
    /// Count the instructions of the init's kernel-free phases under valgrind's callgrind and
    /// compare them with bench/callgrind.txt (as `cargo xtask test` does);
    /// UPDATE_CALLGRIND=1 rewrites that baseline
    Callgrind {
        /// The module tree whose aliases the coldplug phase resolves (default aarch64's)
        #[arg(long, value_enum, default_value_t = Arch::Aarch64)]
        arch: Arch,
    },
    /// Run every test: the workspace's unit tests, then each QEMU boot scenario of tests/boot
    /// against the real kernel, then a bounded run of each fuzz target (cargo xtask fuzz).
    /// Installs QEMU (root + apt), nightly and cargo-fuzz, and fetches the kernel when missing.
    /// UPDATE_EXPECT=1 rewrites each scenario's `expected` with what its console showed
    Test {
        /// Only the scenarios whose folder name contains this (no fuzzing then)
        filter: Option<String>,
        /// Skip the unit tests (and the fuzzing)
        #[arg(long)]
        scenarios_only: bool,
        /// Seconds of fuzzing per fuzz target, after the scenarios
        #[arg(long, value_name = "SECONDS", default_value_t = xtask::test::fuzz::DEFAULT_SECONDS)]
        fuzz_seconds: u64,
        #[arg(long, value_enum, default_value_t)]
        arch: Arch,
        #[command(flatten)]
        kernel: KernelFlags,
    },
    /// Fuzz the init's parsers: a bounded libFuzzer run of each cargo fuzz target in fuzz/
    /// (nightly; installed when missing), seeded from fuzz/seeds/NAME/. A crash fails, naming
    /// the saved input
    Fuzz {
        /// Only the targets whose name contains this
        target: Option<String>,
        /// Seconds per target
        #[arg(long, default_value_t = xtask::test::fuzz::DEFAULT_SECONDS)]
        seconds: u64,
    },
}

#[derive(clap::Args)]
struct ModuleArgs {
    /// Static binary to pack as /init instead of boxinit (skips building boxinit; for
    /// comparing other inits)
    #[arg(long, value_name = "PATH")]
    init: Option<PathBuf>,
    /// Modules to pack, with their dependencies and softdeps: names (`-` and `_` alike),
    /// aliases (`fs-vfat`, a modalias), `auto` (the drivers of QEMU's virtio devices and
    /// FAT) or `all` (the kernel's whole module tree); comma-separated or repeated. The config's modules.load is added. Default: auto
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    modules: Vec<String>,
    /// Pack Debian's wpa_supplicant with its shared libraries (about 15 MiB), for `[wifi]`
    /// in the card's init.toml, into extras.cpio.gz beside the initramfs (copy it onto the boot
    /// partition; `run` does), which the built-in config lists; done anyway when the
    /// built-in config (--config) has `[wifi]`
    #[arg(long)]
    wifi: bool,
}

#[derive(clap::Args)]
struct KernelFlags {
    /// Kernel image to boot (bzImage/vmlinuz for x86_64, Image for aarch64) instead of
    /// Debian's; needs --modules-dir too
    #[arg(long, env = "BOXINIT_KERNEL", value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// That kernel's module tree, `.../lib/modules/<release>` (its name is the release)
    #[arg(long, env = "BOXINIT_MODULES_DIR", value_name = "DIR")]
    modules_dir: Option<PathBuf>,
    /// That kernel's device trees (`*.dtb`; a Raspberry Pi needs its board's). Default: the
    /// kernel package's `usr/lib/linux-image-<release>/broadcom/` beside the module tree
    #[arg(long, env = "BOXINIT_DTB_DIR", value_name = "DIR")]
    dtb_dir: Option<PathBuf>,
}

impl From<KernelFlags> for KernelArgs {
    fn from(flags: KernelFlags) -> KernelArgs {
        KernelArgs {
            kernel: flags.kernel,
            modules_dir: flags.modules_dir,
            dtb_dir: flags.dtb_dir,
        }
    }
}

#[derive(clap::Args)]
struct DiskArgs {
    /// Program to put on the disk as `box` (default: the demo box, built for --arch)
    #[arg(long = "box", value_name = "PATH")]
    box_path: Option<PathBuf>,
    /// init.toml to put on the disk, once checked as `boxinit check` does (default: none;
    /// boxinit then uses its built-in config)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory whose files (and subdirectories) are copied onto the disk too
    #[arg(long, value_name = "DIR")]
    files: Option<PathBuf>,
}

fn main() -> ExitCode {
    match dispatch(Cli::parse().task) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--small` as the build it names.
fn flavor(small: bool) -> binary::Flavor {
    match small {
        true => binary::Flavor::Small,
        false => binary::Flavor::Stable,
    }
}

fn dispatch(task: Task) -> Result<ExitCode> {
    match task {
        Task::Check { file, builtin } => {
            let place = match builtin {
                true => Place::Early,
                false => Place::BootPartition,
            };
            let ok = xtask::tools::config::report(&file, place)?;
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Task::Build { arch, small } => {
            let built = binary::build_as(arch, flavor(small))?;
            print!("{}", binary::describe(&built)?);
        }
        Task::Kernel { arch, kernel } => {
            let kernel = kernel::resolve(arch, &kernel.into())?;
            println!("kernel   {}", kernel.image.display());
            println!("modules  {}", kernel.modules_dir.display());
            println!("release  {}", kernel.release);
            if let Some(dir) = &kernel.dtb_dir {
                println!("dtbs     {}", dir.display());
            }
        }
        Task::Initramfs {
            out,
            arch,
            modules,
            config,
            no_console,
            small,
            kernel,
        } => {
            let init = match modules.init {
                Some(path) => path,
                None => binary::build_as(arch, flavor(small))?.init,
            };
            let context = xtask::pack::context::context(arch, &kernel.into())?;
            let made = initramfs::make_requested(
                &initramfs::Request {
                    options: initramfs::Options {
                        arch,
                        init: &init,
                        net: initramfs::net_beside(&init).as_deref(),
                        kernel: &context.kernel,
                        index: &context.index,
                        modules: &modules.modules,
                        config: config.as_deref(),
                        busybox: None,
                    },
                    debian_programs: &[],
                    wifi: modules.wifi,
                    no_console,
                    no_net: false,
                },
                &out,
            )?;
            println!("{}", initramfs::describe(&made));
        }
        Task::Image {
            out,
            disk,
            size,
            arch,
            gpt,
            small,
            initramfs,
        } => {
            if let Some(config) = &disk.config {
                xtask::tools::config::check(config, Place::BootPartition)?;
            }
            let box_path = match disk.box_path {
                Some(path) => path,
                None => binary::build_as(arch, flavor(small))?.demo_box,
            };
            // as boxinit will check it, against the initramfs the disk boots with
            xtask::pack::box_check::check_for_image(&box_path, arch, initramfs.as_deref())?;
            let made = image::make(
                &out,
                &image::ImageOptions {
                    size_mib: size,
                    box_path: Some(box_path),
                    config: disk.config,
                    files: disk.files,
                    label: None,
                    gpt,
                    hand_made: false,
                    beside: Vec::new(),
                },
            )
            .with_context(|| format!("cannot make the disk image {}", display_path(&out)))?;
            println!("{}", image::describe(&made));
        }
        Task::Bundle {
            board,
            out,
            disk,
            image,
            size,
            firmware,
            busybox,
            modules,
            builtin_config,
            kernel,
            slots,
            update_card,
        } => {
            let made = bundle::make(&bundle::Options {
                busybox_path: busybox,
                kernel: kernel.into(),
                firmware,
                init: modules.init,
                box_path: disk.box_path,
                config: disk.config,
                builtin_config,
                files: disk.files,
                modules: modules.modules,
                // a card in slots is imaged once laid out
                image: if slots { None } else { image.clone() },
                size_mib: size.unwrap_or(0),
                ..bundle::Options::new(board, &out)
            })?;
            let described = bundle::describe(&made);
            // in slots, what to copy is said below, once the card is laid out or updated
            let in_slots = slots || update_card.is_some();
            for line in described.lines() {
                if !(in_slots && line.starts_with("next: ")) {
                    println!("{line}");
                }
            }
            let said = match (slots, update_card) {
                (true, _) => xtask::media::slots::lay_out(&out)?,
                (false, Some(card)) => xtask::media::slots::put_update(&out, &card)?,
                (false, None) => Vec::new(),
            };
            for line in said {
                println!("{line}");
            }
            if let (true, Some(path)) = (slots, image) {
                bundle::write_image(&out, &path, size.unwrap_or(0))?;
            }
        }
        Task::Callgrind { arch } => {
            let context = xtask::pack::context::context(arch, &kernel::KernelArgs::default())?;
            xtask::bench::callgrind::check(arch, &context.index)?;
        }
        Task::Test {
            filter,
            scenarios_only,
            fuzz_seconds,
            arch,
            kernel,
        } => xtask::test::suite::run(&xtask::test::suite::Options {
            arch,
            kernel: kernel.into(),
            filter,
            scenarios_only,
            fuzz_seconds,
        })?,
        Task::Fuzz { target, seconds } => xtask::test::fuzz::run(&xtask::test::fuzz::Options {
            seconds,
            filter: target,
        })?,
        Task::Bench {
            runs,
            report,
            no_aarch64,
            small,
            pi_only,
            kernel,
        } => {
            let report = if report.is_absolute() {
                report
            } else {
                xtask::workspace_root().join(report)
            };
            xtask::bench::task::run(&xtask::bench::task::Options {
                kernel: kernel.into(),
                runs,
                report,
                aarch64: !no_aarch64,
                flavor: flavor(small),
                pi_only,
            })?;
        }
        Task::BenchNet {
            runs,
            report,
            kernel,
        } => xtask::bench::net::run(runs, &kernel.into(), &xtask::workspace_root().join(report))?,
        Task::Run {
            disk,
            append,
            arch,
            modules,
            builtin_config,
            board,
            card,
            image,
            small,
            kernel,
            net,
            forward,
        } => {
            if let Some(config) = &disk.config {
                xtask::tools::config::check(config, Place::BootPartition)?;
            }
            let machine = board.map(Machine::for_board).transpose()?;
            let arch = machine.map_or(arch, |m| m.arch());
            let network = match net || !forward.is_empty() {
                true => machine::user_network(machine.unwrap_or(Machine::for_arch(arch)), &forward),
                false => Vec::new(),
            };
            let opts = PrepareOptions {
                arch,
                kernel: kernel.into(),
                init: modules.init,
                modules: modules.modules,
                builtin_config,
                box_path: disk.box_path,
                config: disk.config,
                files: disk.files,
                disk_size_mib: 0,
                busybox: false,
                debian_programs: Vec::new(),
                wifi: modules.wifi,
                gpt: false,
                no_console: false,
                no_net: false,
                hand_made: false,
                flavor: flavor(small),
                rebundle: None,
            };
            let code = match card.or(image) {
                Some(dir) => xtask::qemu::run::run_card(&dir, machine, &append, &network)?,
                None => xtask::qemu::run::run_with(&opts, machine, &append, &network)?,
            };
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bundle --help` says what bundle does with each flag it shares with the QEMU tasks
    /// (issue 18: `--box` named `--arch`, `--config` "default: none", `--modules` QEMU's).
    #[test]
    fn bundle_help_is_the_bundles() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("bundle")
            .unwrap()
            .render_long_help()
            .to_string();
        for stale in ["--arch", "default: none", "QEMU's virtio"] {
            assert!(!help.contains(stale), "`{stale}` in bundle --help:\n{help}");
        }
        assert!(help.contains("starter file"), "{help}");
    }
}
