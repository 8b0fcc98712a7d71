//! Task `initramfs`: packs `/init` (boxinit) and `/boxinit-net` (the network programs), the
//! device nodes the kernel needs before devtmpfs, the multi-call links, the modules and their
//! kmod index files, and the built-in `/etc/init.toml` into a gzip-compressed newc cpio, with
//! the entries it is given besides (`pack/extra.rs`; Debian's programs for a [`Request`]).
//! The format is `tools/cpio.rs`'s; the module closure is `pack/modinfo.rs`'s; this file
//! decides what goes where.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::fetch::kernel::Kernel;
use crate::pack::debian;
use crate::pack::extra::{self, Extra};
use crate::pack::extras_archive::{self, Archive, Later};
use crate::pack::modinfo::{self, packed_path, ModIndex, Selection};
use crate::tools::arch::Arch;
use crate::tools::cpio;
use crate::{display_path, format_size, progress};

/// What goes into an initramfs.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    pub arch: Arch,
    /// the static boxinit binary, packed as `/init`
    pub init: &'a Path,
    /// the network programs' binary (`boxinit-net`), packed beside `/init` where the init
    /// looks for it ([`net_beside`] finds the one cargo built); None for the other inits
    pub net: Option<&'a Path>,
    pub kernel: &'a Kernel,
    pub index: &'a ModIndex,
    /// modules to pack with their dependencies: names, aliases, or `auto`
    /// ([`Arch::auto_modules`]); empty means `auto`. The config's `modules.load` is added.
    pub modules: &'a [String],
    /// a TOML file to install as `/etc/init.toml`, as it is
    pub config: Option<&'a Path>,
    /// a static busybox to pack as `/bin/busybox` with `/bin/sh` linked to it (shell
    /// scenarios, `on_exit = "shell"`); None: no shell in the initramfs
    pub busybox: Option<&'a Path>,
}

/// What [`make`] wrote.
#[derive(Clone, Debug)]
pub struct Initramfs {
    pub path: PathBuf,
    /// size of the compressed file in bytes
    pub size: u64,
    /// the packed modules (load order) and the requested ones that are built in
    pub selection: Selection,
    /// the text of `/etc/init.toml`
    pub config: String,
    /// the card's archive of what serves later ([`make_split`]), beside the initramfs
    pub extras: Option<Archive>,
}

/// Links to `/init` at the paths where the kernel and busybox habits look for these tools;
/// boxinit is a multi-call binary that acts on its `argv[0]`.
pub const MULTI_CALL_LINKS: &[&str] =
    &["sbin/modprobe", "sbin/reboot", "sbin/poweroff", "sbin/halt"];

/// The network programs' binary beside the init binary `init`, as cargo builds them both
/// (`boxinit::net::program_beside`, the rule the init follows at boot). When there is none
/// (an `--init` from elsewhere) it says so: `[network]`, `[time]` and `[wifi]` will then name
/// the missing file at boot.
pub fn net_beside(init: &Path) -> Option<PathBuf> {
    let net = boxinit::net::program_beside(init);
    if net.is_file() {
        return Some(net);
    }
    progress!(
        "warning: no {} beside {}: the network programs are not packed ([network], [time] \
         and [wifi] will not run)",
        boxinit::net::PROGRAM,
        display_path(init)
    );
    None
}

/// Writes the initramfs to `out` (gzip-compressed newc cpio).
pub fn make(opts: &Options, out: &Path) -> Result<Initramfs> {
    make_with(opts, &[], out)
}

/// [`make`], with `extra` entries packed last (over any entry at the same path).
pub fn make_with(opts: &Options, extra: &[Extra], out: &Path) -> Result<Initramfs> {
    make_split(opts, extra, &Later::default(), out)
}

