//! Loading kernel modules with `finit_module(2)`: read the index from
//! `/lib/modules/$(uname -r)`, plan the order (`modindex`), load each module with its
//! parameters, and log one clear line per failure. No libkmod. Parsing is `modindex`'s job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::modindex::{self, ModuleIndex};
use crate::sys::Sys;

/// `/lib/modules/<release>` under `root`.
pub fn modules_dir(root: &Path, release: &str) -> PathBuf {
    root.join("lib/modules").join(release)
}

/// Reads `modules.dep` (required) and `modules.builtin`, `modules.alias` (optional).
pub fn read_index(dir: &Path) -> std::io::Result<ModuleIndex> {
    let dep = std::fs::read_to_string(dir.join("modules.dep"))?;
    let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
    let alias = std::fs::read_to_string(dir.join("modules.alias")).unwrap_or_default();
    let index = ModuleIndex::parse(&dep, &builtin, &alias);
    for w in index.warnings() {
        log::debug!("modules index: {w:?}");
    }
    Ok(index)
}

/// Counts of what `load` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub loaded: usize,
    pub already: usize,
    pub failed: usize,
}

/// Loads `names` (module names or aliases) and their dependencies, dependencies first.
/// `params` maps a normalised module name to its parameter string. A failure is logged and
/// loading goes on: a module that is not needed for boot must not stop it.
pub fn load(
    sys: &mut dyn Sys,
    index: &ModuleIndex,
    dir: &Path,
    names: &[String],
    params: &BTreeMap<String, String>,
) -> Summary {
    let resolved = resolve_aliases(index, names);
    let plan = index.load_order(&resolved);
    for missing in &plan.missing {
        let by = if missing.requested_by.is_empty() {
            String::new()
        } else {
            format!(" (needed by {})", missing.requested_by)
        };
        log::warn!(
            "module {}{by}: not found in {}/modules.dep; add it to the initramfs (cargo xtask initramfs --modules ...)",
            missing.name,
            dir.display()
        );
    }
    let mut summary = Summary::default();
    for step in &plan.steps {
        let path = dir.join(&step.path);
        let args = params.get(&step.name).map(String::as_str).unwrap_or("");
        match sys.finit_module(&path, args) {
            Ok(()) => {
                summary.loaded += 1;
                log::debug!(
                    "module {}: loaded{}",
                    step.name,
                    if args.is_empty() {
                        String::new()
                    } else {
                        format!(" with {args}")
                    }
                );
            }
            // EEXIST: already loaded (by the kernel's request_module or an earlier call): success.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => summary.already += 1,
            Err(e) => {
                summary.failed += 1;
                log::warn!(
                    "module {}: cannot load {}: {}",
                    step.name,
                    path.display(),
                    describe_module_error(&e, args)
                );
            }
        }
    }
    summary
}

/// Names stay names; a word that is no module's name but matches aliases becomes those modules
/// (so `fs-vfat` or a modalias string works as with modprobe).
fn resolve_aliases(index: &ModuleIndex, names: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for name in names {
        let normal = modindex::normalize(name);
        if index.path_of(&normal).is_some() || index.is_builtin(&normal) {
            out.push(normal);
            continue;
        }
        let matches = index.lookup_alias(name);
        if matches.is_empty() {
            out.push(normal);
        } else {
            out.extend(matches);
        }
    }
    out
}

/// The errno in words, with a hint where the kernel's answer has a usual cause.
fn describe_module_error(e: &std::io::Error, params: &str) -> String {
    let hint = match rustix::io::Errno::from_io_error(e) {
        Some(rustix::io::Errno::NOENT) => "; the file is missing from the initramfs",
        Some(rustix::io::Errno::NOEXEC) => {
            "; not a module for this kernel (wrong architecture or format)"
        }
        Some(rustix::io::Errno::INVAL) if !params.is_empty() => {
            "; check its parameters (see dmesg)"
        }
        Some(rustix::io::Errno::INVAL) => "; built for another kernel version? (see dmesg)",
        Some(rustix::io::Errno::NOKEY) | Some(rustix::io::Errno::KEYREJECTED) => {
            "; its signature is not accepted"
        }
        _ => "",
    };
    format!("{e}{hint}")
}

