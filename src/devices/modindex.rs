//! kmod's text index files (`modules.dep`, `modules.builtin`, `modules.alias`,
//! `modules.softdep`) parsed into a [`ModuleIndex`]: each module's path and dependencies, the
//! built-in ones, alias lookups (through `aliasindex`, then `fnmatch`). The order to load them
//! in is its child `loadplan`'s (`modindex/loadplan.rs`), which reads its tables. Pure: it
//! reads no files and loads no modules (the caller reads `/lib/modules/$(uname -r)/` and calls
//! `finit_module`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::devices::aliasindex::{AliasIndex, PackedError};
use crate::fnmatch::fnmatch;

pub mod loadplan;

/// Suffixes a module file may carry; longest first is not needed as none is a suffix of another.
const MODULE_SUFFIXES: &[&str] = &[".ko", ".ko.xz", ".ko.zst", ".ko.gz"];

/// A module name in canonical form: the kernel treats `-` and `_` in module names alike.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module names of a softdep's words, before and after: `pre: a b post: c` → (`a b`, `c`),
/// normalized; the words before any `pre:`/`post:` count as `pre:`, as in kmod.
pub fn parse_softdep<'a>(words: impl IntoIterator<Item = &'a str>) -> (Vec<String>, Vec<String>) {
    let (mut pre, mut post) = (Vec::new(), Vec::new());
    let mut into_post = false;
    for word in words {
        match word {
            "pre:" => into_post = false,
            "post:" => into_post = true,
            name if into_post => post.push(normalize(name)),
            name => pre.push(normalize(name)),
        }
    }
    (pre, post)
}

/// The module name of a path such as `kernel/drivers/block/virtio-blk.ko.xz` (`virtio_blk`),
/// or None when the file name has no module suffix.
pub fn name_from_path(path: &str) -> Option<String> {
    let file = path.rsplit('/').next().unwrap_or(path);
    MODULE_SUFFIXES
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))
        .filter(|stem| !stem.is_empty())
        .map(normalize)
}

/// One module known from `modules.dep`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Module {
    /// Path relative to the modules directory, as written in `modules.dep`.
    path: String,
    /// Normalised names of the modules this one needs, in file order.
    deps: Vec<String>,
}

/// One `alias PATTERN MODULE` line of `modules.alias`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// fnmatch pattern matched against a device's modalias.
    pub pattern: String,
    /// Normalised module name.
    pub module: String,
}

/// A line of an index file that was skipped because it could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexWarning {
    /// Which file: `modules.dep`, `modules.builtin`, `modules.alias` or `modules.softdep`.
    pub file: &'static str,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with the line.
    pub message: String,
}

impl fmt::Display for IndexWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Everything the init needs to know about the kernel's modules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleIndex {
    modules: BTreeMap<String, Module>,
    builtin: BTreeSet<String>,
    aliases: Vec<Alias>,
    /// `aliases`' patterns by key: what [`Self::lookup_alias`] tries.
    alias_index: AliasIndex,
    /// module -> (pre, post): `softdep MODULE pre: A B post: C` of `modules.softdep`.
    softdeps: BTreeMap<String, (Vec<String>, Vec<String>)>,
    warnings: Vec<IndexWarning>,
}

/// Where a [`ModuleIndex`]'s alias index came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasIndexOrigin {
    /// Read from the index xtask packed beside `modules.alias`.
    Packed,
    /// Built from the patterns at load: there was no packed index (None), or why it was not
    /// used.
    Built(Option<PackedError>),
}

/// The packed alias index (`aliasindex::PACKED_FILE`) for `alias`, the text of
/// `modules.alias`: its patterns numbered as [`ModuleIndex::parse`] reads them.
pub fn pack_alias_index(alias: &str) -> Vec<u8> {
    ModuleIndex::parse("", "", alias)
        .alias_index
        .packed(alias.as_bytes())
}

/// Lines that carry data: not blank, not `#` comments; with their 1-based line numbers.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

impl ModuleIndex {
    /// Parse the contents of `modules.dep`, `modules.builtin` and `modules.alias` (any may be
    /// empty). Lines that cannot be understood are skipped and kept as [`Self::warnings`].
    pub fn parse(dep: &str, builtin: &str, alias: &str) -> ModuleIndex {
        Self::parse_with_packed(dep, builtin, alias, None).0
    }