/// [`make_with`], and what serves later than the box (`later`: its entries, and the `.ko`
/// files of its modules that the initramfs's own do not need) written instead into the card's
/// extras archive beside `out` ([`extras_archive::ARCHIVE`]), which the built-in config then
/// lists. The module index files list every module, so coldplug finds those too once they
/// are unpacked.
pub fn make_split(opts: &Options, extra: &[Extra], later: &Later, out: &Path) -> Result<Initramfs> {
    // The user's file, checked with the init's own code, packed as it is.
    let (config_text, config_load) = match opts.config {
        Some(path) => {
            let loaded = crate::tools::config::check(path, boxinit::config::Place::Early)?;
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the config {}", path.display()))?;
            let load: Vec<String> = loaded
                .modules
                .load
                .iter()
                .map(|m| modinfo::normalize(m))
                .collect();
            (Some(text), load)
        }
        None => (None, Vec::new()),
    };
    let requested = requested_modules(opts, &config_load);
    let mut selection = opts.index.select(&requested)?;
    let mut later_modules = Vec::new();
    if !later.modules.is_empty() {
        let mut all = requested.clone();
        all.extend(later.modules.iter().cloned());
        let own = std::mem::replace(&mut selection, opts.index.select(&all)?);
        later_modules = selection.load_order.clone();
        later_modules.retain(|m| !own.load_order.contains(m));
    }
    let mut config = builtin_config(config_text.as_deref());
    if !later.is_empty() {
        config = extras_archive::list_in_config(&config)?;
    }
    let mut later_entries = Vec::new();

    let init = std::fs::read(opts.init)
        .with_context(|| format!("cannot read the init binary {}", opts.init.display()))?;
    let mut tree = Tree::default();
    for dir in [
        "dev",
        "proc",
        "sys",
        "run",
        "boot",
        "etc",
        "sbin",
        "lib/modules",
    ] {
        tree.add(dir, Node::Dir(0o755));
    }
    tree.add("tmp", Node::Dir(0o1777));
    // The kernel opens /dev/console for init's fds 0-2 before any devtmpfs is mounted.
    tree.add("dev/console", Node::Char(0o600, 5, 1));
    tree.add("dev/null", Node::Char(0o666, 1, 3));
    tree.add("init", Node::File(0o755, init));
    if let Some(net) = opts.net {
        let data = std::fs::read(net)
            .with_context(|| format!("cannot read the network programs {}", net.display()))?;
        let packed = boxinit::net::program_beside(Path::new("/init"));
        let packed = packed.to_string_lossy();
        tree.add(packed.trim_start_matches('/'), Node::File(0o755, data));
    }
    for link in MULTI_CALL_LINKS {
        tree.add(link, Node::Symlink("/init".into()));
    }
    tree.add(
        "etc/init.toml",
        Node::File(0o644, config.clone().into_bytes()),
    );
    // The clock floor: boxinit never lets the clock read earlier than this build (a Pi has
    // no real-time clock and boots in 1970).
    tree.add("etc/boxinit", Node::Dir(0o755));
    tree.add(
        boxinit::net::clock::BUILD_TIME_FILE.trim_start_matches('/'),
        Node::File(0o644, format!("{}\n", build_time()).into_bytes()),
    );
    if let Some(busybox) = opts.busybox {
        let data = std::fs::read(busybox)
            .with_context(|| format!("cannot read busybox {}", busybox.display()))?;
        tree.add("bin", Node::Dir(0o755));
        tree.add("bin/busybox", Node::File(0o755, data));
        tree.add("bin/sh", Node::Symlink("busybox".into()));
    }

    let moddir = format!("lib/modules/{}", opts.kernel.release);
    tree.add(&moddir, Node::Dir(0o755));
    for name in &selection.load_order {
        let module = &opts.index.modules[name];
        let data = modinfo::read_module(&opts.index.dir.join(&module.path))?;
        let path = format!("{moddir}/{}", packed_path(&module.path));
        match later_modules.contains(name) {
            true => later_entries.push(Extra::File {
                path,
                mode: 0o644,
                data,
            }),
            false => tree.add(&path, Node::File(0o644, data)),
        }
    }
    let alias = opts.index.modules_alias(&selection.load_order);
    // The alias index built here rather than by the init at every boot (aliasindex.rs).
    tree.add(
        &format!("{moddir}/{}", boxinit::devices::aliasindex::PACKED_FILE),
        Node::File(0o644, boxinit::devices::modindex::pack_alias_index(&alias)),
    );
    let index_files = [
        ("modules.dep", opts.index.modules_dep(&selection.load_order)),
        ("modules.alias", alias),
        (
            "modules.softdep",
            opts.index.modules_softdep(&selection.load_order),
        ),
    ];
    for (name, text) in index_files {
        tree.add(
            &format!("{moddir}/{name}"),
            Node::File(0o644, text.into_bytes()),
        );
    }
    // modules.builtin always, so the init knows a built-in module is no missing one (empty
    // when the kernel package has none: then nothing is built in that was asked for by name)
    for name in [
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.order",
    ] {
        let path = opts.index.dir.join(name);
        if path.is_file() {
            let data =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            tree.add(&format!("{moddir}/{name}"), Node::File(0o644, data));
        } else if name == "modules.builtin" {
            tree.add(&format!("{moddir}/{name}"), Node::File(0o644, Vec::new()));
        }
    }

    for entry in extra {
        match entry {
            Extra::File { path, mode, data } => tree.add(path, Node::File(*mode, data.clone())),
            Extra::Symlink { path, target } => tree.add(path, Node::Symlink(target.clone())),
            Extra::Omit { path } => {
                tree.0.remove(path);
            }
        }
    }

    let extras = match later.is_empty() {
        true => None,
        false => {
            // what the initramfs holds itself stays there
            later_entries.extend(later.entries.iter().cloned());
            later_entries.retain(|e| match e {
                Extra::File { path, .. } | Extra::Symlink { path, .. } => {
                    !tree.0.contains_key(path)
                }
                Extra::Omit { .. } => false,
            });
            let path = out.with_file_name(extras_archive::ARCHIVE);
            Some(extras_archive::write(&later_entries, &path)?)
        }
    };

    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let gzip = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::default(),
    );
    let mut gzip = tree
        .write(cpio::Writer::new(gzip))
        .and_then(|w| w.finish())
        .with_context(|| format!("cannot write {}", out.display()))?;
    gzip.try_finish()?;
    gzip.get_mut().flush()?;
    let size = std::fs::metadata(out)?.len();
    Ok(Initramfs {
        path: out.to_path_buf(),
        size,
        selection,
        config,
        extras,
    })
}

