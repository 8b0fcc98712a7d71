//! No import circle between the files of a crate in `src/` (the library `src/lib.rs`, the
//! binaries `src/main.rs` and `src/bin/*`): if `a.rs` names an item of `b.rs` (a `use`, or a
//! `crate::`/`super::`/`self::`/child-module path in the code) and `b.rs`, directly or through
//! other files, names one of `a.rs`, the files are one knot that can only be read together.
//! A child naming an item of its parent module file is an arrow like any other; a `mod`
//! declaration is not one. Paths through a re-export (`pub use`) lead to the file that defines
//! the item, and the re-export is itself an arrow from the re-exporting file.
//!
//! The reader is a small lexer and a resolver over the module tree (from the `mod` declarations
//! of each crate root, `#[path]` included): no `syn`, as the crate has no other need of it.
//! What it does not see: names a glob `use` brings in (`use crate::x::*` is an arrow to `x`'s
//! file, its items are not followed), macros from other files, and method calls through a
//! trait (no types are resolved); the arrows it does see are real ones. Test code
//! (`#[cfg(test)]` items and files) draws no arrows: a unit test may drive its file through
//! the modules above it (`config::load` in a validation test), and the recorder prints dates.

// Test code may panic: the no-panic lints are for the init (Cargo.toml).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    PathSep,
    Punct(char),
}

/// Tokens with their line: comments, strings' contents (but a `#[path = "..."]`'s) and
/// numbers are what the resolver does not need.
fn lex(text: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if chars[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => {
                let start = line;
                let (s, next) = string(&chars, i + 1, 0, &mut line);
                out.push((Tok::Str(s), start));
                i = next;
            }
            'r' | 'b' if raw_string_start(&chars, i).is_some() => {
                let (open, hashes) = raw_string_start(&chars, i).unwrap();
                let start = line;
                let (s, next) = string(&chars, open + 1, hashes, &mut line);
                out.push((Tok::Str(s), start));
                i = next;
            }
            'b' if at(i + 1) == '"' => {
                let start = line;
                let (s, next) = string(&chars, i + 2, 0, &mut line);
                out.push((Tok::Str(s), start));
                i = next;
            }
            'b' if at(i + 1) == '\'' => i = char_literal_end(&chars, i + 1),
            '\'' => {
                // a char literal ('x', '\n', '\u{..}'), or a lifetime ('a) left to the ident
                if at(i + 1) == '\\' || at(i + 2) == '\'' {
                    i = char_literal_end(&chars, i);
                } else {
                    i += 1;
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let word = word.strip_prefix("r#").map(str::to_string).unwrap_or(word);
                out.push((Tok::Ident(word), line));
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            ':' if at(i + 1) == ':' => {
                out.push((Tok::PathSep, line));
                i += 2;
            }
            c if c.is_whitespace() => i += 1,
            c => {
                out.push((Tok::Punct(c), line));
                i += 1;
            }
        }
    }
    out
}

/// For each token, whether it belongs to an item under `#[cfg(test)]` (or `cfg(all(test,
/// ...))`): from the attribute to the item's `;`, or to the `}` that closes its first `{`.
fn test_mask(toks: &[(Tok, usize)]) -> Vec<bool> {
    let mut mask = vec![false; toks.len()];
    let punct = |i: usize, c: char| matches!(toks.get(i), Some((Tok::Punct(p), _)) if *p == c);
    let mut i = 0;
    while i < toks.len() {
        let is_cfg = punct(i, '#')
            && punct(i + 1, '[')
            && matches!(toks.get(i + 2), Some((Tok::Ident(s), _)) if s == "cfg");
        if !is_cfg {
            i += 1;
            continue;
        }
        let mut j = i + 2;
        let mut test = false;
        let mut not = false;
        while j < toks.len() && !punct(j, ']') {
            match &toks[j].0 {
                Tok::Ident(s) if s == "test" => test = true,
                Tok::Ident(s) if s == "not" => not = true,
                _ => {}
            }
            j += 1;
        }
        if !test || not {
            i = j;
            continue;
        }
        let mut depth = 0usize;
        let mut end = j;
        while end < toks.len() {
            if punct(end, ';') && depth == 0 {
                break;
            }
            if punct(end, '{') {
                depth += 1;
            }
            if punct(end, '}') {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            end += 1;
        }
        for m in mask.iter_mut().take(end + 1).skip(i) {
            *m = true;
        }
        i = end + 1;
    }
    mask
}

/// `r"`, `r#"`, `br"`, `br##"`...: the index of the opening quote and the number of hashes.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    // not the end of an identifier such as `for` or `br`
    if i > 0
        && chars
            .get(i - 1)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
    {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (chars.get(j) == Some(&'"')).then_some((j, hashes))
}

/// A string's text from `i` (after the quote) to its end; the index after it.
fn string(chars: &[char], mut i: usize, hashes: usize, line: &mut usize) -> (String, usize) {
    let mut s = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            *line += 1;
        }
        if c == '\\' && hashes == 0 {
            i += 2;
            continue;
        }
        if c == '"' && (0..hashes).all(|k| chars.get(i + 1 + k) == Some(&'#')) {
            return (s, i + 1 + hashes);
        }
        s.push(c);
        i += 1;
    }
    (s, i)
}

