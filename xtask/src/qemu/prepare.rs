//! What one boot needs, made into a folder: the build, the kernel, the initramfs and the
//! disk ([`prepare`]), or for QEMU's `raspi3b` the `rpi3` bundle and its SD card
//! ([`prepare_raspi3b`]). The build, the kernel and the module index are made once per process;
//! each call then costs only packing.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::fetch::kernel::KernelArgs;
use crate::media::board::Board;
use crate::media::bundle;
use crate::media::image::{self, Image, ImageOptions};
use crate::media::init_toml;
use crate::pack::binaries::{self, Flavor};
use crate::pack::initramfs::{self, Initramfs};
use crate::progress;
use crate::qemu::machine::{Boot, Machine};
use crate::tools::arch::Arch;

/// What to boot; every field has a default (see each).
#[derive(Clone, Debug, Default)]
pub struct PrepareOptions {
    pub arch: Arch,
    /// the kernel; [`KernelArgs::from_env`] gives the CLI's behaviour, the default is Debian's
    pub kernel: KernelArgs,
    /// `/init` in the initramfs; `None`: boxinit, built (other inits: for comparisons)
    pub init: Option<PathBuf>,
    /// modules to pack; empty: the built-in config's `modules.load`, else the arch's default
    pub modules: Vec<String>,
    /// the initramfs's `/etc/init.toml` source; `None`: generated
    pub builtin_config: Option<PathBuf>,
    /// `box` on the disk; `None`: the demo box
    pub box_path: Option<PathBuf>,
    /// `init.toml` on the disk; `None`: no file
    pub config: Option<PathBuf>,
    /// more files for the disk
    pub files: Option<PathBuf>,
    /// disk size; 0: 64 MiB
    pub disk_size_mib: u32,
    /// pack Debian's static busybox as `/bin/sh` (fetched once, see `fetch/busybox.rs`)
    pub busybox: bool,
    /// Debian programs to pack with their libraries (`wifi::PROGRAMS` names)
    pub debian_programs: Vec<String>,
    /// pack `wpa_supplicant` (also done when the built-in config has `[wifi]`)
    pub wifi: bool,
    /// the boot disk has a GPT instead of an MBR
    pub gpt: bool,
    /// no `/dev/console` node in the initramfs
    pub no_console: bool,
    /// no network programs' binary (`/boxinit-net`) in the initramfs
    pub no_net: bool,
    /// a disk without boxinit's preallocated files, as a card made by hand
    pub hand_made: bool,
    /// which build of boxinit and the demo box (`--small`: nightly's)
    pub flavor: Flavor,
    /// `raspi3b` only: bundle the folder for the Pi 4 first, write this file over its
    /// `init.toml` (a user's edit), then make the `rpi3` bundle there without `--config`:
    /// bundling again as a user does (the edit kept, the other board's files removed)
    pub rebundle: Option<PathBuf>,
}

/// The files of one prepared boot, in `out_dir`.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub arch: Arch,
    /// the board to boot on (a Pi bundle: `raspi3b`)
    pub machine: Machine,
    pub kernel: PathBuf,
    /// the device tree, for a Pi
    pub dtb: Option<PathBuf>,
    /// `out_dir/initramfs.cpio.gz`
    pub initrd: PathBuf,
    /// `out_dir/disk.img`
    pub disk: PathBuf,
    pub initramfs: Initramfs,
    pub image: Image,
    /// a Pi card's `cmdline.txt`, the command line its boot starts from
    pub card_cmdline: Option<String>,
    /// what the bundle said beside its files (kept, removed, the next step: a Pi's)
    pub notes: Vec<String>,
}

impl Prepared {
    /// A [`Boot`] of these files with `append` on the command line.
    pub fn boot(&self, append: &str) -> Boot {
        let mut boot = Boot::new(self.arch, &self.kernel, &self.initrd);
        boot.machine = self.machine;
        boot.dtb = self.dtb.clone();
        boot.disk = Some(self.disk.clone());
        boot.append = append.to_string();
        boot.card_cmdline = self.card_cmdline.clone();
        boot
    }
}

