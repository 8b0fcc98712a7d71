//! `boxinit check` and the init agree on every file of the fuzz corpora: the real binary's
//! `check FILE` (and `check --builtin FILE`) prints exactly the errors the init's load path
//! reports for that file as the boot partition's `init.toml` (as the built-in one), with
//! the layers `main.rs` puts around it (an empty built-in file, an empty command line).
//! The corpus: `fuzz/seeds/config/`, each NUL-separated part as one file. What the fuzzer
//! generates (thousands of files, a process each here) is compared in the `config` fuzz
//! target itself, through the library function `boxinit check` calls.

// Test code may panic: the no-panic lints are for the init (Cargo.toml).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use boxinit::config::{self, Layer, Place};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file of the config seed corpus, split at NUL bytes (the fuzz target's separator).
fn corpus_files() -> Vec<(String, Vec<u8>)> {
    let dir = root().join("fuzz/seeds/config");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let bytes = std::fs::read(&path).unwrap();
        for (i, part) in bytes.split(|b| *b == 0).enumerate() {
            let name = path.file_name().unwrap().to_string_lossy();
            files.push((format!("{name}#{i}"), part.to_vec()));
        }
    }
    files
}

/// What the init logs for `bytes` as the file at `name` found at `place`: `main.rs`'s layers
/// (an empty built-in file before a card's file, the command line's table last).
fn init_errors(name: &str, bytes: &[u8], place: Place) -> Vec<String> {
    let file = Layer::File {
        name: name.to_string(),
        bytes: bytes.to_vec(),
        place,
    };
    let mut layers = Vec::new();
    if place == Place::BootPartition {
        layers.push(Layer::File {
            name: "/etc/init.toml".to_string(),
            bytes: Vec::new(),
            place: Place::Early,
        });
    }
    layers.push(file);
    layers.push(Layer::Table {
        name: config::cmdline::SOURCE.to_string(),
        table: config::cmdline::overrides("").0,
    });
    let (_, errors) = config::load(&layers);
    errors.iter().map(|e| e.to_string()).collect()
}

/// What `boxinit check [--builtin] FILE` prints on stderr, one error a line, and whether it
/// said ok.
fn check(path: &Path, builtin: bool) -> (Vec<String>, bool) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_boxinit"));
    command.arg("check");
    if builtin {
        command.arg("--builtin");
    }
    let out = command.arg(path).output().unwrap();
    let errors = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect();
    (errors, out.status.success())
}

#[test]
fn check_and_the_init_agree_on_the_fuzz_corpora() {
    let files = corpus_files();
    assert!(files.len() >= 20, "only {} corpus files", files.len());
    let dir = std::env::temp_dir().join(format!("boxinit-check-agrees-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("init.toml");
    let name = path.display().to_string();
    let mut disagreements = Vec::new();
    for (from, bytes) in &files {
        std::fs::write(&path, bytes).unwrap();
        for (place, builtin) in [(Place::BootPartition, false), (Place::Early, true)] {
            let init = init_errors(&name, bytes, place);
            let (checked, ok) = check(&path, builtin);
            if checked != init || ok != init.is_empty() {
                disagreements.push(format!(
                    "{from} ({place:?}):\n  check: {checked:?} (ok: {ok})\n  init:  {init:?}"
                ));
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        disagreements.is_empty(),
        "boxinit check and the init disagree on {} file(s):\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
