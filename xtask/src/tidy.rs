//! Repo checks of xtask's own source, run as ordinary tests (`cargo test -p xtask`): no import
//! circle between its files, the folders taking from each other in one order (`tools/` from
//! none), every file saying at its top what it owns, and none longer than about 800 lines
//! unless it says why. It reads `xtask/src/` and changes nothing; the checks of the init's
//! source are `tests/` of the workspace root.
//!
//! The import graph: file A → file B when A names a path `crate::x::y::...` whose longest
//! prefix that is a module is B's (`crate::fetch::apt::Apt` → `fetch/apt.rs`; a name at the
//! root, `crate::target_dir`, → `lib.rs`), `use` groups (`crate::{a, b::{c, d}}`) included,
//! and when a folder's module file names one of its children (`pub use apt::Apt` in
//! `fetch.rs`). Declaring a module (`mod apt;`) is no arrow. Files name their siblings by
//! `crate::` paths: a `super::` path other than a test module's `use super::*` is refused, so
//! that every arrow is seen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lines a file may have before it must say why it is longer.
const MAX_LINES: usize = 800;
/// What a longer file writes in its first comment to say why.
const LONG_REASON: &str = "Longer than 800 lines because";

/// The source files of a crate: module path (`["fetch", "apt"]`; the root is empty) → (file
/// name relative to `src/`, text). `main.rs`, another crate, is left out.
type Tree = BTreeMap<Vec<String>, (String, String)>;

/// Reads every `.rs` file under `src`.
fn read_tree(src: &Path) -> Tree {
    fn walk(src: &Path, dir: &Path, out: &mut Tree) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(src, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(src)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if let Some(module) = module_of(&rel) {
                    out.insert(module, (rel, std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
    }
    let mut tree = Tree::new();
    walk(src, src, &mut tree);
    tree
}

/// `lib.rs` → the root, `fetch/apt.rs` → `["fetch", "apt"]`; None for `main.rs` (the binary).
fn module_of(rel: &str) -> Option<Vec<String>> {
    let rel = rel.replace('\\', "/");
    match rel.as_str() {
        "lib.rs" => Some(Vec::new()),
        "main.rs" => None,
        _ => Some(
            rel.strip_suffix(".rs")?
                .split('/')
                .map(str::to_string)
                .collect(),
        ),
    }
}

/// The text without `//` comments (doc comments name paths that are no imports). A `//` after
/// an odd number of `"` on its line is taken to be inside a string (`"http://..."`) and kept.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut cut = line.len();
        let mut from = 0;
        while let Some(at) = line[from..].find("//") {
            let at = from + at;
            if line[..at].matches('"').count() % 2 == 0 {
                cut = at;
                break;
            }
            from = at + 2;
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a use tree at `text[*pos..]` names, each after `prefix`: `a::{b, c::d}` → `a::b`,
/// `a::c::d`; `self` and `*` name the prefix itself.
fn parse_tree(text: &str, pos: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let skip_ws = |pos: &mut usize| {
        while text[*pos..].starts_with(char::is_whitespace) {
            *pos += text[*pos..].chars().next().map_or(1, char::len_utf8);
        }
    };
    skip_ws(pos);
    if text[*pos..].starts_with('{') {
        *pos += 1;
        loop {
            skip_ws(pos);
            if *pos >= text.len() || text[*pos..].starts_with('}') {
                *pos = (*pos + 1).min(text.len());
                return;
            }
            parse_tree(text, pos, prefix, out);
            skip_ws(pos);
            if text[*pos..].starts_with(',') {
                *pos += 1;
            } else if !text[*pos..].starts_with('}') {
                return; // not a use tree after all
            }
        }
    }
    let len = text[*pos..]
        .find(|c: char| !is_ident(c))
        .unwrap_or(text.len() - *pos);
    let ident = &text[*pos..*pos + len];
    *pos += len;
    if ident.is_empty() || ident == "self" {
        if text[*pos..].starts_with('*') {
            *pos += 1;
        }
        out.push(prefix.to_vec());
        return;
    }
    let mut path = prefix.to_vec();
    path.push(ident.to_string());
    if text[*pos..].starts_with("::") {
        *pos += 2;
        parse_tree(text, pos, &path, out);
        return;
    }
    out.push(path);
    // `Name as Other`
    let rest = &text[*pos..];
    let trimmed = rest.trim_start();
    if trimmed.starts_with("as") && trimmed[2..].starts_with(char::is_whitespace) {
        let after = trimmed[2..].trim_start();
        let alias = after.find(|c: char| !is_ident(c)).unwrap_or(after.len());
        *pos += rest.len() - after.len() + alias;
    }
}

/// Every `crate::` path of a text (comments stripped first).
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let text = strip_comments(text);
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("crate::") {
        let at = from + at;
        from = at + "crate::".len();
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == '$' || c == ':') {
            continue; // `$crate::`, `xtask::crate::`
        }
        let mut pos = from;
        parse_tree(&text, &mut pos, &[], &mut out);
    }
    out
}

/// Whether `text` names `child::` as a relative path (a module file using its child).
fn names_child(text: &str, child: &str) -> bool {
    let text = strip_comments(text);
    let needle = format!("{child}::");
    text.match_indices(&needle).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        !before.is_some_and(|c| is_ident(c) || c == ':') || text[..at].ends_with("self::")
    })
}

