//! Loading kernel modules with `finit_module(2)`: read the index from
//! `/lib/modules/$(uname -r)`, plan the order (`modindex`), load each level of independent
//! modules in parallel with their parameters, and log one clear line per failure. No libkmod.
//! Parsing is `modindex`'s job; which modules a device needs is `coldplug`'s and `hotplug`'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::devices::aliasindex::{PackedError, PACKED_FILE};
use crate::devices::modindex::loadplan;
use crate::devices::modindex::{self, AliasIndexOrigin, ModuleIndex};
use crate::sys::Sys;

/// `/lib/modules/<release>` under `root`.
pub fn modules_dir(root: &Path, release: &str) -> PathBuf {
    root.join("lib/modules").join(release)
}

/// Reads `modules.dep` (required) and `modules.builtin`, `modules.alias`, `modules.softdep`
/// (optional), with the alias index xtask packed beside them when it is of this
/// `modules.alias` (else built here; one line says why).
pub fn read_index(dir: &Path) -> std::io::Result<ModuleIndex> {
    let dep = std::fs::read_to_string(dir.join("modules.dep"))?;
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    // missing or unreadable alike: then the index is built, as it is without one
    let packed = std::fs::read(dir.join(PACKED_FILE)).ok();
    let (index, origin) = ModuleIndex::parse_with_packed(
        &dep,
        &read("modules.builtin"),
        &read("modules.alias"),
        packed.as_deref(),
    );
    let index = index.with_softdeps(&read("modules.softdep"));
    for w in index.warnings() {
        log::debug!("modules index: {w:?}");
    }
    let (level, note) = alias_index_note(&origin, dir, index.alias_count());
    log::log!(level, "{note}");
    Ok(index)
}

/// What the init says about where its alias index came from: a warning only for a packed
/// index that is there but is not what xtask writes (a stale one is expected after an edit).
pub fn alias_index_note(
    origin: &AliasIndexOrigin,
    dir: &Path,
    patterns: usize,
) -> (log::Level, String) {
    let dir = dir.display();
    match origin {
        AliasIndexOrigin::Packed => (
            log::Level::Debug,
            format!("alias index of {patterns} patterns read from {dir}/{PACKED_FILE}"),
        ),
        AliasIndexOrigin::Built(None) => (
            log::Level::Debug,
            format!("alias index of {patterns} patterns built at boot: no {dir}/{PACKED_FILE}"),
        ),
        AliasIndexOrigin::Built(Some(why @ PackedError::Stale(_))) => (
            log::Level::Debug,
            format!("alias index of {patterns} patterns built at boot: {dir}/{why}"),
        ),
        AliasIndexOrigin::Built(Some(why)) => (
            log::Level::Warn,
            format!(
                "{dir}/{why}; the alias index of {patterns} patterns was built at boot instead \
                 (repack the initramfs with cargo xtask to restore it)"
            ),
        ),
    }
}

/// Counts of what `load` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub loaded: usize,
    pub already: usize,
    pub failed: usize,
}

impl std::ops::AddAssign for Summary {
    fn add_assign(&mut self, other: Summary) {
        self.loaded += other.loaded;
        self.already += other.already;
        self.failed += other.failed;
    }
}

/// The module index of the running kernel with the parameters to load its modules with:
/// what the boot sequence, coldplug and hotplug share. A clone shares the index (the loader
/// thread's copy, `load_thread.rs`).
#[derive(Clone)]
pub struct Loader {
    pub index: Arc<ModuleIndex>,
    /// `/lib/modules/<release>`
    pub dir: PathBuf,
    /// normalised module name -> parameters (`[modules] params`, then the command line's)
    pub params: BTreeMap<String, String>,
    /// load each level of independent modules from one thread per module
    pub parallel: bool,
    /// where `/sys/module` is read, to skip what the kernel already has
    root: PathBuf,
}

impl Loader {
    /// Reads the index of the running kernel's modules under `root`; None (logged) when
    /// there is none to read.
    pub fn open(
        root: &Path,
        config_params: &BTreeMap<String, String>,
        cmdline: &str,
        parallel: bool,
    ) -> Option<Loader> {
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        let dir = modules_dir(root, &release);
        let index = match read_index(&dir) {
            Ok(index) => index,
            Err(e) => {
                log::error!("cannot read {}/modules.dep: {e}; no modules can be loaded (is this initramfs built for kernel {release}?)", dir.display());
                return None;
            }
        };
        Some(Loader {
            index: Arc::new(index),
            dir,
            params: merge_params(config_params, cmdline),
            parallel,
            root: root.to_path_buf(),
        })
    }

    /// Where `/sys` is read (`/`, a temp dir in tests).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the kernel has `name`: loaded and live, or built in (`modules.builtin`).
    pub fn has(&self, name: &str) -> bool {
        self.index.is_builtin(name) || is_live(&self.root, name)
    }

