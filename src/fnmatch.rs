//! Shell-style wildcard matching as glibc's `fnmatch(3)` with no flags, which libkmod uses for
//! `modules.alias` patterns: the init's module aliases, `[[device]] match` rules and the
//! interface globs of `[network] dhcp` all use this one. Pure; fuzzed against glibc's.

/// Shell-style wildcard match as `fnmatch(pattern, text, 0)`: `*` any run, `?` any one
/// character, `[...]` a set with ranges and `!`/`^` negation, `\` escapes the next character.
/// An unterminated `[` matches itself; a trailing lone `\` matches nothing (glibc's choice).
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // where to resume after the last `*`: (pattern index after it, text index it absorbed to)
    let mut star: Option<(usize, usize)> = None;
    loop {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some(_) => {
                if let Some(c) = t.get(ti) {
                    if let Some(next) = match_one(&p, pi, *c) {
                        pi = next;
                        ti += 1;
                        continue;
                    }
                }
            }
            None if ti == t.len() => return true,
            None => {}
        }
        // mismatch: let the last `*` absorb one more character, or fail
        match star {
            Some((sp, st)) if st < t.len() => {
                star = Some((sp, st + 1));
                pi = sp;
                ti = st + 1;
            }
            _ => return false,
        }
    }
}

/// Match one pattern element at `p[pi]` (not `*`) against `c`; the index after the element
/// when it matches.
fn match_one(p: &[char], pi: usize, c: char) -> Option<usize> {
    match p.get(pi)? {
        '?' => Some(pi + 1),
        '[' => match bracket(p, pi + 1, c) {
            Bracket::Closed { matched, next } => matched.then_some(next),
            Bracket::Literal => (c == '[').then_some(pi + 1),
            Bracket::Fails => None,
        },
        '\\' => match p.get(pi + 1) {
            Some(e) => (*e == c).then_some(pi + 2),
            // a pattern ending in a lone `\` matches nothing, as glibc's (found by fuzzing)
            None => None,
        },
        lit => (*lit == c).then_some(pi + 1),
    }
}

/// What a bracket expression says about one character, as glibc's `fnmatch` reads it (the
/// unterminated cases were found by fuzzing against it).
enum Bracket {
    /// A closed `[...]`: whether the character is in the set, and the index after the `]`.
    Closed { matched: bool, next: usize },
    /// No closing `]`: the `[` is a literal.
    Literal,
    /// A range or a `\` cut off by the end of the pattern: no match here.
    Fails,
}

/// The bracket expression whose body starts at `p[start]`, for the character `c`.
fn bracket(p: &[char], start: usize, c: char) -> Bracket {
    let mut i = start;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let Some(&lo) = p.get(i) else {
            return Bracket::Literal;
        };
        if matched {
            // glibc stops reading members once one matched: the rest is only skipped to the
            // `]` (a range cut off by the end no longer fails; found by fuzzing)
            match lo {
                ']' if !first => {
                    return Bracket::Closed {
                        matched: !negate,
                        next: i + 1,
                    }
                }
                '\\' if p.get(i + 1).is_none() => return Bracket::Fails,
                '\\' => i += 2,
                _ => i += 1,
            }
            first = false;
            continue;
        }
        // a `]` right after `[` or `[!` is a member, not the end
        if lo == ']' && !first {
            return Bracket::Closed {
                matched: matched != negate,
                next: i + 1,
            };
        }
        first = false;
        let (lo, after_lo) = match lo {
            '\\' => match p.get(i + 1) {
                Some(e) => (*e, i + 2),
                None => return Bracket::Fails,
            },
            other => (other, i + 1),
        };
        match (p.get(after_lo), p.get(after_lo + 1)) {
            (Some('-'), Some(hi)) if *hi != ']' => {
                let (hi, after_hi) = match hi {
                    '\\' => match p.get(after_lo + 2) {
                        Some(h) => (*h, after_lo + 3),
                        None => return Bracket::Fails,
                    },
                    other => (*other, after_lo + 2),
                };
                matched |= lo <= c && c <= hi;
                i = after_hi;
            }
            // a range cut off by the end of the pattern: no match (`[` matching itself has
            // gone to the skip above)
            (Some('-'), None) if lo != c => return Bracket::Fails,
            _ => {
                matched |= lo == c;
                i = after_lo;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_table() {
        let cases = [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything", true),
            ("a*", "a", true),
            ("a*b", "axxb", true),
            ("a*b", "axxbc", false),
            ("*b*", "abc", true),
            ("a*b*c", "abbbc", true),
            ("a*b*c*d", "abcabcabd", true),
            ("a*b*c*d", "abcabcab", false),
            ("**a", "xa", true),
            ("?", "a", true),
            ("?", "", false),
            ("??", "a", false),
            ("a?c", "abc", true),
            ("[abc]", "b", true),
            ("[abc]", "d", false),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            ("[!a-c]", "d", true),
            ("[!a-c]", "a", false),
            ("[^a-c]", "b", false),
            ("[^a-c]", "z", true),
            ("[]]", "]", true),
            ("[!]]", "]", false),
            ("[!]]", "a", true),
            ("[a-]", "-", true),
            ("[a-]", "a", true),
            ("[0-9A-F]", "B", true),
            ("[0-9A-F]", "g", false),
            ("[", "[", true),
            ("[abc", "[abc", true),
            ("[abc", "a", false),
            ("\\*", "*", true),
            ("\\*", "a", false),
            // glibc: a pattern that ends in a lone backslash never matches (fuzz finding)
            ("a\\", "a\\", false),
            ("\\", "\\", false),
            ("[\\]]", "]", true),
            // unterminated brackets as glibc reads them (fuzz findings)
            ("*[a-", ",*[a-", false),
            ("[a", "[a", true),
            ("[a", "a", false),
            ("[[", "[[", true),
            ("*[\\[", "[[", true),
            ("[ab-", "[ab-", false),
            ("[a-b-", "[a-b-", true),
            ("[-", "[-", true),
            ("[[-", "[[-", true),
            ("[[-", "a", false),
            // once a member matched, glibc only skips to the `]`: a cut-off range after it
            // leaves the `[` a literal (fuzz finding)
            ("*[[!-", "*[[!-", true),
            ("[[a-", "[[a-", false),
            ("[[!!-", "[[!!-", false),
            ("[![-", "[![-", true),
            ("[a[-", "[a[-", true),
            ("**a[?a[-", "[*a[?a[-", true),
            ("[!a", "[!a", true),
            ("[a\\", "[a\\", false),
            ("[a-\\", "[a-\\", false),
            ("d0000000[1-3]v*", "d00000002v00001AF4", true),
            ("é*", "éa", true),
            (
                "usb:v*p*d*dc*dsc*dp*ic03isc01ip01in*",
                "usb:v046Dp0A44d0100dc00dsc00dp00ic03isc01ip01in00",
                true,
            ),
            (
                "usb:v*p*d*dc*dsc*dp*ic03isc01ip01in*",
                "usb:v046Dp0A44d0100dc00dsc00dp00ic03isc01ip02in00",
                false,
            ),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                fnmatch(pattern, text),
                want,
                "fnmatch({pattern:?}, {text:?})"
            );
        }
    }

    #[test]
    fn fnmatch_pathological_is_fast() {
        let text = "a".repeat(2000);
        let pattern = format!("{}b", "a*".repeat(50));
        assert!(!fnmatch(&pattern, &text));
    }
}
