//! The extras' checks on archives built here, the order of the writes (recorder), a failed
//! write undone, and a real unpack into a temp root.

use super::testing::{archive, gzipped};
use super::*;
use crate::sys::linux::Linux;
use crate::sys::recorder::{Call, Recorder};
use cpio::{S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG};

/// What the Wi-Fi part looks like: directories, a library, a link to it, the program last.
fn wifi() -> Vec<u8> {
    archive(&[
        ("lib", S_IFDIR | 0o755, b""),
        ("lib/libssl.so.3", S_IFREG | 0o644, b"ssl"),
        ("lib/libssl.so", S_IFLNK | 0o777, b"libssl.so.3"),
        ("lib/modules/6.1/kernel/cfg80211.ko", S_IFREG | 0o644, b"ko"),
        ("sbin/wpa_supplicant", S_IFREG | 0o4755, b"\x7fELF"),
    ])
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("boxinit-extras-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_good_archive_is_read_in_order() {
    let cpio = wifi();
    let items = verify(&cpio).unwrap();
    let shown: Vec<String> = items
        .iter()
        .map(|i| format!("{} {:?}", i.path, i.kind))
        .collect();
    assert_eq!(
        shown,
        [
            "lib Dir(493)",
            "lib/libssl.so.3 File(420, [115, 115, 108])",
            "lib/libssl.so Symlink(\"libssl.so.3\")",
            "lib/modules/6.1/kernel/cfg80211.ko File(420, [107, 111])",
            // the set-user-ID bit is dropped
            "sbin/wpa_supplicant File(493, [127, 69, 76, 70])",
        ]
    );
}

#[test]
fn names_and_types_that_cannot_be_unpacked() {
    let refused = |members: &[(&str, u32, &[u8])]| verify(&archive(members)).unwrap_err();
    for name in [
        "../etc/passwd",
        "lib/../../x",
        "/etc/init.toml",
        "./lib",
        "lib//a",
        "lib/",
        "",
    ] {
        let err = refused(&[(name, S_IFREG | 0o644, b"x")]);
        assert!(err.contains("would leave the root"), "{name}: {err}");
    }
    let long = "a".repeat(256);
    assert!(refused(&[(&long, S_IFREG, b"")]).contains("not a plain path"));
    assert!(refused(&[("dev/sda", S_IFCHR | 0o600, b"")]).contains("device node"));
    assert!(refused(&[("a", S_IFREG, b"1"), ("a", S_IFREG, b"2")]).contains("twice"));
    assert!(refused(&[("l", S_IFLNK, b"")]).contains("no usable target"));
    // nothing may go through a link or file of the archive itself, in either order
    let err = refused(&[("lib", S_IFLNK, b"/etc"), ("lib/init.toml", S_IFREG, b"x")]);
    assert!(err.contains("lib/init.toml lies under lib"), "{err}");
    let err = refused(&[("a/b", S_IFREG, b"x"), ("a", S_IFREG, b"x")]);
    assert!(err.contains("lies under a"), "{err}");
    // a hard link (newc writes the data with the last of them only)
    let mut hard = archive(&[("a", S_IFREG, b"")]);
    hard[38..46].copy_from_slice(b"00000002");
    assert!(verify(&hard).unwrap_err().contains("hard link"));
    // the format's own errors
    assert!(verify(&wifi()[..200])
        .unwrap_err()
        .starts_with("corrupt: truncated"));
}

#[test]
fn writes_go_to_temporary_names_then_are_renamed_in_order() {
    let cpio = wifi();
    let items = verify(&cpio).unwrap();
    let mut rec = Recorder::new();
    let done = write(&mut rec, Path::new("/r"), &items).unwrap();
    assert_eq!(
        rec.transcript(),
        "mkdir(/r/lib, 755)\n\
         create(/r/lib/.libssl.so.3.boxinit-new, 644, 3 bytes)\n\
         symlink(/r/lib/.libssl.so.boxinit-new -> libssl.so.3)\n\
         mkdir(/r/lib/modules, 755)\n\
         mkdir(/r/lib/modules/6.1, 755)\n\
         mkdir(/r/lib/modules/6.1/kernel, 755)\n\
         create(/r/lib/modules/6.1/kernel/.cfg80211.ko.boxinit-new, 644, 2 bytes)\n\
         mkdir(/r/sbin, 755)\n\
         create(/r/sbin/.wpa_supplicant.boxinit-new, 755, 4 bytes)\n\
         renameat2(/r/lib/.libssl.so.3.boxinit-new, /r/lib/libssl.so.3, NoReplace)\n\
         renameat2(/r/lib/.libssl.so.boxinit-new, /r/lib/libssl.so, NoReplace)\n\
         renameat2(/r/lib/modules/6.1/kernel/.cfg80211.ko.boxinit-new, /r/lib/modules/6.1/kernel/cfg80211.ko, NoReplace)\n\
         renameat2(/r/sbin/.wpa_supplicant.boxinit-new, /r/sbin/wpa_supplicant, NoReplace)\n"
    );
    assert_eq!(
        done,
        Unpacked {
            files: 3,
            links: 1,
            bytes: 9,
            kept: 0,
            modules: 1
        }
    );
}

#[test]
fn a_failed_write_is_undone_and_a_taken_path_kept() {
    let cpio = wifi();
    let items = verify(&cpio).unwrap();
    // the third file cannot be made: the two temporary files before it, and its own, go
    let mut rec = Recorder::new();
    rec.fail_when(
        |c| matches!(c, Call::CreateFile { path, .. } if path.contains("wpa_supplicant")),
        28, // ENOSPC
    );
    let err = write(&mut rec, Path::new("/r"), &items).unwrap_err();
    assert!(
        err.starts_with("cannot write /r/sbin/wpa_supplicant: No space left"),
        "{err}"
    );
    let undone: Vec<String> = rec
        .calls
        .iter()
        .filter(|c| matches!(c, Call::Unlink { .. } | Call::Rename { .. }))
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        undone,
        [
            "unlink(/r/lib/.libssl.so.3.boxinit-new)",
            "unlink(/r/lib/.libssl.so.boxinit-new)",
            "unlink(/r/lib/modules/6.1/kernel/.cfg80211.ko.boxinit-new)",
            "unlink(/r/sbin/.wpa_supplicant.boxinit-new)",
        ]
    );
    // a rename that fails after two went through: those two are removed again
    let mut rec = Recorder::new();
    rec.fail_when(
        |c| matches!(c, Call::Rename { to, .. } if to.ends_with("cfg80211.ko")),
        5, // EIO
    );
    assert!(write(&mut rec, Path::new("/r"), &items).is_err());
    let after: Vec<String> = rec
        .calls
        .iter()
        .skip_while(|c| !matches!(c, Call::Rename { to, .. } if to.ends_with("cfg80211.ko")))
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        after[1..],
        [
            "unlink(/r/lib/modules/6.1/kernel/.cfg80211.ko.boxinit-new)",
            "unlink(/r/sbin/.wpa_supplicant.boxinit-new)",
            "unlink(/r/lib/libssl.so.3)",
            "unlink(/r/lib/libssl.so)",
        ]
    );
    // a path the root has already is left as it was: the temporary file goes
    let mut rec = Recorder::new();
    rec.fail_when(
        |c| matches!(c, Call::Rename { to, .. } if to.ends_with("libssl.so.3")),
        17, // EEXIST
    );
    let done = write(&mut rec, Path::new("/r"), &items).unwrap();
    assert_eq!((done.kept, done.files), (1, 3));
    assert!(rec
        .transcript()
        .contains("unlink(/r/lib/.libssl.so.3.boxinit-new)\n"));
}

