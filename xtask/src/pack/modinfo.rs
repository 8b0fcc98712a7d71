//! The module index: every `.ko` of a module tree with the `.modinfo` fields that matter
//! (`depends=`, `alias=`, `softdep=`), the dependency closure of a selection (in the order
//! the init's own load planner gives, `boxinit::devices::modindex`), and kmod's text
//! files for it (`modules.dep`, `modules.alias`, `modules.softdep`) — what a host `depmod`
//! would write, computed here so that no kmod is needed. Packing the files is
//! `pack/initramfs.rs`'s job.
//!
//! A module's `.modinfo` ELF section is a run of NUL-terminated `key=value` strings (from
//! `MODULE_INFO()` and modpost), e.g. `license=GPL\0depends=virtio,virtio_ring\0alias=...`;
//! `modinfo(8)` prints the same. Names treat `-` and `_` alike (kmod does); the index keys them
//! with `_`, and a module's name is its file name without `.ko[.gz|.xz|.zst]`, as in depmod.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use boxinit::devices::modindex::loadplan::LoadPlan;
use boxinit::devices::modindex::ModuleIndex;
use object::{Object, ObjectSection};

use crate::tools::compression::Compression;
use crate::{display_path, progress};

/// What the `.modinfo` section says about dependencies and device matching.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// `depends=a,b`: modules whose symbols this one uses (normalized names)
    pub depends: Vec<String>,
    /// `alias=pci:v00001AF4d*...`: modalias patterns (fnmatch) this module serves
    pub aliases: Vec<String>,
    /// `softdep=pre: x post: y`: one value per `softdep=` line, as written
    pub softdeps: Vec<String>,
}

/// Parses the contents of a `.modinfo` section.
pub fn parse_modinfo(section: &[u8]) -> ModInfo {
    let mut info = ModInfo::default();
    for field in section.split(|&b| b == 0) {
        let field = String::from_utf8_lossy(field);
        let Some((key, value)) = field.split_once('=') else {
            continue; // padding between strings, or garbage
        };
        match key {
            "depends" => info.depends.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(normalize),
            ),
            "alias" if !value.is_empty() => info.aliases.push(value.to_string()),
            "softdep" if !value.trim().is_empty() => info.softdeps.push(value.trim().to_string()),
            _ => {}
        }
    }
    info
}

pub use boxinit::config::edit_distance;
pub use boxinit::devices::modindex::normalize;
pub use boxinit::fnmatch::fnmatch;

/// The module names of a softdep value, before and after: `pre: a b post: c` → (`a b`, `c`).
pub fn parse_softdep(value: &str) -> (Vec<String>, Vec<String>) {
    boxinit::devices::modindex::parse_softdep(value.split_whitespace())
}

/// The module name of a file in the tree: `kernel/fs/fat/vfat.ko.xz` → `vfat` (the init's
/// own rule, `modindex::name_from_path`).
pub fn module_name(path: &Path) -> Option<String> {
    boxinit::devices::modindex::name_from_path(&path.to_string_lossy())
}

/// Where a module goes in the initramfs, relative to `lib/modules/<release>/`: its path in the
/// tree without a compression suffix, since xtask packs modules decompressed.
pub fn packed_path(tree_path: &str) -> &str {
    Compression::split(tree_path).0
}

/// Reads a module file, decompressing `.ko.gz`, `.ko.xz` and `.ko.zst`.
pub fn read_module(path: &Path) -> Result<Vec<u8>> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    Compression::split(name)
        .1
        .decompress(data)
        .with_context(|| format!("cannot decompress {}", path.display()))
}

/// The `.modinfo` section of an ELF module.
pub fn modinfo_section(elf: &[u8]) -> Result<&[u8]> {
    let file = object::File::parse(elf).context("not an ELF file")?;
    let section = file
        .section_by_name(".modinfo")
        .context("no .modinfo section: not a kernel module")?;
    Ok(section.data()?)
}

/// One module of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// normalized name (`_`, no suffix)
    pub name: String,
    /// path relative to the tree, with `/`, as found (maybe compressed): `kernel/fs/fat/fat.ko`
    pub path: String,
    pub info: ModInfo,
}