/// `modprobe` as the kernel calls it for `request_module` (`modprobe -q -- fs-vfat`): loads
/// the named module and its dependencies. Returns the process exit status.
pub fn modprobe_main(args: &[String]) -> i32 {
    let names: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .take(1)
        .cloned()
        .collect();
    let params = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .skip(1)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let Some(name) = names.first() else {
        eprintln!("usage: modprobe [-q] [--] MODULE [PARAM=VALUE ...]");
        return 1;
    };
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let dir = modules_dir(Path::new("/"), &release);
    let index = match read_index(&dir) {
        Ok(index) => index,
        Err(e) => {
            eprintln!("modprobe: cannot read {}/modules.dep: {e}", dir.display());
            return 1;
        }
    };
    let mut all_params = BTreeMap::new();
    if !params.is_empty() {
        all_params.insert(modindex::normalize(name), params);
    }
    let summary = load(&mut crate::sys::Linux, &index, &dir, &names, &all_params);
    if summary.failed > 0
        || summary.loaded + summary.already == 0 && !index.is_builtin(&modindex::normalize(name))
    {
        return 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{Call, Recorder};

    const DEP: &str = "kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko\nkernel/fs/fat/fat.ko:\n\
                       kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n\
                       kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/virtio/virtio_ring.ko:\n";
    const ALIAS: &str = "alias fs-vfat vfat\nalias virtio:d00000002v* virtio_blk\n";

    fn index() -> ModuleIndex {
        ModuleIndex::parse(DEP, "kernel/fs/ext4/ext4.ko\n", ALIAS)
    }

    #[test]
    fn loads_dependencies_first_with_params() {
        let mut rec = Recorder::new();
        let params = BTreeMap::from([("virtio_blk".to_string(), "queue_depth=8".to_string())]);
        let names = vec!["virtio-blk".to_string(), "vfat".to_string()];
        let summary = load(
            &mut rec,
            &index(),
            Path::new("/lib/modules/6.1"),
            &names,
            &params,
        );
        assert_eq!(
            summary,
            Summary {
                loaded: 5,
                already: 0,
                failed: 0
            }
        );
        assert_eq!(
            rec.transcript(),
            "finit_module(/lib/modules/6.1/kernel/drivers/virtio/virtio_ring.ko, \"\")\n\
             finit_module(/lib/modules/6.1/kernel/drivers/virtio/virtio.ko, \"\")\n\
             finit_module(/lib/modules/6.1/kernel/drivers/block/virtio_blk.ko, \"queue_depth=8\")\n\
             finit_module(/lib/modules/6.1/kernel/fs/fat/fat.ko, \"\")\n\
             finit_module(/lib/modules/6.1/kernel/fs/fat/vfat.ko, \"\")\n"
        );
    }

    #[test]
    fn already_loaded_is_success_and_failures_go_on() {
        let mut rec = Recorder::new();
        rec.fail_when(
            |c| matches!(c, Call::FinitModule { path, .. } if path.ends_with("/fat.ko")),
            17,
        );
        rec.fail_when(
            |c| matches!(c, Call::FinitModule { path, .. } if path.ends_with("virtio.ko")),
            22,
        );
        let names = vec![
            "vfat".to_string(),
            "virtio_blk".to_string(),
            "nosuch".to_string(),
            "ext4".to_string(),
        ];
        let summary = load(
            &mut rec,
            &index(),
            Path::new("/m"),
            &names,
            &BTreeMap::new(),
        );
        assert_eq!(
            summary,
            Summary {
                loaded: 3,
                already: 1,
                failed: 1
            }
        );
    }

    #[test]
    fn aliases_resolve_to_modules() {
        let names = vec![
            "fs-vfat".to_string(),
            "virtio:d00000002v00001AF4".to_string(),
            "x-y".to_string(),
        ];
        assert_eq!(
            resolve_aliases(&index(), &names),
            ["vfat", "virtio_blk", "x_y"]
        );
    }

    #[test]
    fn error_hints() {
        let e = std::io::Error::from_raw_os_error(22);
        assert!(describe_module_error(&e, "bad=1").ends_with("check its parameters (see dmesg)"));
        let e = std::io::Error::from_raw_os_error(2);
        assert!(describe_module_error(&e, "").contains("missing from the initramfs"));
    }
}