    /// Loads `names` (modules or aliases) and what they need; see [`load`].
    pub fn load(&self, sys: &mut dyn Sys, names: &[String]) -> Summary {
        let is_loaded = |name: &str| is_loaded(&self.root, name);
        load(
            sys,
            &self.index,
            &self.dir,
            names,
            &self.params,
            self.parallel,
            &is_loaded,
        )
    }
}

/// Whether the kernel has the module `name` loaded (`/sys/module/NAME/initstate` exists only
/// for modules loaded from files). Asking again would cost a whole `finit_module`: the kernel
/// reads and checks the file before it finds the module there and answers EEXIST.
pub fn is_loaded(root: &Path, name: &str) -> bool {
    root.join("sys/module")
        .join(modindex::normalize(name))
        .join("initstate")
        .exists()
}

/// Whether the module `name` is loaded and done with its init (`initstate` reads `live`;
/// `coming` while its init function runs).
pub fn is_live(root: &Path, name: &str) -> bool {
    let path = root
        .join("sys/module")
        .join(modindex::normalize(name))
        .join("initstate");
    std::fs::read_to_string(path).is_ok_and(|state| state.trim() == "live")
}

/// `names` without the modules the kernel already has ([`is_loaded`]), each once: a device
/// whose driver is loaded costs no log line and no plan.
pub fn not_loaded(root: &Path, names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    names
        .into_iter()
        .filter(|name| seen.insert(modindex::normalize(name)))
        .filter(|name| !is_loaded(root, name))
        .collect()
}

/// Parameters from `[modules] params` with the command line's `module.param=value` words
/// after them (the kernel keeps the last value of a parameter given twice).
pub fn merge_params(
    config_params: &BTreeMap<String, String>,
    cmdline: &str,
) -> BTreeMap<String, String> {
    let mut params = crate::config::cmdline::module_params(cmdline);
    for (name, value) in config_params {
        let name = modindex::normalize(name);
        let merged = match params.get(&name) {
            Some(from_cmdline) => format!("{value} {from_cmdline}"),
            None => value.clone(),
        };
        params.insert(name, merged);
    }
    params
}

/// Loads `names` (module names or aliases) and their dependencies, dependencies first; with
/// `parallel`, the modules of one level (none depends on another) are loaded at the same time.
/// `params` maps a normalised module name to its parameter string; modules for which
/// `is_loaded` answers true are counted as already there without a call. A failure is logged
/// and loading goes on: a module that is not needed for boot must not stop it.
pub fn load(
    sys: &mut dyn Sys,
    index: &ModuleIndex,
    dir: &Path,
    names: &[String],
    params: &BTreeMap<String, String>,
    parallel: bool,
    is_loaded: &dyn Fn(&str) -> bool,
) -> Summary {
    let resolved = resolve_aliases(index, names);
    let mut plan = index.load_order(&resolved);
    let planned = plan.steps.len();
    plan.steps.retain(|step| !is_loaded(&step.name));
    let already_loaded = planned - plan.steps.len();
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
    let batches: Vec<Vec<usize>> = if parallel {
        index.levels(&plan)
    } else {
        (0..plan.steps.len()).map(|i| vec![i]).collect()
    };
    let mut summary = Summary {
        already: already_loaded,
        ..Summary::default()
    };
    for batch in batches {
        let steps: Vec<&loadplan::LoadStep> =
            batch.iter().filter_map(|&i| plan.steps.get(i)).collect();
        let calls: Vec<(PathBuf, String)> = steps
            .iter()
            .map(|step| {
                let args = params.get(&step.name).cloned().unwrap_or_default();
                (dir.join(&step.path), args)
            })
            .collect();
        if steps.len() > 1 {
            let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
            log::debug!(
                "modules: loading {} at once: {}",
                names.len(),
                names.join(" ")
            );
        }
        let results = sys.finit_modules(&calls);
        for ((step, (path, args)), result) in steps.iter().zip(&calls).zip(results) {
            count(&mut summary, step, path, args, result);
        }
    }
    summary
}

