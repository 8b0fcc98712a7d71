//! Where an error stands: turn toml's errors (a byte span, or a dotted key path that is
//! looked up in a spanned parse of the text) into a [`ConfigError`] with line, column and key.

use super::error::{suggest, ConfigError};
use super::validate::{shown_key, Problem};

/// 1-based (line, column) of byte `offset` in `text`; the column counts characters.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = text.get(..end).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// The dotted key toml records inside an error. It has no accessor, but its `Display` prints
/// "in `a.b`" on the last line when the error carries no input text.
fn error_key(err: &toml::de::Error) -> Option<String> {
    let mut bare = err.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    let last = shown.lines().last()?;
    let key = last.strip_prefix("in `")?.strip_suffix('`')?;
    Some(key.to_string())
}

/// Where an error's key stands in `text`, as a byte offset: the unknown key itself when there is
/// one (`field`), else the value of the key at `path` (a bad value). Errors from a table carry
/// the key's path but not its place, so the path is looked up in the spanned parse of the text.
/// Path segments may index arrays of tables: `service[1].name`.
pub(crate) fn key_offset(text: &str, path: Option<&str>, field: Option<&str>) -> Option<usize> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut segments: Vec<&str> = path.map(|p| p.split('.').collect()).unwrap_or_default();
    segments.extend(field);
    let mut table = doc.get_ref();
    let mut offset = None;
    for (i, segment) in segments.iter().enumerate() {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*segment, None),
        };
        let (key, value) = table.iter().find(|(k, _)| k.get_ref() == name)?;
        let last = i + 1 == segments.len();
        if last {
            return Some(match (field, value.get_ref(), index) {
                (Some(_), _, _) => key.span().start,
                // `args[2]`, `automount[0]`: the item itself
                (None, toml::de::DeValue::Array(items), Some(n)) => items
                    .get(n)
                    .map_or(value.span().start, |item| item.span().start),
                (None, _, _) => value.span().start,
            });
        }
        offset = Some(key.span().start);
        let next = segments
            .get(i + 1)
            .map(|s| s.split('[').next().unwrap_or(s));
        let value = match (value.get_ref(), index) {
            (toml::de::DeValue::Array(items), Some(n)) => items.get(n)?.get_ref(),
            // No index (serde names `device.mode`, not which [[device]]): the first entry
            // that has the next key.
            (toml::de::DeValue::Array(items), None) => items
                .iter()
                .map(|item| item.get_ref())
                .find(|item| match (item, next) {
                    (toml::de::DeValue::Table(t), Some(next)) => {
                        t.iter().any(|(k, _)| k.get_ref() == next)
                    }
                    _ => false,
                })
                .or_else(|| items.first().map(|item| item.get_ref()))?,
            (other, _) => other,
        };
        match value {
            toml::de::DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    offset
}

/// Takes the key at the dotted `path` (as [`ConfigError::key`] names it: `box.restat`,
/// `service[1].name`, or `device.mode` for the first `[[device]]` that has a `mode`) out of
/// `table`; whether there was one.
pub(crate) fn remove_key(table: &mut toml::Table, path: &str) -> bool {
    let Some((first, rest)) = path.split_once('.') else {
        let (name, _) = path.split_once('[').unwrap_or((path, ""));
        return table.remove(name).is_some();
    };
    let (name, index) = match first.split_once('[') {
        Some((name, i)) => (name, i.trim_end_matches(']').parse::<usize>().ok()),
        None => (first, None),
    };
    let next = rest.split(['.', '[']).next().unwrap_or(rest);
    match (table.get_mut(name), index) {
        (Some(toml::Value::Table(inner)), _) => remove_key(inner, rest),
        (Some(toml::Value::Array(items)), Some(n)) => match items.get_mut(n) {
            Some(toml::Value::Table(inner)) => remove_key(inner, rest),
            _ => false,
        },
        (Some(toml::Value::Array(items)), None) => items
            .iter_mut()
            .filter_map(|item| item.as_table_mut())
            .find(|t| t.contains_key(next))
            .is_some_and(|inner| remove_key(inner, rest)),
        _ => false,
    }
}

/// The words between backquotes in `s`.
fn backquoted(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// serde's "unknown field `x`, expected one of `a`, `b`" split into (`x`, [a, b]).
fn unknown_field(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, expected) = rest.split_once('`')?;
    Some((field, backquoted(expected)))
}

