//! Tests of `hotplug.rs` (hotplug), in their own file to keep the module short.

use super::*;
use crate::cpio;
use crate::storage::probe::{fake::Hang, Probes};
use crate::storage::scan::Look;
use crate::sys::recorder::{Call, Recorder};
use std::sync::Mutex;

/// A root with a module tree for the running kernel's release and a devtmpfs /dev.
fn fake_root(name: &str) -> (PathBuf, String) {
    let root = std::env::temp_dir().join(format!("boxinit-hotplug-{name}-{}", std::process::id()));
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let dir = root.join("lib/modules").join(&release);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("modules.dep"),
        "kernel/virtio_rng.ko:\nkernel/virtio_blk.ko:\nkernel/virtio_pci.ko:\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("modules.alias"),
        "alias virtio:d00000004v* virtio_rng\nalias virtio:d00000002v* virtio_blk\n\
         alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("sys/module/virtio_pci")).unwrap();
    std::fs::write(root.join("sys/module/virtio_pci/initstate"), "live\n").unwrap();
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::write(root.join("proc/mounts"), "devtmpfs /dev devtmpfs rw 0 0\n").unwrap();
    (root, dir.display().to_string())
}

/// Ends the loader thread once its queue is done; the calls it made.
fn finish_loading(hotplug: &mut Hotplug, calls: &Mutex<Vec<Call>>) -> String {
    if let AfterBoot::Thread(thread) = std::mem::replace(&mut hotplug.after_boot, AfterBoot::Inline)
    {
        thread.finish();
    }
    calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| format!("{c}\n"))
        .collect()
}

