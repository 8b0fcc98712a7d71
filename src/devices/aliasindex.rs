//! The alias index: which `modules.alias` patterns can match a device's modalias, found without
//! trying every pattern. Pure; `modindex` owns the patterns and runs `fnmatch` on what this
//! returns.
//!
//! Why this structure (ARCHITECTURE.md has the measurements): a distribution kernel's module
//! tree has tens of thousands of alias patterns, and a literal-prefix trie (what kmod's
//! `modules.alias.bin` is) narrows poorly where it matters on a Pi: every device-tree pattern
//! starts `of:N*T*C`, so a prefix walk leaves thousands of them to `fnmatch` for each device.
//! Instead each pattern is filed under one *key*: the start (at most [`KEY_LEN`] bytes) of one
//! of its literal runs, the run whose key the fewest other patterns share: `C` + the compatible
//! string for device-tree patterns, the vendor and device for PCI and USB ones, the interface
//! class for class-matching USB ones. Every text the pattern matches contains its key, so the
//! candidates for a modalias are the patterns whose key occurs in it, found from each position
//! by narrowing the sorted keys one byte at a time (a few binary searches over a range that is
//! empty after two or three bytes for most positions), whatever the number of patterns; then
//! `fnmatch` on the few found.
//!
//! Choosing the keys needs every pattern (how many others share each run), which for a whole
//! distribution's tree is most of the load's cost: the init's size-optimised build loaded
//! Debian's 25,653 arm64 aliases in 40 ms natively building the index, and loads them in 12 ms
//! reading it packed (BENCHMARKS.md); QEMU multiplies both. So xtask builds the index when it packs the
//! initramfs and writes it beside `modules.alias` as [`PACKED_FILE`] ([`AliasIndex::packed`]);
//! the init reads it back ([`AliasIndex::from_packed`]) and builds only when it is missing or
//! is not of this `modules.alias` (its header names the pattern count and FNV-1a 64 of the
//! file's bytes).
//!
//! The packed form is text, a line each: the header `boxinit-alias-index 1 PATTERNS FNV1A64`,
//! then `* NUMBER` for a pattern to try on every modalias, then `KEY NUMBER` sorted as the index
//! is. Text because a line split at its last space costs no more to read than a binary record
//! costs to bounds-check (what the load pays for is a key's allocation either way), the parser
//! is a dozen lines, and `less` shows why a pattern is a device's candidate. It is read as
//! bytes: a key cut at [`KEY_LEN`] may end inside a UTF-8 character, and never holds a space
//! (`modules.alias` patterns are words). The reader trusts nothing but the header: each key
//! must be a literal run's start of its own pattern and each pattern filed exactly once, so a
//! hand-edited file can make lookups slower, never wrong; anything else is refused.

use std::collections::BTreeMap;
use std::fmt;

/// Longest key: long enough to tell `Cbrcm,bcm2835-sdhost` from `Cbrcm,bcm2835-aux`, short
/// enough that a lookup narrows at most this many times per position.
pub const KEY_LEN: usize = 16;

/// Patterns by key, for [`AliasIndex::candidates`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AliasIndex {
    /// (key, pattern number), sorted by key then number; keys are at most [`KEY_LEN`] bytes.
    keys: Vec<(Box<[u8]>, u32)>,
    /// Patterns without any literal run (`*`): candidates for every modalias.
    always: Vec<u32>,
}