/// Builds what a boot needs into `out_dir`: `initramfs.cpio.gz` and `disk.img`. The build,
/// the kernel and the module index are made once per process ([`binaries::built`],
/// [`crate::pack::context::context`]); each
/// call then costs only packing (a few tens of milliseconds).
pub fn prepare(opts: &PrepareOptions, out_dir: &Path) -> Result<Prepared> {
    let built = match (&opts.init, &opts.box_path) {
        (Some(_), Some(_)) => None,
        _ => Some(binaries::built_as(opts.arch, opts.flavor)?),
    };
    let init = opts
        .init
        .clone()
        .or_else(|| built.as_ref().map(|b| b.init.clone()))
        .unwrap_or_default();
    let box_path = opts
        .box_path
        .clone()
        .or_else(|| built.as_ref().map(|b| b.demo_box.clone()));
    let context = crate::pack::context::context(opts.arch, &opts.kernel)?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let initrd = out_dir.join("initramfs.cpio.gz");
    let busybox = match opts.busybox {
        true => Some(crate::fetch::busybox::fetch(opts.arch)?),
        false => None,
    };
    let initramfs = initramfs::make_requested(
        &initramfs::Request {
            options: initramfs::Options {
                arch: opts.arch,
                init: &init,
                net: initramfs::net_beside(&init).as_deref(),
                kernel: &context.kernel,
                index: &context.index,
                modules: &opts.modules,
                config: opts.builtin_config.as_deref(),
                busybox: busybox.as_deref(),
            },
            debian_programs: &opts.debian_programs,
            wifi: opts.wifi,
            no_console: opts.no_console,
            no_net: opts.no_net,
        },
        &initrd,
    )?;
    progress!("{}", initramfs::describe(&initramfs));
    let disk = out_dir.join("disk.img");
    let image = image::make(
        &disk,
        &ImageOptions {
            size_mib: opts.disk_size_mib,
            box_path,
            config: opts.config.clone(),
            files: opts.files.clone(),
            label: None,
            gpt: opts.gpt,
            hand_made: opts.hand_made,
            // the card's archive of what serves later, beside the initramfs
            beside: initramfs.extras.iter().map(|a| a.path.clone()).collect(),
        },
    )?;
    progress!("{}", image::describe(&image));
    Ok(Prepared {
        arch: opts.arch,
        machine: Machine::for_arch(opts.arch),
        kernel: context.kernel.image.clone(),
        dtb: None,
        initrd,
        disk,
        initramfs,
        image,
        card_cmdline: None,
        notes: Vec::new(),
    })
}