/// The index after a char literal starting at the quote `i`.
fn char_literal_end(chars: &[char], i: usize) -> usize {
    let mut j = i + 1;
    while j < chars.len() && chars[j] != '\'' {
        if chars[j] == '\\' {
            j += 1;
        }
        j += 1;
    }
    j + 1
}

/// A path named in a file: its segments as written (`crate`, `super`, `self` or a name
/// first), where, and whether only tests compile it.
#[derive(Debug, Clone)]
struct Reference {
    module: Vec<String>,
    segments: Vec<String>,
    line: usize,
    /// Test code only (`#[cfg(test)]`, or a file declared under it).
    test: bool,
    /// A `use` (paths in the code are resolved from the crate root or a child module only).
    is_use: bool,
}

/// A module: the file it is in, its children, and what it defines or imports by name.
#[derive(Debug, Default)]
struct Module {
    file: PathBuf,
    children: BTreeSet<String>,
    /// Names of items defined here (struct, fn, const...).
    items: BTreeSet<String>,
    /// Names brought in by `use` (pub or not: children may name them through `super`).
    imports: BTreeMap<String, Vec<String>>,
    /// Modules whose items a `pub use x::*` brings in.
    globs: Vec<Vec<String>>,
}

/// One crate's modules by path, and the references of every file.
#[derive(Default)]
struct Crate {
    modules: BTreeMap<Vec<String>, Module>,
    references: Vec<(PathBuf, Reference)>,
}

impl Crate {
    /// Reads the crate whose root file is `root` (`src/lib.rs`), following `mod` declarations.
    fn read(root: &Path) -> Crate {
        let mut krate = Crate::default();
        let dir = root.parent().unwrap().to_path_buf();
        krate.read_file(root, Vec::new(), &dir, false);
        krate
    }

