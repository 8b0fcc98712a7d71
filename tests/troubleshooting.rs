//! The README's Troubleshooting table against the code: every message the init logs at warn or
//! error level (`log::warn!`/`log::error!` format strings in `src/`) has a row saying what it
//! means and what to do (or is in [`ALLOWED`] with a reason), and every row's message is one
//! the code prints. Both ways, so neither the README nor the code can drift alone.

// Test code may panic: the no-panic lints are for the init (Cargo.toml).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

/// Messages with no row of their own, each with why a user needs none: the format string
/// with `{...}` as `*`, exactly.
const ALLOWED: &[(&str, &str)] = &[
    (
        "*",
        "a message made elsewhere (mount warnings, a reason given to rescue): covered where it is made",
    ),
    (
        "  *",
        "the detail lines under `boot partition * not found`, which has its row",
    ),
];

/// One `log::warn!`/`log::error!` call: where, and its format string with `{...}` as `*`.
#[derive(Debug)]
struct Message {
    at: String,
    pattern: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

mod common;
use common::rust_files;

/// Every warn/error format string in `src/`: of `log::warn!`/`log::error!`, and of a
/// `format!` right after `log::Level::Warn,`/`log::Level::Error,`.
fn messages() -> Vec<Message> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let whole = std::fs::read_to_string(&file).unwrap();
        // the tests at the end of a file log nothing a user sees
        let text = whole.split("\n#[cfg(test)]").next().unwrap_or("");
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        // the macros, and (level, format!(..)) pairs given to log::log! by a level chosen at
        // run time (the Wi-Fi supplicant's watcher)
        let starts = [
            "log::warn!(",
            "log::error!(",
            "log::Level::Warn,",
            "log::Level::Error,",
        ];
        for macro_name in starts {
            for (offset, _) in text.match_indices(macro_name) {
                let line = text[..offset].matches('\n').count() + 1;
                let rest = &text[offset + macro_name.len()..];
                let rest = rest.trim_start();
                let rest = rest.strip_prefix("format!(").unwrap_or(rest);
                let Some(format) = format_string(rest) else {
                    panic!("{name}:{line}: {macro_name} without a string literal first");
                };
                found.push(Message {
                    at: format!("{name}:{line}"),
                    pattern: placeholders_as_stars(&format),
                });
            }
        }
    }
    found
}

/// The string literal that starts `rest` (after whitespace), unescaped; raw strings too.
fn format_string(rest: &str) -> Option<String> {
    let rest = rest.trim_start();
    if let Some(raw) = rest.strip_prefix("r#\"") {
        return raw.split_once("\"#").map(|(s, _)| s.to_string());
    }
    if let Some(raw) = rest.strip_prefix("r\"") {
        return raw.split_once('"').map(|(s, _)| s.to_string());
    }
    let mut chars = rest.strip_prefix('"')?.chars();
    let mut out = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                '\n' => {
                    // a line continuation: the next line's leading whitespace is skipped
                    let skipped: String = chars.clone().take_while(|c| c.is_whitespace()).collect();
                    for _ in skipped.chars() {
                        chars.next();
                    }
                }
                other => out.push(other),
            },
            other => out.push(other),
        }
    }
    None
}

/// `{...}` placeholders as `*`; `{{` and `}}` as the braces they print.
fn placeholders_as_stars(format: &str) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                }
                out.push('*');
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether `pattern` (only `*` is special: any run of characters) matches all of `text`.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star) = (0, 0, None);
    while ti < t.len() {
        if p.get(pi) == Some(&'*') {
            star = Some((pi + 1, ti));
            pi += 1;
        } else if p.get(pi) == Some(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            star = Some((sp, st + 1));
            pi = sp;
            ti = st + 1;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The message patterns of the README's Troubleshooting table: the backquoted text in the
/// first cell of each row under `### Messages`.
fn readme_patterns() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("\n## Troubleshooting")
        .nth(1)
        .expect("README.md has a ## Troubleshooting section");
    let section = section.split("\n## ").next().unwrap();
    let table = section
        .split("\n### Messages")
        .nth(1)
        .expect("README.md's Troubleshooting has a ### Messages table");
    let mut patterns = Vec::new();
    for row in table.lines().filter(|l| l.starts_with('|')).skip(2) {
        // `\|` is a bar inside a cell, not the end of it
        let row = row.replace("\\|", "\u{1}");
        let cell = row.split('|').nth(1).unwrap_or("");
        let quoted: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        assert!(
            !quoted.is_empty(),
            "a Messages row without a `message`: {row}"
        );
        patterns.extend(quoted.into_iter().map(|q| q.replace('\u{1}', "|")));
    }
    patterns
}

#[test]
fn every_warning_and_error_has_a_troubleshooting_entry() {
    let patterns = readme_patterns();
    let missing: Vec<String> = messages()
        .into_iter()
        .filter(|m| !patterns.iter().any(|p| glob(p, &m.pattern)))
        .filter(|m| !ALLOWED.iter().any(|(p, _)| *p == m.pattern))
        .map(|m| {
            // a backquote cannot stand in a code span, a bar ends a cell
            let row = m.pattern.replace('`', "*").replace('|', "\\|");
            format!(
                "{}: add a row to README.md, Troubleshooting, ### Messages:\n| `{row}` | what it means | what to do |",
                m.at
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} message(s) a user can see are not explained (a row's `*` matches any text, so a \
         long message may end in `*`; a message no user acts on goes in ALLOWED in \
         tests/troubleshooting.rs with a reason):\n\n{}",
        missing.len(),
        missing.join("\n\n")
    );
}

#[test]
fn every_troubleshooting_entry_is_a_message_the_code_prints() {
    let messages = messages();
    let mut stale: Vec<String> = readme_patterns()
        .into_iter()
        .filter(|p| !messages.iter().any(|m| glob(p, &m.pattern)))
        .map(|p| format!("`{p}`"))
        .collect();
    stale.extend(
        ALLOWED
            .iter()
            .filter(|(p, _)| !messages.iter().any(|m| m.pattern == *p))
            .map(|(p, _)| format!("`{p}` (ALLOWED in tests/troubleshooting.rs)")),
    );
    assert!(
        stale.is_empty(),
        "README.md's Troubleshooting table has messages no log::warn!/log::error! in src/ \
         prints (update them to the code's wording, `*` for what varies, or remove them):\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_reader_finds_format_strings() {
    assert_eq!(
        format_string(" \"a {x} \\\"b\\\" \\\n     c\", x)").as_deref(),
        Some("a {x} \"b\" c")
    );
    assert_eq!(format_string("r\"x{y}\")").as_deref(), Some("x{y}"));
    assert_eq!(format_string("e)"), None);
    assert_eq!(
        placeholders_as_stars("{name}: {e:?} {{x}} {}"),
        "*: * {x} *"
    );
    assert!(glob(
        "cannot start * *: *",
        "cannot start * *: *; check its path"
    ));
    assert!(!glob("cannot start *", "cannot stop *"));
    assert!(glob("*", ""));
    assert!(messages().len() > 20);
}