/// The bundle of the Raspberry Pi 3 as QEMU's `raspi3b` boots it: the folder in
/// `out_dir/bundle/`, its SD card image as `out_dir/disk.img`, and a [`Prepared`] boot of
/// its kernel (gzip-compressed, checked, as the Pi's firmware reads it), device tree (`bcm2837-rpi-3-b.dtb`), initramfs and card (for `run --board`
/// and the scenarios with `board` = `raspi3b`). Its built-in config, unless given, is
/// [`init_toml::builtin_config_for_qemu`].
pub fn prepare_raspi3b(opts: &PrepareOptions, out_dir: &Path) -> Result<Prepared> {
    let folder = out_dir.join("bundle");
    // a folder from an earlier run may hold files this one does not write
    let _ = std::fs::remove_dir_all(&folder);
    let disk = out_dir.join("disk.img");
    let builtin = match &opts.builtin_config {
        Some(path) => path.clone(),
        None => {
            std::fs::create_dir_all(out_dir)?;
            let path = out_dir.join("builtin.toml");
            std::fs::write(&path, init_toml::builtin_config_for_qemu(Board::Rpi3))?;
            path
        }
    };
    if let Some(edited) = &opts.rebundle {
        bundle::make(&bundle::Options {
            kernel: opts.kernel.clone(),
            init: opts.init.clone(),
            box_path: opts.box_path.clone(),
            ..bundle::Options::new(Board::Rpi4, &folder)
        })?;
        std::fs::copy(edited, folder.join("init.toml"))
            .with_context(|| format!("cannot edit {}", folder.join("init.toml").display()))?;
    }
    let made = bundle::make(&bundle::Options {
        kernel: opts.kernel.clone(),
        init: opts.init.clone(),
        box_path: opts.box_path.clone(),
        config: opts.config.clone(),
        builtin_config: Some(builtin),
        files: opts.files.clone(),
        modules: opts.modules.clone(),
        image: Some(disk.clone()),
        size_mib: opts.disk_size_mib,
        busybox: opts.busybox,
        ..bundle::Options::new(Board::Rpi3, &folder)
    })?;
    let image = made.image.clone().context("the bundle wrote no image")?;
    // QEMU boots the card's own kernel8.img, gzip-compressed as the Pi's firmware reads it
    // (QEMU's -kernel inflates it the same way), unless the card's [board] asks for the raw
    // Image: the raspi3b scenarios boot what a Pi would
    let card = init_toml::card_config(opts.config.as_deref())?;
    let mut magic = [0u8; 2];
    std::fs::File::open(&made.kernel)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .with_context(|| format!("cannot read {}", made.kernel.display()))?;
    if crate::media::kernel_image::is_gzip(&magic) != card.board.gzip_kernel {
        anyhow::bail!(
            "the bundle's {} is not what [board] gzip_kernel = {} asks for",
            made.kernel.display(),
            card.board.gzip_kernel
        );
    }
    // the kernel starts with the card's cmdline.txt, as the firmware starts it: its console is
    // the mini UART (ttyS1), the one that takes input under QEMU as on a Pi's GPIO pins
    let cmdline_txt = made.dir.join("cmdline.txt");
    let card_cmdline = std::fs::read_to_string(&cmdline_txt)
        .with_context(|| format!("cannot read {}", cmdline_txt.display()))?;
    // what the bundle said, and its last line, what to copy
    let notes = (made.notes.iter().cloned())
        .chain(bundle::describe(&made).lines().last().map(str::to_string))
        .collect();
    Ok(Prepared {
        arch: Arch::Aarch64,
        machine: Machine::Raspi3b,
        kernel: made.kernel.clone(),
        dtb: Some(made.dtb("bcm2837-rpi-3-b.dtb")),
        initrd: made.initramfs.path.clone(),
        disk,
        initramfs: made.initramfs,
        image,
        card_cmdline: Some(card_cmdline),
        notes,
    })
}

/// A Raspberry Pi 3 bundle folder booted as it is on QEMU's `raspi3b`: the kernel and
/// initramfs its `config.txt` names (`kernel=`, `initramfs`), the device tree
/// `bcm2837-rpi-3-b.dtb` (or its `device_tree=`), its `cmdline.txt`, and an SD card image of
/// the folder in `out_dir/card.img`. The firmware's part is not emulated: QEMU loads those
/// files itself.
pub fn prepare_card(dir: &Path, out_dir: &Path) -> Result<Boot> {
    let mut boot = folder_boot(dir, out_dir)?;
    let image = bundle::write_image(dir, &out_dir.join("card.img"), 0)?;
    boot.disk = Some(image.path);
    Ok(boot)
}

/// The boot a Pi bundle folder's `config.txt` and `cmdline.txt` describe, without a disk.
fn folder_boot(dir: &Path, out_dir: &Path) -> Result<Boot> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .with_context(|| format!("{} is not a bundle folder: no {name}", dir.display()))
    };
    let config_txt = read("config.txt")?;
    let cmdline = read("cmdline.txt")?;
    let mut kernel = None;
    let mut initramfs = None;
    let mut dtb = "bcm2837-rpi-3-b.dtb".to_string();
    for line in config_txt.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("kernel=") {
            kernel = Some(name.trim().to_string());
        } else if let Some(name) = line.strip_prefix("device_tree=") {
            dtb = name.trim().to_string();
        } else if let Some(rest) = line.strip_prefix("initramfs ") {
            initramfs = rest.split_whitespace().next().map(str::to_string);
        }
    }
    let file = |name: Option<String>, what: &str| -> Result<PathBuf> {
        let name = name.with_context(|| format!("{}/config.txt names no {what}", dir.display()))?;
        let path = dir.join(&name);
        anyhow::ensure!(path.is_file(), "{} has no {name} ({what})", dir.display());
        Ok(path)
    };
    let kernel = file(kernel, "kernel")?;
    let initrd = file(initramfs, "initramfs")?;
    let dtb = file(Some(dtb), "device tree")?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mut boot = Boot::new(Arch::Aarch64, &kernel, &initrd);
    boot.machine = crate::qemu::machine::Machine::Raspi3b;
    boot.dtb = Some(dtb);
    boot.card_cmdline = Some(cmdline);
    Ok(boot)
}