/// Seconds since 1970 for the clock floor and the card's file dates: `SOURCE_DATE_EPOCH` when
/// set (reproducible builds), else the instant this xtask run first asked: one time for all
/// it makes, so two images made by one run a second apart are still the same bytes.
pub fn build_time() -> u64 {
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            *STARTED.get_or_init(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            })
        })
}

/// One line for the user: `initramfs target/run/initramfs.cpio.gz  645120 bytes (630.0 KiB), 9 modules`.
pub fn describe(initramfs: &Initramfs) -> String {
    let modules = &initramfs.selection.load_order;
    let mut line = format!(
        "initramfs {}  {}, {} modules",
        display_path(&initramfs.path),
        format_size(initramfs.size),
        modules.len(),
    );
    if !modules.is_empty() {
        line += &format!(": {}", modules.join(" "));
    }
    if !initramfs.selection.builtin.is_empty() {
        line += &format!(" (built in: {})", initramfs.selection.builtin.join(" "));
    }
    if let Some(archive) = &initramfs.extras {
        line += &format!("\n{}", extras_archive::describe(archive));
    }
    line
}

/// The header of every `/etc/init.toml` that xtask writes.
const CONFIG_HEADER: &str = "\
# Built-in boxinit configuration, written by `cargo xtask initramfs` as /etc/init.toml.
# init.toml on the boot partition is merged over it; `boxinit.*=` words on the kernel
# command line override both.
";

