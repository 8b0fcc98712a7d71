//! Task `bundle`: the folder a Raspberry Pi boots from — copy it onto any FAT-formatted SD
//! card. The GPU firmware (Debian's `raspi-firmware`: `bootcode.bin`, the `start*.elf` and
//! `fixup*.dat` that `config.txt` makes the board read), the kernel (gzip-compressed,
//! `media/kernel_image.rs`) and the board's device trees (Debian's `linux-image-arm64`),
//! `config.txt` and `cmdline.txt`, the initramfs (boxinit and the modules the board needs),
//! `init.toml` and `box`. Optionally also an SD card image of that folder (MBR + FAT, the
//! `image` task's writer). Every fetched input can be given as a path instead, so a folder
//! can be made from files downloaded on any computer. What differs per board is
//! `media/board.rs`'s, the files the firmware reads `media/config_txt.rs`'s, the `init.toml`
//! files `media/init_toml.rs`'s, Wi-Fi's part `media/pi_wifi.rs`'s.
//!
//! What the firmware does with these files: the boot ROM loads `bootcode.bin` (Pi 3 and
//! Zero 2 W; the Pi 4 has it in EEPROM), which reads `config.txt` and loads the GPU firmware
//! it names (`start_cd.elf` by default, `start.elf` with sound or a display; the Pi 4's
//! `start4*.elf`), which reads `config.txt`, loads the kernel (inflating it), the device tree
//! of the board it runs on and the initramfs, and starts the kernel with `cmdline.txt`. With
//! `upstream_kernel=1` it looks for the upstream device tree names (`bcm2837-rpi-3-b.dtb`)
//! that Debian's kernel ships, instead of Raspberry Pi OS's (`bcm2710-rpi-3-b.dtb`). What
//! all that adds up to per board is `media/boot_bytes.rs`'s.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use boxinit::config::board::UsbSerial;

use crate::fetch::kernel::KernelArgs;
use crate::media::board::{self, Board, DtbNames};
use crate::media::bundle_manifest::{self, Manifest, MANIFEST};
use crate::media::config_txt::{self, INITRAMFS, KERNEL};
use crate::media::image::{self, Image, ImageOptions};
use crate::media::init_toml::{self, DEFAULT_CARD_CONFIG};
use crate::media::kernel_image;
use crate::pack::box_check;
use crate::pack::extras_archive::ARCHIVE;
use crate::pack::initramfs::{self, Initramfs};
use crate::tools::arch::Arch;
use crate::{display_path, format_size, progress, target_dir};

/// What goes into a bundle; everything fetched can be given as a path.
#[derive(Clone, Debug)]
pub struct Options {
    pub board: Board,
    /// the folder to write (created; a file the user edited since the last bundle is kept,
    /// what the last bundle wrote and this one does not removed: `bundle_manifest.rs`)
    pub out: PathBuf,
    /// the kernel, its modules and device trees; default Debian's arm64 kernel
    pub kernel: KernelArgs,
    /// a folder with the GPU firmware (`bootcode.bin`, `start*.elf`, `fixup*.dat`), e.g. the
    /// `boot/` folder of github.com/raspberrypi/firmware; default Debian's raspi-firmware
    pub firmware: Option<PathBuf>,
    /// the static aarch64 boxinit; default built
    pub init: Option<PathBuf>,
    /// the program put on the card as `box`; default the demo box, built
    pub box_path: Option<PathBuf>,
    /// `init.toml` for the card; default a short one
    pub config: Option<PathBuf>,
    /// the initramfs's `/etc/init.toml`; default [`init_toml::builtin_config`]
    pub builtin_config: Option<PathBuf>,
    /// more files for the card (subfolders too)
    pub files: Option<PathBuf>,
    /// more modules to pack (names or aliases), besides the board's
    pub modules: Vec<String>,
    /// also write an SD card image of the folder here
    pub image: Option<PathBuf>,
    /// its size in MiB; 0: the next power of two that fits (QEMU's SD card needs one)
    pub size_mib: u32,
    /// pack Debian's static busybox as `/bin/sh` (also when the card's config asks for a shell)
    pub busybox: bool,
    /// a static aarch64 busybox to pack as `/bin/sh` instead of Debian's (always packed)
    pub busybox_path: Option<PathBuf>,
}

impl Options {
    /// A bundle of `board` into `out` with every input at its default.
    pub fn new(board: Board, out: &Path) -> Options {
        Options {
            board,
            out: out.to_path_buf(),
            kernel: KernelArgs::default(),
            firmware: None,
            init: None,
            box_path: None,
            config: None,
            builtin_config: None,
            files: None,
            modules: Vec::new(),
            image: None,
            size_mib: 0,
            busybox: false,
            busybox_path: None,
        }
    }
}

