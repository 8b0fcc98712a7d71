//! [`ConfigError`], one thing wrong in one config layer with where it is, and the
//! suggestions ("did you mean `restart`?") its messages make.

use std::fmt;

/// Something wrong in one config layer, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File name, or `kernel command line`.
    pub source: String,
    /// 1-based line, when the layer is text.
    pub line: Option<usize>,
    /// 1-based column (in characters), when the layer is text.
    pub column: Option<usize>,
    /// Dotted key, e.g. `box.restat`, when known.
    pub key: Option<String>,
    /// What is wrong, in one line.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// "`x` is not one of a, b, c", with a suggestion when one is close.
pub(crate) fn not_one_of(value: &str, names: &[&str]) -> String {
    let mut msg = format!("`{value}` is not one of {}", names.join(", "));
    if let Some(s) = suggest(value, names.iter().copied()) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    msg
}

/// Edit distance counting an insertion, deletion, substitution or swap of two neighbours as
/// one edit (optimal string alignment): `evn` is one edit from `env`. Keys are short and this
/// runs only on errors, so the plain three-row table is fine.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let at = |row: &Vec<usize>, k: usize| row.get(k).copied().unwrap_or(usize::MAX - 1);
            let mut d = (at(&prev, j) + usize::from(ca != cb))
                .min(at(&prev, j + 1) + 1)
                .min(at(&cur, j) + 1);
            let swapped =
                i > 0 && j > 0 && a.get(i - 1) == Some(cb) && b.get(j - 1) == Some(ca) && ca != cb;
            if swapped {
                d = d.min(at(&before, j - 1) + 1);
            }
            cur.push(d);
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev.last().copied().unwrap_or(0)
}

/// The closest of `known` to `word`, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    known
        .into_iter()
        .map(|k| (edit_distance(word, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances_and_suggestions() {
        let cases = [
            ("", "", 0),
            ("abc", "", 3),
            ("", "abc", 3),
            ("restat", "restart", 1),
            ("kitten", "sitting", 3),
            ("on_failure", "on-failure", 1),
            ("é", "e", 1),
            ("evn", "env", 1),
            ("laod", "load", 1),
            ("ab", "ba", 1),
            ("abc", "ca", 3),
        ];
        for (a, b, d) in cases {
            assert_eq!(edit_distance(a, b), d, "{a} {b}");
        }
        let keys = ["path", "args", "env", "restart", "on_exit", "backoff"];
        let cases = [
            ("restat", Some("restart")),
            ("pth", Some("path")),
            ("evn", Some("env")),
            ("onexit", Some("on_exit")),
            ("xyz", None),
            ("hostname", None),
            ("", None),
        ];
        for (w, want) in cases {
            assert_eq!(suggest(w, keys), want, "{w}");
        }
    }
}