impl AliasIndex {
    /// Indexes `patterns`, numbered in order from 0.
    pub fn build<'a>(patterns: impl Iterator<Item = &'a str> + Clone) -> AliasIndex {
        // How many patterns have each key among their candidates' keys.
        let mut shared: BTreeMap<&[u8], u32> = BTreeMap::new();
        for pattern in patterns.clone() {
            let mut keys: Vec<&[u8]> = run_keys(pattern).collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                *shared.entry(key).or_insert(0) += 1;
            }
        }
        let mut index = AliasIndex::default();
        for (number, pattern) in (0u32..).zip(patterns) {
            let best = run_keys(pattern).min_by_key(|key| {
                let count = shared.get(key).copied().unwrap_or(0);
                (count, usize::MAX - key.len())
            });
            match best {
                Some(key) => index.keys.push((key.into(), number)),
                None => index.always.push(number),
            }
        }
        index.keys.sort_unstable();
        index
    }

    /// The numbers of the patterns that may match `modalias`, ascending: every pattern that
    /// matches is among them (most of the others are not).
    pub fn candidates(&self, modalias: &str) -> Vec<u32> {
        let text = modalias.as_bytes();
        let mut found = self.always.clone();
        for start in 0..text.len() {
            self.push_keys_starting(text.get(start..).unwrap_or_default(), &mut found);
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Pushes the numbers of the patterns whose key `text` starts with. The keys sharing
    /// `text`'s first `depth` bytes are one range of the sorted keys, those exactly that long
    /// at its front; each byte narrows it by two binary searches, until it is empty.
    fn push_keys_starting(&self, text: &[u8], found: &mut Vec<u32>) {
        let mut range: &[(Box<[u8]>, u32)] = &self.keys;
        let mut depth = 0;
        loop {
            let exact = range.partition_point(|(key, _)| key.len() == depth);
            let (equal, longer) = range.split_at(exact);
            found.extend(equal.iter().map(|(_, number)| *number));
            let Some(byte) = text.get(depth).filter(|_| depth < KEY_LEN) else {
                return;
            };
            // every key left is longer than `depth`: sorted by its byte there
            let below = longer.partition_point(|(key, _)| key.get(depth) < Some(byte));
            let from = longer.get(below..).unwrap_or_default();
            let same = from.partition_point(|(key, _)| key.get(depth) == Some(byte));
            range = from.get(..same).unwrap_or_default();
            if range.is_empty() {
                return;
            }
            depth += 1;
        }
    }

    /// How many patterns are indexed.
    pub fn len(&self) -> usize {
        self.keys.len() + self.always.len()
    }

    /// Whether no pattern is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The file beside `modules.alias` that holds the index xtask built when it packed the
/// initramfs ([`AliasIndex::packed`]).
pub const PACKED_FILE: &str = "modules.alias.boxinit";

/// The packed form's header starts with this word.
const PACKED_MAGIC: &str = "boxinit-alias-index";

/// The packed form's version: bump it when the format or the choice of keys changes, so that
/// an init never reads another xtask's file as its own.
const PACKED_VERSION: u32 = 1;

/// The most bytes of a bad line quoted in a message.
const QUOTE_MAX: usize = 48;

/// Why a packed index was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackedError {
    /// Made for another `modules.alias` (other patterns or bytes) or in another format version:
    /// a tree edited after packing, or an older xtask.
    Stale(String),
    /// Not what xtask writes: the line (1-based; 0 for the file as a whole) and what is wrong.
    Malformed { line: usize, message: String },
}

impl fmt::Display for PackedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackedError::Stale(why) => write!(f, "{PACKED_FILE} is stale: {why}"),
            PackedError::Malformed { line: 0, message } => write!(f, "{PACKED_FILE}: {message}"),
            PackedError::Malformed { line, message } => {
                write!(f, "{PACKED_FILE}:{line}: {message}")
            }
        }
    }
}

