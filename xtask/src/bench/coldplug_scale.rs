//! Coldplug at scale: a whole Debian kernel's alias list (every module of the tree, indexed by
//! xtask as for `--modules all`) against a few hundred devices' modaliases, resolved by the
//! init's own code (`boxinit::devices::modindex`), once through the alias index and once by
//! trying every pattern as before it. The index is the one xtask packs beside
//! `modules.alias` (`modules.alias.boxinit`), read back as the init reads it; the load is
//! also timed building it instead, as the init does without that file. `cargo xtask test`
//! checks that the packed index is the built one and that both lookups give the same modules
//! for every device ([`check`]); `cargo xtask bench` times them ([`measure`]).
//!
//! The devices: the modaliases read from the QEMU machines the scenarios boot
//! (`bench/modaliases/*.txt`: `pc`, `virt`, `raspi3b`), plus generated ones of the same
//! shapes: the real ones with their hex digits changed, and the kernel's own alias patterns
//! with their wildcards filled in (devices that some module claims).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use boxinit::devices::modindex::{self, AliasIndexOrigin, ModuleIndex};

use crate::pack::modinfo::ModIndex;
use crate::tools::arch::Arch;

/// How many devices the benchmark resolves.
pub const DEVICES: usize = 300;

/// The modaliases recorded from QEMU's machines (`find /sys/devices -name modalias`).
const REAL: &[(&str, &str)] = &[
    ("pc", include_str!("../../../bench/modaliases/pc.txt")),
    ("virt", include_str!("../../../bench/modaliases/virt.txt")),
    (
        "raspi3b",
        include_str!("../../../bench/modaliases/raspi3b.txt"),
    ),
];

/// The whole tree's `modules.alias`, as the initramfs gets it with `--modules all`.
pub fn full_alias_text(tree: &ModIndex) -> String {
    let names: Vec<&String> = tree.modules.keys().collect();
    tree.modules_alias(&names)
}

/// The machines' recorded modaliases for `arch` (pc for x86_64; virt and raspi3b for aarch64).
pub fn real_devices(arch: Arch) -> Vec<String> {
    let machines: &[&str] = match arch {
        Arch::X86_64 => &["pc"],
        Arch::Aarch64 => &["virt", "raspi3b"],
    };
    let mut out: Vec<String> = Vec::new();
    for (name, text) in REAL {
        if machines.contains(name) {
            for line in text.lines().map(str::trim) {
                if !line.is_empty() && !line.starts_with('#') && !out.iter().any(|l| l == line) {
                    out.push(line.to_string());
                }
            }
        }
    }
    out
}

