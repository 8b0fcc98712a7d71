//! A stand-in for the Raspberry Pi firmware between the boots of a `raspi3b` scenario with a
//! `slots` file (QEMU loads the kernel itself and knows nothing of `tryboot`): the card laid
//! out in two slots as `bundle --slots` would (`lay_out`), and before each boot the files
//! picked as the firmware picks them (`pick`): `tryboot.txt` when the boot before asked for it
//! (the kernel's `reboot: Restarting system with command '0 tryboot'`), else `config.txt`;
//! its `os_prefix=` slot, or the root files when the slot lacks its kernel or device tree;
//! and the device tree handed to QEMU given the `chosen` properties the firmware sets
//! (`os_prefix`, `bootloader/tryboot` as a big-endian u32), through `media::fdt`.

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::media::fdt::{self, Fdt, Node};
use crate::media::image;
use crate::media::slots;
use crate::qemu::machine::Boot;

/// What every kernel prints for `reboot(RESTART2, "0 tryboot")` (kernel/reboot.c).
pub const TRYBOOT_LINE: &str = "reboot: Restarting system with command '0 tryboot'";

/// The files of one boot, as the firmware picks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picked {
    /// `config.txt` or `tryboot.txt`
    pub config: String,
    /// the slot booted (`b/`), empty for the root files
    pub prefix: String,
    pub kernel: String,
    pub initramfs: String,
    pub dtb: String,
    pub cmdline: String,
}

/// The names a firmware config gives: (os_prefix, kernel, initramfs, device tree, cmdline).
fn names(config: &str) -> (String, String, String, String, String) {
    let f = slots::names(config);
    (f.prefix, f.kernel, f.initramfs, f.dtb, f.cmdline)
}

/// Which files the firmware boots from the card `image`, with or without the tryboot flag.
pub fn pick(image: &Path, tryboot: bool) -> Result<Picked> {
    let read = |name: &str| image::read_file(image, name);
    let mut config = "config.txt";
    let mut text = None;
    if tryboot {
        text = read("tryboot.txt")?;
        config = "tryboot.txt";
    }
    let text = match text {
        Some(t) => t,
        None => {
            config = "config.txt";
            read("config.txt")?.context("the card has no config.txt")?
        }
    };
    let (prefix, kernel, initramfs, dtb, cmdline) = names(&String::from_utf8_lossy(&text));
    // the firmware boots the root files when the slot lacks its kernel or device tree
    let whole = !prefix.is_empty()
        && read(&format!("{prefix}{kernel}"))?.is_some()
        && read(&format!("{prefix}{dtb}"))?.is_some();
    let prefix = if whole { prefix } else { String::new() };
    Ok(Picked {
        config: config.to_string(),
        kernel: format!("{prefix}{kernel}"),
        initramfs: format!("{prefix}{initramfs}"),
        dtb: format!("{prefix}{dtb}"),
        cmdline: format!("{prefix}{cmdline}"),
        prefix,
    })
}

/// The device tree with the `chosen` properties the firmware sets.
pub fn inject(dtb: &[u8], prefix: &str, tryboot: bool) -> Result<Vec<u8>> {
    let mut tree = Fdt::parse(dtb)?;
    let chosen = match tree.root.children.iter().position(|c| c.name == "chosen") {
        Some(i) => &mut tree.root.children[i],
        None => {
            tree.root.children.push(Node {
                name: "chosen".into(),
                ..Node::default()
            });
            tree.root.children.last_mut().context("no chosen node")?
        }
    };
    if !prefix.is_empty() {
        chosen.set_prop("os_prefix", fdt::string(prefix));
    }
    let bootloader = match chosen.children.iter().position(|c| c.name == "bootloader") {
        Some(i) => &mut chosen.children[i],
        None => {
            chosen.children.push(Node {
                name: "bootloader".into(),
                ..Node::default()
            });
            chosen.children.last_mut().context("no bootloader node")?
        }
    };
    bootloader.set_prop("tryboot", fdt::cells(&[u32::from(tryboot)]));
    Ok(tree.to_bytes())
}