#[test]
fn missing_truncated_corrupt_or_too_large_archives_write_nothing() {
    let dir = temp_dir("bad");
    let path = dir.join("extras.cpio.gz");
    let good = gzipped(&wifi());
    let unpack = |bytes: Option<&[u8]>| {
        let _ = std::fs::remove_file(&path);
        if let Some(bytes) = bytes {
            std::fs::write(&path, bytes).unwrap();
        }
        let mut rec = Recorder::new();
        let result = unpack_archive(&mut rec, &path, Path::new("/r"));
        assert_eq!(rec.transcript(), "", "nothing may be written");
        match result {
            Err(Failure::Unusable(why)) => why,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(unpack(None), "it is missing");
    assert!(unpack(Some(&good[..good.len() / 2])).starts_with("truncated"));
    let mut bad_crc = good.clone();
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 0xff;
    assert!(unpack(Some(&bad_crc)).contains("CRC-32"));
    // a trailer whose size is wrong
    let mut size = good.clone();
    let at = size.len() - 4;
    size[at..].copy_from_slice(&((MAX_UNPACKED + 1) as u32).to_le_bytes());
    assert!(unpack(Some(&size)).contains("its trailer says 67108865"));
    // more than the bound: inflating stops there
    let zeros = vec![0; MAX_UNPACKED];
    let huge = gzipped(&archive(&[("big", S_IFREG, &zeros)]));
    assert!(unpack(Some(&huge)).contains("more than the 67108864 bytes allowed"));
    // a good gzip of a bad archive
    let escape = gzipped(&archive(&[("../../etc/shadow", S_IFREG, b"x")]));
    assert!(unpack(Some(&escape)).contains("would leave the root"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unpacks_into_a_root_and_leaves_what_is_there() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("root");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("sbin")).unwrap();
    // the initramfs's own file of that name stays
    std::fs::write(root.join("sbin/wpa_supplicant"), b"mine").unwrap();
    std::fs::write(dir.join("extras.cpio.gz"), gzipped(&wifi())).unwrap();
    let extras = Extras::new(&["extras.cpio.gz".to_string()], Some(&dir), &root);
    assert!(extras.unpack(&mut Linux), "it brought a module");
    let read = |p: &str| std::fs::read(root.join(p)).unwrap();
    assert_eq!(read("lib/libssl.so.3"), b"ssl");
    assert_eq!(read("lib/libssl.so"), b"ssl");
    assert_eq!(read("lib/modules/6.1/kernel/cfg80211.ko"), b"ko");
    assert_eq!(read("sbin/wpa_supplicant"), b"mine");
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("lib/libssl.so.3"), 0o644);
    // no temporary file is left behind
    let mut names: Vec<String> = std::fs::read_dir(root.join("sbin"))
        .unwrap()
        .chain(std::fs::read_dir(root.join("lib")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["libssl.so", "libssl.so.3", "modules", "wpa_supplicant"]
    );
    // a second archive that fails leaves the first one's files alone
    std::fs::write(dir.join("bad.cpio.gz"), b"\x1f\x8b\x08\0garbage").unwrap();
    let bad = Extras::new(&["bad.cpio.gz".to_string()], Some(&dir), &root);
    assert!(!bad.unpack(&mut Linux));
    assert_eq!(read("lib/libssl.so.3"), b"ssl");
    // without a boot partition there is nothing to unpack
    assert!(Extras::new(&["x".to_string()], None, &root).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