/// [`DEVICES`] modaliases: the real ones, then variants of them (hex digits changed), then
/// alias patterns with their wildcards filled in, alternating; the same list on every run.
pub fn devices(arch: Arch, alias_text: &str) -> Vec<String> {
    let real = real_devices(arch);
    let patterns: Vec<&str> = alias_text
        .lines()
        .filter_map(|l| l.strip_prefix("alias "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut random = Lcg(0x5eed);
    let mut out = real.clone();
    while out.len() < DEVICES {
        let generated = match (out.len() % 2, real.is_empty(), patterns.is_empty()) {
            (0, false, _) | (_, false, true) => {
                let base = &real[random.below(real.len())];
                vary_hex(base, &mut random)
            }
            (_, _, false) => fill_wildcards(patterns[random.below(patterns.len())], &mut random),
            (_, true, true) => break,
        };
        out.push(generated);
    }
    out
}

/// `text` with about a third of its hexadecimal digits after the bus name replaced.
fn vary_hex(text: &str, random: &mut Lcg) -> String {
    let start = text.find(':').map_or(0, |i| i + 1);
    text.char_indices()
        .map(
            |(i, c)| match i >= start && c.is_ascii_hexdigit() && random.below(3) == 0 {
                true => char::from(b"0123456789ABCDEF"[random.below(16)]),
                false => c,
            },
        )
        .collect()
}

/// A text `pattern` matches: `*` becomes nothing or a hex digit or two, `?` a hex digit, a
/// bracket expression its first member, `\x` the character x.
fn fill_wildcards(pattern: &str, random: &mut Lcg) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                for _ in 0..random.below(3) {
                    out.push(char::from(b"0123456789ABCDEF"[random.below(16)]));
                }
            }
            '?' => out.push(char::from(b"0123456789ABCDEF"[random.below(16)])),
            '[' => {
                let mut members: Vec<char> = Vec::new();
                for m in chars.by_ref() {
                    if m == ']' && !members.is_empty() {
                        break;
                    }
                    members.push(m);
                }
                let negated = matches!(members.first(), Some('!' | '^'));
                match (negated, members.get(usize::from(negated))) {
                    (false, Some(first)) => out.push(*first),
                    // a character outside the set: one that no set in an alias names
                    _ => out.push('~'),
                }
            }
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// A small fixed-seed generator: the same devices on every run and every machine.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// The benchmark's inputs for one architecture: the full alias list with the alias index
/// xtask packs for it, the index as the init loads them, and the devices.
pub struct Setup {
    pub arch: Arch,
    /// How many modules the tree has.
    pub modules: usize,
    /// The full `modules.alias`.
    pub alias_text: String,
    /// Its packed alias index, as the initramfs gets it.
    pub packed: Vec<u8>,
    /// The index with the packed alias index read back, as the init loads it.
    pub index: ModuleIndex,
    /// Where [`Self::index`]'s alias index came from (the packed one, else [`check`] fails).
    pub origin: AliasIndexOrigin,
    pub devices: Vec<String>,
}

/// The [`Setup`] for `arch` from xtask's index of its whole module tree.
pub fn setup(arch: Arch, tree: &ModIndex) -> Setup {
    let alias_text = full_alias_text(tree);
    let packed = modindex::pack_alias_index(&alias_text);
    let (index, origin) = ModuleIndex::parse_with_packed("", "", &alias_text, Some(&packed));
    let devices = devices(arch, &alias_text);
    Setup {
        arch,
        modules: tree.modules.len(),
        alias_text,
        packed,
        index,
        origin,
        devices,
    }
}

/// The packed alias index reads back as the one built at load, and every device resolves to
/// the same modules through the index as by the linear scan; the error names the first
/// device that does not.
pub fn check(setup: &Setup) -> Result<usize> {
    if setup.origin != AliasIndexOrigin::Packed {
        bail!(
            "{}: the packed alias index was not read back: {:?}",
            setup.arch,
            setup.origin
        );
    }
    if setup.index != ModuleIndex::parse("", "", &setup.alias_text) {
        bail!(
            "{}: the packed alias index differs from the one built at load",
            setup.arch
        );
    }
    let mut matched = 0;
    for device in &setup.devices {
        let indexed = setup.index.lookup_alias(device);
        let linear = setup.index.lookup_alias_linear(device);
        if indexed != linear {
            bail!(
                "{}: the alias index gives {indexed:?} for {device:?}, the linear scan {linear:?}",
                setup.arch
            );
        }
        matched += usize::from(!indexed.is_empty());
    }
    Ok(matched)
}

/// Timings of resolving every device, best of `rounds`.
#[derive(Debug, Clone)]
pub struct Measured {
    pub arch: Arch,
    pub modules: usize,
    pub aliases: usize,
    pub alias_bytes: usize,
    pub devices: usize,
    /// Devices some module claims.
    pub matched: usize,
    /// Parsing `modules.alias` and reading the packed alias index, as the init loads them.
    pub load_packed: Duration,
    /// Parsing `modules.alias` and building the alias index: the init without the packed one.
    pub load_built: Duration,
    pub linear: Duration,
    pub indexed: Duration,
}

/// Checks, then times both loads and both lookups over all devices (best of `rounds`).
pub fn measure(setup: &Setup, rounds: usize) -> Result<Measured> {
    let matched = check(setup)?;
    let best = |run: &dyn Fn()| {
        (0..rounds.max(1))
            .map(|_| {
                let started = Instant::now();
                run();
                started.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let lookups = |lookup: &dyn Fn(&str) -> Vec<String>| {
        best(&|| {
            for device in &setup.devices {
                std::hint::black_box(lookup(device));
            }
        })
    };
    let text = setup.alias_text.as_str();
    Ok(Measured {
        arch: setup.arch,
        modules: setup.modules,
        aliases: setup.index.alias_count(),
        alias_bytes: text.len(),
        devices: setup.devices.len(),
        matched,
        load_packed: best(&|| {
            std::hint::black_box(ModuleIndex::parse_with_packed(
                "",
                "",
                text,
                Some(&setup.packed),
            ));
        }),
        load_built: best(&|| {
            std::hint::black_box(ModuleIndex::parse("", "", text));
        }),
        linear: lookups(&|d| setup.index.lookup_alias_linear(d)),
        indexed: lookups(&|d| setup.index.lookup_alias(d)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_patterns_match_their_pattern() {
        let mut random = Lcg(1);
        for pattern in [
            "pci:v00008086d*sv*sd*bc01sc06i01*",
            "of:N*T*Cbrcm,bcm2835-sdhostC*",
            "usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*",
            "acpi*:PNP0A0[38]:*",
            "a[!x]b\\*c?",
        ] {
            let text = fill_wildcards(pattern, &mut random);
            assert!(
                boxinit::fnmatch::fnmatch(pattern, &text),
                "{pattern} {text}"
            );
        }
    }

    #[test]
    fn the_devices_are_the_same_on_every_run() {
        let text = "alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_pci\nalias of:N*T*Cfoo virtio_mmio\n";
        let a = devices(Arch::Aarch64, text);
        assert_eq!(a, devices(Arch::Aarch64, text));
        assert_eq!(a.len(), DEVICES);
        assert!(!real_devices(Arch::X86_64).is_empty());
        assert!(!real_devices(Arch::Aarch64).is_empty());
    }
}