/// The modules to pack: `opts.modules` with `auto` (or nothing) expanded to the arch's QEMU
/// drivers and `all` to every module of the tree, then the config's `modules.load`; names and aliases as given, each once. Names of
/// the `auto` list that this kernel lacks are left out (it may build them in, or not have them).
pub fn requested_modules(opts: &Options, config_load: &[String]) -> Vec<String> {
    let given: Vec<&str> = opts
        .modules
        .iter()
        .map(|m| m.trim())
        .filter(|m| !m.is_empty())
        .collect();
    let given = if given.is_empty() {
        vec!["auto"]
    } else {
        given
    };
    let mut names: Vec<String> = Vec::new();
    for name in given {
        let expanded: Vec<String> = if name == "auto" {
            opts.arch
                .auto_modules()
                .iter()
                .filter(|m| opts.index.knows(m))
                .map(|m| m.to_string())
                .collect()
        } else if name == "all" {
            opts.index.modules.keys().cloned().collect()
        } else {
            vec![name.to_string()]
        };
        names.extend(expanded);
    }
    let mut out: Vec<String> = Vec::new();
    for name in names.into_iter().chain(config_load.iter().cloned()) {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// The text of `/etc/init.toml`: the user's file as it is, or a generated default. No
/// `modules.load` is needed: coldplug (on by default) loads what the devices need.
pub fn builtin_config(file: Option<&str>) -> String {
    match file {
        Some(text) => text.to_string(),
        None => format!(
            "{CONFIG_HEADER}\n\
             # No [boot] device: the default, \"auto\", the first FAT partition.\n\
             # No module list: coldplug loads what every device needs (modules.alias).\n\
             [modules]\ncoldplug = true\n"
        ),
    }
}

/// A file system tree to pack; the sorted map puts every directory before its contents.
#[derive(Default)]
struct Tree(BTreeMap<String, Node>);

enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(String),
    Char(u32, u32, u32),
}

impl Tree {
    /// Adds `path` and any missing parent directories (mode 0755).
    fn add(&mut self, path: &str, node: Node) {
        let mut parent = path;
        while let Some((dir, _)) = parent.rsplit_once('/') {
            self.0.entry(dir.to_string()).or_insert(Node::Dir(0o755));
            parent = dir;
        }
        self.0.insert(path.to_string(), node);
    }

    fn write<W: Write>(&self, mut out: cpio::Writer<W>) -> std::io::Result<cpio::Writer<W>> {
        for (path, node) in &self.0 {
            match node {
                Node::Dir(mode) => out.dir(path, *mode)?,
                Node::File(mode, data) => out.file(path, *mode, data)?,
                Node::Symlink(target) => out.symlink(path, target)?,
                Node::Char(mode, major, minor) => out.char_dev(path, *mode, *major, *minor)?,
            }
        }
        Ok(out)
    }
}

/// An initramfs as a user asks for one (`cargo xtask initramfs`, a prepared boot): the
/// [`Options`], the Debian programs to pack with their libraries (`wpa_supplicant` also when
/// `wifi` or the built-in config turns Wi-Fi on: `pack/debian.rs`), and what to leave out.
pub struct Request<'a> {
    pub options: Options<'a>,
    /// Debian programs by name (`fetch::programs::PROGRAMS`)
    pub debian_programs: &'a [String],
    pub wifi: bool,
    /// no `/dev/console` ([`extra::no_console`])
    pub no_console: bool,
    /// no `/boxinit-net` ([`extra::no_net`])
    pub no_net: bool,
}

/// [`make_split`] what `request` asks for into `out`: `wpa_supplicant` and its libraries into
/// the card's extras archive beside it, the other Debian programs into the initramfs.
pub fn make_requested(request: &Request, out: &Path) -> Result<Initramfs> {
    let options = &request.options;
    let programs = debian::programs_to_pack(request.debian_programs, request.wifi, options.config)?;
    let (mut extra, later) = debian::split_entries(options.arch, &programs)?;
    if request.no_console {
        extra.push(extra::no_console());
    }
    if request.no_net {
        extra.push(extra::no_net());
    }
    let later = Later {
        entries: later,
        modules: Vec::new(),
    };
    make_split(options, &extra, &later, out)
}