/// What [`make`] wrote.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub board: Board,
    pub dir: PathBuf,
    /// the kernel's path in the folder
    pub kernel: PathBuf,
    /// the device trees copied, by file name (the first is the board's main model)
    pub dtbs: Vec<String>,
    pub dtb_names: DtbNames,
    pub initramfs: Initramfs,
    /// every file written into the folder, relative to it
    pub files: Vec<String>,
    pub image: Option<Image>,
    /// what bundling again into the folder did, as said to the user: the files kept (edited
    /// since the last bundle), those removed (an earlier bundle's, not this one's)
    pub notes: Vec<String>,
}

impl Bundle {
    /// The path of the device tree `name` in the folder.
    pub fn dtb(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Writes the bundle folder (and the image, when asked).
pub fn make(opts: &Options) -> Result<Bundle> {
    let arch = Arch::Aarch64;
    let context = crate::pack::context::context(arch, &opts.kernel)?;
    let kernel = &context.kernel;
    let dtb_dir = kernel.dtb_dir.as_ref().with_context(|| {
        format!(
            "no device trees found for the kernel {}: pass their folder with --dtb-dir",
            kernel.image.display()
        )
    })?;
    let (dtbs, dtb_names) = board::find_dtbs(opts.board, dtb_dir)?;
    let firmware = match &opts.firmware {
        Some(dir) => dir.clone(),
        None => crate::fetch::firmware::boot_firmware()?,
    };
    // bundling again into a folder: what the user edited there stays (and an edited
    // init.toml is the card's config), what the last bundle wrote and this one does not goes
    let last = Manifest::read(&opts.out);
    let given: Vec<&str> = [
        ("box", opts.box_path.is_some()),
        ("init.toml", opts.config.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect();
    let kept = bundle_manifest::kept(&opts.out, &last, &given);
    let kept_config = kept
        .iter()
        .any(|n| n == "init.toml")
        .then(|| opts.out.join("init.toml"));
    let card = init_toml::card_config(opts.config.as_deref().or(kept_config.as_deref()))?;
    // only the firmware files config.txt makes the board read go in the folder
    let firmware_files = opts.board.firmware(card.board.cut_down());
    for name in &firmware_files {
        if !firmware.join(name).is_file() {
            bail!(
                "the firmware folder {} has no {name} ({} needs {}{})",
                firmware.display(),
                opts.board.name(),
                firmware_files.join(", "),
                if card.board.cut_down() {
                    "; or set `cut_down_firmware = false` in [board] of init.toml"
                } else {
                    ""
                }
            );
        }
    }
    let built = match (&opts.init, &opts.box_path) {
        (Some(_), Some(_)) => None,
        _ => Some(crate::pack::binaries::built(arch)?),
    };
    let pick = |given: &Option<PathBuf>, default: fn(&crate::pack::binaries::Built) -> PathBuf| {
        given
            .clone()
            .or_else(|| built.as_ref().map(default))
            .unwrap_or_default()
    };
    let init = pick(&opts.init, |b| b.init.clone());
    let box_path = pick(&opts.box_path, |b| b.demo_box.clone());
    // the box's architecture before anything is written; its loader or interpreter once the
    // initramfs is made
    box_check::check(&box_path, arch, None)?;

    if card.board.usb_serial != UsbSerial::Off && opts.board == Board::Rpi3 {
        progress!(
            "warning: [board] usb_serial needs a USB device port: of the rpi3 family only the \
             3 A+ has one (the 3 B and B+ wire theirs to a hub)"
        );
    }
    let dir = &opts.out;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let saved: Vec<(String, Vec<u8>)> = kept
        .iter()
        .map(|name| Ok((name.clone(), std::fs::read(dir.join(name))?)))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot read the edited files of {}", dir.display()))?;
    let mut files = Vec::new();
    let mut copy = |from: &Path, name: &str| -> Result<()> {
        std::fs::copy(from, dir.join(name))
            .with_context(|| format!("cannot copy {} to {}", from.display(), dir.display()))?;
        files.push(name.to_string());
        Ok(())
    };
    for name in &firmware_files {
        copy(&firmware.join(name), name)?;
    }
    copy(
        &kernel_image::for_bundle(&kernel.image, card.board.gzip_kernel)?,
        KERNEL,
    )?;
    for name in &dtbs {
        copy(&dtb_dir.join(name), name)?;
    }
    if card.board.spi && dtb_names == DtbNames::Upstream {
        // Debian's device trees leave SPI0 off and `dtparam=spi=on` cannot reach them
        for name in &dtbs {
            let path = dir.join(name);
            let patched = std::fs::read(&path)
                .map_err(anyhow::Error::from)
                .and_then(|d| board::enable_spi(&d))
                .with_context(|| format!("cannot switch SPI0 on in {name}"))?;
            std::fs::write(&path, patched)?;
        }
    }
    copy(&box_path, "box")?;
    match &opts.config {
        Some(config) => copy(config, "init.toml")?,
        None => {
            std::fs::write(dir.join("init.toml"), DEFAULT_CARD_CONFIG)?;
            files.push("init.toml".to_string());
        }
    }
    let mut write = |name: &str, text: String| -> Result<()> {
        std::fs::write(dir.join(name), text)
            .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
        files.push(name.to_string());
        Ok(())
    };
    write(
        "config.txt",
        config_txt::config_txt(opts.board, dtb_names, &card.board),
    )?;
    write(
        "cmdline.txt",
        config_txt::cmdline_txt(opts.board, dtb_names, &card.board),
    )?;
    // boxinit's state and report files, preallocated: the init only overwrites them in place
    for (name, bytes) in boxinit::field::state::initial_files() {
        let path = dir.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        files.push(name);
    }

    let builtin = match &opts.builtin_config {
        Some(path) => path.clone(),
        None => {
            let path = target_dir()
                .join("bundle")
                .join(format!("{}-init.toml", opts.board.name()));
            std::fs::create_dir_all(target_dir().join("bundle"))?;
            std::fs::write(&path, init_toml::builtin_config(opts.board))?;
            path
        }
    };
    let busybox = match (&opts.busybox_path, opts.busybox || card.board.needs_shell()) {
        (Some(path), _) => Some(path.clone()),
        (None, true) => Some(crate::fetch::busybox::fetch(arch)?),
        (None, false) => None,
    };
    let modules =
        board::modules_to_pack(opts.board, &card, &opts.modules, |m| context.index.knows(m));
    // Wi-Fi when a config asks for it: the supplicant, the chip's firmware, its modules, all
    // in the card's extras archive, out of the initramfs
    let later =
        crate::media::pi_wifi::pi_bundle(opts.board, &card, &builtin, |m| context.index.knows(m))?;
    // an archive of an earlier bundle into this folder must not stay when this one has none
    let _ = std::fs::remove_file(dir.join(ARCHIVE));
    let initramfs = initramfs::make_verbose(
        &[],
        &later,
        &initramfs::Options {
            arch,
            init: &init,
            net: initramfs::net_beside(&init).as_deref(),
            kernel,
            index: &context.index,
            modules: &modules,
            config: Some(&builtin),
            busybox: busybox.as_deref(),
        },
        &dir.join(INITRAMFS),
    )?;
    files.push(INITRAMFS.to_string());
    box_check::check(
        &box_path,
        arch,
        Some(&box_check::Contents::read(&initramfs.path)?),
    )?;
    if initramfs.extras.is_some() {
        files.push(ARCHIVE.to_string());
    }
    if let Some(extra) = &opts.files {
        copy_tree(extra, dir, &mut files)
            .with_context(|| format!("cannot copy the files of {}", extra.display()))?;
    }

    // the user's files back as they were, and said so
    let mut notes = Vec::new();
    for (name, bytes) in &saved {
        std::fs::write(dir.join(name), bytes)
            .with_context(|| format!("cannot put {} back", dir.join(name).display()))?;
        notes.push(format!(
            "kept {}: edited since the last bundle (or no bundle's); delete it, or name it \
             (--box, --config), to get this bundle's",
            display_path(&dir.join(name))
        ));
    }
    let stale = bundle_manifest::stale(dir, &last, &files);
    for name in &stale {
        std::fs::remove_file(dir.join(name))
            .with_context(|| format!("cannot remove {}", dir.join(name).display()))?;
    }
    if !stale.is_empty() {
        notes.push(format!(
            "removed {} file(s) an earlier bundle wrote that this one does not (another \
             board's or setting's): {}",
            stale.len(),
            stale.join(" ")
        ));
    }
    for note in &notes {
        progress!("{note}");
    }
    let record = Manifest {
        files: files
            .iter()
            .filter(|f| !kept.contains(f))
            .filter_map(|f| Some((f.clone(), bundle_manifest::digest(&dir.join(f))?)))
            .collect(),
    };
    let missing = config_txt::missing_files(dir, opts.board);
    if !missing.is_empty() {
        bail!(
            "the bundle {} lacks {} (a bug in xtask; please report it)",
            dir.display(),
            missing.join(", ")
        );
    }
    // the last bundle's record (read above) is the folder's, not the card's: not in the image
    let _ = std::fs::remove_file(dir.join(MANIFEST));
    let image = match &opts.image {
        Some(path) => Some(write_image(dir, path, opts.size_mib)?),
        None => None,
    };
    // after the image: the record is the folder's, not the card's
    std::fs::write(dir.join(MANIFEST), record.text())
        .with_context(|| format!("cannot write {}", dir.join(MANIFEST).display()))?;
    Ok(Bundle {
        board: opts.board,
        dir: dir.clone(),
        kernel: dir.join(KERNEL),
        dtbs,
        dtb_names,
        initramfs,
        files,
        image,
        notes,
    })
}

/// Copies every file under `from` into `to`, subfolders too.
fn copy_tree(from: &Path, to: &Path, files: &mut Vec<String>) -> Result<()> {
    let mut found = Vec::new();
    collect(from, from, &mut found)?;
    for relative in found {
        let target = to.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(from.join(&relative), &target)
            .with_context(|| format!("cannot copy {}", relative.display()))?;
        files.push(relative.to_string_lossy().into_owned());
    }
    Ok(())
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.push(relative.to_path_buf());
        }
    }
    Ok(())
}

/// The total size of the files under `dir`.
fn folder_size(dir: &Path) -> Result<u64> {
    let mut found = Vec::new();
    collect(dir, dir, &mut found)?;
    found
        .iter()
        .try_fold(0, |sum, f| Ok(sum + std::fs::metadata(dir.join(f))?.len()))
}

/// The smallest power-of-two card, at least 64 MiB, holding `bytes` with a quarter to spare
/// (FAT's own tables, and room for the box to grow). QEMU's SD card must be a power of two.
pub fn card_size_mib(bytes: u64) -> u32 {
    let needed = (bytes + bytes / 4 + (2 << 20)) >> 20;
    let mut size = 64u32;
    while u64::from(size) < needed {
        size *= 2;
    }
    size
}

/// An SD card image (MBR, one FAT partition labelled BOOT) holding the folder.
/// An SD card image of the folder `dir` (MBR + FAT) at `path`; `size_mib` 0: the next power
/// of two that fits (QEMU's SD card needs one).
pub fn write_image(dir: &Path, path: &Path, size_mib: u32) -> Result<Image> {
    let size_mib = match size_mib {
        0 => card_size_mib(folder_size(dir)?),
        size => size,
    };
    let made = image::make(
        path,
        &ImageOptions {
            size_mib,
            files: Some(dir.to_path_buf()),
            ..Default::default()
        },
    )
    .with_context(|| format!("cannot make the SD card image {}", display_path(path)))?;
    progress!("{}", image::describe(&made));
    Ok(made)
}

/// Lines for the user: the folder, its files, the image.
pub fn describe(bundle: &Bundle) -> String {
    let mut out = format!(
        "bundle {} for {} ({} files): {}\n",
        display_path(&bundle.dir),
        bundle.board.name(),
        bundle.files.len(),
        bundle.files.join(" ")
    );
    // the initramfs's line was printed as it was made
    if let Some(image) = &bundle.image {
        out += &format!(
            "image {}  {}\n",
            display_path(&image.path),
            format_size(image.size)
        );
    }
    let bytes = bundle
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(bundle.dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    out += &next_step(
        &bundle.dir,
        bundle.files.len(),
        bytes,
        bundle.image.as_ref(),
    );
    out
}

/// What to do with the folder (and the image): the last line a newcomer reads.
fn next_step(dir: &Path, files: usize, bytes: u64, image: Option<&Image>) -> String {
    let mut line = format!(
        "next: copy these {files} files, {:.1} MB, from {}/ onto the card's FAT partition (any \
         FAT card, any label)",
        bytes as f64 / 1e6,
        display_path(dir)
    );
    if let Some(image) = image {
        line += &format!(
            ", or write {} to the card (dd if={} of=/dev/sdX bs=4M conv=fsync)",
            display_path(&image.path),
            display_path(&image.path)
        );
    }
    line + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_says_what_to_do() {
        assert_eq!(
            next_step(Path::new("/tmp/pi"), 13, 37_400_000, None),
            "next: copy these 13 files, 37.4 MB, from /tmp/pi/ onto the card's FAT partition \
             (any FAT card, any label)\n"
        );
    }

    #[test]
    fn card_sizes_are_powers_of_two() {
        assert_eq!(card_size_mib(0), 64);
        assert_eq!(card_size_mib(40 << 20), 64);
        assert_eq!(card_size_mib(60 << 20), 128);
        assert!(card_size_mib(300 << 20).is_power_of_two());
    }
}
