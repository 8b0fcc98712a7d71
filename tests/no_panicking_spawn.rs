//! No `std::thread::spawn` outside test code in `src/`: it panics inside std when the kernel
//! refuses a thread (EAGAIN: threads-max, memory), and a panic in PID 1 ends the machine.
//! `std::thread::Builder::spawn` returns the error, which the caller handles (issue 17).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

mod common;
use common::rust_files;

/// The code of a file before its unit tests (`#[cfg(test)]` then `mod`), and not in a file
/// that is test code as a whole (the recorder, `testdisk.rs`, `tests.rs`).
fn non_test_code(text: &str) -> Option<&str> {
    let head: String = text.lines().take(40).collect::<Vec<_>>().join("\n");
    if head.contains("#![cfg(test)]") {
        return None;
    }
    let mut end = text.len();
    let mut at = 0;
    while let Some(found) = text.get(at..).and_then(|t| t.find("#[cfg(test)]")) {
        let start = at + found;
        let rest = text.get(start + "#[cfg(test)]".len()..).unwrap_or_default();
        if rest.trim_start().starts_with("mod ") {
            end = start;
            break;
        }
        at = start + 1;
    }
    text.get(..end)
}

#[test]
fn threads_are_started_with_the_builder() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let name = file.strip_prefix(&src).unwrap().display().to_string();
        if name.ends_with("tests.rs") || name.contains("recorder") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let Some(code) = non_test_code(&text) else {
            continue;
        };
        for (n, line) in code.lines().enumerate() {
            let line = line.trim_start();
            if !line.starts_with("//") && line.contains("thread::spawn(") {
                wrong.push(format!("src/{name}:{}: {line}", n + 1));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "std::thread::spawn panics when no thread can be had; use std::thread::Builder and \
         handle its error:\n{}",
        wrong.join("\n")
    );
}