/// The module of `tree` a path lands in: its longest prefix that is a module (the root when
/// none is).
fn resolve<'t>(tree: &'t Tree, path: &[String]) -> &'t [String] {
    (0..=path.len())
        .rev()
        .find_map(|n| tree.get_key_value(&path[..n]).map(|(k, _)| k.as_slice()))
        .unwrap_or(&[])
}

/// The import graph: file → the files it names.
fn graph(tree: &Tree) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, (file, text)) in tree {
        let targets = edges.entry(file.clone()).or_default();
        for path in crate_paths(text) {
            let to = resolve(tree, &path);
            if to != module.as_slice() {
                targets.insert(tree[to].0.clone());
            }
        }
        for (child, (child_file, _)) in tree.range(module.clone()..) {
            if child.len() == module.len() + 1
                && child.starts_with(module)
                && names_child(text, &child[module.len()])
            {
                targets.insert(child_file.clone());
            }
        }
    }
    edges
}

/// The circles of a graph, one per strongly connected set of files, each as `a -> b -> a`
/// (a shortest one), followed by the set's other files when there are more.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    // reachability by search from each file; the graph is small
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(node) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for start in edges.keys() {
        if done.contains(start) || !reach(start).contains(start) {
            continue;
        }
        // a shortest way back to `start`, by breadth-first search
        let mut back: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        'search: while let Some(node) = queue.pop_front() {
            for next in edges.get(&node).into_iter().flatten() {
                if next == start {
                    back.insert(start.clone(), node.clone());
                    break 'search;
                }
                if !back.contains_key(next) {
                    back.insert(next.clone(), node.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        let mut cycle = vec![start.clone()];
        let mut node = back[start].clone();
        while node != *start {
            cycle.push(node.clone());
            node = back[&node].clone();
        }
        cycle.push(start.clone());
        cycle.reverse();
        let members: BTreeSet<String> = reach(start)
            .into_iter()
            .filter(|n| reach(n).contains(start))
            .collect();
        let mut line = cycle.join(" -> ");
        if members.len() + 1 > cycle.len() {
            let all: Vec<&str> = members.iter().map(String::as_str).collect();
            line += &format!(" (files in circles with these: {})", all.join(", "));
        }
        done.extend(members);
        out.push(line);
    }
    out
}

/// The folders in the order they may take from each other: a file takes from its own folder,
/// from the folders before its own, and from the root's helpers (`lib.rs`); `tools/` first,
/// so it takes from no task.
const FOLDERS: &[&str] = &["tools", "fetch", "pack", "media", "qemu", "test", "bench"];
/// Folders that take from each other besides: the test suite runs the benchmark's host checks
/// (instruction counts, coldplug at scale), `bench-net` boots a test scenario.
const BOTH_WAYS: &[(&str, &str)] = &[("test", "bench"), ("bench", "test")];

/// The folder of a file (`fetch/apt.rs`, and `fetch.rs` when `fetch` is one of `folders`, →
/// `fetch`); None for the root's other files.
fn folder<'f>(file: &'f str, folders: &[&str]) -> Option<&'f str> {
    match file.split_once('/') {
        Some((dir, _)) => Some(dir),
        None => file.strip_suffix(".rs").filter(|f| folders.contains(f)),
    }
}

/// Arrows that go against [`FOLDERS`]' order, and arrows from or to a folder not in it.
fn against_the_order(
    edges: &BTreeMap<String, BTreeSet<String>>,
    folders: &[&str],
    both_ways: &[(&str, &str)],
) -> Vec<String> {
    let rank = |f: &str| folders.iter().position(|x| *x == f);
    let mut out = Vec::new();
    for (from, targets) in edges {
        for to in targets {
            let (Some(a), Some(b)) = (folder(from, folders), folder(to, folders)) else {
                continue; // the root's files: lib.rs, tidy.rs
            };
            let ok = match (rank(a), rank(b)) {
                (Some(ra), Some(rb)) => rb <= ra || both_ways.contains(&(a, b)),
                _ => false,
            };
            if !ok {
                out.push(format!("{from} -> {to}"));
            }
        }
    }
    out
}

/// `super::` paths other than `use super::*` (a test module's), which the graph cannot place.
fn super_paths(tree: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (file, text) in tree.values() {
        let text = strip_comments(text);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            // a `super::` outside a string literal (an even number of `"` before it)
            let in_code = line
                .match_indices("super::")
                .any(|(at, _)| line[..at].matches('"').count() % 2 == 0);
            if in_code && line != "use super::*;" {
                out.push(format!("{file}:{}: {line}", n + 1));
            }
        }
    }
    out
}