#[test]
fn once_the_box_runs_modules_load_on_the_loader_thread_not_the_loop() {
    let (root, dir) = fake_root("events");
    let cfg = Config {
        device: vec![toml::from_str("match = \"hwrng\"\nmode = \"0640\"").unwrap()],
        ..Config::default()
    };
    let mut hotplug = Hotplug::new(&cfg, "virtio_rng.current_quality=1000", &root);
    let (thread_sys, thread_calls) = Recorder::shared();
    hotplug.after_boot(Box::new(thread_sys));
    let mut rec = Recorder::new();
    for message in [
        // the PCI function: its driver is loaded already
        &b"add@/devices/pci0000:00/0000:00:03.0\0ACTION=add\0SUBSYSTEM=pci\0MODALIAS=pci:v00001AF4d00001005sv00001AF4sd00000004bc00scFFi00"[..],
        b"add@/devices/pci0000:00/0000:00:03.0/virtio1\0ACTION=add\0SUBSYSTEM=virtio\0MODALIAS=virtio:d00000004v00001AF4",
        b"add@/devices/virtual/misc/hwrng\0ACTION=add\0SUBSYSTEM=misc\0MAJOR=10\0MINOR=183\0DEVNAME=hwrng",
        b"remove@/devices/pci0000:00/0000:00:03.0/virtio1\0ACTION=remove\0SUBSYSTEM=virtio\0MODALIAS=virtio:d00000004v00001AF4",
        b"libudev\0garbage",
    ] {
        hotplug.handle(&mut rec, message);
    }
    // the loop's own calls: the node rule only
    assert_eq!(
        rec.transcript(),
        format!("chmod({}/dev/hwrng, 640)\n", root.display())
    );
    assert_eq!(
        finish_loading(&mut hotplug, &thread_calls),
        format!("finit_module({dir}/kernel/virtio_rng.ko, \"current_quality=1000\")\n")
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// Issue 17: when the uevent socket overflowed (the drain's ENOBUFS, passed on as
/// `events::LOST`), a device whose add was among the lost still gets its module: sysfs is
/// read again, while booting on this thread, once the box runs on the loader thread.
#[test]
fn lost_uevents_make_sysfs_read_again() {
    let (root, dir) = fake_root("lost");
    let device = root.join("sys/bus/virtio/devices/virtio1");
    std::fs::create_dir_all(&device).unwrap();
    std::fs::write(device.join("modalias"), "virtio:d00000004v00001AF4\n").unwrap();
    let want = format!("finit_module({dir}/kernel/virtio_rng.ko, \"\")\n");
    // booting
    let mut hotplug = Hotplug::new(&Config::default(), "", &root);
    let mut rec = Recorder::new();
    hotplug.handle(&mut rec, crate::events::LOST);
    assert_eq!(rec.transcript(), want);
    // once the box runs
    let mut hotplug = Hotplug::new(&Config::default(), "", &root);
    let (thread_sys, thread_calls) = Recorder::shared();
    hotplug.after_boot(Box::new(thread_sys));
    let mut rec = Recorder::new();
    crate::supervision::event_loop::DeviceEvents::rescan(&mut hotplug, &mut rec);
    assert_eq!(rec.transcript(), "");
    assert_eq!(finish_loading(&mut hotplug, &thread_calls), want);
    assert_eq!(hotplug.rescans, 1);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn until_the_boot_partition_other_devices_modules_wait() {
    let (root, dir) = fake_root("boot-first");
    let release_dir = PathBuf::from(&dir);
    std::fs::write(
        release_dir.join("modules.dep"),
        "kernel/drivers/char/hw_random/virtio-rng.ko:\nkernel/drivers/block/virtio_blk.ko:\n\
         kernel/drivers/virtio/virtio_pci.ko:\n",
    )
    .unwrap();
    let mut hotplug = Hotplug::new(&Config::default(), "", &root);
    hotplug.boot_first_only = true;
    let mut rec = Recorder::new();
    for message in [
        &b"add@/devices/pci0000:00/0000:00:03.0/virtio1\0ACTION=add\0SUBSYSTEM=virtio\0MODALIAS=virtio:d00000004v00001AF4"[..],
        b"add@/devices/pci0000:00/0000:00:04.0/virtio2\0ACTION=add\0SUBSYSTEM=virtio\0MODALIAS=virtio:d00000002v00001AF4",
    ] {
        hotplug.handle(&mut rec, message);
    }
    // the disk's driver at once, the RNG's left for after the boot partition
    assert_eq!(
        rec.transcript(),
        format!("finit_module({dir}/kernel/drivers/block/virtio_blk.ko, \"\")\n")
    );
    assert_eq!(hotplug.deferred, ["virtio_rng"]);
    assert!(!hotplug.coldplug_done());
    // handed to the loader thread, which starts at the loop's first tick
    let (thread_sys, thread_calls) = Recorder::shared();
    hotplug.after_boot(Box::new(thread_sys));
    assert!(hotplug.deferred.is_empty() && !hotplug.coldplug_done());
    hotplug.tick(&mut rec, Instant::now());
    assert_eq!(
        finish_loading(&mut hotplug, &thread_calls),
        format!("finit_module({dir}/kernel/drivers/char/hw_random/virtio-rng.ko, \"\")\n")
    );
    assert_eq!(rec.calls.len(), 1, "{}", rec.transcript());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn coldplug_is_done_once_the_thread_has_nothing_left() {
    let (root, _) = fake_root("done");
    let mut hotplug = Hotplug::new(&Config::default(), "", &root);
    hotplug.deferred = vec!["virtio_rng".into()];
    let (thread_sys, _calls) = Recorder::shared();
    hotplug.after_boot(Box::new(thread_sys));
    hotplug.tick(&mut Recorder::new(), Instant::now());
    let until = Instant::now() + Duration::from_secs(10);
    while !hotplug.coldplug_done() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(hotplug.coldplug_done());
    // without a second pass it is done at once, and no thread starts for nothing
    let mut none = Hotplug::new(&Config::default(), "", &root);
    none.after_boot(Box::new(Recorder::new()));
    none.tick(&mut Recorder::new(), Instant::now());
    assert!(none.coldplug_done());
    assert!(matches!(none.after_boot, AfterBoot::Ready { .. }));
    std::fs::remove_dir_all(&root).unwrap();
}

/// A dead USB stick unplugged and plugged back many times, while an `[[automount]]`
/// rule waits for sticks: its first read never ends, and no other thread is started.
#[test]
fn a_dead_stick_plugged_in_again_and_again_costs_one_thread() {
    let (root, _) = fake_root("dead-stick");
    #[derive(serde::Deserialize)]
    struct Rules {
        automount: Vec<crate::config::Automount>,
    }
    let rules: Rules =
        toml::from_str("[[automount]]\nlabel = \"stick\"\npath = \"/mnt/stick\"\n").unwrap();
    let cfg = Config {
        automount: rules.automount,
        ..Config::default()
    };
    let hang = Hang::default();
    let probes = Probes::new(hang.reader(&["sdb1"], |_| Look::default()));
    let mut hotplug = Hotplug::with_probes(&cfg, "", &root, probes.clone());
    let mut rec = Recorder::new();
    let event = |action: &str| {
        format!("{action}@/devices/usb1/1-1/host0/block/sdb/sdb1\0ACTION={action}\0SUBSYSTEM=block\0DEVNAME=sdb1")
    };
    for _ in 0..50 {
        hotplug.handle(&mut rec, event("add").as_bytes());
        hotplug.tick(&mut rec, Instant::now());
        hotplug.handle(&mut rec, event("remove").as_bytes());
    }
    hotplug.handle(&mut rec, event("add").as_bytes());
    assert_eq!(hang.reads(1), 1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!((hang.reads(1), probes.reading()), (1, 1));
    // given up on after the automount's limit, and nothing mounted
    let later = Instant::now() + crate::devices::automount::PROBE_LIMIT * 2;
    hotplug.tick(&mut rec, later);
    assert_eq!(rec.transcript(), "");
    hang.release();
    std::fs::remove_dir_all(&root).unwrap();
}

/// The grace wait and the boot partition wait after it read a device that hangs with one
/// thread between them.
#[test]
fn the_boot_waits_share_the_read_of_a_hung_device() {
    let (root, _) = fake_root("boot-waits");
    let class = root.join("sys/class/block");
    std::fs::create_dir_all(class.join("vda")).unwrap();
    std::fs::create_dir_all(class.join("vda1")).unwrap();
    std::fs::write(class.join("vda1/partition"), "1\n").unwrap();
    let hang = Hang::default();
    let probes = Probes::new(hang.reader(&["vda1"], |_| Look::default()));
    let mut hotplug = Hotplug::with_probes(&Config::default(), "", &root, probes.clone());
    hotplug.deferred = vec!["virtio_rng".to_string()];
    let events = Events::open().unwrap();
    let spec: DeviceSpec = "LABEL=BOOT".parse().unwrap();
    let mut rec = Recorder::new();
    let limit = Duration::from_millis(300);
    let t0 = Instant::now();
    assert_eq!(
        hotplug.before_boot_partition(&mut rec, &events, &spec, limit),
        None
    );
    let found = crate::storage::bootpart::wait_for(
        &mut rec,
        &events,
        &spec,
        limit,
        &root,
        &hotplug.probes(),
        &mut |_, _| {},
    );
    assert_eq!(found, None);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!((hang.reads(1), probes.reading()), (1, 1));
    hang.release();
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn without_devtmpfs_present_devices_get_nodes() {
    let (root, _) = fake_root("mdev");
    std::fs::write(root.join("proc/mounts"), "tmpfs /dev tmpfs rw 0 0\n").unwrap();
    let disk = root.join("sys/devices/pci0000:00/0000:00:02.0/virtio0/block/vda");
    std::fs::create_dir_all(disk.join("vda1")).unwrap();
    std::fs::write(disk.join("dev"), "253:0\n").unwrap();
    std::fs::write(
        disk.join("uevent"),
        "MAJOR=253\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n",
    )
    .unwrap();
    std::fs::write(disk.join("vda1/dev"), "253:1\n").unwrap();
    std::fs::write(
        disk.join("vda1/uevent"),
        "MAJOR=253\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("sys/class/block")).unwrap();
    std::os::unix::fs::symlink(&disk, root.join("sys/class/block/vda")).unwrap();
    std::os::unix::fs::symlink(disk.join("vda1"), root.join("sys/class/block/vda1")).unwrap();
    let mut hotplug = Hotplug::new(&Config::default(), "", &root);
    assert!(hotplug.make_nodes());
    let mut rec = Recorder::new();
    hotplug.replay(&mut rec, true);
    let dev = root.join("dev");
    assert_eq!(
        rec.transcript(),
        format!(
            "mknod({0}/vda, Block, 660, 253:0)\nmknod({0}/vda1, Block, 660, 253:1)\n",
            dev.display()
        )
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn already_loaded_modules_are_not_asked_for_again() {
    let root = std::env::temp_dir().join(format!("boxinit-hotplug-{}", std::process::id()));
    std::fs::create_dir_all(root.join("sys/module/virtio_pci")).unwrap();
    std::fs::write(root.join("sys/module/virtio_pci/initstate"), "live\n").unwrap();
    let names = ["virtio-pci", "virtio_blk", "virtio-blk", "fs-vfat"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(not_loaded(&root, names), ["virtio_blk", "fs-vfat"]);
    std::fs::remove_dir_all(&root).unwrap();
}

/// The second pass unpacks the extras first, then loads: a driver whose module comes in
/// the archive (its device is there, its alias in modules.alias) is loaded after, even
/// when the modules coldplug left were loaded before the boot partition.
#[test]
fn the_second_pass_unpacks_the_extras_first() {
    use crate::storage::extras::testing::{archive, gzipped};
    let (root, dir) = fake_root("extras");
    let release_dir = PathBuf::from(&dir);
    std::fs::write(
        release_dir.join("modules.dep"),
        "kernel/drivers/char/hw_random/virtio-rng.ko:
         kernel/drivers/net/wireless/brcmfmac.ko:
",
    )
    .unwrap();
    std::fs::write(
        release_dir.join("modules.alias"),
        "alias virtio:d00000004v* virtio_rng
alias sdio:c*v02D0dA9A6* brcmfmac
",
    )
    .unwrap();
    let chip = root.join("sys/bus/sdio/devices/mmc1:0001:1");
    std::fs::create_dir_all(&chip).unwrap();
    std::fs::write(
        chip.join("modalias"),
        "sdio:c00v02D0dA9A6
",
    )
    .unwrap();
    let boot = root.join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    let release = release_dir.file_name().unwrap().to_str().unwrap();
    let module = format!("lib/modules/{release}/kernel/drivers/net/wireless/brcmfmac.ko");
    std::fs::write(
        boot.join("extras.cpio.gz"),
        gzipped(&archive(&[
            ("lib/firmware/brcm/chip.bin", cpio::S_IFREG | 0o644, b"fw"),
            (&module, cpio::S_IFREG | 0o644, b"ko"),
        ])),
    )
    .unwrap();
    let mut hotplug = Hotplug::new(&Config::default(), "", &root);
    hotplug.deferred = vec!["virtio_rng".into()];
    hotplug.set_extras(Extras::new(&["extras.cpio.gz".into()], Some(&boot), &root));
    let mut rec = Recorder::new();
    let loader = hotplug.loader.clone().unwrap();
    load_thread::second_pass(&loader, &mut rec, hotplug.take_second_pass());
    let calls: Vec<String> = rec
        .calls
        .iter()
        .filter(|c| !matches!(c, Call::Mkdir { .. }))
        .map(|c| c.to_string())
        .collect();
    let r = root.display();
    assert_eq!(
        calls,
        [
            format!("create({r}/lib/firmware/brcm/.chip.bin.boxinit-new, 644, 2 bytes)"),
            format!("create({r}/{}, 644, 2 bytes)", module.replace("brcmfmac.ko", ".brcmfmac.ko.boxinit-new")),
            format!("renameat2({r}/lib/firmware/brcm/.chip.bin.boxinit-new, {r}/lib/firmware/brcm/chip.bin, NoReplace)"),
            format!("renameat2({r}/{}, {r}/{module}, NoReplace)", module.replace("brcmfmac.ko", ".brcmfmac.ko.boxinit-new")),
            format!("finit_module({dir}/kernel/drivers/char/hw_random/virtio-rng.ko, \"\")"),
            format!("finit_module({dir}/kernel/drivers/net/wireless/brcmfmac.ko, \"\")"),
        ]
    );
    // with nothing left and no extras, no second pass
    assert!(hotplug.take_second_pass().is_empty());
    std::fs::remove_dir_all(&root).unwrap();
}
