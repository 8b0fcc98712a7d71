//! Task `kernel`: finds the kernel image, its module tree and its device trees — given by the
//! user, or Debian's (x86_64: the cloud kernel; aarch64: `linux-image-arm64`, with the
//! Raspberry Pi device trees) fetched with `apt-get download` and unpacked into
//! `target/kernel/<arch>/`. It does not index or pack modules (`pack/modinfo.rs`,
//! `pack/initramfs.rs` do).
//!
//! The `.deb` is unpacked in pure Rust (`fetch/deb.rs`): `dpkg-deb -x` would do the same
//! wherever `apt-get` exists, but this keeps one code path on every host.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::fetch::apt::{self, Apt};
use crate::fetch::deb;
use crate::tools::arch::Arch;
use crate::{display_path, progress, target_dir};

/// The Debian metapackage that always depends on the current cloud kernel (x86_64).
pub const DEBIAN_CLOUD_PACKAGE: &str = "linux-image-cloud-amd64";
/// The Debian metapackage of the arm64 kernel (Raspberry Pi 3/4/Zero 2 W and QEMU `virt`).
pub const DEBIAN_ARM64_PACKAGE: &str = "linux-image-arm64";

/// Where the kernel comes from when not Debian's: both paths, or neither (the command line's
/// `--kernel`, `--modules-dir` and `--dtb-dir`, or [`KernelArgs::from_env`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KernelArgs {
    /// the kernel image (bzImage/vmlinuz for x86_64, Image for aarch64)
    pub kernel: Option<PathBuf>,
    /// that kernel's module tree, `.../lib/modules/<release>`
    pub modules_dir: Option<PathBuf>,
    /// that kernel's device trees; default: the package's beside the module tree
    pub dtb_dir: Option<PathBuf>,
}

impl KernelArgs {
    /// The kernel chosen by the environment (`BOXINIT_KERNEL`, `BOXINIT_MODULES_DIR`), as
    /// the CLI reads it; for library callers such as the test harness.
    pub fn from_env() -> KernelArgs {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        KernelArgs {
            kernel: var("BOXINIT_KERNEL"),
            modules_dir: var("BOXINIT_MODULES_DIR"),
            dtb_dir: var("BOXINIT_DTB_DIR"),
        }
    }
}

/// A kernel to boot and the modules built for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// the image QEMU's `-kernel` takes
    pub image: PathBuf,
    /// `.../lib/modules/<release>`
    pub modules_dir: PathBuf,
    /// `uname -r` of that kernel, e.g. `6.1.0-56-cloud-amd64`
    pub release: String,
    /// its device trees (`*.dtb`), when it has any: Debian's arm64 package has the Pi's
    pub dtb_dir: Option<PathBuf>,
}

/// The kernel for `arch`: the one in `args`, or else Debian's (cached).
pub fn resolve(arch: Arch, args: &KernelArgs) -> Result<Kernel> {
    let mut kernel = match (&args.kernel, &args.modules_dir) {
        (Some(image), Some(modules_dir)) => from_paths(image, modules_dir)?,
        (Some(_), None) | (None, Some(_)) => bail!(
            "--kernel and --modules-dir (or BOXINIT_KERNEL and BOXINIT_MODULES_DIR) go \
             together: pass both, or neither to use Debian's kernel"
        ),
        (None, None) => debian_kernel(arch)?,
    };
    if let Some(dir) = &args.dtb_dir {
        if !dir.is_dir() {
            bail!(
                "--dtb-dir {} is not a directory: pass the folder holding the kernel's *.dtb",
                dir.display()
            );
        }
        kernel.dtb_dir = Some(dir.canonicalize()?);
    }
    Ok(kernel)
}

/// Where Debian's arm64 kernel package keeps the Raspberry Pi device trees, for the package
/// unpacked at `root`.
fn package_dtb_dir(root: &Path, release: &str) -> Option<PathBuf> {
    let dir = root
        .join("usr/lib")
        .join(format!("linux-image-{release}"))
        .join("broadcom");
    dir.is_dir().then_some(dir)
}

fn from_paths(image: &Path, modules_dir: &Path) -> Result<Kernel> {
    if !image.is_file() {
        bail!("kernel image {} does not exist", image.display());
    }
    if !modules_dir.is_dir() {
        bail!(
            "module tree {} is not a directory: pass the kernel's .../lib/modules/<release>",
            modules_dir.display()
        );
    }
    let modules_dir = modules_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", modules_dir.display()))?;
    let release = modules_dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("the module tree's directory name must be the kernel release")?
        .to_string();
    // an unpacked Debian package, `ROOT/lib/modules/<release>` (or `ROOT/usr/lib/...`):
    // its device trees are under ROOT
    let dtb_dir = modules_dir
        .ancestors()
        .skip(3)
        .take(2)
        .find_map(|root| package_dtb_dir(root, &release));
    Ok(Kernel {
        image: image.canonicalize()?,
        modules_dir,
        release,
        dtb_dir,
    })
}

/// The cache directory of fetched kernels: `target/kernel/<arch>/`.
pub fn cache_dir(arch: Arch) -> PathBuf {
    target_dir().join("kernel").join(arch.name())
}

