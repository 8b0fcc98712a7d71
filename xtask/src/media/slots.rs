//! A Pi card laid out for whole-bundle trials through the firmware's `tryboot` (boxinit's
//! `[update] tryboot`, `src/field/slots.rs`): the files the firmware loads for a boot (kernel,
//! initramfs, `cmdline.txt`, device trees) in two slot folders that `os_prefix=` names,
//! `config.txt` naming the one that runs (`a/`) and `tryboot.txt` the one tried next (`b/`).
//! The root files stay: the firmware falls back to them when a slot lacks its kernel or
//! device tree. `box`, `init.toml` and `boxinit/` are shared by both slots, at the top.
//!
//! `lay_out` makes the first card from a bundle folder (`bundle --slots`); `put_update` copies
//! a new bundle's slot files into the slot a card's `tryboot.txt` names, its `bundle.sha256`
//! written last, which is what tells boxinit the copy is complete (`bundle --update-card`).

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use boxinit::field::slots::{
    self as init_slots, CONFIG_TXT, FAILED, FAILED_TXT, GOOD, MANIFEST, TRYBOOT_TXT,
};

/// The names of the files a firmware config makes the firmware load for a boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFiles {
    /// `os_prefix=` (`b/`), empty when none
    pub prefix: String,
    pub kernel: String,
    pub initramfs: String,
    pub cmdline: String,
    /// `device_tree=`, or the Pi 3 B's when the config leaves the firmware to choose
    pub dtb: String,
}

