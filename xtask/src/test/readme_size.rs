//! README's size of the static `/init` ("740,592 bytes (723 KiB) for x86_64", *Size*) against
//! the binary `cargo xtask test` has just built, so the figure cannot go stale; rewritten with
//! `UPDATE_README=1`. Only the stable build's figures of the architectures built in the run.

use anyhow::{bail, Context as _, Result};

use crate::progress;
use crate::tools::arch::Arch;

/// The words README writes a size in: `740,592 bytes (723 KiB) for x86_64`.
fn phrase(bytes: u64, arch: Arch) -> String {
    format!(
        "{} bytes ({} KiB) for {}",
        thousands(bytes),
        (bytes + 512) / 1024,
        arch.name()
    )
}

/// `740592` as `740,592`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// README's text with the size of `arch`'s `/init` written as `bytes`: the first
/// `N bytes (K KiB) for ARCH` of the *Size* section's first paragraph replaced. None when
/// there is none.
fn rewrite(readme: &str, arch: Arch, bytes: u64) -> Option<String> {
    let heading = readme.find("## Size")?;
    let start = heading + readme.get(heading..)?.find("\n\n")? + 2;
    let end = start + readme.get(start..)?.find("\n\n")?;
    let suffix = format!(" for {}", arch.name());
    let at = start + readme.get(start..end)?.find(&suffix)?;
    // back to the number before the last ` bytes` (`740,592 bytes\n(723 KiB)`)
    let bytes_word = readme.get(start..at)?.rfind(" bytes")? + start;
    let number = readme
        .get(..bytes_word)?
        .rfind(|c: char| !(c.is_ascii_digit() || c == ','))?
        + 1;
    Some(format!(
        "{}{}{}",
        readme.get(..number)?,
        phrase(bytes, arch),
        readme.get(at + suffix.len()..)?
    ))
}

/// Checks (or with `update`, rewrites) README's size of `arch`'s stable `/init`.
pub fn check(arch: Arch, init: &std::path::Path, update: bool) -> Result<()> {
    let bytes = std::fs::metadata(init)
        .with_context(|| format!("cannot read {}", init.display()))?
        .len();
    let path = crate::workspace_root().join("README.md");
    let readme = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let Some(rewritten) = rewrite(&readme, arch, bytes) else {
        bail!("README.md's Size section names no `N bytes (K KiB) for {arch}`");
    };
    if rewritten == readme {
        progress!("README.md's size of /init for {arch} agrees: {bytes} bytes");
        return Ok(());
    }
    if update {
        std::fs::write(&path, rewritten)?;
        progress!("wrote the size of /init for {arch} into README.md: {bytes} bytes");
        return Ok(());
    }
    bail!(
        "README.md's size of /init for {arch} is stale: the build is {}; rewrite it with \
         `UPDATE_README=1 cargo xtask test` and review the diff",
        phrase(bytes, arch)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_is_found_and_rewritten() {
        let readme = "# x\n\n## Size\n\nTwo builds. `/init`: 740,592 bytes\n(723 KiB) for \
                      x86_64 and 627,336 bytes (613 KiB) for aarch64 (release).\n\nmore 1 bytes \
                      (1 KiB) for x86_64\n";
        // the line break inside the phrase is not kept: the figure is rewritten whole
        let x86 = rewrite(readme, Arch::X86_64, 741_232).unwrap();
        assert!(
            x86.contains("`/init`: 741,232 bytes (724 KiB) for x86_64 and 627,336"),
            "{x86}"
        );
        assert!(x86.ends_with("more 1 bytes (1 KiB) for x86_64\n"));
        let arm = rewrite(&x86, Arch::Aarch64, 627_336).unwrap();
        assert_eq!(arm, x86);
        assert_eq!(rewrite("no size here", Arch::X86_64, 1), None);
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        // the real README has both figures where the check looks
        let real = std::fs::read_to_string(crate::workspace_root().join("README.md")).unwrap();
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let text = rewrite(&real, arch, 1_000_000).unwrap();
            assert!(text.contains("1,000,000 bytes (977 KiB) for"), "{arch}");
        }
    }
}