    /// Reads `file`, module `path`, whose `mod x;` children are in `dir`; `test` when the
    /// file is compiled for tests only.
    fn read_file(&mut self, file: &Path, path: Vec<String>, dir: &Path, test: bool) {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("{}: cannot read it: {e}", file.display()));
        let toks = lex(&text);
        let mask = test_mask(&toks);
        self.modules.entry(path.clone()).or_default().file = file.to_path_buf();
        // inline modules open at a brace depth, closed when it comes back
        let mut stack: Vec<(Vec<String>, usize)> = vec![(path.clone(), 0)];
        let mut depth = 0usize;
        let mut pending_path: Option<String> = None;
        let mut i = 0;
        let ident = |i: usize| match toks.get(i) {
            Some((Tok::Ident(s), _)) => Some(s.as_str()),
            _ => None,
        };
        let punct = |i: usize, c: char| matches!(toks.get(i), Some((Tok::Punct(p), _)) if *p == c);
        let sep = |i: usize| matches!(toks.get(i), Some((Tok::PathSep, _)));
        while i < toks.len() {
            let module = stack.last().unwrap().0.clone();
            let line = toks[i].1;
            // #[path = "x.rs"] before a `mod x;`
            if punct(i, '#')
                && punct(i + 1, '[')
                && ident(i + 2) == Some("path")
                && punct(i + 3, '=')
            {
                if let Some((Tok::Str(p), _)) = toks.get(i + 4) {
                    pending_path = Some(p.clone());
                }
                i += 5;
                continue;
            }
            match &toks[i].0 {
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => {
                    depth = depth.saturating_sub(1);
                    if stack.len() > 1 && stack.last().unwrap().1 == depth {
                        stack.pop();
                    }
                }
                Tok::Ident(w) if w == "mod" && !sep(i.wrapping_sub(1)) => {
                    if let Some(name) = ident(i + 1) {
                        let mut child = module.clone();
                        child.push(name.to_string());
                        self.modules
                            .entry(module.clone())
                            .or_default()
                            .children
                            .insert(name.to_string());
                        if punct(i + 2, ';') {
                            let child_file = match pending_path.take() {
                                Some(p) => file.parent().unwrap().join(p),
                                None => {
                                    let flat = dir.join(format!("{name}.rs"));
                                    if flat.exists() {
                                        flat
                                    } else {
                                        dir.join(name).join("mod.rs")
                                    }
                                }
                            };
                            let child_dir = if child_file.file_name().unwrap() == "mod.rs" {
                                child_file.parent().unwrap().to_path_buf()
                            } else {
                                dir.join(name)
                            };
                            self.read_file(&child_file, child, &child_dir, test || mask[i]);
                            i += 3;
                            continue;
                        }
                        if punct(i + 2, '{') {
                            self.modules.entry(child.clone()).or_default().file =
                                file.to_path_buf();
                            stack.push((child, depth));
                            depth += 1;
                            i += 3;
                            continue;
                        }
                    }
                }
                Tok::Ident(w)
                    if matches!(
                        w.as_str(),
                        "struct" | "enum" | "fn" | "const" | "static" | "type" | "trait" | "union"
                    ) =>
                {
                    if let Some(name) = ident(i + 1) {
                        self.modules
                            .entry(module.clone())
                            .or_default()
                            .items
                            .insert(name.to_string());
                    }
                }
                Tok::Ident(w) if w == "use" => {
                    let public = (1..=4).any(|k| ident(i.wrapping_sub(k)) == Some("pub"))
                        && !punct(i.wrapping_sub(1), ';')
                        && !punct(i.wrapping_sub(1), '}');
                    let mut trees = Vec::new();
                    let mut j = i + 1;
                    if sep(j) {
                        j += 1; // `use ::std::...`
                    }
                    use_tree(&toks, &mut j, Vec::new(), &mut trees);
                    for (segments, alias, glob) in trees {
                        let m = self.modules.entry(module.clone()).or_default();
                        if glob {
                            if public {
                                m.globs.push(segments.clone());
                            }
                        } else if let Some(alias) = &alias {
                            m.imports.insert(alias.clone(), segments.clone());
                        }
                        let test = test || mask[i];
                        self.refer(file, &module, segments, line, test, true);
                    }
                    i = j;
                    continue;
                }
                Tok::Ident(w) if sep(i + 1) && !sep(i.wrapping_sub(1)) => {
                    let mut segments = vec![w.clone()];
                    let mut j = i + 1;
                    while sep(j) {
                        match ident(j + 1) {
                            Some(s) => segments.push(s.to_string()),
                            None => break,
                        }
                        j += 2;
                    }
                    self.refer(file, &module, segments, line, test || mask[i], false);
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// Notes that `file`, in `module`, names `segments` (in a `use` when `is_use`).
    fn refer(
        &mut self,
        file: &Path,
        module: &[String],
        segments: Vec<String>,
        line: usize,
        test: bool,
        is_use: bool,
    ) {
        let reference = Reference {
            module: module.to_vec(),
            segments,
            line,
            test,
            is_use,
        };
        self.references.push((file.to_path_buf(), reference));
    }

    /// The absolute module path a reference's first segment starts from, and the rest; None
    /// for another crate (`std::`, `rustix::`) or a local name.
    fn anchor(&self, r: &Reference) -> Option<Vec<String>> {
        let mut base = r.module.clone();
        let mut rest = r.segments.as_slice();
        match rest.first()?.as_str() {
            "crate" => {
                base.clear();
                rest = &rest[1..];
            }
            "self" => rest = &rest[1..],
            "super" => {
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            first => {
                let module = self.modules.get(&base)?;
                if module.children.contains(first) {
                } else if let Some(target) = module
                    .imports
                    .get(first)
                    .filter(|t| !r.is_use && t.first().map(String::as_str) != Some(first))
                {
                    // a name a `use` brought in (`dhcp::parse` after `use super::dhcp`)
                    let mut full = target.clone();
                    full.extend(rest[1..].iter().cloned());
                    let inner = Reference {
                        segments: full,
                        ..r.clone()
                    };
                    return self.anchor(&inner);
                } else {
                    return None;
                }
            }
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The file that defines what the absolute path names (a module's file for a module).
    fn resolve(&self, path: &[String], hops: usize) -> Option<PathBuf> {
        if hops > 16 {
            return None;
        }
        let mut module: Vec<String> = Vec::new();
        for (k, segment) in path.iter().enumerate() {
            let m = self.modules.get(&module)?;
            if m.children.contains(segment) {
                module.push(segment.clone());
                continue;
            }
            if m.items.contains(segment) {
                return Some(m.file.clone());
            }
            if let Some(target) = m.imports.get(segment) {
                let inner = Reference {
                    module: module.clone(),
                    segments: target.clone(),
                    line: 0,
                    test: false,
                    is_use: true,
                };
                let mut full = self.anchor(&inner)?;
                full.extend(path[k + 1..].iter().cloned());
                return self.resolve(&full, hops + 1);
            }
            for glob in &m.globs {
                let inner = Reference {
                    module: module.clone(),
                    segments: glob.clone(),
                    line: 0,
                    test: false,
                    is_use: true,
                };
                let Some(mut full) = self.anchor(&inner) else {
                    continue;
                };
                if self
                    .modules
                    .get(&full)
                    .is_some_and(|g| g.items.contains(segment) || g.imports.contains_key(segment))
                {
                    full.extend(path[k..].iter().cloned());
                    return self.resolve(&full, hops + 1);
                }
            }
            // a name of this module the reader did not see defined (a macro, a variant)
            return Some(m.file.clone());
        }
        Some(self.modules.get(&module)?.file.clone())
    }

    /// Arrows between files: (from, to) → the first place that makes it (line, path).
    fn arrows(&self) -> BTreeMap<(PathBuf, PathBuf), (usize, String)> {
        let mut arrows = BTreeMap::new();
        for (file, r) in &self.references {
            if r.test {
                continue;
            }
            let Some(path) = self.anchor(r) else { continue };
            let Some(to) = self.resolve(&path, 0) else {
                continue;
            };
            if &to != file {
                arrows
                    .entry((file.clone(), to))
                    .or_insert_with(|| (r.line, r.segments.join("::")));
            }
        }
        arrows
    }
}

/// One `use` tree from token `j` (after `use` or a `{`), its paths appended to `out` as
/// (segments, the name it binds, whether it is a glob); `j` ends after the tree.
type UsePath = (Vec<String>, Option<String>, bool);
fn use_tree(toks: &[(Tok, usize)], j: &mut usize, prefix: Vec<String>, out: &mut Vec<UsePath>) {
    let mut path = prefix;
    loop {
        match toks.get(*j).map(|t| &t.0) {
            Some(Tok::Ident(s)) if s == "self" && !path.is_empty() => {
                *j += 1;
                let name = path.last().cloned();
                let name = alias(toks, j).or(name);
                out.push((path, name, false));
                return;
            }
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                *j += 1;
                if matches!(toks.get(*j).map(|t| &t.0), Some(Tok::PathSep)) {
                    *j += 1;
                    continue;
                }
                let name = alias(toks, j).or_else(|| path.last().cloned());
                out.push((path, name, false));
                return;
            }
            Some(Tok::Punct('*')) => {
                *j += 1;
                out.push((path, None, true));
                return;
            }
            Some(Tok::Punct('{')) => {
                *j += 1;
                loop {
                    match toks.get(*j).map(|t| &t.0) {
                        Some(Tok::Punct('}')) => {
                            *j += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *j += 1,
                        None => return,
                        _ => use_tree(toks, j, path.clone(), out),
                    }
                }
            }
            _ => return,
        }
    }
}

/// `as name` after a use path: the name.
fn alias(toks: &[(Tok, usize)], j: &mut usize) -> Option<String> {
    if matches!(toks.get(*j).map(|t| &t.0), Some(Tok::Ident(s)) if s == "as") {
        if let Some((Tok::Ident(name), _)) = toks.get(*j + 1) {
            *j += 2;
            return Some(name.clone());
        }
    }
    None
}

/// The knots of the graph (Tarjan's strongly connected components of more than one file).
fn knots(arrows: &BTreeMap<(PathBuf, PathBuf), (usize, String)>) -> Vec<Vec<PathBuf>> {
    let mut next: BTreeMap<&PathBuf, Vec<&PathBuf>> = BTreeMap::new();
    for (from, to) in arrows.keys() {
        next.entry(from).or_default().push(to);
        next.entry(to).or_default();
    }
    struct State<'a> {
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        found: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(
        v: &'a PathBuf,
        next: &BTreeMap<&'a PathBuf, Vec<&'a PathBuf>>,
        s: &mut State<'a>,
    ) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in &next[v] {
            if !s.index.contains_key(w) {
                visit(w, next, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut knot = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                knot.push(w.clone());
                if w == v {
                    break;
                }
            }
            if knot.len() > 1 {
                knot.sort();
                s.found.push(knot);
            }
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in next.keys() {
        if !state.index.contains_key(v) {
            visit(v, &next, &mut state);
        }
    }
    state.found
}

/// Each knot of the crate rooted at `root`, with the arrows inside it and where they are made.
fn circles(root: &Path) -> Vec<String> {
    let krate = Crate::read(root);
    let arrows = krate.arrows();
    let base = root.parent().unwrap();
    let show = |p: &PathBuf| p.strip_prefix(base).unwrap_or(p).display().to_string();
    knots(&arrows)
        .into_iter()
        .map(|knot| {
            let mut text = knot.iter().map(show).collect::<Vec<_>>().join(" <-> ");
            for ((from, to), (line, path)) in &arrows {
                if knot.contains(from) && knot.contains(to) {
                    text.push_str(&format!(
                        "\n    {} -> {}  ({}:{line}: {path})",
                        show(from),
                        show(to),
                        show(from)
                    ));
                }
            }
            text
        })
        .collect()
}

/// Every crate root under `src/`: the library, the init, each binary of `src/bin`.
fn crate_roots() -> Vec<PathBuf> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut roots = vec![src.join("lib.rs"), src.join("main.rs")];
    let mut bins: Vec<PathBuf> = std::fs::read_dir(src.join("bin"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { p.join("main.rs") } else { p })
        .collect();
    bins.sort();
    roots.extend(bins);
    roots
}

#[test]
fn no_import_circle_between_files() {
    let mut found = Vec::new();
    for root in crate_roots() {
        found.extend(circles(&root));
    }
    assert!(
        found.is_empty(),
        "files that import each other (directly or round a circle); move what both need \
         into a file that imports neither:\n{}",
        found.join("\n")
    );
}

/// The reader on a small made-up crate: each kind of arrow it must see, and what is not one.
#[test]
fn the_reader_sees_each_kind_of_arrow() {
    let dir = std::env::temp_dir().join(format!("boxinit-cycles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a")).unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    write(
        "lib.rs",
        "pub mod a;\npub mod b;\npub mod c;\npub mod d;\n#[path = \"e_file.rs\"]\nmod e;\n",
    );
    // a re-exports its child; a::x names a's own item through `super`: a circle a <-> a/x
    write(
        "a.rs",
        "pub mod x;\npub use x::Thing;\npub struct Own;\n// crate::b::Nothing in a comment\n",
    );
    write(
        "a/x.rs",
        "pub struct Thing;\nfn f() -> super::Own { todo!() }\n",
    );
    // b names d's item in code and through a grouped use; d names b back: b <-> d
    write(
        "b.rs",
        "use crate::{c, d::{self, Gadget as G}};\npub fn g() { crate::d::go(); let s = \"crate::c::x\"; }\n",
    );
    write(
        "c.rs",
        // test code draws no arrow: c's tests name b
        "pub fn x() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n    fn t() { crate::b::g(); }\n}\n",
    );
    write(
        "d.rs",
        "pub struct Gadget;\npub fn go() { super::b::g(); }\n",
    );
    write("e_file.rs", "use crate::a::Thing;\n");
    let arrows = Crate::read(&dir.join("lib.rs")).arrows();
    let shown: BTreeSet<String> = arrows
        .keys()
        .map(|(from, to)| {
            let f = from.strip_prefix(&dir).unwrap().display();
            let t = to.strip_prefix(&dir).unwrap().display();
            format!("{f} -> {t}")
        })
        .collect();
    let want: BTreeSet<String> = [
        "a.rs -> a/x.rs",
        "a/x.rs -> a.rs",
        "b.rs -> c.rs",
        "b.rs -> d.rs",
        "d.rs -> b.rs",
        "e_file.rs -> a/x.rs",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(shown, want);
    let found = circles(&dir.join("lib.rs"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with("a/x.rs <-> a.rs"), "{}", found[0]);
    assert!(found[1].starts_with("b.rs <-> d.rs"), "{}", found[1]);
}