/// The names `config` (a `config.txt` or `tryboot.txt`) gives a Pi 3 B: its lines for every
/// board and those under `[pi3]` (another board's section is left out); the firmware's
/// defaults for what it does not name.
pub fn names(config: &str) -> BootFiles {
    let mut files = BootFiles {
        prefix: String::new(),
        kernel: "kernel8.img".into(),
        initramfs: String::new(),
        cmdline: "cmdline.txt".into(),
        dtb: "bcm2837-rpi-3-b.dtb".into(),
    };
    for line in init_slots::lines_for(config, Some("pi3")) {
        let value = |key: &str| line.strip_prefix(key).map(|v| v.trim().to_string());
        if let Some(v) = value("os_prefix=") {
            files.prefix = v;
        } else if let Some(v) = value("kernel=") {
            files.kernel = v;
        } else if let Some(v) = value("device_tree=") {
            files.dtb = v;
        } else if let Some(v) = value("cmdline=") {
            files.cmdline = v;
        } else if let Some(rest) = line.strip_prefix("initramfs ") {
            files.initramfs = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
    }
    files
}

/// A slot's `bundle.sha256` (`sha256sum`'s format) for `files`, names relative to the slot.
pub fn manifest(files: &[(String, Vec<u8>)]) -> String {
    files
        .iter()
        .map(|(name, bytes)| {
            let sha = boxinit::sha256::hex(&boxinit::sha256::digest(bytes));
            format!("{sha}  {name}\n")
        })
        .collect()
}

/// The slot files of the bundle folder `dir`: the kernel, initramfs and `cmdline.txt` its
/// `config.txt` names, and every device tree at its top (the firmware picks one per model).
fn slot_files(dir: &Path) -> Result<Vec<String>> {
    let config = read_text(&dir.join(CONFIG_TXT))?;
    let files = names(&config);
    if files.initramfs.is_empty() {
        bail!(
            "{}: no initramfs line; is this a bundle folder?",
            dir.join(CONFIG_TXT).display()
        );
    }
    let mut out = vec![files.kernel, files.initramfs, files.cmdline];
    let mut dtbs: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dtb"))
        .collect();
    dtbs.sort();
    out.extend(dtbs);
    Ok(out)
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Lays the bundle folder `dir` out in two slots: its slot files copied into `a/`,
/// `config.txt` given `os_prefix=a/`, `tryboot.txt` the same with `os_prefix=b/`, `b/` made
/// empty (nothing to try yet). Returns what was done, a line each.
pub fn lay_out(dir: &Path) -> Result<Vec<String>> {
    let config = read_text(&dir.join(CONFIG_TXT))?;
    if init_slots::os_prefix(&config).is_some() {
        bail!(
            "{} names a slot already (os_prefix=): the folder is laid out in slots; to put a new bundle into its next slot use --update-card",
            dir.join(CONFIG_TXT).display()
        );
    }
    let files = slot_files(dir)?;
    for slot in ["a", "b"] {
        std::fs::create_dir_all(dir.join(slot))?;
    }
    for name in &files {
        std::fs::copy(dir.join(name), dir.join("a").join(name))
            .with_context(|| format!("copying {name} into {}", dir.join("a").display()))?;
    }
    std::fs::write(
        dir.join(TRYBOOT_TXT),
        init_slots::with_os_prefix(&config, "b/"),
    )?;
    std::fs::write(
        dir.join(CONFIG_TXT),
        init_slots::with_os_prefix(&config, "a/"),
    )?;
    Ok(vec![
        format!("slots: a/ holds {} (config.txt: os_prefix=a/)", files.join(" ")),
        "slots: b/ is empty; tryboot.txt names it: the next bundle goes there (bundle --update-card)".into(),
        format!(
            "next: copy the folder {}/ (a/ and b/ with it) onto the card's FAT partition",
            dir.display()
        ),
    ])
}

/// Copies the slot files of the new bundle folder `bundle` into the slot `card`'s
/// `tryboot.txt` names (`card`: the card's folder, mounted or copied), after removing what an
/// earlier bundle left there; `bundle.sha256` last. Returns what was done, a line each.
pub fn put_update(bundle: &Path, card: &Path) -> Result<Vec<String>> {
    let tryboot = read_text(&card.join(TRYBOOT_TXT)).with_context(|| {
        format!(
            "{} is not laid out in slots (make the card with bundle --slots first)",
            card.display()
        )
    })?;
    let slot = init_slots::os_prefix(&tryboot).with_context(|| {
        format!(
            "{} names no slot (os_prefix=)",
            card.join(TRYBOOT_TXT).display()
        )
    })?;
    let running = init_slots::os_prefix(&read_text(&card.join(CONFIG_TXT))?);
    if running.as_deref() == Some(slot.as_str()) {
        bail!("config.txt and tryboot.txt of {} both name {slot}: the running slot is not overwritten", card.display());
    }
    let to = card.join(&slot);
    // what an earlier bundle left: its files and its marks, the manifest first
    if to.is_dir() {
        for mark in [MANIFEST, GOOD, FAILED, FAILED_TXT] {
            let _ = std::fs::remove_file(to.join(mark));
        }
        std::fs::remove_dir_all(&to).with_context(|| format!("emptying {}", to.display()))?;
    }
    std::fs::create_dir_all(&to)?;
    let mut copied = Vec::new();
    for name in slot_files(bundle)? {
        let bytes = std::fs::read(bundle.join(&name))
            .with_context(|| format!("reading {}", bundle.join(&name).display()))?;
        std::fs::write(to.join(&name), &bytes)
            .with_context(|| format!("writing {}", to.join(&name).display()))?;
        copied.push((name, bytes));
    }
    // last: its presence says the copy is complete
    std::fs::write(to.join(MANIFEST), manifest(&copied))?;
    let names: Vec<&str> = copied.iter().map(|(n, _)| n.as_str()).collect();
    Ok(vec![
        format!("update: {} copied into {}", names.join(" "), to.display()),
        format!("update: {slot}{MANIFEST} written last"),
        format!("next: put the card back and power on: boxinit tries {slot} once through tryboot and keeps it when the box is healthy ([update] tryboot: \"auto\" needs a Raspberry Pi OS kernel)"),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_folder(tag: &str, kernel: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-slots-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let files: [(&str, &[u8]); 7] = [
            (
                CONFIG_TXT,
                b"arm_64bit=1\ninitramfs initramfs.cpio.gz followkernel\n",
            ),
            ("kernel8.img", kernel),
            ("initramfs.cpio.gz", b"cpio"),
            ("cmdline.txt", b"console=ttyS1\n"),
            ("bcm2837-rpi-3-b.dtb", b"dtb"),
            ("bcm2837-rpi-3-b-plus.dtb", b"dtb+"),
            ("init.toml", b"# shared\n"),
        ];
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        dir
    }

    #[test]
    fn names_follow_the_config() {
        let files =
            names("# x\nkernel=k.img\ninitramfs initramfs.cpio.gz followkernel\nos_prefix=b/\n");
        assert_eq!(
            (
                files.prefix.as_str(),
                files.kernel.as_str(),
                files.initramfs.as_str(),
                files.dtb.as_str()
            ),
            ("b/", "k.img", "initramfs.cpio.gz", "bcm2837-rpi-3-b.dtb")
        );
        // a Pi 3 B reads [pi3] and [all], not another board's section
        let files = names("kernel=k.img\n[pi4]\nkernel=k4.img\n[PI3]\nkernel=k3.img\n[all]\nos_prefix=a/\n[cm4]\nos_prefix=c/\n");
        assert_eq!(
            (files.prefix.as_str(), files.kernel.as_str()),
            ("a/", "k3.img")
        );
    }

    #[test]
    fn a_card_in_slots_takes_an_update_the_init_accepts() {
        let card = bundle_folder("card", b"old kernel");
        let said = lay_out(&card).unwrap();
        assert!(said[0].contains("a/ holds kernel8.img initramfs.cpio.gz cmdline.txt bcm2837-rpi-3-b-plus.dtb bcm2837-rpi-3-b.dtb"), "{said:?}");
        assert_eq!(
            std::fs::read(card.join("a/kernel8.img")).unwrap(),
            b"old kernel"
        );
        assert!(read_text(&card.join(CONFIG_TXT))
            .unwrap()
            .ends_with("os_prefix=a/\n"));
        assert!(read_text(&card.join(TRYBOOT_TXT))
            .unwrap()
            .ends_with("os_prefix=b/\n"));
        assert!(lay_out(&card).is_err(), "laid out once only");
        // nothing to try yet: boxinit's own check says so
        assert!(init_slots::check_slot(&card, "b/").is_err());

        let new = bundle_folder("new", b"new kernel");
        std::fs::write(card.join("b/bundle.failed.txt"), "an earlier try").unwrap();
        let said = put_update(&new, &card).unwrap();
        assert!(
            said[1].starts_with("update: b/bundle.sha256 written last"),
            "{said:?}"
        );
        assert_eq!(
            std::fs::read(card.join("b/kernel8.img")).unwrap(),
            b"new kernel"
        );
        assert!(!card.join("b/bundle.failed.txt").exists());
        // the running slot and the shared files are untouched
        assert_eq!(
            std::fs::read(card.join("a/kernel8.img")).unwrap(),
            b"old kernel"
        );
        assert_eq!(
            std::fs::read(card.join("init.toml")).unwrap(),
            b"# shared\n"
        );
        // the manifest is one boxinit takes for a complete bundle
        init_slots::check_slot(&card, "b/").unwrap();
        // a cut copy is not
        std::fs::write(card.join("b/initramfs.cpio.gz"), "cp").unwrap();
        assert!(init_slots::check_slot(&card, "b/").is_err());
        // a card not in slots is refused with what to do
        let plain = bundle_folder("plain", b"k");
        let e = put_update(&new, &plain).unwrap_err();
        assert!(format!("{e:#}").contains("bundle --slots first"), "{e:#}");
        for d in [card, new, plain] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}
