//! Whether a new box or config copied onto the card is complete, before it is ever started.
//! With a `NAME.sha256` beside it (written last: `sha256sum`, `shasum -a 256`,
//! `certutil -hashfile NAME SHA256` or PowerShell's `Get-FileHash` output, any text holding
//! one 64-hex-digit digest) the digest decides. Without one, the file's own structure: an
//! ELF program whole as its tables say (`elf::whole`: the section headers are at its very
//! end), a `#!` script ending with a newline, and a config that loads without an error (the
//! caller loads it). Pure: bytes in, a verdict in words out.

use crate::elf;
use crate::sha256;

/// The one digest a `.sha256` file holds: a run of exactly 64 hex digits, or a line that is
/// 64 hex digits once its spaces are gone (old `certutil` prints the bytes apart). Err when
/// it holds none, or two different ones.
pub fn digest_in(text: &str) -> Result<String, String> {
    let mut found: Vec<String> = Vec::new();
    for line in text.lines() {
        let runs = line
            .split(|c: char| !c.is_ascii_hexdigit())
            .filter(|run| run.len() == 64)
            .map(str::to_ascii_lowercase);
        let mut in_line: Vec<String> = runs.collect();
        if in_line.is_empty() {
            let squeezed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
            if squeezed.len() == 64 && squeezed.bytes().all(|b| b.is_ascii_hexdigit()) {
                in_line.push(squeezed.to_ascii_lowercase());
            }
        }
        for d in in_line {
            if !found.contains(&d) {
                found.push(d);
            }
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("it holds no SHA-256 digest (64 hex digits)".into()),
        _ => Err("it holds more than one SHA-256 digest".into()),
    }
}

/// The verdict on a new file: its sha256 when it is complete, else why not.
pub type Verdict = Result<String, String>;

/// A new program (`box.new`): complete when its digest matches the `.sha256` text given, or
/// without one when it is a whole ELF file or a `#!` script that ends with a newline.
pub fn check_program(name: &str, bytes: &[u8], sha_file: Option<&str>) -> Verdict {
    let sha = sha256::hex(&sha256::digest(bytes));
    if let Some(text) = sha_file {
        return matches(name, &sha, text).map(|()| sha);
    }
    if bytes.is_empty() {
        return Err(format!(
            "{name} is empty: the copy has not started or was cut"
        ));
    }
    if bytes.starts_with(b"\x7fELF") {
        return elf::whole(bytes)
            .map(|()| sha)
            .map_err(|why| format!("{name}: {why}"));
    }
    if bytes.starts_with(b"#!") {
        return match bytes.last() {
            Some(b'\n') => Ok(sha),
            _ => Err(format!(
                "{name} is a script that does not end with a newline: the copy is cut short (or add the newline, or a {name}.sha256)"
            )),
        };
    }
    Err(format!(
        "{name} is neither an ELF program nor a #! script: the copy is damaged or is not a program"
    ))
}

/// A new config (`init.toml.new`): its digest must match the `.sha256` text when there is one,
/// and it must load without an error (`load`, the caller's: the config's own checks).
pub fn check_config(
    name: &str,
    bytes: &[u8],
    sha_file: Option<&str>,
    load: Result<(), String>,
) -> Verdict {
    let sha = sha256::hex(&sha256::digest(bytes));
    if let Some(text) = sha_file {
        matches(name, &sha, text)?;
    }
    load.map(|()| sha)
}

/// Whether `sha` is the digest the `.sha256` file's `text` holds.
fn matches(name: &str, sha: &str, text: &str) -> Result<(), String> {
    let want = digest_in(text).map_err(|why| format!("{name}.sha256: {why}"))?;
    if want == sha {
        Ok(())
    } else {
        Err(format!(
            "{name} has the SHA-256 {sha}, but {name}.sha256 says {want}: the copy is incomplete or damaged, or the .sha256 is another file's"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn digests_as_each_tool_writes_them() {
        let upper = ABC.to_ascii_uppercase();
        let spaced: String = ABC
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        let table = [
            format!("{ABC}  box.new\n"),                   // sha256sum, shasum -a 256
            format!("{ABC} *box.new\n"),                   // binary mode
            format!("SHA256 hash of box.new:\r\n{ABC}\r\nCertUtil: -hashfile command completed successfully.\r\n"),
            format!("SHA256 hash of file box.new:\r\n{spaced}\r\nCertUtil: -hashfile command completed successfully.\r\n"),
            format!("\r\nAlgorithm       Hash                                                                   Path\r\n---------       ----                                                                   ----\r\nSHA256          {upper}       E:\\box.new\r\n"),
            ABC.to_string(),
            format!("SHA256 (box.new) = {ABC}\n"),        // BSD / macOS shasum --tag
        ];
        for text in &table {
            assert_eq!(digest_in(text).as_deref(), Ok(ABC), "{text}");
        }
        assert!(digest_in("").is_err());
        assert!(digest_in(&ABC[..63]).is_err());
        assert!(digest_in(&format!("{ABC}0")).is_err(), "65 digits");
        let two = format!("{ABC}\n{}\n", "0".repeat(64));
        assert!(digest_in(&two).unwrap_err().contains("more than one"));
        assert_eq!(digest_in(&format!("{ABC}\n{upper}\n")).as_deref(), Ok(ABC));
    }

    #[test]
    fn programs_and_configs() {
        // with a .sha256: the digest decides
        assert_eq!(
            check_program("box.new", b"abc", Some(ABC)).as_deref(),
            Ok(ABC)
        );
        let e = check_program("box.new", b"ab", Some(ABC)).unwrap_err();
        assert!(e.contains("box.new.sha256 says"), "{e}");
        assert!(check_program("box.new", b"abc", Some("nothing"))
            .unwrap_err()
            .contains("no SHA-256"));
        // without: the structure
        assert!(check_program("box.new", b"", None)
            .unwrap_err()
            .contains("empty"));
        assert!(check_program("box.new", b"#!/bin/sh\necho hi\n", None).is_ok());
        assert!(check_program("box.new", b"#!/bin/sh\necho h", None)
            .unwrap_err()
            .contains("newline"));
        assert!(check_program("box.new", b"MZ\x90\x00", None)
            .unwrap_err()
            .contains("neither"));
        let ls = std::fs::read("/bin/ls").unwrap();
        assert!(check_program("box.new", &ls, None).is_ok());
        let cut = check_program("box.new", &ls[..ls.len() / 2], None).unwrap_err();
        assert!(cut.starts_with("box.new: "), "{cut}");
        // a config: its digest, and it must load
        assert_eq!(
            check_config("init.toml.new", b"abc", Some(ABC), Ok(())).as_deref(),
            Ok(ABC)
        );
        assert!(check_config("init.toml.new", b"abd", Some(ABC), Ok(())).is_err());
        assert_eq!(
            check_config("init.toml.new", b"x", None, Err("line 1: bad".into())),
            Err("line 1: bad".into())
        );
    }
}