/// Every module of a tree `.../lib/modules/<release>`.
#[derive(Clone, Debug, Default)]
pub struct ModIndex {
    pub dir: PathBuf,
    pub modules: BTreeMap<String, Module>,
    /// names from `modules.builtin` (built into the kernel: nothing to load)
    pub builtin: BTreeSet<String>,
}

/// A selection of modules, closed under dependencies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// the requested modules and everything they need, in a valid load order (deps first)
    pub load_order: Vec<String>,
    /// requested names that are built into the kernel (nothing to pack)
    pub builtin: Vec<String>,
}

impl ModIndex {
    /// Indexes the tree at `dir`: reads the `.modinfo` of every `.ko[.gz|.xz|.zst]` under it
    /// and `modules.builtin`. About a second for Debian's 1121 modules on one core.
    pub fn load(dir: &Path) -> Result<ModIndex> {
        let started = Instant::now();
        let mut files = Vec::new();
        collect_modules(dir, dir, &mut files)
            .with_context(|| format!("cannot list the module tree {}", dir.display()))?;
        if files.is_empty() {
            bail!(
                "no kernel modules (*.ko) under {}: pass the kernel's module tree \
                 (.../lib/modules/<release>) as --modules-dir",
                dir.display()
            );
        }
        files.sort();
        // Two threads: reading and parsing ~100 MB of ELF is most of the time here.
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        let chunk = files.len().div_ceil(threads);
        let parsed: Vec<Result<Vec<Module>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = files
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(|f| index_one(dir, f)).collect()))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| bail!("module indexing thread panicked"))
                })
                .collect()
        });
        let mut index = ModIndex {
            dir: dir.to_path_buf(),
            ..ModIndex::default()
        };
        for module in parsed
            .into_iter()
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
        {
            index.insert(module);
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("modules.builtin")) {
            index.builtin = text
                .lines()
                .filter_map(|line| module_name(Path::new(line.trim())))
                .collect();
        }
        progress!(
            "indexed {} modules in {} in {:.2} s",
            index.modules.len(),
            display_path(dir),
            started.elapsed().as_secs_f64()
        );
        Ok(index)
    }

    /// Adds a module; of two with one name, the one under `updates/` wins (depmod's search
    /// order), else the first.
    pub fn insert(&mut self, module: Module) {
        match self.modules.get(&module.name) {
            Some(old)
                if old.path.starts_with("updates/") || !module.path.starts_with("updates/") => {}
            _ => {
                self.modules.insert(module.name.clone(), module);
            }
        }
    }

    /// The modules of this tree whose `alias=` patterns match `alias` (fnmatch, as modprobe
    /// resolves `fs-vfat` or a device's modalias), in name order.
    pub fn alias_matches(&self, alias: &str) -> Vec<String> {
        self.modules
            .values()
            .filter(|m| m.info.aliases.iter().any(|p| fnmatch(p, alias)))
            .map(|m| m.name.clone())
            .collect()
    }

    /// Whether `name` is a module, a built-in one, or an alias of a module of this tree.
    pub fn knows(&self, name: &str) -> bool {
        let normal = normalize(name.trim());
        self.modules.contains_key(&normal)
            || self.builtin.contains(&normal)
            || !self.alias_matches(name.trim()).is_empty()
    }

    /// The requested modules (names or aliases) plus everything they depend on (`depends=`,
    /// and `softdep=` targets that are modules of this tree), deps first: the order the init's
    /// own load planner gives for this tree (see `planner`). Built-in names are set apart; an
    /// unknown name is an error naming the closest ones.
    pub fn select<S: AsRef<str>>(&self, names: &[S]) -> Result<Selection> {
        let mut selection = Selection::default();
        let mut roots = Vec::new();
        for raw in names {
            let name = normalize(raw.as_ref().trim());
            let by_alias = || self.alias_matches(raw.as_ref().trim());
            if self.modules.contains_key(&name) {
                roots.push(name);
            } else if self.builtin.contains(&name) {
                if !selection.builtin.contains(&name) {
                    selection.builtin.push(name);
                }
            } else if !by_alias().is_empty() {
                roots.extend(by_alias());
            } else {
                let close = self.suggest(&name);
                if close.is_empty() {
                    bail!("no module {name:?} in {}", self.dir.display());
                }
                bail!(
                    "no module {name:?} in {}; close names: {}",
                    self.dir.display(),
                    close.join(", ")
                );
            }
        }
        selection.load_order = step_names(self.planner(true).load_order(&roots));
        Ok(selection)
    }

    /// This tree as the init's module index (`boxinit::devices::modindex`), whose load
    /// planner orders a selection: each module with its `depends=` in `.modinfo` order (as a
    /// `modules.dep` whose lines list the direct dependencies only; the planner follows them
    /// down), and with `softdeps` its `softdep=` values as `modules.softdep`. No built-ins
    /// (dependencies that are built in are left out as missing ones) and no aliases.
    fn planner(&self, softdeps: bool) -> ModuleIndex {
        let mut dep = String::new();
        for module in self.modules.values() {
            dep += &module.path;
            dep.push(':');
            for name in &module.info.depends {
                dep += &format!(" {name}.ko");
            }
            dep.push('\n');
        }
        let index = ModuleIndex::parse(&dep, "", "");
        match softdeps {
            true => {
                let names: Vec<&String> = self.modules.keys().collect();
                index.with_softdeps(&self.modules_softdep(&names))
            }
            false => index,
        }
    }

    /// Where modules lie in an initramfs that xtask packed for kernel `release`:
    /// `/lib/modules/<release>/<path>` (decompressed), for inits that `insmod` them.
    pub fn packed_paths<S: AsRef<str>>(&self, release: &str, names: &[S]) -> Vec<String> {
        names
            .iter()
            .filter_map(|name| self.modules.get(name.as_ref()))
            .map(|m| format!("/lib/modules/{release}/{}", packed_path(&m.path)))
            .collect()
    }

    /// Every module `name` needs through `depends=`, in depmod's `modules.dep` order: a
    /// module before those it depends on, so loading goes from the last to the first.
    pub fn dependencies(&self, name: &str) -> Vec<String> {
        dependencies_in(&self.planner(false), name)
    }

    /// Up to 8 module names close to `name`: sharing a substring, or a few edits away.
    pub fn suggest(&self, name: &str) -> Vec<String> {
        let mut scored: Vec<(usize, &String)> = self
            .modules
            .keys()
            .chain(self.builtin.iter())
            .filter_map(|candidate| {
                let distance = edit_distance(name, candidate);
                let close = distance <= 2.max(name.len() / 4)
                    || (name.len() >= 3 && candidate.contains(name))
                    || (candidate.len() >= 3 && name.contains(candidate.as_str()));
                close.then_some((distance, candidate))
            })
            .collect();
        scored.sort();
        scored.dedup_by(|a, b| a.1 == b.1);
        scored.into_iter().take(8).map(|(_, c)| c.clone()).collect()
    }

    /// `modules.dep` for the modules in `names`, with the paths they get when packed.
    pub fn modules_dep<S: AsRef<str>>(&self, names: &[S]) -> String {
        let planner = self.planner(false);
        let mut out = String::new();
        for name in names {
            let Some(module) = self.modules.get(name.as_ref()) else {
                continue;
            };
            out += packed_path(&module.path);
            out.push(':');
            for dep in dependencies_in(&planner, &module.name) {
                if let Some(dep) = self.modules.get(&dep) {
                    out.push(' ');
                    out += packed_path(&dep.path);
                }
            }
            out.push('\n');
        }
        out
    }

    /// `modules.alias` (`alias PATTERN NAME`) for the modules in `names`.
    pub fn modules_alias<S: AsRef<str>>(&self, names: &[S]) -> String {
        let mut out = String::from("# Aliases extracted from modules themselves.\n");
        for module in names.iter().filter_map(|n| self.modules.get(n.as_ref())) {
            for alias in &module.info.aliases {
                out += &format!("alias {alias} {}\n", module.name);
            }
        }
        out
    }

    /// `modules.softdep` (`softdep NAME pre: ... post: ...`) for the modules in `names`.
    pub fn modules_softdep<S: AsRef<str>>(&self, names: &[S]) -> String {
        let mut out = String::from("# Soft dependencies extracted from modules themselves.\n");
        for module in names.iter().filter_map(|n| self.modules.get(n.as_ref())) {
            for softdep in &module.info.softdeps {
                out += &format!("softdep {} {softdep}\n", module.name);
            }
        }
        out
    }
}

