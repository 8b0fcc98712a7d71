//! The kernel command line: split into words the way the kernel does, turn `boxinit.*=` words
//! into a config layer and `module.param=` words into module parameters; it does not read
//! `/proc/cmdline` (the caller passes its bytes to [`from_bytes`], which keeps the words that
//! are UTF-8) nor validate keys (`config::load` does).

use std::collections::BTreeMap;

use crate::config::ConfigError;

/// The name config errors give this source.
pub const SOURCE: &str = "kernel command line";

/// Prefix of the words that configure boxinit.
const PREFIX: &str = "boxinit.";

/// Short forms: `boxinit.<alias>=` sets this dotted key.
const ALIASES: &[(&str, &str)] = &[
    ("boot", "boot.device"),
    ("loglevel", "system.log_level"),
    ("rescue", "system.rescue"),
];

/// Split a command line into words as the kernel's `next_arg()` does: whitespace (the
/// kernel's, see [`is_kernel_space`]) separates words except inside double quotes; a leading
/// quote of the word or of its value (after the first `=`) is dropped with the word's closing
/// quote, so `a="b c"` is `a=b c`; other quotes stay (`x=["a","b"]` keeps them).
pub fn parse_words(cmdline: &str) -> Vec<String> {
    word_ranges(cmdline.as_bytes())
        .into_iter()
        .filter_map(|range| cmdline.get(range))
        .map(unquote)
        .collect()
}

/// Whitespace as the kernel's `isspace()` sees it (`lib/ctype.c`): ASCII space, tab, the line
/// and page breaks, and 0xa0, which its Latin-1 table also counts as a space.
fn is_kernel_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0)
}

/// The byte ranges of the words of a command line, split as [`parse_words`] splits text
/// (quotes included), on bytes: the kernel passes whatever bytes the boot loader gave it.
fn word_ranges(cmdline: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = None;
    let mut in_quote = false;
    for (i, b) in cmdline.iter().enumerate() {
        match start {
            None if is_kernel_space(*b) => continue,
            None => start = Some(i),
            Some(_) => {}
        }
        if is_kernel_space(*b) && !in_quote {
            if let Some(s) = start.take() {
                ranges.push(s..i);
            }
            continue;
        }
        if *b == b'"' {
            in_quote = !in_quote;
        }
    }
    if let Some(s) = start {
        ranges.push(s..cmdline.len());
    }
    ranges
}

/// `bytes` for a message: the UTF-8 parts as they are, other bytes as `\xNN`.
fn shown(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `/proc/cmdline` as the kernel gives it, bytes that may not be UTF-8 (a `cmdline.txt` saved
/// by a Latin-1 editor): the text of its UTF-8 words, and a message for each word that is not
/// UTF-8 and is therefore left out. The rest of the line still applies.
pub fn from_bytes(cmdline: &[u8]) -> (String, Vec<String>) {
    let mut words: Vec<&str> = Vec::new();
    let mut skipped = Vec::new();
    for (n, range) in word_ranges(cmdline).into_iter().enumerate() {
        let bytes = cmdline.get(range).unwrap_or_default();
        match std::str::from_utf8(bytes) {
            Ok(word) => words.push(word),
            Err(_) => skipped.push(format!(
                "{SOURCE}: word {} `{}` is not UTF-8 text, so it is ignored; save the command line (cmdline.txt) as UTF-8",
                n + 1,
                shown(bytes)
            )),
        }
    }
    (words.join(" "), skipped)
}

/// Strip quotes as the kernel does: a word-leading quote or a value-leading quote, each with
/// the word's trailing quote.
fn unquote(word: &str) -> String {
    if let Some(inner) = word.strip_prefix('"') {
        return inner.strip_suffix('"').unwrap_or(inner).to_string();
    }
    match word.split_once('=') {
        // a word starting with `=` has no parameter name: the kernel treats it as a bare word
        Some((param, value)) if !param.is_empty() => match value.strip_prefix('"') {
            Some(v) => format!("{param}={}", v.strip_suffix('"').unwrap_or(v)),
            None => word.to_string(),
        },
        _ => word.to_string(),
    }
}

/// The words before `--`: the kernel passes the rest to init as arguments, not parameters.
fn parameters(cmdline: &str) -> impl Iterator<Item = String> {
    parse_words(cmdline).into_iter().take_while(|w| w != "--")
}

/// A command-line value as TOML when it is one (`true`, `5`, `["a","b"]`, `'quoted'`), else
/// the plain string, so `boxinit.boot=LABEL=BOOT` needs no quoting. The kernel strips double
/// quotes around a value: write `'123'` to force a string that looks like a number.
pub fn value(text: &str) -> toml::Value {
    text.parse::<toml::Value>()
        .unwrap_or_else(|_| toml::Value::String(text.to_string()))
}

/// The `boxinit.*=` words as a config table, plus errors for words that cannot be a key.
///
/// `boxinit.boot=`, `boxinit.loglevel=`, `boxinit.rescue=` are short forms; otherwise
/// `boxinit.<section>.<key>[.<key>...]=<value>` sets that key. A later word overrides an
/// earlier one, as with the kernel's own parameters. Whether the keys exist is checked by
/// `config::load` when the table is given to it as a `Layer::Table` named [`SOURCE`].
pub fn overrides(cmdline: &str) -> (toml::Table, Vec<ConfigError>) {
    let mut table = toml::Table::new();
    let mut errors = Vec::new();
    for word in parameters(cmdline) {
        let Some((key, text)) = word.strip_prefix(PREFIX).and_then(|w| w.split_once('=')) else {
            continue;
        };
        let path = match ALIASES.iter().find(|(alias, _)| *alias == key) {
            Some((_, full)) => full.to_string(),
            None => key.to_string(),
        };
        if let Err(message) = set(&mut table, &path, value(text)) {
            errors.push(ConfigError {
                source: SOURCE.to_string(),
                line: None,
                column: None,
                key: Some(path),
                // escaped: a quoted word may hold a newline, and an error is one kmsg line
                message: format!("`{}`: {message}", word.escape_debug()),
            });
        }
    }
    (table, errors)
}

/// Set the dotted key `path` in `table`, creating intermediate tables.
fn set(table: &mut toml::Table, path: &str, value: toml::Value) -> Result<(), String> {
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("empty key name".to_string());
    }
    let Some((last, sections)) = parts.split_last() else {
        return Err("empty key name".to_string());
    };
    if sections.is_empty() {
        let aliases: Vec<String> = ALIASES
            .iter()
            .map(|(a, _)| format!("boxinit.{a}="))
            .collect();
        return Err(format!(
            "not a key; use boxinit.<section>.<key>=<value> or {}",
            aliases.join(", ")
        ));
    }
    let mut here = table;
    for section in sections {
        let entry = here
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        here = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(format!(
                    "`{section}` was given a value earlier, it cannot also hold keys"
                ))
            }
        };
    }
    here.insert(last.to_string(), value);
    Ok(())
}