    /// [`Self::parse`], with the alias index read from `packed` (the bytes of
    /// `aliasindex::PACKED_FILE`, which xtask writes beside `modules.alias`) rather than built,
    /// when it is of this `alias` text: the same index, without the pass over every pattern.
    pub fn parse_with_packed(
        dep: &str,
        builtin: &str,
        alias: &str,
        packed: Option<&[u8]>,
    ) -> (ModuleIndex, AliasIndexOrigin) {
        let mut index = ModuleIndex::default();
        index.parse_dep(dep);
        index.parse_builtin(builtin);
        index.parse_alias(alias);
        let patterns: Vec<&str> = index.aliases.iter().map(|a| a.pattern.as_str()).collect();
        let read = packed.map(|bytes| AliasIndex::from_packed(bytes, alias.as_bytes(), &patterns));
        let (alias_index, origin) = match read {
            Some(Ok(read)) => (read, AliasIndexOrigin::Packed),
            Some(Err(why)) => (
                AliasIndex::build(patterns.iter().copied()),
                AliasIndexOrigin::Built(Some(why)),
            ),
            None => (
                AliasIndex::build(patterns.iter().copied()),
                AliasIndexOrigin::Built(None),
            ),
        };
        index.alias_index = alias_index;
        (index, origin)
    }

    /// Adds the soft dependencies of `modules.softdep` (kmod's format:
    /// `softdep MODULE pre: A B post: C`); modules named there need not exist.
    pub fn with_softdeps(mut self, text: &str) -> ModuleIndex {
        for (n, line) in data_lines(text) {
            let mut words = line.split_whitespace();
            let (Some("softdep"), Some(module)) = (words.next(), words.next()) else {
                self.warn(
                    "modules.softdep",
                    n,
                    format!("expected `softdep MODULE pre: ... post: ...`, found `{line}`"),
                );
                continue;
            };
            let (pre, post) = parse_softdep(words);
            let entry = self.softdeps.entry(normalize(module)).or_default();
            entry.0.extend(pre);
            entry.1.extend(post);
        }
        self
    }

    fn warn(&mut self, file: &'static str, line: usize, message: String) {
        self.warnings.push(IndexWarning {
            file,
            line,
            message,
        });
    }

    fn parse_dep(&mut self, text: &str) {
        const FILE: &str = "modules.dep";
        for (n, line) in data_lines(text) {
            let Some((path, deps)) = line.split_once(':') else {
                self.warn(FILE, n, format!("no `:` in `{line}`"));
                continue;
            };
            let path = path.trim();
            let Some(name) = name_from_path(path) else {
                self.warn(FILE, n, format!("`{path}` is not a module file"));
                continue;
            };
            let mut dep_names = Vec::new();
            for dep in deps.split_whitespace() {
                match name_from_path(dep) {
                    Some(d) => dep_names.push(d),
                    None => self.warn(FILE, n, format!("dependency `{dep}` is not a module file")),
                }
            }
            if self.modules.contains_key(&name) {
                // depmod never writes a module twice; keep the first, as kmod does
                self.warn(FILE, n, format!("module `{name}` listed again, ignored"));
                continue;
            }
            let module = Module {
                path: path.to_string(),
                deps: dep_names,
            };
            self.modules.insert(name, module);
        }
    }

    fn parse_builtin(&mut self, text: &str) {
        for (n, line) in data_lines(text) {
            match name_from_path(line) {
                Some(name) => {
                    self.builtin.insert(name);
                }
                None => self.warn(
                    "modules.builtin",
                    n,
                    format!("`{line}` is not a module file"),
                ),
            }
        }
    }

    fn parse_alias(&mut self, text: &str) {
        for (n, line) in data_lines(text) {
            match alias_words(line) {
                Some((pattern, module)) => self.aliases.push(Alias {
                    pattern: pattern.to_string(),
                    module: normalize(module),
                }),
                None => self.warn(
                    "modules.alias",
                    n,
                    format!("expected `alias PATTERN MODULE`, found `{line}`"),
                ),
            }
        }
    }

    /// The path (relative to the modules directory) of a module, by name (`-` or `_`).
    pub fn path_of(&self, name: &str) -> Option<&str> {
        self.modules.get(&normalize(name)).map(|m| m.path.as_str())
    }

    /// Whether a module is built into the kernel (listed in `modules.builtin`).
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    /// Lines of the index files that were skipped.
    pub fn warnings(&self) -> &[IndexWarning] {
        &self.warnings
    }

    /// Every module whose alias pattern matches `modalias`, deduplicated, in file order
    /// (libkmod loads all of them, not just the first). Only the patterns the alias index
    /// finds for it are tried: the cost grows with the modalias, not with the patterns.
    pub fn lookup_alias(&self, modalias: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for number in self.alias_index.candidates(modalias) {
            let Some(alias) = usize::try_from(number)
                .ok()
                .and_then(|n| self.aliases.get(n))
            else {
                continue;
            };
            if fnmatch(&alias.pattern, modalias) && !found.contains(&alias.module) {
                found.push(alias.module.clone());
            }
        }
        found
    }