/// Points `boot` at the files the firmware would boot from `image` (copied into `dir`), the
/// device tree with its `chosen` properties. Returns what was picked.
pub fn prepare(image: &Path, tryboot: bool, dir: &Path, boot: &mut Boot) -> Result<Picked> {
    let picked = pick(image, tryboot)?;
    std::fs::create_dir_all(dir)?;
    let file = |name: &str| -> Result<Vec<u8>> {
        image::read_file(image, name)?.with_context(|| format!("the card has no {name}"))
    };
    let kernel = dir.join("kernel8.img");
    std::fs::write(&kernel, file(&picked.kernel)?)?;
    let initrd = dir.join("initramfs");
    std::fs::write(&initrd, file(&picked.initramfs)?)?;
    let dtb = dir.join("board.dtb");
    std::fs::write(&dtb, inject(&file(&picked.dtb)?, &picked.prefix, tryboot)?)?;
    boot.kernel = kernel;
    boot.initrd = initrd;
    boot.dtb = Some(dtb);
    boot.card_cmdline = Some(String::from_utf8_lossy(&file(&picked.cmdline)?).into_owned());
    Ok(picked)
}

/// Lays the card out in two slots with the code `bundle --slots` and `bundle --update-card`
/// run (`media::slots`): the image's kernel, initramfs, `cmdline.txt` and device tree taken
/// out as a bundle folder, laid out (`a/`, `config.txt` `os_prefix=a/`, `tryboot.txt`
/// `os_prefix=b/`), the same bundle with `b_cmdline` added to its `cmdline.txt` put into `b/`
/// as an update (`b/bundle.sha256` last), and the slots and both configs written back.
pub fn lay_out(image: &Path, b_cmdline: &str, work: &Path) -> Result<()> {
    let config = image::read_file(image, "config.txt")?.context("the card has no config.txt")?;
    let config = String::from_utf8_lossy(&config).into_owned();
    let (_, kernel, initramfs, dtb, cmdline) = names(&config);
    let _ = std::fs::remove_dir_all(work);
    let (card, new) = (work.join("card"), work.join("new"));
    for dir in [&card, &new] {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("config.txt"), &config)?;
        for name in [&kernel, &initramfs, &dtb, &cmdline] {
            let mut bytes = image::read_file(image, name)?
                .with_context(|| format!("the card has no {name}"))?;
            if dir == &new && name == &cmdline && !b_cmdline.trim().is_empty() {
                let line = String::from_utf8_lossy(&bytes).trim().to_string();
                bytes = format!("{line} {}\n", b_cmdline.trim()).into_bytes();
            }
            std::fs::write(dir.join(name), bytes)?;
        }
    }
    slots::lay_out(&card)?;
    slots::put_update(&new, &card)?;
    // the root files are on the image already
    for name in [&kernel, &initramfs, &dtb, &cmdline] {
        std::fs::remove_file(card.join(name))?;
    }
    image::write_files(image, &card)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_config() {
        let (prefix, kernel, initramfs, dtb, cmdline) = names(
            "# x\nkernel=kernel8.img\ninitramfs initramfs.cpio.gz followkernel\nos_prefix=b/\n",
        );
        assert_eq!(
            (
                prefix.as_str(),
                kernel.as_str(),
                initramfs.as_str(),
                dtb.as_str(),
                cmdline.as_str()
            ),
            (
                "b/",
                "kernel8.img",
                "initramfs.cpio.gz",
                "bcm2837-rpi-3-b.dtb",
                "cmdline.txt"
            )
        );
    }

    #[test]
    fn chosen_gets_the_firmware_properties() {
        let tree = Fdt::parse(
            &Fdt::parse(&inject(&empty_tree(), "b/", true).unwrap())
                .unwrap()
                .to_bytes(),
        )
        .unwrap();
        let chosen = tree
            .root
            .children
            .iter()
            .find(|c| c.name == "chosen")
            .unwrap();
        assert_eq!(chosen.prop("os_prefix"), Some(&b"b/\0"[..]));
        let bl = chosen
            .children
            .iter()
            .find(|c| c.name == "bootloader")
            .unwrap();
        assert_eq!(bl.prop("tryboot"), Some(&[0u8, 0, 0, 1][..]));
        let plain = Fdt::parse(&inject(&empty_tree(), "", false).unwrap()).unwrap();
        let chosen = plain
            .root
            .children
            .iter()
            .find(|c| c.name == "chosen")
            .unwrap();
        assert_eq!(chosen.prop("os_prefix"), None);
    }

    /// A device tree with only a root node.
    fn empty_tree() -> Vec<u8> {
        let mut data = Vec::new();
        for word in [0xd00d_feed_u32, 72, 56, 72, 40, 17, 16, 0, 0, 16] {
            data.extend_from_slice(&word.to_be_bytes());
        }
        data.extend_from_slice(&[0; 16]);
        for word in [1u32, 0, 2, 9] {
            data.extend_from_slice(&word.to_be_bytes());
        }
        data
    }
}