/// A Raspberry Pi 3 SD card image booted as it is on QEMU's `raspi3b` (`run --image`): the
/// files [`prepare_card`] takes read from its FAT partition into `out_dir/image-files/`, the
/// image itself the SD card (QEMU wants a power-of-two size; `bundle --image` makes one).
pub fn prepare_image(image: &Path, out_dir: &Path) -> Result<Boot> {
    let size = std::fs::metadata(image)
        .with_context(|| format!("cannot read {}", image.display()))?
        .len();
    anyhow::ensure!(
        size.is_power_of_two(),
        "{} is {size} bytes: QEMU's SD card must be a power of two (`truncate -s 64M` it, or \
         make it with `cargo xtask bundle --image`)",
        image.display()
    );
    let files = out_dir.join("image-files");
    let _ = std::fs::remove_dir_all(&files);
    std::fs::create_dir_all(&files)
        .with_context(|| format!("cannot create {}", files.display()))?;
    let extract = |name: &str| -> Result<()> {
        let bytes = crate::media::image::read_file(image, name)?
            .with_context(|| format!("{} has no {name} on its FAT partition", image.display()))?;
        std::fs::write(files.join(name), bytes)?;
        Ok(())
    };
    extract("config.txt")?;
    extract("cmdline.txt")?;
    let config_txt = std::fs::read_to_string(files.join("config.txt"))?;
    let mut names = crate::media::config_txt::files_named(&config_txt);
    if !config_txt
        .lines()
        .any(|l| l.trim().starts_with("device_tree="))
    {
        names.push("bcm2837-rpi-3-b.dtb".to_string());
    }
    for name in names
        .iter()
        .filter(|n| !n.ends_with(".elf") && !n.ends_with(".dat"))
    {
        extract(name)?;
    }
    let mut boot = folder_boot(&files, out_dir)?;
    boot.disk = Some(image.to_path_buf());
    Ok(boot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_folder_boots_with_its_own_files() {
        let dir = std::env::temp_dir().join(format!("xtask-card-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let put = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        put(
            "config.txt",
            "arm_64bit=1\nkernel=kernel8.img\ninitramfs initramfs.cpio.gz followkernel\n",
        );
        put("kernel8.img", "k");
        put("initramfs.cpio.gz", "i");
        put("bcm2837-rpi-3-b.dtb", "d");
        put("box", "b");
        let out = dir.join("out");
        // no cmdline.txt: not a bundle folder
        let err = prepare_card(&dir, &out).unwrap_err().to_string();
        assert!(err.contains("no cmdline.txt"), "{err}");
        put(
            "cmdline.txt",
            "console=ttyS1,115200 panic=10 boxinit.boot=LABEL=MINE\n",
        );
        let boot = prepare_card(&dir, &out).unwrap();
        assert_eq!(boot.kernel, dir.join("kernel8.img"));
        assert_eq!(boot.initrd, dir.join("initramfs.cpio.gz"));
        assert_eq!(boot.dtb, Some(dir.join("bcm2837-rpi-3-b.dtb")));
        assert_eq!(
            boot.cmdline(),
            "console=ttyS1,115200 panic=10 boxinit.boot=LABEL=MINE"
        );
        let card = boot.disk.clone().unwrap();
        assert!(card.is_file());
        // the same card as an image: its files read back from the FAT partition
        let from_image = prepare_image(&card, &out.join("again")).unwrap();
        assert_eq!(
            std::fs::read(&from_image.kernel).unwrap(),
            b"k",
            "{from_image:?}"
        );
        assert_eq!(from_image.cmdline(), boot.cmdline());
        assert_eq!(from_image.disk, Some(card));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