/// Debian's kernel package for `arch` and the private apt to fetch it with (None: the host's
/// apt, which knows the x86_64 cloud kernel on Debian; Ubuntu's does not).
fn debian_package(arch: Arch) -> Result<(String, Option<Apt>)> {
    match arch {
        Arch::X86_64 => match resolve_package(DEBIAN_CLOUD_PACKAGE) {
            Ok(package) => Ok((package, None)),
            Err(host) => {
                let apt = Apt::new("amd64");
                match apt.dependency(DEBIAN_CLOUD_PACKAGE, "linux-image-") {
                    Ok(package) => Ok((package, Some(apt))),
                    Err(private) => bail!(
                        "{host:#}; Debian's own lists did not help either ({private:#}). Pass \
                         a kernel with virtio and its modules instead, e.g. this machine's: \
                         `sudo install -m 644 /boot/vmlinuz-$(uname -r) target/vmlinuz` then \
                         `--kernel target/vmlinuz --modules-dir /lib/modules/$(uname -r)`"
                    ),
                }
            }
        },
        Arch::Aarch64 => {
            let apt = Apt::new("arm64");
            let package = apt
                .dependency(DEBIAN_ARM64_PACKAGE, "linux-image-")
                .context("pass --kernel, --modules-dir and --dtb-dir to use your own kernel")?;
            Ok((package, Some(apt)))
        }
    }
}

/// Debian's kernel for `arch`, fetched once into `target/kernel/<arch>/`: the `.deb` there,
/// unpacked into `<release>/` (the package's own layout, less what no boot needs).
fn debian_kernel(arch: Arch) -> Result<Kernel> {
    let dir = cache_dir(arch);
    let (package, apt) = match debian_package(arch) {
        Ok(package) => package,
        Err(err) => {
            // Offline or no apt: any kernel fetched before will do.
            if let Some(kernel) = newest_cached(&dir) {
                progress!("{err:#}; using the cached {}", kernel.release);
                return Ok(kernel);
            }
            return Err(err);
        }
    };
    let release = package
        .strip_prefix("linux-image-")
        .context("unexpected package name")?
        .to_string();
    if let Some(kernel) = cached(&dir, &release) {
        return Ok(kernel);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let deb = match (apt::find_deb(&dir, &package), apt) {
        (Some(deb), _) => deb,
        (None, Some(apt)) => apt.download(&package, &dir)?,
        (None, None) => apt::download(&dir, &package)?,
    };
    let started = Instant::now();
    progress!("unpacking {} (pure Rust; 2-30 s)", display_path(&deb));
    let staging = dir.join(format!("{release}.partial"));
    let _ = std::fs::remove_dir_all(&staging);
    deb::unpack(&deb, &staging, &kernel_file_needed)?;
    let unpacked = dir.join(&release);
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::rename(&staging, &unpacked).with_context(|| {
        format!(
            "cannot rename {} to {}",
            staging.display(),
            unpacked.display()
        )
    })?;
    let kernel = cached(&dir, &release).with_context(|| {
        format!(
            "{} holds no boot/vmlinuz-{release} or lib/modules/{release}: not a kernel package?",
            deb.display()
        )
    })?;
    progress!("unpacked in {:.1} s", started.elapsed().as_secs_f64());
    Ok(kernel)
}

/// `linux-image-cloud-amd64` → `linux-image-6.1.0-56-cloud-amd64`, from the local apt cache
/// (`apt-cache depends` reads the package lists; no network).
fn resolve_package(metapackage: &str) -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["depends", metapackage])
        .output()
        .context(
            "cannot run apt-cache (not a Debian/Ubuntu host?): pass --kernel and --modules-dir",
        )?;
    let found = apt::first_dependency(&String::from_utf8_lossy(&out.stdout), "linux-image-");
    match found {
        Some(package) if out.status.success() => Ok(package),
        _ => bail!(
            "apt-cache knows no {metapackage} ({}): run `apt-get update` and retry, or pass \
             --kernel and --modules-dir",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// A complete unpacked kernel `<dir>/<release>/`, if there is one.
fn cached(dir: &Path, release: &str) -> Option<Kernel> {
    let root = dir.join(release);
    let image = root.join("boot").join(format!("vmlinuz-{release}"));
    let modules_dir = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|m| root.join(m).join(release))
        .find(|m| m.is_dir())?;
    image.is_file().then(|| Kernel {
        image,
        modules_dir,
        release: release.to_string(),
        dtb_dir: package_dtb_dir(&root, release),
    })
}

fn newest_cached(dir: &Path) -> Option<Kernel> {
    let mut releases: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| !name.ends_with(".partial") && !name.ends_with(".deb"))
        .collect();
    releases.sort();
    releases.iter().rev().find_map(|r| cached(dir, r))
}

/// Whether a file of a kernel package is kept: the image, the modules and the Raspberry Pi
/// device trees; not `System.map`, the config, or other vendors' device trees (27 MB).
fn kernel_file_needed(path: &Path) -> bool {
    let path = path.strip_prefix(".").unwrap_or(path);
    let text = path.to_string_lossy();
    if text.starts_with("usr/lib/linux-image-") {
        return path.components().count() <= 3 || text.contains("/broadcom");
    }
    !(text.starts_with("boot/System.map") || text.starts_with("usr/share"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_package_files_kept() {
        let keep = |p: &str| kernel_file_needed(Path::new(p));
        assert!(keep("./boot/vmlinuz-6.1.0-57-arm64"));
        assert!(keep("./lib/modules/6.1.0-57-arm64/kernel/fs/fat/vfat.ko"));
        assert!(keep("./usr/lib/linux-image-6.1.0-57-arm64/"));
        assert!(keep(
            "./usr/lib/linux-image-6.1.0-57-arm64/broadcom/bcm2837-rpi-3-b.dtb"
        ));
        assert!(!keep(
            "./usr/lib/linux-image-6.1.0-57-arm64/amlogic/meson-gxbb-p200.dtb"
        ));
        assert!(!keep("./boot/System.map-6.1.0-57-arm64"));
        assert!(!keep(
            "./usr/share/doc/linux-image-6.1.0-57-arm64/changelog.gz"
        ));
    }
}