/// `module.param=value` words, as modprobe reads them from `/proc/cmdline` for modules it
/// loads (the kernel applies them only to built-in code): module name (`-` as `_`) ->
/// `"p1=v1 p2=v2"`, ready for `finit_module`. `boxinit.*` words and words without `=` are
/// left out; a value with spaces is quoted again so the kernel's parser keeps it whole.
pub fn module_params(cmdline: &str) -> BTreeMap<String, String> {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for word in parameters(cmdline) {
        let Some((key, val)) = word.split_once('=') else {
            continue;
        };
        let Some((module, param)) = key.split_once('.') else {
            continue;
        };
        if module.is_empty() || param.is_empty() || module == "boxinit" {
            continue;
        }
        let setting = if val.chars().any(char::is_whitespace) {
            format!("{param}=\"{val}\"")
        } else {
            format!("{param}={val}")
        };
        let all = params
            .entry(crate::devices::modindex::normalize(module))
            .or_default();
        if !all.is_empty() {
            all.push(' ');
        }
        all.push_str(&setting);
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DeviceSpec;
    use crate::config::{self, Config, LogLevel, RescueAction, RestartPolicy};
    use std::time::Duration;

    /// Class 1 on the command line: each word that is not UTF-8 is left out with a message,
    /// the others apply. Each case: (bytes, the text kept, the messages).
    #[test]
    fn bytes_that_are_not_utf8() {
        let cases: &[(&[u8], &str, &[&str])] = &[
            (b"console=ttyS0 quiet", "console=ttyS0 quiet", &[]),
            (
                b"console=ttyS0 caf\xe9 boxinit.loglevel=debug",
                "console=ttyS0 boxinit.loglevel=debug",
                &["kernel command line: word 2 `caf\\xe9` is not UTF-8 text, so it is ignored; save the command line (cmdline.txt) as UTF-8"],
            ),
            (
                b"boxinit.box.args=[\"\xff\"] x=\"a \xfe b\" y",
                "y",
                &[
                    "kernel command line: word 1 `boxinit.box.args=[\"\\xff\"]` is not UTF-8 text, so it is ignored; save the command line (cmdline.txt) as UTF-8",
                    "kernel command line: word 2 `x=\"a \\xfe b\"` is not UTF-8 text, so it is ignored; save the command line (cmdline.txt) as UTF-8",
                ],
            ),
            // the kernel's isspace() takes 0xa0 as a space too
            (b"a\xa0b", "a b", &[]),
            (b"v=\"voil\xc3\xa0\" w", "v=\"voilà\" w", &[]),
        ];
        for (bytes, text, messages) in cases {
            let (got, skipped) = from_bytes(bytes);
            assert_eq!(got, *text, "{}", bytes.escape_ascii());
            assert_eq!(skipped, *messages, "{}", bytes.escape_ascii());
        }
        let (text, _) = from_bytes(b"\xe9 boxinit.rescue=wait");
        let (table, errors) = overrides(&text);
        assert!(errors.is_empty());
        assert_eq!(table["system"]["rescue"].as_str(), Some("wait"));
    }

    #[test]
    fn words() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("   \n", &[]),
            ("console=ttyS0 quiet\n", &["console=ttyS0", "quiet"]),
            ("  a\tb  c ", &["a", "b", "c"]),
            ("a=\"b c\" d", &["a=b c", "d"]),
            ("\"a b\" c", &["a b", "c"]),
            ("\"a=b c\"", &["a=b c"]),
            ("x=[\"a\",\"b\"]", &["x=[\"a\",\"b\"]"]),
            ("x=\"unterminated y", &["x=unterminated y"]),
            ("p=\"\"", &["p="]),
            ("=\"a b\"", &["=\"a b\""]),
            ("a=b=c", &["a=b=c"]),
            (
                "boxinit.box.args=[\"x y\"] z",
                &["boxinit.box.args=[\"x y\"]", "z"],
            ),
            ("é=ü ok", &["é=ü", "ok"]),
        ];
        for (line, want) in cases {
            assert_eq!(parse_words(line), want.to_vec(), "{line:?}");
        }
    }

    #[test]
    fn values() {
        let cases = [
            ("true", toml::Value::Boolean(true)),
            ("5", toml::Value::Integer(5)),
            ("'123'", toml::Value::String("123".into())),
            ("\"q\"", toml::Value::String("q".into())),
            ("LABEL=BOOT", toml::Value::String("LABEL=BOOT".into())),
            ("500ms", toml::Value::String("500ms".into())),
            ("/dev/vda1", toml::Value::String("/dev/vda1".into())),
            ("on-failure", toml::Value::String("on-failure".into())),
            ("", toml::Value::String("".into())),
            (
                "[\"a\",\"b\"]",
                toml::Value::Array(vec![
                    toml::Value::String("a".into()),
                    toml::Value::String("b".into()),
                ]),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(value(text), want, "{text}");
        }
    }

    fn table(t: &str) -> toml::Table {
        t.parse().unwrap()
    }

    #[test]
    fn override_tables() {
        let cases = [
            ("", ""),
            ("quiet console=ttyS0 boxinit.debug boxinit", ""),
            ("boxinit.boot=LABEL=BOOT", "boot.device = \"LABEL=BOOT\""),
            ("boxinit.loglevel=debug", "system.log_level = \"debug\""),
            ("boxinit.rescue=wait", "system.rescue = \"wait\""),
            ("boxinit.box.restart=never", "box.restart = \"never\""),
            ("boxinit.boot.read_only=false", "boot.read_only = false"),
            (
                "boxinit.box.args=[\"-v\",\"x\"]",
                "box.args = [\"-v\", \"x\"]",
            ),
            ("boxinit.box.args=[\"x y\"]", "box.args = [\"x y\"]"),
            (
                "boxinit.system.hostname=\"kiosk 1\"",
                "system.hostname = \"kiosk 1\"",
            ),
            ("boxinit.system.hostname='42'", "system.hostname = \"42\""),
            ("boxinit.box.backoff.max=1m", "box.backoff.max = \"1m\""),
            ("boxinit.box.env.LANG=C.UTF-8", "box.env.LANG = \"C.UTF-8\""),
            (
                "boxinit.loglevel=info boxinit.system.log_level=trace",
                "system.log_level = \"trace\"",
            ),
            (
                "boxinit.box.path=a boxinit.box.args=[] boxinit.box.path=b",
                "box.path = \"b\"\nbox.args = []",
            ),
            (
                "boxinit.loglevel=debug -- boxinit.rescue=halt",
                "system.log_level = \"debug\"",
            ),
            ("xboxinit.rescue=halt foo.boxinit.x=1", ""),
        ];
        for (line, want) in cases {
            let (t, errs) = overrides(line);
            assert!(errs.is_empty(), "{line}: {errs:?}");
            assert_eq!(t, table(want), "{line}");
        }
    }

    #[test]
    fn override_errors() {
        let cases = [
            ("boxinit.foo=1", "foo", "kernel command line: `boxinit.foo=1`: not a key; use boxinit.<section>.<key>=<value> or boxinit.boot=, boxinit.loglevel=, boxinit.rescue="),
            ("boxinit.=1", "", "kernel command line: `boxinit.=1`: empty key name"),
            ("boxinit.box..path=1", "box..path", "kernel command line: `boxinit.box..path=1`: empty key name"),
            (
                "boxinit.box.backoff=1 boxinit.box.backoff.max=1s",
                "box.backoff.max",
                "kernel command line: `boxinit.box.backoff.max=1s`: `backoff` was given a value earlier, it cannot also hold keys",
            ),
            // a quoted word may hold a newline: the error stays one line (fuzz finding)
            (
                "\"boxinit.x\ny=1\"",
                "x\ny",
                "kernel command line: `boxinit.x\\ny=1`: not a key; use boxinit.<section>.<key>=<value> or boxinit.boot=, boxinit.loglevel=, boxinit.rescue=",
            ),
        ];
        for (line, key, want) in cases {
            let (_, errs) = overrides(line);
            assert_eq!(errs.len(), 1, "{line}");
            assert_eq!(errs[0].key.as_deref(), Some(key));
            assert_eq!(errs[0].to_string(), want);
        }
    }

    fn cmdline_layer(line: &str) -> (config::Layer, Vec<ConfigError>) {
        let (table, errs) = overrides(line);
        let name = SOURCE.to_string();
        (config::Layer::Table { name, table }, errs)
    }

    #[test]
    fn layer_goes_through_config_validation() {
        let line = "console=ttyS0 boxinit.boot=PARTUUID=0badcafe-01 boxinit.loglevel=trace \
                    boxinit.rescue=poweroff boxinit.box.restart=on-failure \
                    boxinit.box.backoff.initial=1s boxinit.boot.timeout=30s quiet\n";
        let (cmd, errs) = cmdline_layer(line);
        assert!(errs.is_empty());
        let (c, errs) = config::load(&[cmd]);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(c.boot.device, DeviceSpec::PartUuid("0badcafe-01".into()));
        assert_eq!(c.boot.timeout, Duration::from_secs(30));
        assert_eq!(c.system.log_level, LogLevel::Trace);
        assert_eq!(c.system.rescue, RescueAction::Poweroff);
        assert_eq!(c.box_.restart, RestartPolicy::OnFailure);
        assert_eq!(c.box_.backoff.initial, Duration::from_secs(1));

        let cases = [
            ("boxinit.box.restat=never", "kernel command line: unknown key `box.restat`, did you mean `restart`?"),
            ("boxinit.sytem.hostname=x", "kernel command line: unknown section `sytem`, did you mean `system`?"),
            ("boxinit.boot=sda1", "kernel command line: `boot.device`: bad boot device `sda1`: unknown form; expected `auto`, `none`, `LABEL=<label>`, `UUID=<XXXX-XXXX>`, `PARTUUID=<xxxxxxxx-nn or GPT GUID>` or `/dev/<name>`"),
            ("boxinit.loglevel=loud", "kernel command line: `system.log_level`: `loud` is not one of error, warn, info, debug, trace"),
        ];
        for (line, want) in cases {
            let (cmd, errs) = cmdline_layer(line);
            assert!(errs.is_empty());
            let (c, errs) = config::load(&[cmd]);
            assert_eq!(c, Config::default());
            let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            assert_eq!(got, vec![want.to_string()], "{line}");
        }
    }

    #[test]
    fn module_parameters() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("console=ttyS0 quiet root=/dev/vda", &[]),
            (
                "snd-bcm2835.enable_headphones=1",
                &[("snd_bcm2835", "enable_headphones=1")],
            ),
            (
                "usbcore.autosuspend=-1 usb-core.old_scheme_first=1",
                &[
                    ("usbcore", "autosuspend=-1"),
                    ("usb_core", "old_scheme_first=1"),
                ],
            ),
            (
                "dwc2.dr_mode=peripheral g_ether.dev_addr=aa:bb dwc2.otg_cap=0",
                &[
                    ("dwc2", "dr_mode=peripheral otg_cap=0"),
                    ("g_ether", "dev_addr=aa:bb"),
                ],
            ),
            ("m.p=\"a b\"", &[("m", "p=\"a b\"")]),
            ("m.p= m.q", &[("m", "p=")]),
            ("boxinit.loglevel=debug boxinit.box.path=x", &[]),
            ("m.p.q=1", &[("m", "p.q=1")]),
            (".p=1 m.=1 m.x=1 -- m.y=2", &[("m", "x=1")]),
            ("printk.time=1", &[("printk", "time=1")]),
        ];
        for (line, want) in cases {
            let got = module_params(line);
            let want: BTreeMap<String, String> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want, "{line}");
        }
    }
}
