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
//! candidates for a modalias are the patterns whose key occurs in it: one binary search per
//! position and key length, whatever the number of patterns, then `fnmatch` on the few found.

use std::collections::BTreeMap;

/// Longest key: long enough to tell `Cbrcm,bcm2835-sdhost` from `Cbrcm,bcm2835-aux`, short
/// enough that a lookup costs at most this many binary searches per position.
pub const KEY_LEN: usize = 16;

/// Patterns by key, for [`AliasIndex::candidates`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AliasIndex {
    /// (key, pattern number), sorted by key then number; keys are at most [`KEY_LEN`] bytes.
    keys: Vec<(Box<[u8]>, u32)>,
    /// Bit `n` set when some key is `n` bytes long.
    key_lengths: u32,
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
                Some(key) => {
                    index.key_lengths |= 1 << key.len();
                    index.keys.push((key.into(), number));
                }
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
            let rest = text.get(start..).unwrap_or_default();
            for len in 1..=KEY_LEN.min(rest.len()) {
                if self.key_lengths & (1 << len) == 0 {
                    continue;
                }
                let Some(needle) = rest.get(..len) else {
                    break;
                };
                let first = self.keys.partition_point(|(key, _)| &**key < needle);
                let same = self.keys.get(first..).unwrap_or_default();
                found.extend(
                    same.iter()
                        .take_while(|(key, _)| &**key == needle)
                        .map(|(_, number)| *number),
                );
            }
        }
        found.sort_unstable();
        found.dedup();
        found
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
}