fn src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_import_circle_between_files() {
    let tree = read_tree(&src());
    let found = circles(&graph(&tree));
    assert!(
        found.is_empty(),
        "import circles between xtask's files (a piece both use goes into a file both import \
         and that imports neither):\n{}",
        found.join("\n")
    );
    let supers = super_paths(&tree);
    assert!(
        supers.is_empty(),
        "name other modules by their crate:: path (`use super::*` only in test modules):\n{}",
        supers.join("\n")
    );
}

#[test]
fn folders_take_from_earlier_ones() {
    let tree = read_tree(&src());
    let folders: BTreeSet<&str> = tree
        .values()
        .filter_map(|(f, _)| f.split_once('/').map(|(dir, _)| dir))
        .collect();
    let listed: BTreeSet<&str> = FOLDERS.iter().copied().collect();
    assert_eq!(
        folders, listed,
        "a new folder goes into FOLDERS, in its place"
    );
    let wrong = against_the_order(&graph(&tree), FOLDERS, BOTH_WAYS);
    assert!(
        wrong.is_empty(),
        "a folder takes from the ones before it in {FOLDERS:?} (tools/, which they all \
         share, from none):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_file_says_what_it_owns_and_is_short() {
    let src = src();
    let mut tree = read_tree(&src);
    tree.insert(
        vec!["main".into()],
        (
            "main.rs".into(),
            std::fs::read_to_string(src.join("main.rs")).unwrap(),
        ),
    );
    let mut wrong = Vec::new();
    for (file, text) in tree.values() {
        if !text.starts_with("//! ") {
            wrong.push(format!(
                "{file}: does not start with a `//!` line saying what it owns"
            ));
        }
        let lines = text.lines().count();
        let header: String = text.lines().take_while(|l| l.starts_with("//!")).collect();
        if lines > MAX_LINES && !header.contains(LONG_REASON) {
            wrong.push(format!(
                "{file}: {lines} lines; split it, or write `{LONG_REASON} ...` at its top"
            ));
        }
        if file.ends_with("mod.rs") {
            wrong.push(format!(
                "{file}: a folder is a module file beside it (`foo.rs` + `foo/`)"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checks_see_what_they_look_for() {
    let file = |name: &str, text: &str| {
        (
            module_of(name).unwrap(),
            (name.to_string(), text.to_string()),
        )
    };
    let tree: Tree = [
        file("lib.rs", "pub mod a; pub mod b;\npub fn root() {}\n"),
        file(
            "a.rs",
            "//! `crate::c::X` in a comment is no arrow\nmod inner;\npub use inner::Y;\n\
             use crate::{b::{self, Z as W}, root};\n",
        ),
        file("a/inner.rs", "pub struct Y; fn f() { crate::b::g(); }\n"),
        file(
            "b.rs",
            "pub fn g() { let _ = \"http://x\"; crate::a::inner::h() } // crate::c\n",
        ),
        file(
            "c.rs",
            "use super::a;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
        ),
        file("tools.rs", "use crate::a::Y;\n"),
    ]
    .into();
    let edges = graph(&tree);
    let to = |f: &str| edges[f].iter().cloned().collect::<Vec<_>>();
    assert_eq!(to("a.rs"), ["a/inner.rs", "b.rs", "lib.rs"]);
    assert_eq!(to("a/inner.rs"), ["b.rs"]);
    assert_eq!(to("b.rs"), ["a/inner.rs"]);
    assert!(to("lib.rs").is_empty());
    assert_eq!(circles(&edges), ["a/inner.rs -> b.rs -> a/inner.rs"]);
    // b may take from a, not a from b; tools from none
    assert_eq!(
        against_the_order(&edges, &["tools", "a", "b"], &[]),
        ["a.rs -> b.rs", "a/inner.rs -> b.rs", "tools.rs -> a.rs"]
    );
    assert_eq!(
        against_the_order(&edges, &["tools", "a", "b"], &[("a", "b")]),
        ["tools.rs -> a.rs"]
    );
    assert_eq!(super_paths(&tree), ["c.rs:1: use super::a;"]);
}

/// The `xtask` alias of `.cargo/config.toml`: cargo's own progress must show. A first
/// `cargo xtask run` compiles xtask for a minute or two; behind `--quiet` the terminal stayed
/// silent and it looked hung (issue 18).
#[test]
fn the_xtask_alias_shows_cargos_progress() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cargo/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let alias = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("xtask").map(str::trim))
        .and_then(|l| l.strip_prefix('='))
        .expect("an `xtask = \"...\"` alias in .cargo/config.toml");
    let words: Vec<&str> = alias.trim().trim_matches('"').split_whitespace().collect();
    assert!(
        words.starts_with(&["run", "--package", "xtask"]),
        "the alias runs xtask: {alias}"
    );
    for quiet in ["--quiet", "-q"] {
        assert!(
            !words.contains(&quiet),
            "`{quiet}` in the xtask alias hides cargo's progress: {alias}"
        );
    }
}
