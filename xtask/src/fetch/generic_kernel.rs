//! Debian's generic amd64 kernel for the Wi-Fi test: unlike the cloud kernel it has wireless
//! and `mac80211_hwsim` (QEMU gets two simulated radios). Only the part of its package the
//! test needs is unpacked, into `target/kernel/x86_64-generic/`; the result is given to the
//! harness as `--kernel`/`--modules-dir` would be.

use std::path::Path;

use anyhow::{Context, Result};

use crate::fetch::deb::{self, Source};
use crate::fetch::kernel::{self, Kernel, KernelArgs};
use crate::tools::arch::Arch;
use crate::{progress, target_dir};

/// Debian's generic amd64 kernel metapackage: unlike the cloud kernel it has wireless,
/// and `mac80211_hwsim` (simulated radios).
pub const GENERIC_PACKAGE: &str = "linux-image-amd64";

/// Module directories of the generic kernel worth unpacking (under `kernel/`): Wi-Fi
/// (cfg80211, mac80211, rfkill, hwsim, its crypto), the QEMU disk and FAT (virtio, nls), and
/// what they need. The other 390 MB stay in the .deb.
const GENERIC_MODULE_DIRS: &[&str] = &[
    "crypto/",
    "lib/",
    "fs/fat/",
    "fs/nls/",
    "net/core/",
    "net/wireless/",
    "net/mac80211/",
    "net/rfkill/",
    "drivers/virtio/",
    "drivers/block/",
    "drivers/char/",
];

/// Whether a path of the generic kernel package is unpacked: the image, the module index
/// files, and the modules of [`GENERIC_MODULE_DIRS`] plus those directly in `drivers/net/`
/// and `drivers/net/wireless/` (virtio_net, mac80211_hwsim; not the hardware drivers below).
pub fn keeps(path: &Path) -> bool {
    let text = path.to_string_lossy();
    if text.starts_with("boot/vmlinuz-") {
        return true;
    }
    let Some(rest) = text.strip_prefix("lib/modules/") else {
        return false;
    };
    let Some((_release, inside)) = rest.split_once('/') else {
        return true; // the release directory itself
    };
    let Some(module) = inside.strip_prefix("kernel/") else {
        return !inside.contains('/'); // modules.builtin, modules.order, ...
    };
    let direct_in = |dir: &str| {
        module
            .strip_prefix(dir)
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
    };
    GENERIC_MODULE_DIRS.iter().any(|d| module.starts_with(d))
        || direct_in("drivers/net/")
        || direct_in("drivers/net/wireless/")
        || module.is_empty()
}

/// Debian's generic amd64 kernel with the modules Wi-Fi tests need, fetched once into
/// `target/kernel/x86_64-generic/` (70 MB .deb; about 15 MB of its 400 unpacked, in 25 s) and
/// given to the harness as `--kernel`/`--modules-dir` would be.
pub fn fetch() -> Result<Kernel> {
    let dir = target_dir().join("kernel").join("x86_64-generic");
    let apt = Source::Host;
    let package = apt
        .depends(&[GENERIC_PACKAGE.to_string()])?
        .into_values()
        .flatten()
        .find(|d| d.starts_with("linux-image-"))
        .with_context(|| format!("apt-cache knows no kernel for {GENERIC_PACKAGE}"))?;
    let release = package.trim_start_matches("linux-image-").to_string();
    let root = dir.join(&release);
    let image = root.join("boot").join(format!("vmlinuz-{release}"));
    let modules_dir = root.join("lib/modules").join(&release);
    if !(image.is_file() && modules_dir.is_dir()) {
        let deb = apt.download(&package, &dir)?;
        let started = std::time::Instant::now();
        progress!(
            "unpacking the Wi-Fi test's part of {} (pure Rust; about 25 s)",
            deb.display()
        );
        let staging = dir.join(format!("{release}.partial"));
        let _ = std::fs::remove_dir_all(&staging);
        deb::unpack(&deb, &staging, &keeps)?;
        let _ = std::fs::remove_dir_all(&root);
        std::fs::rename(&staging, &root).with_context(|| {
            format!("cannot rename {} to {}", staging.display(), root.display())
        })?;
        progress!("unpacked in {:.1} s", started.elapsed().as_secs_f64());
    }
    let args = KernelArgs {
        kernel: Some(image),
        modules_dir: Some(modules_dir),
        dtb_dir: None,
    };
    kernel::resolve(Arch::X86_64, &args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_kernel_paths_kept() {
        let keep = |p: &str| keeps(Path::new(p));
        let m = "lib/modules/6.1.0-57-amd64";
        assert!(keep("boot/vmlinuz-6.1.0-57-amd64"));
        assert!(!keep("boot/System.map-6.1.0-57-amd64"));
        assert!(keep(m));
        assert!(keep(&format!("{m}/modules.builtin")));
        assert!(keep(&format!("{m}/kernel")));
        assert!(keep(&format!("{m}/kernel/net/wireless/cfg80211.ko")));
        assert!(keep(&format!(
            "{m}/kernel/drivers/net/wireless/mac80211_hwsim.ko"
        )));
        assert!(keep(&format!("{m}/kernel/drivers/net/virtio_net.ko")));
        assert!(keep(&format!("{m}/kernel/crypto/ccm.ko")));
        assert!(!keep(&format!(
            "{m}/kernel/drivers/net/wireless/ath/ath9k/ath9k.ko"
        )));
        assert!(!keep(&format!(
            "{m}/kernel/drivers/net/ethernet/intel/e1000/e1000.ko"
        )));
        assert!(!keep(&format!("{m}/kernel/drivers/gpu/drm/drm.ko")));
        assert!(!keep("usr/lib/linux/triggers"));
    }
}
