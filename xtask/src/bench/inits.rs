//! The other `/init`s the benchmark compares boxinit with, and what their initramfs adds:
//! the seed's busybox script (and busybox's coldplug, a second script in the same image), and
//! the floor (`bench/floor`, built here).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::pack::extra::Extra;
use crate::tools::arch::Arch;
use crate::{target_dir, workspace_root};

/// The seed's `/init` (see shared/seed: the blog post), doing boxinit's job with busybox:
/// mount proc, sys, a tmpfs `/dev` and devpts, create the nodes, insmod the modules in
/// dependency order, `mdev -s`, wait for the partition, mount it, exec the box. The applet
/// links are packed in the initramfs instead of `busybox --install -s` at boot (that would
/// only add to its time). proc must be mounted to read the clock from /proc/uptime (10 ms
/// steps), so its marker comes after that mount.
pub fn busybox_script(modules: &[String], device: &str, box_args: &[&str]) -> String {
    let mut s = String::from(
        "#!/bin/sh\n\
         # The seed's init script doing boxinit's job, for `cargo xtask bench`.\n\
         mount -t proc proc /proc\n\
         read up idle < /proc/uptime\n\
         echo \"script: started at ${up}s (CLOCK_BOOTTIME)\"\n\
         mount -t sysfs sysfs /sys\n\
         mount -t tmpfs -o size=64k,mode=0755 tmpfs /dev\n\
         mkdir /dev/pts\n\
         mount -t devpts devpts /dev/pts\n\
         mknod /dev/null c 1 3\n\
         mknod /dev/tty c 5 0\n\
         mknod /dev/console c 5 1\n",
    );
    for module in modules {
        let _ = writeln!(s, "insmod {module}");
    }
    let _ = write!(
        s,
        "mdev -s\n\
         while [ ! -b {device} ]; do sleep 0.01; mdev -s; done\n\
         mount -t vfat -o ro,nosuid,nodev,noatime {device} /boot\n\
         cd /boot\n\
         read up idle < /proc/uptime\n\
         echo \"script: exec at ${{up}}s (CLOCK_BOOTTIME)\"\n\
         exec /boot/box {}\n",
        box_args.join(" ")
    );
    s
}

/// Busybox's coldplug, as a second `/init` in the busybox image (`rdinit=/coldplug.sh`):
/// `mdev -s`, then `modprobe` every modalias sysfs shows, again until the boot disk's
/// partition node is there (a bus's devices appear only once its driver is loaded). Its two
/// markers time it.
pub const COLDPLUG_SCRIPT: &str = "#!/bin/sh\n\
# busybox coldplug for `cargo xtask bench`: mdev -s, then modprobe every modalias, until\n\
# the boot disk's partition shows up\n\
mount -t proc proc /proc\n\
mount -t sysfs sysfs /sys\n\
mount -t tmpfs -o size=64k,mode=0755 tmpfs /dev\n\
read up idle < /proc/uptime\n\
echo \"coldplug: started at ${up}s (CLOCK_BOOTTIME)\"\n\
n=0\n\
until mdev -s; [ -b /dev/vda1 ] || [ $n -ge 100 ]; do\n\
  find /sys/devices -name modalias | xargs cat | sort -u | xargs -r modprobe -a -q\n\
  n=$((n+1))\n\
done\n\
read up idle < /proc/uptime\n\
echo \"coldplug: done at ${up}s after $n passes (CLOCK_BOOTTIME)\"\n";

/// Builds `bench/floor` for `arch` (static musl, release) and returns the binary.
pub fn build_floor(arch: Arch) -> Result<PathBuf> {
    let triple = arch.triple();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--release", "--quiet", "--target", triple])
        .args(["--package", "boxinit-floor"])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo build of the floor (bench/floor) failed");
    }
    Ok(target_dir().join(triple).join("release/floor"))
}

/// What the busybox script's initramfs adds: `/bin/busybox`, an empty `/etc/mdev.conf`,
/// and the `applets` linked to busybox.
pub fn busybox_extras(busybox: &Path, applets: Vec<String>) -> Result<Vec<Extra>> {
    let mut extra = vec![
        Extra::File {
            path: "bin/busybox".into(),
            mode: 0o755,
            data: std::fs::read(busybox)
                .with_context(|| format!("cannot read {}", busybox.display()))?,
        },
        Extra::File {
            path: "etc/mdev.conf".into(),
            mode: 0o644,
            data: Vec::new(),
        },
    ];
    for applet in applets {
        extra.push(Extra::Symlink {
            path: applet,
            target: "/bin/busybox".into(),
        });
    }
    Ok(extra)
}

/// The applet links of `busybox --list-full` (`bin/sh`, `sbin/mdev`, ...), what
/// `busybox --install -s` would make at boot.
pub fn applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} --list-full", busybox.display()))?;
    let list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "bin/busybox")
        .map(str::to_string)
        .collect();
    for needed in ["bin/sh", "sbin/mdev", "sbin/insmod", "bin/mount"] {
        if !list.iter().any(|l| l == needed) {
            bail!("{} --list-full has no {needed}", busybox.display());
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_does_the_job_in_order() {
        let s = busybox_script(
            &[
                "/lib/modules/6.1/a.ko".into(),
                "/lib/modules/6.1/b.ko".into(),
            ],
            "/dev/vda1",
            crate::bench::markers::BOX_ARGS,
        );
        let at = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle}"));
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(at("mount -t proc") < at("script: started at"));
        assert!(at("insmod /lib/modules/6.1/a.ko") < at("insmod /lib/modules/6.1/b.ko"));
        assert!(at("insmod /lib/modules/6.1/b.ko") < at("mdev -s"));
        assert!(at("mdev -s") < at("mount -t vfat"));
        assert!(s.ends_with("exec /boot/box rss poweroff\n"));
    }
}