/// FNV-1a 64 of `bytes` (<http://www.isthe.com/chongo/tech/comp/fnv/>): enough to tell one
/// `modules.alias` from another, one multiply a byte.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl AliasIndex {
    /// The packed form of this index (module doc) for the `modules.alias` whose bytes are
    /// `alias_file`, whose patterns it indexes: what xtask writes as [`PACKED_FILE`].
    pub fn packed(&self, alias_file: &[u8]) -> Vec<u8> {
        let header = format!(
            "{PACKED_MAGIC} {PACKED_VERSION} {} {:016x}\n",
            self.len(),
            fnv1a64(alias_file)
        );
        let mut out = header.into_bytes();
        for number in &self.always {
            out.extend_from_slice(format!("* {number}\n").as_bytes());
        }
        for (key, number) in &self.keys {
            out.extend_from_slice(key);
            out.extend_from_slice(format!(" {number}\n").as_bytes());
        }
        out
    }

    /// The index read back from its packed form, for the `modules.alias` whose bytes are
    /// `alias_file` and whose patterns, numbered from 0, are `patterns`. Refused (nothing
    /// built) when the header is not of this file or a line is not what [`Self::packed`]
    /// writes for these patterns.
    pub fn from_packed(
        packed: &[u8],
        alias_file: &[u8],
        patterns: &[&str],
    ) -> Result<AliasIndex, PackedError> {
        let mut lines = packed.split(|b| *b == b'\n');
        check_header(lines.next().unwrap_or_default(), patterns.len(), alias_file)?;
        let mut filed = vec![false; patterns.len()];
        let mut index = AliasIndex::default();
        for (line_number, line) in (2..).zip(lines) {
            if line.is_empty() {
                continue;
            }
            let malformed = |message: String| PackedError::Malformed {
                line: line_number,
                message,
            };
            let (key, number) = split_entry(line).ok_or_else(|| {
                malformed(format!("expected `KEY NUMBER`, found `{}`", quote(line)))
            })?;
            let (slot, pattern) = usize::try_from(number)
                .ok()
                .and_then(|n| Some((filed.get_mut(n)?, patterns.get(n)?)))
                .ok_or_else(|| {
                    malformed(format!(
                        "pattern {number} does not exist (modules.alias has {})",
                        patterns.len()
                    ))
                })?;
            if std::mem::replace(slot, true) {
                return Err(malformed(format!("pattern {number} is filed twice")));
            }
            if key == b"*" {
                if run_keys(pattern).next().is_some() {
                    return Err(malformed(format!(
                        "pattern {number} `{pattern}` has literal runs: it needs a key"
                    )));
                }
                index.always.push(number);
            } else if run_keys(pattern).any(|run| run == key) {
                index.keys.push((key.into(), number));
            } else {
                return Err(malformed(format!(
                    "`{}` is no literal run's start of pattern {number} `{pattern}`",
                    quote(key)
                )));
            }
        }
        if let Some(missing) = filed.iter().position(|f| !f) {
            return Err(PackedError::Malformed {
                line: 0,
                message: format!("pattern {missing} is not filed"),
            });
        }
        // Sorted already when xtask wrote it: then sorting is one pass that checks so.
        index.always.sort_unstable();
        index.keys.sort_unstable();
        Ok(index)
    }
}

/// Refuses a header that is not `boxinit-alias-index VERSION PATTERNS FNV1A64` of this file.
fn check_header(line: &[u8], patterns: usize, alias_file: &[u8]) -> Result<(), PackedError> {
    let malformed = || PackedError::Malformed {
        line: 1,
        message: format!(
            "expected `{PACKED_MAGIC} VERSION PATTERNS FNV1A64`, found `{}`",
            quote(line)
        ),
    };
    let text = std::str::from_utf8(line).map_err(|_| malformed())?;
    let words: Vec<&str> = text.split(' ').collect();
    let [PACKED_MAGIC, version, count, hash] = words.as_slice() else {
        return Err(malformed());
    };
    let version: u32 = version.parse().map_err(|_| malformed())?;
    let count: usize = count.parse().map_err(|_| malformed())?;
    let hash = u64::from_str_radix(hash, 16).map_err(|_| malformed())?;
    if version != PACKED_VERSION {
        return Err(PackedError::Stale(format!(
            "format version {version}, this init reads version {PACKED_VERSION}"
        )));
    }
    let actual = fnv1a64(alias_file);
    if (count, hash) != (patterns, actual) {
        return Err(PackedError::Stale(format!(
            "made for a modules.alias of {count} patterns (fnv1a64 {hash:016x}), \
             this one has {patterns} ({actual:016x})"
        )));
    }
    Ok(())
}

/// `KEY NUMBER` split at the last space; None when there is none or the number is not one.
fn split_entry(line: &[u8]) -> Option<(&[u8], u32)> {
    let space = line.iter().rposition(|b| *b == b' ')?;
    let key = line.get(..space)?;
    let number = std::str::from_utf8(line.get(space + 1..)?).ok()?;
    // `parse` takes a leading `+`, which `packed` never writes
    if key.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((key, number.parse().ok()?))
}

/// The start of an untrusted line, for a message.
fn quote(bytes: &[u8]) -> String {
    let cut = bytes.get(..QUOTE_MAX).unwrap_or(bytes);
    // escaped: the console must not get a file's control characters
    let mut text = String::from_utf8_lossy(cut).escape_debug().to_string();
    if cut.len() < bytes.len() {
        text.push_str("...");
    }
    text
}

