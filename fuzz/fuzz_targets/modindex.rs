//! Fuzz target `modindex`: the four kmod index files (`modules.dep`, `.builtin`, `.alias`,
//! `.softdep`, separated by NUL bytes) through `ModuleIndex`, then everything the loader asks
//! of it: alias lookups, load plans (cycles, softdeps, missing modules) and parallel levels.
//! Never a panic; a plan loads every module after what it depends on, each once. A fifth part
//! is the body of a packed alias index (`modules.alias.boxinit`) under the header of this
//! `modules.alias`: read or refused, its lookups are the built index's; and the packed index
//! xtask would write reads back as the built one. The alias index finds what trying every
//! pattern finds.
#![no_main]

use std::collections::BTreeSet;

use boxinit::devices::modindex::{self, AliasIndexOrigin, ModuleIndex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let dep = parts.next().unwrap_or("");
    let builtin = parts.next().unwrap_or("");
    let alias = parts.next().unwrap_or("");
    let softdep = parts.next().unwrap_or("");
    let packed_body = parts.next().unwrap_or("");
    let index = ModuleIndex::parse(dep, builtin, alias).with_softdeps(softdep);
    let packed = modindex::pack_alias_index(alias);
    let (read, origin) = ModuleIndex::parse_with_packed(dep, builtin, alias, Some(&packed));
    assert_eq!(origin, AliasIndexOrigin::Packed);
    assert!(
        read.with_softdeps(softdep) == index,
        "the packed index reads back otherwise"
    );
    let header = packed.split(|b| *b == b'\n').next().unwrap_or_default();
    let forged = [header, b"\n", packed_body.as_bytes()].concat();
    let (forged, _) = ModuleIndex::parse_with_packed(dep, builtin, alias, Some(&forged));
    for w in index.warnings() {
        assert!(!w.to_string().contains('\n'), "{w}");
    }
    // Ask for every name and word the files mention, as modprobe and coldplug would.
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == ':' || c == '\0')
        .filter(|w| !w.is_empty())
        .take(64)
        .map(str::to_string)
        .collect();
    for word in &words {
        let found = index.lookup_alias(word);
        assert_eq!(found, index.lookup_alias_linear(word), "{word:?}");
        assert_eq!(forged.lookup_alias(word), found, "{word:?}");
        let _ = index.knows(word);
        let _ = modindex::name_from_path(word);
    }
    let plan = index.load_order(&words);
    let mut names = BTreeSet::new();
    for step in &plan.steps {
        assert!(
            names.insert(step.name.clone()),
            "{} planned twice",
            step.name
        );
        assert_eq!(index.path_of(&step.name), Some(step.path.as_str()));
    }
    let levels = index.levels(&plan);
    let mut seen: Vec<usize> = levels.iter().flatten().copied().collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..plan.steps.len()).collect::<Vec<_>>(),
        "levels lose or repeat a step"
    );
});