/// Turn a toml/serde error into a [`ConfigError`]; `text` is the layer's text, if it has one,
/// to turn the error's byte span into a line and column.
pub(crate) fn to_config_error(
    source: &str,
    text: Option<&str>,
    err: &toml::de::Error,
) -> ConfigError {
    // toml's own message is one line; its multi-line snippet lives only in Display
    let raw = err
        .message()
        .lines()
        .next()
        .unwrap_or("")
        .trim_end_matches('.');
    let section = error_key(err);
    let offset = match text {
        Some(text) => err
            .span()
            .map(|span| span.start)
            .or_else(|| key_offset(text, section.as_deref(), unknown_field(raw).map(|(f, _)| f))),
        None => None,
    };
    let (line, column) = match (text, offset) {
        (Some(text), Some(offset)) => {
            let (l, c) = line_col(text, offset);
            (Some(l), Some(c))
        }
        _ => (None, None),
    };
    let (key, message) = match unknown_field(raw) {
        Some((field, known)) => unknown_key(section.as_deref(), field, &known, line.is_some()),
        None => match section {
            Some(key) => (
                Some(key.clone()),
                format!("`{key}`: {raw}{}", list_hint(raw).unwrap_or_default()),
            ),
            None => (None, raw.to_string()),
        },
    };
    ConfigError {
        source: source.to_string(),
        line,
        column,
        key,
        message,
    }
}

/// For one string where a list is wanted (`dhcp = "eth0"`), how to write the list:
/// `; write a list: ["eth0"]` (serde quotes the string as TOML's basic strings do).
fn list_hint(raw: &str) -> Option<String> {
    let quoted = raw
        .strip_prefix("invalid type: string ")?
        .strip_suffix(", expected a sequence")?;
    Some(format!("; write a list: [{quoted}]"))
}

/// (dotted key, message) for an unknown key `field` in `section` (None: the top level).
/// With a location the message names the section like a TOML header; without one (a table
/// built from the command line) it names the full dotted key.
fn unknown_key(
    section: Option<&str>,
    field: &str,
    known: &[&str],
    located: bool,
) -> (Option<String>, String) {
    let key = match section {
        Some(s) => format!("{s}.{field}"),
        None => field.to_string(),
    };
    let what = match (section, located) {
        (None, _) => format!("unknown section `{field}`"),
        (Some(s), true) => format!("unknown key `{field}` in [{s}]"),
        (Some(_), false) => format!("unknown key `{key}`"),
    };
    let hint = match suggest(field, known.iter().copied()) {
        Some(s) => format!(", did you mean `{s}`?"),
        None if known.is_empty() => String::new(),
        None => format!(" (known: {})", known.join(", ")),
    };
    (Some(key), format!("{what}{hint}"))
}

/// A [`Problem`] found in a layer as a [`ConfigError`]: its line and column when the layer is
/// text (`text`), the key as messages show it (`service.args`, without indices).
pub(crate) fn problem_error(source: &str, text: Option<&str>, problem: &Problem) -> ConfigError {
    let position = text.and_then(|text| {
        let offset = key_offset(text, Some(&problem.path), problem.field.as_deref())?;
        Some(line_col(text, offset))
    });
    let key = shown_key(&problem.path);
    ConfigError {
        source: source.to_string(),
        line: position.map(|(line, _)| line),
        column: position.map(|(_, column)| column),
        key: Some(key.clone()),
        message: format!("`{key}`: {}", problem.message),
    }
}

/// A config file's bytes as text; a file that is not UTF-8 is an error at its first bad
/// byte. A leading byte-order mark (Windows editors write one) is dropped.
pub(crate) fn utf8<'a>(source: &str, bytes: &'a [u8]) -> Result<&'a str, ConfigError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.strip_prefix('\u{feff}').unwrap_or(text)),
        Err(e) => {
            let valid = bytes
                .get(..e.valid_up_to())
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or("");
            let (line, column) = line_col(valid, valid.len());
            let byte = bytes.get(e.valid_up_to()).copied().unwrap_or(0);
            Err(ConfigError {
                source: source.to_string(),
                line: Some(line),
                column: Some(column),
                key: None,
                message: format!(
                    "not UTF-8 text (byte 0x{byte:02x}); save it as UTF-8 (a Latin-1 editor writes `é` as the one byte 0xe9)"
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_positions() {
        let t = "ab\ncé\n\nx";
        let cases = [
            (0, (1, 1)),
            (1, (1, 2)),
            (3, (2, 1)),
            (4, (2, 2)),
            (5, (2, 2)),
            (6, (2, 3)),
            (7, (3, 1)),
            (8, (4, 1)),
            (9, (4, 2)),
            (99, (4, 2)),
        ];
        for (off, want) in cases {
            assert_eq!(line_col(t, off), want, "{off}");
        }
        assert_eq!(line_col("", 5), (1, 1));
    }
}