/// Prints progress and returns [`make_split`]'s result (the bundle uses this).
pub fn make_verbose(
    extra: &[Extra],
    later: &Later,
    opts: &Options,
    out: &Path,
) -> Result<Initramfs> {
    let initramfs = make_split(opts, extra, later, out)?;
    progress!("{}", describe(&initramfs));
    Ok(initramfs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::modinfo::{parse_modinfo, Module};
    use std::io::Read;

    fn fake_tree(dir: &Path) -> (Kernel, ModIndex) {
        let modules_dir = dir.join("lib/modules/6.1.0-test");
        std::fs::create_dir_all(modules_dir.join("kernel/fs/fat")).unwrap();
        std::fs::write(modules_dir.join("kernel/fs/fat/fat.ko"), b"FAT").unwrap();
        std::fs::write(modules_dir.join("kernel/fs/fat/vfat.ko"), b"VFAT").unwrap();
        std::fs::write(
            modules_dir.join("modules.builtin"),
            "kernel/fs/nls/nls_ascii.ko\n",
        )
        .unwrap();
        let mut index = ModIndex {
            dir: modules_dir.clone(),
            ..ModIndex::default()
        };
        index.insert(Module {
            name: "fat".into(),
            path: "kernel/fs/fat/fat.ko".into(),
            info: parse_modinfo(b"depends=\0"),
        });
        index.insert(Module {
            name: "vfat".into(),
            path: "kernel/fs/fat/vfat.ko".into(),
            info: parse_modinfo(b"depends=fat\0alias=fs-vfat\0"),
        });
        index.builtin.insert("nls_ascii".into());
        let kernel = Kernel {
            image: dir.join("vmlinuz"),
            modules_dir,
            release: "6.1.0-test".into(),
            dtb_dir: None,
        };
        (kernel, index)
    }

    /// x86_64, the init at `init`, `modules`, nothing else.
    fn options<'a>(
        kernel: &'a Kernel,
        index: &'a ModIndex,
        init: &'a Path,
        modules: &'a [String],
    ) -> Options<'a> {
        Options {
            arch: Arch::X86_64,
            init,
            net: None,
            kernel,
            index,
            modules,
            config: None,
            busybox: None,
        }
    }

    fn unpack(path: &Path) -> Vec<cpio::Entry> {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
            .read_to_end(&mut bytes)
            .unwrap();
        cpio::read_archive(&bytes).unwrap()
    }

    #[test]
    fn packs_init_nodes_links_modules_and_config() {
        let dir = crate::tools::testing::temp_dir("initramfs");
        let (kernel, index) = fake_tree(&dir);
        let init = dir.join("boxinit");
        std::fs::write(&init, b"\x7fELF init").unwrap();
        let net = net_beside(&init);
        assert_eq!(net, None, "no boxinit-net yet");
        std::fs::write(dir.join("boxinit-net"), b"\x7fELF net").unwrap();
        let net = net_beside(&init);
        assert_eq!(net, Some(dir.join("boxinit-net")));
        let modules = vec!["vfat".to_string(), "nls-ascii".to_string()];
        let opts = Options {
            net: net.as_deref(),
            ..options(&kernel, &index, &init, &modules)
        };
        let out = dir.join("initramfs.cpio.gz");
        let made = make(&opts, &out).unwrap();
        assert_eq!(made.selection.load_order, ["fat", "vfat"]);
        assert_eq!(made.selection.builtin, ["nls_ascii"]);
        let entries = unpack(&out);
        let get = |name: &str| {
            entries
                .iter()
                .find(|e| e.name == name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        // every directory comes before its contents
        for (i, e) in entries.iter().enumerate() {
            if let Some((parent, _)) = e.name.rsplit_once('/') {
                assert!(
                    entries[..i].iter().any(|p| p.name == parent),
                    "{} first",
                    e.name
                );
            }
        }
        assert_eq!(get("init").mode, cpio::S_IFREG | 0o755);
        assert_eq!(get("init").data, b"\x7fELF init");
        assert_eq!(get("boxinit-net").mode, cpio::S_IFREG | 0o755);
        assert_eq!(get("boxinit-net").data, b"\x7fELF net");
        assert_eq!(get("dev/console").mode, cpio::S_IFCHR | 0o600);
        assert_eq!(get("dev/console").rdev, (5, 1));
        assert_eq!(get("dev/null").rdev, (1, 3));
        assert_eq!(get("tmp").mode, cpio::S_IFDIR | 0o1777);
        // --no-console: the same without /dev/console
        let bare = dir.join("bare.cpio.gz");
        make_with(&opts, &[extra::no_console()], &bare).unwrap();
        let names: Vec<String> = unpack(&bare).into_iter().map(|e| e.name).collect();
        assert!(!names.iter().any(|n| n == "dev/console"), "{names:?}");
        assert!(names.iter().any(|n| n == "dev/null"));
        for link in MULTI_CALL_LINKS {
            assert_eq!(get(link).mode, cpio::S_IFLNK | 0o777);
            assert_eq!(get(link).data, b"/init");
        }
        let m = "lib/modules/6.1.0-test";
        assert_eq!(get(&format!("{m}/kernel/fs/fat/vfat.ko")).data, b"VFAT");
        assert_eq!(
            get(&format!("{m}/modules.dep")).data,
            b"kernel/fs/fat/fat.ko:\nkernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko\n"
        );
        let alias = String::from_utf8(get(&format!("{m}/modules.alias")).data.clone()).unwrap();
        assert!(alias.contains("alias fs-vfat vfat\n"));
        // the packed alias index is of this modules.alias: the init reads it instead of building
        let packed = &get(&format!("{m}/modules.alias.boxinit")).data;
        let (_, origin) = boxinit::devices::modindex::ModuleIndex::parse_with_packed(
            "",
            "",
            &alias,
            Some(packed),
        );
        assert_eq!(origin, boxinit::devices::modindex::AliasIndexOrigin::Packed);
        assert_eq!(
            get(&format!("{m}/modules.builtin")).data,
            b"kernel/fs/nls/nls_ascii.ko\n"
        );
        let config = String::from_utf8(get("etc/init.toml").data.clone()).unwrap();
        let table: toml::Table = config.parse().unwrap();
        // one default for the boot device, boxinit's own ("auto")
        assert!(table.get("boot").is_none(), "{config}");
        assert_eq!(table["modules"]["coldplug"].as_bool(), Some(true));
        assert!(table["modules"].get("load").is_none(), "{config}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What serves later goes into the extras archive beside the initramfs: its modules'
    /// files (listed in the initramfs's index all the same) and its entries, not what the
    /// initramfs has itself; the built-in config lists the archive.
    #[test]
    fn what_serves_later_goes_into_the_extras_archive() {
        let dir = crate::tools::testing::temp_dir("initramfs-later");
        let (kernel, index) = fake_tree(&dir);
        let init = dir.join("boxinit");
        std::fs::write(&init, b"init").unwrap();
        let modules = vec!["fat".to_string()];
        let opts = options(&kernel, &index, &init, &modules);
        let file = |path: &str, data: &[u8]| Extra::File {
            path: path.into(),
            mode: 0o755,
            data: data.to_vec(),
        };
        let later = Later {
            entries: vec![
                file("lib/libc.so", b"libc"),
                file("init", b"not this"),
                file("sbin/prog", b"prog"),
            ],
            modules: vec!["vfat".to_string()],
        };
        let out = dir.join("initramfs.cpio.gz");
        let made = make_split(&opts, &[], &later, &out).unwrap();
        let m = "lib/modules/6.1.0-test";
        let names: Vec<String> = unpack(&out).into_iter().map(|e| e.name).collect();
        assert!(names.contains(&format!("{m}/kernel/fs/fat/fat.ko")));
        assert!(
            !names
                .iter()
                .any(|n| n.ends_with("vfat.ko") || n.contains("prog")),
            "{names:?}"
        );
        let dep = unpack(&out)
            .into_iter()
            .find(|e| e.name == format!("{m}/modules.dep"))
            .unwrap();
        assert!(String::from_utf8(dep.data)
            .unwrap()
            .contains("vfat.ko: kernel/fs/fat/fat.ko"));
        assert!(
            made.config.contains("extras = [\"extras.cpio.gz\"]"),
            "{}",
            made.config
        );
        let archive = made.extras.unwrap();
        assert_eq!(archive.path, dir.join("extras.cpio.gz"));
        let bytes = std::fs::read(&archive.path).unwrap();
        let cpio = boxinit::gzip::decompress_all(&bytes, 1 << 20).unwrap();
        let items = boxinit::storage::extras::verify(&cpio).unwrap();
        let files: Vec<&str> = items
            .iter()
            .filter(|i| !matches!(i.kind, boxinit::storage::extras::Kind::Dir(_)))
            .map(|i| i.path)
            .collect();
        // the modules first, then the entries in their order
        assert_eq!(
            files,
            [
                format!("{m}/kernel/fs/fat/vfat.ko").as_str(),
                "lib/libc.so",
                "sbin/prog"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compressed_modules_are_packed_decompressed() {
        use std::io::Write;
        let dir = crate::tools::testing::temp_dir("initramfs-compressed");
        let (kernel, mut index) = fake_tree(&dir);
        let elf_bytes = b"\x7fELF pretend module".to_vec();
        let m = &kernel.modules_dir;
        std::fs::create_dir_all(m.join("kernel/drivers/virtio")).unwrap();
        let mut xz = lzma_rust2::XzWriter::new(Vec::new(), Default::default()).unwrap();
        xz.write_all(&elf_bytes).unwrap();
        std::fs::write(
            m.join("kernel/drivers/virtio/virtio.ko.xz"),
            xz.finish().unwrap(),
        )
        .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"ring").unwrap();
        std::fs::write(
            m.join("kernel/drivers/virtio/virtio_ring.ko.gz"),
            gz.finish().unwrap(),
        )
        .unwrap();
        index.insert(Module {
            name: "virtio".into(),
            path: "kernel/drivers/virtio/virtio.ko.xz".into(),
            info: parse_modinfo(b"depends=virtio_ring\0alias=virtio:d*\0"),
        });
        index.insert(Module {
            name: "virtio_ring".into(),
            path: "kernel/drivers/virtio/virtio_ring.ko.gz".into(),
            info: parse_modinfo(b"depends=\0"),
        });
        let init = dir.join("boxinit");
        std::fs::write(&init, b"init").unwrap();
        let modules = vec!["virtio".to_string()];
        let opts = options(&kernel, &index, &init, &modules);
        let out = dir.join("initramfs.cpio.gz");
        make(&opts, &out).unwrap();
        let entries = unpack(&out);
        let get = |name: &str| {
            entries
                .iter()
                .find(|e| e.name == name)
                .map(|e| e.data.clone())
        };
        let m = "lib/modules/6.1.0-test";
        assert_eq!(
            get(&format!("{m}/kernel/drivers/virtio/virtio.ko")),
            Some(elf_bytes)
        );
        assert_eq!(
            get(&format!("{m}/kernel/drivers/virtio/virtio_ring.ko")),
            Some(b"ring".to_vec())
        );
        assert_eq!(
            get(&format!("{m}/kernel/drivers/virtio/virtio.ko.xz")),
            None
        );
        assert_eq!(
            get(&format!("{m}/modules.dep")).unwrap(),
            b"kernel/drivers/virtio/virtio_ring.ko:\n\
              kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn builtin_config_and_requested_modules() {
        // the user's file is installed as written; the default names no module
        let text = "# mine\n[modules]\nload = [\"fat\"]\ncoldplug = false\n";
        assert_eq!(builtin_config(Some(text)), text);
        assert!(!builtin_config(None).contains("load ="));
        let dir = crate::tools::testing::temp_dir("initramfs-requested");
        let (kernel, index) = fake_tree(&dir);
        let requested = |modules: &[&str], load: &[&str]| {
            let modules: Vec<String> = modules.iter().map(|m| m.to_string()).collect();
            let load: Vec<String> = load.iter().map(|m| m.to_string()).collect();
            let opts = options(&kernel, &index, Path::new("/init"), &modules);
            requested_modules(&opts, &load)
        };
        // auto: the arch's list as far as this tree has it (vfat, nls_ascii built in)
        assert_eq!(requested(&[], &[]), ["vfat", "nls_ascii"]);
        assert_eq!(requested(&["auto"], &["fat"]), ["vfat", "nls_ascii", "fat"]);
        assert_eq!(requested(&["fs-vfat", " "], &["vfat"]), ["fs-vfat", "vfat"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