/// The module names of a plan's steps, in order.
fn step_names(plan: LoadPlan) -> Vec<String> {
    plan.steps.into_iter().map(|step| step.name).collect()
}

/// [`ModIndex::dependencies`] with the planner made once.
fn dependencies_in(planner: &ModuleIndex, name: &str) -> Vec<String> {
    let mut order = step_names(planner.load_order(&[name.to_string()]));
    order.pop(); // the module itself comes last: it loads after what it needs
    order.reverse();
    order
}

fn collect_modules(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?; // does not follow symlinks (`build`, `source`)
        let path = entry.path();
        if kind.is_dir() {
            collect_modules(root, &path, out)?;
        } else if kind.is_file() && module_name(&path).is_some() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

fn index_one(dir: &Path, rel: &Path) -> Result<Module> {
    let path = dir.join(rel);
    let data = read_module(&path)?;
    let section =
        modinfo_section(&data).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Module {
        name: module_name(rel).unwrap_or_default(),
        path: rel.to_string_lossy().replace('\\', "/"),
        info: parse_modinfo(section),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str, modinfo: &str) -> Module {
        Module {
            name: module_name(Path::new(path)).unwrap(),
            path: path.to_string(),
            info: parse_modinfo(modinfo.as_bytes()),
        }
    }

    /// The virtio/FAT corner of Debian's cloud kernel, by hand.
    fn index() -> ModIndex {
        let mut index = ModIndex::default();
        for m in [
            module("kernel/drivers/virtio/virtio.ko", "license=GPL\0depends=\0"),
            module("kernel/drivers/virtio/virtio_ring.ko", "depends=virtio\0"),
            module(
                "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
                "depends=\0",
            ),
            module(
                "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
                "depends=\0",
            ),
            module(
                "kernel/drivers/virtio/virtio_pci.ko",
                "alias=pci:v00001AF4d*sv*sd*bc*sc*i*\0\0\0\
                 depends=virtio_pci_modern_dev,virtio_pci_legacy_dev,virtio_ring,virtio\0",
            ),
            module(
                "kernel/drivers/block/virtio_blk.ko.xz",
                "alias=virtio:d00000002v*\0depends=virtio,virtio_ring\0name=virtio_blk\0",
            ),
            module("kernel/fs/fat/fat.ko", "depends=\0"),
            module("kernel/fs/fat/vfat.ko", "alias=fs-vfat\0depends=fat\0"),
            module("kernel/fs/nls/nls_cp437.ko", "alias=nls_cp437\0"),
            module(
                "kernel/fs/ext4/ext4.ko",
                "softdep=pre: crc32c\0depends=mbcache,jbd2\0",
            ),
            module("kernel/fs/mbcache.ko", ""),
            module("kernel/fs/jbd2/jbd2.ko", "depends=\0"),
            module("kernel/crypto/crc32c_generic.ko", "alias=crc32c\0"),
            module("kernel/crypto/crc32c.ko", ""),
        ] {
            index.insert(m);
        }
        index.builtin.insert("nls_ascii".into());
        index
    }

    #[test]
    fn parses_modinfo_strings() {
        let info = parse_modinfo(
            b"license=GPL\0\0description=x=y\0depends=a-b,c\0alias=pci:v*\0alias=fs-vfat\0\
              softdep=pre: crc32c post: x\0intree=Y\0",
        );
        assert_eq!(info.depends, ["a_b", "c"]);
        assert_eq!(info.aliases, ["pci:v*", "fs-vfat"]);
        assert_eq!(info.softdeps, ["pre: crc32c post: x"]);
        assert_eq!(parse_modinfo(b"depends=\0"), ModInfo::default());
        let (pre, post) = parse_softdep("pre: crc32c post: x-y z");
        assert_eq!(
            (pre, post),
            (vec!["crc32c".into()], vec!["x_y".into(), "z".into()])
        );
    }

    #[test]
    fn names_from_paths() {
        assert_eq!(
            module_name(Path::new("a/nls-cp437.ko.zst")).unwrap(),
            "nls_cp437"
        );
        assert_eq!(module_name(Path::new("a/fat.ko")).unwrap(), "fat");
        assert_eq!(module_name(Path::new("modules.dep")), None);
        assert_eq!(
            packed_path("kernel/x/virtio_blk.ko.xz"),
            "kernel/x/virtio_blk.ko"
        );
    }

    #[test]
    fn selection_is_closed_and_ordered() {
        let index = index();
        let sel = index
            .select(&["virtio_pci", "virtio-blk", "vfat", "nls_cp437", "nls-ascii"])
            .unwrap();
        // the init's planner orders them (its own tests hold how); this holds that xtask
        // gives it each module's `depends=` in `.modinfo` order, and sets built-ins apart
        let order = "virtio_pci_modern_dev virtio_pci_legacy_dev virtio virtio_ring virtio_pci \
                     virtio_blk fat vfat nls_cp437";
        assert_eq!(sel.load_order.join(" "), order);
        assert_eq!(sel.builtin, ["nls_ascii"]);
        // every module comes after its dependencies
        for (i, name) in sel.load_order.iter().enumerate() {
            for dep in &index.modules[name].info.depends {
                assert!(sel.load_order[..i].contains(dep), "{dep} after {name}");
            }
        }
    }

    #[test]
    fn softdep_targets_that_are_modules_are_packed() {
        let sel = index().select(&["ext4"]).unwrap();
        assert_eq!(sel.load_order, ["crc32c", "mbcache", "jbd2", "ext4"]);
    }

    #[test]
    fn unknown_module_names_close_ones() {
        let err = index().select(&["virtio_bk"]).unwrap_err().to_string();
        assert!(err.contains("no module \"virtio_bk\""), "{err}");
        assert!(err.contains("virtio_blk"), "{err}");
        let err = index().select(&["zzzzzzzz"]).unwrap_err().to_string();
        assert!(!err.contains("close names"), "{err}");
    }

    #[test]
    fn writes_kmod_text_files() {
        let index = index();
        let sel = index.select(&["virtio_pci", "virtio_blk", "vfat"]).unwrap();
        let dep = index.modules_dep(&sel.load_order);
        let expected = "\
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko \
kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/fs/fat/fat.ko:
kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko
";
        assert_eq!(dep, expected);
        let alias = index.modules_alias(&sel.load_order);
        assert_eq!(
            alias,
            "# Aliases extracted from modules themselves.\n\
             alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n\
             alias virtio:d00000002v* virtio_blk\n\
             alias fs-vfat vfat\n"
        );
        let softdep = index.modules_softdep(&["ext4", "fat"]);
        assert_eq!(
            softdep,
            "# Soft dependencies extracted from modules themselves.\nsoftdep ext4 pre: crc32c\n"
        );
    }

    #[test]
    fn updates_override_the_tree() {
        let mut index = index();
        index.insert(module("updates/fat.ko", ""));
        index.insert(module("kernel/other/fat.ko", ""));
        assert_eq!(index.modules["fat"].path, "updates/fat.ko");
    }

    #[test]
    fn names_and_aliases_select_modules() {
        let index = index();
        let sel = index
            .select(&[
                "fs-vfat",
                "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
            ])
            .unwrap();
        assert_eq!(
            sel.load_order,
            [
                "fat",
                "vfat",
                "virtio_pci_modern_dev",
                "virtio_pci_legacy_dev",
                "virtio",
                "virtio_ring",
                "virtio_pci"
            ]
        );
        assert!(index.knows("virtio:d00000002v00001AF4") && index.knows("nls-ascii"));
        assert!(!index.knows("fs-ntfs"));
    }

    #[test]
    fn fnmatch_like_the_init() {
        for (pattern, text, want) in [
            (
                "pci:v00001AF4d*sv*sd*bc*sc*i*",
                "pci:v00001AF4d00001005sv00001AF4sd00000004bc00scFFi00",
                true,
            ),
            ("virtio:d0000000[1-3]v*", "virtio:d00000002v00001AF4", true),
            (
                "virtio:d0000000[!1-3]v*",
                "virtio:d00000002v00001AF4",
                false,
            ),
            ("a?c", "abc", true),
            ("[]]", "]", true),
            ("[abc", "[abc", true),
            ("\\*", "*", true),
            ("*x", "abc", false),
        ] {
            assert_eq!(fnmatch(pattern, text), want, "{pattern} {text}");
        }
    }

    /// Runs host `depmod` on the real kernel tree (hard links in a scratch copy under target/)
    /// and checks that xtask writes the same `modules.dep`, `modules.alias` and
    /// `modules.softdep` for every module. Line order may differ (depmod follows
    /// `modules.order`), so lines are compared as sets. In `modules.dep` each module must have
    /// the same dependencies, but their order within a line may differ: depmod orders them by
    /// a topological sort of the whole tree, xtask by a walk from the module, and both are
    /// valid load orders (kmod and boxinit resolve each dependency's own dependencies first).
    /// Fails, never skips, without depmod: .ci/run installs kmod.
    #[test]
    fn writes_what_host_depmod_writes() {
        let depmod = [
            "/usr/sbin/depmod",
            "/sbin/depmod",
            "/usr/bin/depmod",
            "/bin/depmod",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("host depmod not found: install kmod (apt-get install kmod); .ci/run does");
        let kernel =
            crate::fetch::kernel::resolve(crate::tools::arch::Arch::X86_64, &Default::default())
                .expect("the kernel tree (cargo xtask kernel fetches it)");
        let index = ModIndex::load(&kernel.modules_dir).unwrap();
        let base = crate::target_dir().join("depmod-check");
        let _ = std::fs::remove_dir_all(&base);
        let tree = base.join("lib/modules").join(&kernel.release);
        link_tree(&kernel.modules_dir, &tree).unwrap();
        let status = std::process::Command::new(depmod)
            .arg("-b")
            .arg(&base)
            .arg(&kernel.release)
            .status()
            .unwrap();
        assert!(status.success(), "depmod failed: {status}");
        let names: Vec<&String> = index.modules.keys().collect();
        let theirs = |file: &str| -> BTreeSet<String> {
            std::fs::read_to_string(tree.join(file))
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                // depmod names compressed files as they are; xtask packs them decompressed
                .map(|l| {
                    [".ko.xz", ".ko.zst", ".ko.gz"]
                        .iter()
                        .fold(l.to_string(), |l, s| l.replace(s, ".ko"))
                })
                .collect()
        };
        let ours = |text: String| -> BTreeSet<String> {
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(str::to_string)
                .collect()
        };
        // `module: a b c` with the dependencies sorted, for modules.dep
        let dep_sets = |lines: BTreeSet<String>| -> BTreeSet<String> {
            lines
                .into_iter()
                .map(|l| match l.split_once(':') {
                    Some((module, deps)) => {
                        let mut deps: Vec<&str> = deps.split_whitespace().collect();
                        deps.sort_unstable();
                        format!("{module}: {}", deps.join(" "))
                    }
                    None => l,
                })
                .collect()
        };
        for (file, written) in [
            ("modules.dep", index.modules_dep(&names)),
            ("modules.alias", index.modules_alias(&names)),
            ("modules.softdep", index.modules_softdep(&names)),
        ] {
            let (mut want, mut got) = (theirs(file), ours(written));
            if file == "modules.dep" {
                let reordered = want.difference(&got).count();
                (want, got) = (dep_sets(want), dep_sets(got));
                eprintln!("modules.dep: {reordered} lines list the same dependencies in another order than depmod's");
            }
            let missing: Vec<_> = want.difference(&got).take(5).collect();
            let extra: Vec<_> = got.difference(&want).take(5).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{file}: {} lines from depmod, {} from xtask; depmod only: {missing:#?}; xtask only: {extra:#?}",
                want.len(),
                got.len()
            );
            assert!(
                !want.is_empty() || file == "modules.softdep",
                "{file} is empty"
            );
        }
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// A copy of `from` at `to` made of hard links (a real copy where linking fails), without
    /// depmod's outputs, so depmod writes fresh ones.
    fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            let (src, dst) = (entry.path(), to.join(entry.file_name()));
            let kind = entry.file_type()?;
            if kind.is_dir() {
                link_tree(&src, &dst)?;
            } else if kind.is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let generated = name.starts_with("modules.")
                    && !matches!(
                        name.as_str(),
                        "modules.order" | "modules.builtin" | "modules.builtin.modinfo"
                    );
                if !generated && std::fs::hard_link(&src, &dst).is_err() {
                    std::fs::copy(&src, &dst)?;
                }
            }
        }
        Ok(())
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("virtio_bk", "virtio_blk"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
