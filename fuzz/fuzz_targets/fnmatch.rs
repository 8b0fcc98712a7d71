//! Fuzz target `fnmatch`: the init's `fnmatch` (modules.alias patterns against modaliases)
//! against glibc's `fnmatch(3)`, which libkmod uses: they must agree on every pattern and
//! text. The input is `pattern\0text`. Only ASCII without `[:`, `[=`, `[.` (POSIX classes, not
//! in kmod's aliases and not supported by the init) is compared: glibc in the C locale
//! matches bytes, the init characters.
#![no_main]

use boxinit::fnmatch::fnmatch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, subject) = text.split_once('\0').unwrap_or((text, ""));
    let ours = fnmatch(pattern, subject);
    let comparable = text.is_ascii()
        && !subject.contains('\0')
        && !["[:", "[=", "[."].iter().any(|s| pattern.contains(s));
    if !comparable {
        return;
    }
    if let Some(reference) = boxinit_fuzz::glibc_fnmatch(pattern, subject) {
        assert_eq!(
            ours, reference,
            "fnmatch({pattern:?}, {subject:?}): boxinit says {ours}, glibc says {reference}"
        );
    }
});