    /// [`Self::lookup_alias`] by trying every pattern, as before the alias index: the reference
    /// the index is tested and benchmarked against.
    pub fn lookup_alias_linear(&self, modalias: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for alias in &self.aliases {
            // The literal start of a pattern (`pci:v00001AF4d`) rules out most aliases without
            // running fnmatch.
            if !modalias.starts_with(literal_prefix(&alias.pattern)) {
                continue;
            }
            if fnmatch(&alias.pattern, modalias) && !found.contains(&alias.module) {
                found.push(alias.module.clone());
            }
        }
        found
    }

    /// How many alias patterns the index holds.
    pub fn alias_count(&self) -> usize {
        self.aliases.len()
    }

    /// Whether `name` is a module, a built-in module or an alias of one: what can be asked for.
    pub fn knows(&self, name: &str) -> bool {
        self.path_of(name).is_some() || self.is_builtin(name) || !self.lookup_alias(name).is_empty()
    }
}

/// The pattern and module of an `alias PATTERN MODULE` line, split as `split_whitespace`
/// splits it. A line as depmod writes it (single spaces, printable ASCII) is split at its
/// spaces without decoding characters: for a whole tree's tens of thousands of aliases the
/// general split was half of the init's load.
fn alias_words(line: &str) -> Option<(&str, &str)> {
    let plain = |word: &str| !word.is_empty() && word.bytes().all(|b| b.is_ascii_graphic());
    let simple = line
        .strip_prefix("alias ")
        .and_then(|rest| rest.split_once(' '))
        .filter(|(pattern, module)| plain(pattern) && plain(module));
    if simple.is_some() {
        return simple;
    }
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("alias"), Some(pattern), Some(module), None) => Some((pattern, module)),
        _ => None,
    }
}

/// The part of an fnmatch pattern before its first special character: every text the pattern
/// matches starts with it.
fn literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(['*', '?', '[', '\\']).unwrap_or(pattern.len());
    pattern.get(..end).unwrap_or("")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const DEP: &str = "\
# generated by a test
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz kernel/drivers/virtio/virtio_pci_legacy_dev.ko.xz kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko

kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko.xz:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko:
kernel/fs/fat/vfat.ko.zst: kernel/fs/fat/fat.ko.zst
kernel/fs/fat/fat.ko.zst:
kernel/fs/nls/nls_cp437.ko.gz:
kernel/drivers/spi/spi-bcm2835.ko:
kernel/x/needs_ghost.ko: kernel/x/ghost.ko
kernel/x/needs_builtin.ko: kernel/fs/ext4/ext4.ko kernel/x/a.ko
kernel/x/a.ko: kernel/x/b.ko
kernel/x/b.ko: kernel/x/c.ko
kernel/x/c.ko: kernel/x/a.ko
kernel/x/self.ko: kernel/x/self.ko
";

    pub(crate) const BUILTIN: &str = "kernel/fs/ext4/ext4.ko\nkernel/drivers/char/mem-x.ko\n\n";

    pub(crate) const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_pci
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000002v* virtio_blk
alias of:N*T*Cbrcm,bcm2835-spi spi-bcm2835
alias fs-vfat vfat
alias virtio:d0000000[1-3]v* virtio-blk
alias broken line here too
";

    pub(crate) fn index() -> ModuleIndex {
        ModuleIndex::parse(DEP, BUILTIN, ALIAS)
    }

    pub(crate) fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_from_paths() {
        let cases = [
            ("kernel/drivers/block/virtio_blk.ko", Some("virtio_blk")),
            ("kernel/drivers/spi/spi-bcm2835.ko.xz", Some("spi_bcm2835")),
            ("a.ko.zst", Some("a")),
            ("dir/a.ko.gz", Some("a")),
            ("dir/a.o", None),
            ("dir/.ko", None),
            ("dir/a.ko.bz2", None),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(name_from_path(path).as_deref(), want, "{path}");
        }
        assert_eq!(normalize("snd-bcm2835"), "snd_bcm2835");
    }

    #[test]
    fn paths_and_builtin() {
        let idx = index();
        let cases = [
            ("virtio_blk", Some("kernel/drivers/block/virtio_blk.ko")),
            ("virtio-blk", Some("kernel/drivers/block/virtio_blk.ko")),
            ("vfat", Some("kernel/fs/fat/vfat.ko.zst")),
            ("spi_bcm2835", Some("kernel/drivers/spi/spi-bcm2835.ko")),
            ("nls-cp437", Some("kernel/fs/nls/nls_cp437.ko.gz")),
            ("ext4", None),
            ("nonesuch", None),
        ];
        for (name, want) in cases {
            assert_eq!(idx.path_of(name), want, "{name}");
        }
        assert!(idx.is_builtin("ext4"));
        assert!(idx.is_builtin("mem_x"));
        assert!(idx.is_builtin("mem-x"));
        assert!(!idx.is_builtin("vfat"));
    }

    #[test]
    fn warnings_for_bad_lines() {
        let idx = ModuleIndex::parse(
            "no colon here\nfoo.txt: a.ko\nb.ko: c.txt\nb.ko:\n",
            "\nnot-a-module\n",
            "alias x\n",
        );
        let got: Vec<String> = idx.warnings().iter().map(|w| w.to_string()).collect();
        assert_eq!(
            got,
            vec![
                "modules.dep:1: no `:` in `no colon here`",
                "modules.dep:2: `foo.txt` is not a module file",
                "modules.dep:3: dependency `c.txt` is not a module file",
                "modules.dep:4: module `b` listed again, ignored",
                "modules.builtin:2: `not-a-module` is not a module file",
                "modules.alias:1: expected `alias PATTERN MODULE`, found `alias x`",
            ]
        );
        assert_eq!(idx.path_of("b"), Some("b.ko"));
        assert!(index().warnings().len() == 1);
    }

    #[test]
    fn alias_lookup() {
        let idx = index();
        let cases: &[(&str, &[&str])] = &[
            (
                "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
                &["virtio_pci"],
            ),
            (
                "pci:v00001AF4d00001042sv00001AF4sd00001100bc01sc00i00",
                &["virtio_pci"],
            ),
            ("virtio:d00000002v00001AF4", &["virtio_blk"]),
            ("virtio:d00000003v00001AF4", &["virtio_blk"]),
            ("virtio:d00000004v00001AF4", &[]),
            ("of:NspiT(null)Cbrcm,bcm2835-spi", &["spi_bcm2835"]),
            ("fs-vfat", &["vfat"]),
            ("pci:v00008086d00001237sv0000sd0000bc06sc00i00", &[]),
            ("", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(idx.lookup_alias(text), strings(want), "{text}");
        }
        assert_eq!(idx.aliases.len(), 6);
    }

    #[test]
    fn alias_prefixes_and_knowing_names() {
        let cases = [
            ("pci:v00001AF4d*sv*", "pci:v00001AF4d"),
            ("fs-vfat", "fs-vfat"),
            ("virtio:d0000000[1-3]v*", "virtio:d0000000"),
            ("a\\*b", "a"),
            ("?x", ""),
            ("", ""),
        ];
        for (pattern, want) in cases {
            assert_eq!(literal_prefix(pattern), want, "{pattern}");
        }
        let idx = index();
        assert!(idx.knows("vfat") && idx.knows("fs-vfat") && idx.knows("ext4"));
        assert!(!idx.knows("fs-ntfs"));
    }

    #[test]
    fn alias_lines_split_as_split_whitespace_splits_them() {
        for line in [
            "alias pci:v*d* virtio_pci",
            "alias  pci:v*d*\tvirtio_pci",
            "alias pci:v*d*\u{a0}virtio_pci",
            "alias é* m",
            "alias a\u{b}b m",
            "alias a b c",
            "alias a",
            "alias a ",
            "alias",
            "aliasx a b",
            "alias\u{85}a b",
        ] {
            let words: Vec<&str> = line.split_whitespace().collect();
            let want = match words.as_slice() {
                ["alias", pattern, module] => Some((*pattern, *module)),
                _ => None,
            };
            assert_eq!(alias_words(line), want, "{line:?}");
        }
    }

    #[test]
    fn the_packed_alias_index_gives_the_same_index() {
        let packed = pack_alias_index(ALIAS);
        let (read, origin) = ModuleIndex::parse_with_packed(DEP, BUILTIN, ALIAS, Some(&packed));
        assert_eq!(origin, AliasIndexOrigin::Packed);
        assert_eq!(read, index());
        let (built, origin) = ModuleIndex::parse_with_packed(DEP, BUILTIN, ALIAS, None);
        assert_eq!((built, origin), (index(), AliasIndexOrigin::Built(None)));
        // modules.alias edited after packing: built, with why
        let edited = ALIAS.replace("fs-vfat", "fs-msdos");
        let (built, origin) = ModuleIndex::parse_with_packed(DEP, BUILTIN, &edited, Some(&packed));
        assert!(
            matches!(origin, AliasIndexOrigin::Built(Some(PackedError::Stale(_)))),
            "{origin:?}"
        );
        assert_eq!(built.lookup_alias("fs-msdos"), ["vfat"]);
        assert_eq!(built, ModuleIndex::parse(DEP, BUILTIN, &edited));
    }
}