/// Adds one module's result to `summary`, with its log line.
fn count(
    summary: &mut Summary,
    step: &loadplan::LoadStep,
    path: &Path,
    args: &str,
    result: std::io::Result<()>,
) {
    match result {
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

/// What a `modprobe` command line asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModprobeArgs {
    /// `-q`: say nothing about a module that does not exist.
    pub quiet: bool,
    /// Modules or aliases to load: the first word, or every word with `-a`.
    pub names: Vec<String>,
    /// `param=value` words after the module name (not with `-a`).
    pub params: String,
}

/// Parses modprobe's arguments the way the kernel (`modprobe -q -- fs-vfat`) and scripts
/// (`modprobe -a a b`, `modprobe loop max_loop=8`) use them. Options that do not change what
/// is loaded (`-b`, `-v`, `-s`) are accepted and ignored; removal is refused.
pub fn parse_modprobe_args(args: &[String]) -> Result<ModprobeArgs, String> {
    let mut out = ModprobeArgs::default();
    let mut all = false;
    let mut words = Vec::new();
    let mut options_done = false;
    for arg in args {
        if options_done || !arg.starts_with('-') || arg == "-" {
            words.push(arg.clone());
            continue;
        }
        match arg.as_str() {
            "--" => options_done = true,
            "--quiet" => out.quiet = true,
            "--all" => all = true,
            "--use-blacklist" | "--verbose" | "--syslog" => {}
            "--remove" => return Err("removing modules is not supported".into()),
            long if long.starts_with("--") => return Err(format!("unknown option {long}")),
            short => {
                for flag in short.chars().skip(1) {
                    match flag {
                        'q' => out.quiet = true,
                        'a' => all = true,
                        'b' | 'v' | 's' => {}
                        'r' => return Err("removing modules is not supported".into()),
                        other => return Err(format!("unknown option -{other}")),
                    }
                }
            }
        }
    }
    if all {
        out.names = words;
    } else {
        let mut words = words.into_iter();
        out.names.extend(words.next());
        out.params = words.collect::<Vec<_>>().join(" ");
    }
    if out.names.is_empty() {
        return Err("no module named".into());
    }
    Ok(out)
}

/// `modprobe` as the kernel calls it for `request_module` (`modprobe -q -- fs-vfat`): loads
/// the named modules and their dependencies, with the parameters of the command line and
/// `/proc/cmdline`. Failures go to kmsg, as the init's do. Returns the exit status.
pub fn modprobe_main(args: &[String]) -> i32 {
    let parsed = match parse_modprobe_args(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("modprobe: {e}\nusage: modprobe [-q] [-a] [--] MODULE [PARAM=VALUE ...]");
            return 1;
        }
    };
    crate::kmsg::init(log::LevelFilter::Warn);
    let _ = crate::kmsg::open_kmsg();
    // Bytes: one word that is not UTF-8 must not lose the others' module parameters.
    let bytes = std::fs::read("/proc/cmdline").unwrap_or_default();
    let (cmdline, _) = crate::config::cmdline::from_bytes(&bytes);
    let Some(mut loader) = Loader::open(Path::new("/"), &BTreeMap::new(), &cmdline, false) else {
        return 1;
    };
    if let Some(first) = parsed.names.first().filter(|_| !parsed.params.is_empty()) {
        let name = modindex::normalize(first);
        let merged = match loader.params.get(&name) {
            Some(from_cmdline) => format!("{from_cmdline} {}", parsed.params),
            None => parsed.params.clone(),
        };
        loader.params.insert(name, merged);
    }
    let mut status = 0;
    for name in &parsed.names {
        if !loader.index.knows(name) {
            // -q: the kernel asks for aliases that may well not exist (`fs-ntfs3`, `char-major-...`)
            if !parsed.quiet {
                log::warn!(
                    "modprobe {name}: no such module or alias in {}",
                    loader.dir.display()
                );
            }
            status = 1;
            continue;
        }
        let summary = loader.load(&mut crate::sys::linux::Linux, std::slice::from_ref(name));
        if summary.failed > 0 {
            status = 1;
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recorder::{Call, Recorder};

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
            false,
            &|_| false,
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
            false,
            &|_| false,
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
    fn modprobe_command_lines() {
        let args =
            |words: &[&str]| -> Vec<String> { words.iter().map(|w| w.to_string()).collect() };
        let parse = |words: &[&str]| parse_modprobe_args(&args(words));
        assert_eq!(
            parse(&["-q", "--", "fs-vfat"]),
            Ok(ModprobeArgs {
                quiet: true,
                names: args(&["fs-vfat"]),
                params: String::new()
            })
        );
        assert_eq!(
            parse(&["loop", "max_loop=8", "max_part=2"]),
            Ok(ModprobeArgs {
                quiet: false,
                names: args(&["loop"]),
                params: "max_loop=8 max_part=2".into()
            })
        );
        assert_eq!(
            parse(&["-qa", "a", "b"]).map(|a| a.names),
            Ok(args(&["a", "b"]))
        );
        assert_eq!(parse(&["-bv", "x"]).map(|a| a.names), Ok(args(&["x"])));
        assert_eq!(parse(&["--", "-odd"]).map(|a| a.names), Ok(args(&["-odd"])));
        assert!(parse(&["-r", "x"]).unwrap_err().contains("not supported"));
        assert!(parse(&["-z", "x"])
            .unwrap_err()
            .contains("unknown option -z"));
        assert!(parse(&["-q"]).unwrap_err().contains("no module"));
    }

    #[test]
    fn params_from_config_and_cmdline() {
        let config = BTreeMap::from([
            ("snd-hda".to_string(), "index=1".to_string()),
            ("loop".to_string(), "max_loop=4".to_string()),
        ]);
        let params = merge_params(
            &config,
            "quiet loop.max_part=2 virtio-blk.queue_depth=8 boxinit.x=1",
        );
        assert_eq!(
            params,
            BTreeMap::from([
                ("loop".to_string(), "max_loop=4 max_part=2".to_string()),
                ("snd_hda".to_string(), "index=1".to_string()),
                ("virtio_blk".to_string(), "queue_depth=8".to_string()),
            ])
        );
    }

    #[test]
    fn softdeps_and_levels_in_the_transcript() {
        let index = ModuleIndex::parse(DEP, "", ALIAS)
            .with_softdeps("softdep vfat pre: nls_cp437_missing post: virtio_ring\n");
        let mut rec = Recorder::new();
        let names = vec!["fs-vfat".to_string(), "virtio_blk".to_string()];
        let summary = load(
            &mut rec,
            &index,
            Path::new("/m"),
            &names,
            &BTreeMap::new(),
            true,
            &|_| false,
        );
        assert_eq!(summary.loaded, 5);
        // virtio_ring is vfat's post: softdep, so it waits for vfat, and the rest for it
        assert_eq!(
            rec.transcript(),
            "finit_module(/m/kernel/fs/fat/fat.ko, \"\")\n\
             finit_module(/m/kernel/fs/fat/vfat.ko, \"\")\n\
             finit_module(/m/kernel/drivers/virtio/virtio_ring.ko, \"\")\n\
             finit_module(/m/kernel/drivers/virtio/virtio.ko, \"\")\n\
             finit_module(/m/kernel/drivers/block/virtio_blk.ko, \"\")\n"
        );
    }

    #[test]
    fn modules_the_kernel_has_are_not_loaded_again() {
        let mut rec = Recorder::new();
        let names = vec!["virtio_blk".to_string()];
        let loaded = |name: &str| name == "virtio" || name == "virtio_ring";
        let summary = load(
            &mut rec,
            &index(),
            Path::new("/m"),
            &names,
            &BTreeMap::new(),
            true,
            &loaded,
        );
        assert_eq!(
            summary,
            Summary {
                loaded: 1,
                already: 2,
                failed: 0
            }
        );
        assert_eq!(
            rec.transcript(),
            "finit_module(/m/kernel/drivers/block/virtio_blk.ko, \"\")\n"
        );
    }

    #[test]
    fn the_index_is_read_with_the_packed_alias_index_when_it_is_of_modules_alias() {
        let dir = std::env::temp_dir().join(format!("boxinit-read-index-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("modules.dep"), DEP).unwrap();
        std::fs::write(dir.join("modules.alias"), ALIAS).unwrap();
        let built = read_index(&dir).unwrap();
        std::fs::write(dir.join(PACKED_FILE), modindex::pack_alias_index(ALIAS)).unwrap();
        assert_eq!(read_index(&dir).unwrap(), built);
        assert_eq!(
            built.lookup_alias("virtio:d00000002v00001AF4"),
            ["virtio_blk"]
        );
        std::fs::remove_dir_all(&dir).unwrap();

        let dir = Path::new("/lib/modules/6.1");
        let note = |origin| alias_index_note(&origin, dir, 2);
        assert_eq!(
            note(AliasIndexOrigin::Packed),
            (
                log::Level::Debug,
                "alias index of 2 patterns read from /lib/modules/6.1/modules.alias.boxinit".into()
            )
        );
        assert_eq!(
            note(AliasIndexOrigin::Built(None)),
            (
                log::Level::Debug,
                "alias index of 2 patterns built at boot: no /lib/modules/6.1/modules.alias.boxinit"
                    .into()
            )
        );
        let stale = note(AliasIndexOrigin::Built(Some(PackedError::Stale(
            "why".into(),
        ))));
        assert_eq!(
            stale,
            (
                log::Level::Debug,
                "alias index of 2 patterns built at boot: \
                 /lib/modules/6.1/modules.alias.boxinit is stale: why"
                    .into()
            )
        );
        let malformed = note(AliasIndexOrigin::Built(Some(PackedError::Malformed {
            line: 3,
            message: "what".into(),
        })));
        assert_eq!(
            malformed,
            (
                log::Level::Warn,
                "/lib/modules/6.1/modules.alias.boxinit:3: what; the alias index of 2 patterns \
                 was built at boot instead (repack the initramfs with cargo xtask to restore it)"
                    .into()
            )
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