/// The key each literal run of `pattern` would give: its first [`KEY_LEN`] bytes.
fn run_keys(pattern: &str) -> impl Iterator<Item = &[u8]> + Clone {
    literal_runs(pattern).map(|run| run.get(..KEY_LEN.min(run.len())).unwrap_or(run))
}

/// The literal runs of an fnmatch pattern: the stretches between `*`, `?`, bracket expressions
/// and escapes, each of which every matching text contains. An escaped character and what
/// follows an unterminated `[` are left out (fewer runs is always safe).
pub fn literal_runs(pattern: &str) -> impl Iterator<Item = &[u8]> + Clone {
    let bytes = pattern.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || loop {
        let rest = bytes.get(at..)?;
        if rest.is_empty() {
            return None;
        }
        let len = rest
            .iter()
            .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
            .unwrap_or(rest.len());
        let run = rest.get(..len)?;
        at += len;
        match bytes.get(at) {
            Some(b'*' | b'?') => at += 1,
            Some(b'\\') => at += 2,
            Some(b'[') => at = bracket_end(bytes, at).unwrap_or(bytes.len()),
            _ => {}
        }
        if !run.is_empty() {
            return Some(run);
        }
    })
}

/// The index after the bracket expression opening at `bytes[open]` (`[`), as `fnmatch` reads
/// it: a `!` or `^` and then a `]` right after the opening are members, not the end. None when
/// it is not terminated.
fn bracket_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if matches!(bytes.get(i), Some(b'!' | b'^')) {
        i += 1;
    }
    if bytes.get(i) == Some(&b']') {
        i += 1;
    }
    while let Some(b) = bytes.get(i) {
        match b {
            b']' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(pattern: &str) -> Vec<&str> {
        literal_runs(pattern)
            .map(|r| std::str::from_utf8(r).unwrap())
            .collect()
    }

    #[test]
    fn literal_runs_skip_wildcards_brackets_and_escapes() {
        assert_eq!(
            runs("pci:v00008086d*sv*sd*bc01sc06i01*"),
            ["pci:v00008086d", "sv", "sd", "bc01sc06i01"]
        );
        assert_eq!(
            runs("of:N*T*Cbrcm,bcm2835-sdhostC*"),
            ["of:N", "T", "Cbrcm,bcm2835-sdhostC"]
        );
        assert_eq!(runs("a[bc]d?e"), ["a", "d", "e"]);
        assert_eq!(runs("a[]x]b[!]]c"), ["a", "b", "c"]);
        assert_eq!(runs("a\\*b"), ["a", "b"]);
        assert_eq!(runs("a[bc"), ["a"]);
        assert_eq!(runs("*"), Vec::<&str>::new());
        assert_eq!(runs(""), Vec::<&str>::new());
    }

    #[test]
    fn keys_are_the_rarest_runs() {
        let patterns = [
            "of:N*T*Cbrcm,bcm2835-sdhost",
            "of:N*T*Cbrcm,bcm2835-sdhostC*",
            "of:N*T*Cbrcm,bcm2835-i2c",
            "*",
        ];
        let index = AliasIndex::build(patterns.iter().copied());
        assert_eq!(index.len(), 4);
        let keys: Vec<(&[u8], u32)> = index.keys.iter().map(|(k, n)| (&k[..], *n)).collect();
        assert!(keys.contains(&(&b"Cbrcm,bcm2835-sd"[..], 0)), "{keys:?}");
        assert!(keys.contains(&(&b"Cbrcm,bcm2835-i2"[..], 2)), "{keys:?}");
        assert_eq!(index.always, [3]);
        assert_eq!(
            index.candidates("of:NmmcT(null)Cbrcm,bcm2835-sdhost"),
            [0, 1, 3]
        );
        assert_eq!(index.candidates("platform:foo"), [3]);
    }

    /// Patterns of every shape a Debian tree has (PCI, USB by id and by class, device tree,
    /// ACPI, virtio, platform, CPU features, escapes and brackets, one without a literal run).
    const PATTERNS: &[&str] = &[
        "pci:v00008086d00001237sv*sd*bc*sc*i*",
        "pci:v00008086d*sv*sd*bc01sc06i01*",
        "pci:v00001AF4d00001041sv*sd*bc*sc*i*",
        "pci:v*d*sv*sd*bc0Csc03i30*",
        "usb:v0B95p1790d*dc*dsc*dp*ic*isc*ip*in*",
        "usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*",
        "usb:v*p*d*dc*dsc*dp*ic03isc01ip01in*",
        "of:N*T*Cbrcm,bcm2835-sdhost",
        "of:N*T*Cbrcm,bcm2835-sdhostC*",
        "of:N*T*Cbrcm,bcm2835-aux",
        "of:N*T*Cbrcm,bcm2835-i2c",
        "of:N*T*Cbrcm,bcm2711-pcie",
        "acpi*:PNP0A0[38]:*",
        "acpi*:QEMU0002:*",
        "virtio:d00000002v*",
        "virtio:d0000000[1-3]v*",
        "platform:bcm2835-wdt",
        "cpu:type:x86,ven*fam*mod*:feature:*0099*",
        "fs-vfat",
        "a\\*b[!]]c",
        "*",
    ];

    fn packed_of(patterns: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let alias_file: Vec<u8> = patterns
            .iter()
            .map(|p| format!("alias {p} m\n"))
            .collect::<String>()
            .into_bytes();
        let packed = AliasIndex::build(patterns.iter().copied()).packed(&alias_file);
        (packed, alias_file)
    }

    fn malformed_line(result: Result<AliasIndex, PackedError>) -> usize {
        match result {
            Err(PackedError::Malformed { line, .. }) => line,
            other => panic!("not malformed: {other:?}"),
        }
    }

    #[test]
    fn the_packed_index_reads_back_as_built() {
        let built = AliasIndex::build(PATTERNS.iter().copied());
        let (packed, alias_file) = packed_of(PATTERNS);
        let text = String::from_utf8(packed.clone()).unwrap();
        let header = format!("boxinit-alias-index 1 21 {:016x}\n", fnv1a64(&alias_file));
        assert!(text.starts_with(&header), "{text}");
        assert!(
            text.contains("\n* 20\n") && text.contains("\nCbrcm,bcm2835-sd 7\n"),
            "{text}"
        );
        let read = AliasIndex::from_packed(&packed, &alias_file, PATTERNS).unwrap();
        assert_eq!(read, built);
        // and what a whole tree looks like: many patterns sharing runs
        let many: Vec<String> = (0..3000)
            .map(|i| format!("of:N*T*Cvendor{},chip-{i:04x}C*", i % 7))
            .chain((0..3000).map(|i| format!("usb:v{i:04X}p*d*dc*dsc*dp*ic*isc*ip*in*")))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let (packed, alias_file) = packed_of(&many);
        let read = AliasIndex::from_packed(&packed, &alias_file, &many).unwrap();
        assert_eq!(read, AliasIndex::build(many.iter().copied()));
    }

    #[test]
    fn another_modules_alias_or_version_is_stale() {
        let (packed, alias_file) = packed_of(PATTERNS);
        let mut edited = alias_file.clone();
        edited.push(b'\n');
        let stale = AliasIndex::from_packed(&packed, &edited, PATTERNS).unwrap_err();
        assert!(matches!(stale, PackedError::Stale(_)), "{stale}");
        assert!(
            stale.to_string().starts_with(
                "modules.alias.boxinit is stale: made for a modules.alias of 21 patterns"
            ),
            "{stale}"
        );
        let fewer = PATTERNS.get(1..).unwrap();
        assert!(matches!(
            AliasIndex::from_packed(&packed, &alias_file, fewer),
            Err(PackedError::Stale(_))
        ));
        let text = String::from_utf8(packed).unwrap();
        let v2 = text.replacen("boxinit-alias-index 1 ", "boxinit-alias-index 2 ", 1);
        let err = AliasIndex::from_packed(v2.as_bytes(), &alias_file, PATTERNS).unwrap_err();
        assert_eq!(
            err,
            PackedError::Stale("format version 2, this init reads version 1".into())
        );
    }

    #[test]
    fn a_packed_index_that_could_mislead_is_refused() {
        let (packed, alias_file) = packed_of(PATTERNS);
        let text = String::from_utf8(packed).unwrap();
        let (header, body) = text.split_once('\n').unwrap();
        let with_body = |body: &str| format!("{header}\n{body}");
        let read = |text: &str| AliasIndex::from_packed(text.as_bytes(), &alias_file, PATTERNS);
        assert_eq!(malformed_line(read("")), 1);
        assert_eq!(
            malformed_line(read(&text.replacen("boxinit", "kmod", 1))),
            1
        );
        // a key that is not its pattern's: pattern 7 would never be a candidate of its device
        let moved = with_body(&body.replace("Cbrcm,bcm2835-sd 7", "Cbrcm,bcm2835-au 7"));
        let err = read(&moved).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "`Cbrcm,bcm2835-au` is no literal run's start of pattern 7 `of:N*T*Cbrcm,bcm2835-sdhost`"
            ),
            "{err}"
        );
        // filed twice, not at all, out of range, a pattern with runs tried on everything
        let twice = with_body(&format!("{body}Cbrcm,bcm2835-sd 7\n"));
        assert!(read(&twice)
            .unwrap_err()
            .to_string()
            .contains("filed twice"));
        let lines: Vec<&str> = body.lines().collect();
        let dropped = with_body(&lines[1..].join("\n"));
        assert_eq!(
            read(&dropped).unwrap_err().to_string(),
            "modules.alias.boxinit: pattern 20 is not filed"
        );
        let beyond = with_body(&body.replace("* 20", "* 21"));
        assert!(read(&beyond)
            .unwrap_err()
            .to_string()
            .contains("pattern 21 does not exist"));
        let star = with_body(&body.replace("Cbrcm,bcm2835-sd 7", "* 7"));
        assert!(read(&star)
            .unwrap_err()
            .to_string()
            .contains("it needs a key"));
        for bad in [
            "Cbrcm 7x",
            "Cbrcm +7",
            "7",
            " 7",
            "Cbrcm 99999999999",
            "\u{1b}[2J",
        ] {
            let line = with_body(&format!("{bad}\n{body}"));
            assert_eq!(malformed_line(read(&line)), 2, "{bad:?}");
        }
        let err = read(&with_body("\u{1b}[2J\n")).unwrap_err().to_string();
        assert!(!err.contains('\u{1b}'), "{err}");
    }

    #[test]
    fn candidates_are_the_patterns_whose_key_occurs_in_the_modalias() {
        let index = AliasIndex::build(PATTERNS.iter().copied());
        let mut modaliases: Vec<String> = PATTERNS.iter().map(|p| p.replace('*', "")).collect();
        modaliases.extend(
            [
                "of:NmmcT(null)Cbrcm,bcm2835-sdhostCbrcm,bcm2835-aux",
                "pci:v00008086d00001237sv00001AF4sd00001100bc06sc00i00",
                "usb:v0B95p1790d0100dc00dsc00dp00icFFisc00ip00in00",
                "acpi:QEMU0002:",
                "",
                "C",
                "pci:v00008086d0000",
            ]
            .map(String::from),
        );
        for modalias in &modaliases {
            let text = modalias.as_bytes();
            let mut want: Vec<u32> = index
                .keys
                .iter()
                .filter(|(key, _)| text.windows(key.len()).any(|w| w == &**key))
                .map(|(_, n)| *n)
                .chain(index.always.iter().copied())
                .collect();
            want.sort_unstable();
            want.dedup();
            assert_eq!(index.candidates(modalias), want, "{modalias}");
        }
    }

    #[test]
    fn another_valid_choice_of_keys_finds_the_same_patterns() {
        let (packed, alias_file) = packed_of(PATTERNS);
        let text = String::from_utf8(packed).unwrap();
        // pattern 1 is filed under its vendor prefix; its class is a valid key too
        let other = text.replace("pci:v00008086d 1\n", "bc01sc06i01 1\n");
        assert_ne!(other, text);
        let read = AliasIndex::from_packed(other.as_bytes(), &alias_file, PATTERNS).unwrap();
        let built = AliasIndex::build(PATTERNS.iter().copied());
        for modalias in [
            "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01",
            "fs-vfat",
        ] {
            assert_eq!(
                read.candidates(modalias),
                built.candidates(modalias),
                "{modalias}"
            );
        }
    }
}
