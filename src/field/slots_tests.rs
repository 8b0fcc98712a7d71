//! Tests of `slots.rs`: the firmware's files, the kernel release, a slot's manifest.

use super::*;

#[test]
fn os_prefix_is_the_last_unconditional_line() {
    let table = [
        ("os_prefix=a/\n", Some("a/")),
        (
            "# os_prefix=x/\r\nkernel=kernel8.img\r\nos_prefix=b/\r\n",
            Some("b/"),
        ),
        ("os_prefix=a/\nos_prefix=b/\n", Some("b/")),
        ("os_prefix=\n", None),
        ("kernel=kernel8.img\n", None),
        // Raspberry Pi OS's conditional sections: only what applies to every board counts
        ("os_prefix=a/\n[pi4]\nos_prefix=c/\n", Some("a/")),
        ("[cm4]\nos_prefix=c/\n[all]\nos_prefix=b/\n", Some("b/")),
        ("[pi3]\nos_prefix=c/\n", None),
        ("os_prefix=a/\n[none]\nos_prefix=c/\n[ALL]\n", Some("a/")),
    ];
    for (text, want) in table {
        assert_eq!(os_prefix(text).as_deref(), want, "{text:?}");
    }
}

#[test]
fn a_slot_is_added_for_every_board() {
    let table = [
        ("kernel=kernel8.img\n", "kernel=kernel8.img\nos_prefix=a/\n"),
        ("arm_64bit=1", "arm_64bit=1\nos_prefix=a/\n"),
        ("", "os_prefix=a/\n"),
        (
            "[pi4]\nmax_framebuffers=2\n[all]\n",
            "[pi4]\nmax_framebuffers=2\n[all]\nos_prefix=a/\n",
        ),
        (
            "[cm4]\notg_mode=1\n",
            "[cm4]\notg_mode=1\n[all]\nos_prefix=a/\n",
        ),
    ];
    for (config, want) in table {
        let text = with_os_prefix(config, "a/");
        assert_eq!(text, want, "{config:?}");
        assert_eq!(os_prefix(&text).as_deref(), Some("a/"), "{config:?}");
    }
}

#[test]
fn only_raspberry_pi_kernels_pass_tryboot_on() {
    let table = [
        ("6.6.51+rpt-rpi-v8", true),
        ("6.6.51+rpt-rpi-2712", true),
        ("6.1.0-rpi7-rpi-v8", true),
        ("6.1.21-v8+", true),
        ("5.10.103-v7l+", true),
        ("6.1.0-28-arm64", false),
        ("6.6.0", false),
        ("6.1.0+", false),
        ("", false),
    ];
    for (release, can) in table {
        assert_eq!(kernel_can_tryboot(release), can, "{release}");
    }
}

#[test]
fn the_firmware_and_kernel_are_read_from_root() {
    let root = std::env::temp_dir().join(format!("boxinit-slots-root-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(BundleRun::read(&root), BundleRun::default());
    let chosen = root.join("proc/device-tree/chosen");
    std::fs::create_dir_all(chosen.join("bootloader")).unwrap();
    std::fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
    std::fs::write(chosen.join("bootloader/tryboot"), [0, 0, 0, 1]).unwrap();
    std::fs::write(chosen.join("os_prefix"), b"b/\0").unwrap();
    std::fs::write(
        root.join("proc/sys/kernel/osrelease"),
        "6.6.51+rpt-rpi-v8\n",
    )
    .unwrap();
    let run = BundleRun::read(&root);
    assert!(run.tryboot);
    assert_eq!(run.os_prefix.as_deref(), Some("b/"));
    assert_eq!(run.release, "6.6.51+rpt-rpi-v8");
    // 0 is an ordinary boot; a short property is none
    std::fs::write(chosen.join("bootloader/tryboot"), [0, 0, 0, 0]).unwrap();
    assert!(!BundleRun::read(&root).tryboot);
    std::fs::write(chosen.join("bootloader/tryboot"), [1]).unwrap();
    assert!(!BundleRun::read(&root).tryboot);
}

/// A card with slot `b/` holding `files`, and a manifest of `listed` (name, bytes).
pub(crate) fn slot_card(
    tag: &str,
    files: &[(&str, &[u8])],
    listed: &[(&str, &[u8])],
) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("boxinit-slots-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("b")).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join("b").join(name), bytes).unwrap();
    }
    let manifest: String = listed
        .iter()
        .map(|(name, bytes)| {
            format!(
                "{}  {name}\r\n",
                crate::sha256::hex(&crate::sha256::digest(bytes))
            )
        })
        .collect();
    std::fs::write(dir.join("b").join(MANIFEST), manifest).unwrap();
    dir
}

#[test]
fn a_slot_is_complete_when_its_manifest_matches() {
    let full: &[(&str, &[u8])] = &[
        ("kernel8.img", b"kernel"),
        ("bcm2837-rpi-3-b.dtb", b"dtb"),
        ("cmdline.txt", b"console=ttyS1\n"),
    ];
    let dir = slot_card("whole", full, full);
    assert!(check_slot(&dir, "b/").is_ok_and(|sha| sha.len() == 64));
    // a file still being copied
    let dir = slot_card(
        "cut",
        &[("kernel8.img", b"ker"), ("x.dtb", b"dtb")],
        &[("kernel8.img", b"kernel"), ("x.dtb", b"dtb")],
    );
    let e = check_slot(&dir, "b/").unwrap_err();
    assert!(e.contains("b/kernel8.img does not match"), "{e}");
    // a file named but absent
    let dir = slot_card(
        "absent",
        &[("x.dtb", b"dtb")],
        &[("kernel8.img", b"kernel"), ("x.dtb", b"dtb")],
    );
    assert!(check_slot(&dir, "b/")
        .unwrap_err()
        .contains("b/kernel8.img, named in"));
    // no device tree: the firmware would fall back to the root files
    let dir = slot_card(
        "nodtb",
        &[("kernel8.img", b"kernel")],
        &[("kernel8.img", b"kernel")],
    );
    assert!(check_slot(&dir, "b/").unwrap_err().contains("no .dtb"));
    // not a sha256sum line, or a path out of the slot
    assert!(manifest_lines("abc  kernel8.img\n").is_err());
    assert!(manifest_lines(&format!("{}  ../box\n", "0".repeat(64))).is_err());
    let lines = manifest_lines(&format!("{} *kernel8.img\r\n\r\n", "A".repeat(64))).unwrap();
    assert_eq!(lines, [("a".repeat(64), "kernel8.img".to_string())]);
}
