//! `[system] locked`: keys only the early layers (the initramfs's `/etc/init.toml`,
//! `BOXINIT_CONFIG`) may set, so that whoever edits the card's `init.toml` or the kernel
//! command line cannot change them: who the box runs as, `no_new_privs`, how `/boot` is
//! mounted, which services run. A late layer that sets a locked key is an error, and ignored
//! as a whole like any broken layer. Pure: `load` calls [`problem`] for each layer.

use super::layer::{Layer, Place};
use super::validate::Problem;
use super::Config;

/// The key that lists the locked keys; always locked itself, or a card could unlock.
const LOCKED: &str = "system.locked";

/// Sections that are lists (`[[service]]`): lockable only whole, since a card could
/// otherwise add an entry without the locked key (a new service running as root).
const LISTS: &[&str] = &["service", "device", "automount"];

/// The first problem of `layer` (its table `table`) with the keys `early` (the layers merged
/// before it) locked, or with the names it locks.
pub(super) fn problem(early: &toml::Table, layer: &Layer, table: &toml::Table) -> Option<Problem> {
    if let Some(problem) = bad_name(table) {
        return Some(problem);
    }
    if !is_late(layer) {
        return None;
    }
    let mut locked = locked_keys(early);
    locked.push(LOCKED.to_string());
    let key = locked.into_iter().find(|key| sets(table, key))?;
    Some(Problem {
        path: key,
        field: None,
        message: "locked by the built-in config (`[system] locked`): only the initramfs's init.toml can set it".to_string(),
    })
}

/// Whether a layer comes from where a card's owner writes: the boot partition's file, or the
/// kernel command line (`cmdline.txt` is on the card too).
fn is_late(layer: &Layer) -> bool {
    matches!(
        layer,
        Layer::File {
            place: Place::BootPartition,
            ..
        } | Layer::Table { .. }
    )
}

/// `system.locked` of a merged table.
fn locked_keys(table: &toml::Table) -> Vec<String> {
    let list = table
        .get("system")
        .and_then(|s| s.get("locked"))
        .and_then(|l| l.as_array());
    list.into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Whether `table` sets the dotted `key` (or something inside it).
fn sets(table: &toml::Table, key: &str) -> bool {
    let mut here = table;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let Some(value) = here.get(part) else {
            return false;
        };
        if parts.peek().is_none() {
            return true;
        }
        match value.as_table() {
            Some(inner) => here = inner,
            None => return false,
        }
    }
    false
}

/// A name in this layer's `system.locked` that is not a key of the schema (a typo would lock
/// nothing), or a key inside a list.
fn bad_name(table: &toml::Table) -> Option<Problem> {
    for (i, name) in locked_keys(table).iter().enumerate() {
        let path = format!("{LOCKED}[{i}]");
        let section = name.split('.').next().unwrap_or("");
        if name.contains('.') && LISTS.contains(&section) {
            return Some(Problem {
                path,
                field: None,
                message: format!(
                    "`{name}`: lock `{section}` as a whole (a card could add a [[{section}]] without it)"
                ),
            });
        }
        if let Err(message) = known(name) {
            return Some(Problem {
                path,
                field: None,
                message,
            });
        }
    }
    None
}

/// Whether the dotted `name` is a key of the schema: a table setting it, with a value of no
/// type any key has, fails with "invalid type" when the key exists, "unknown field" when not.
fn known(name: &str) -> Result<(), String> {
    let mut value = toml::Value::Table(toml::Table::new());
    let parts: Vec<&str> = name.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("`{name}` is not a key"));
    }
    for part in parts.iter().rev() {
        let mut table = toml::Table::new();
        table.insert(part.to_string(), value);
        value = toml::Value::Table(table);
    }
    let toml::Value::Table(probe) = value else {
        return Ok(());
    };
    match probe.try_into::<Config>() {
        Ok(_) => Ok(()),
        Err(e) => {
            let message = e.message().to_string();
            match message.strip_prefix("unknown field `") {
                None => Ok(()),
                Some(rest) => {
                    let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
                    let field = rest.split('`').next().unwrap_or("");
                    let hint = match super::suggest(field, expected.iter().copied()) {
                        Some(s) => format!("; did you mean `{s}`?"),
                        None => format!(" (known here: {})", expected.join(", ")),
                    };
                    Err(format!("`{name}` is not a key{hint}"))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{load, Layer, Place};

    fn file(name: &str, text: &str, place: Place) -> Layer {
        Layer::File {
            name: name.into(),
            bytes: text.as_bytes().to_vec(),
            place,
        }
    }

    fn builtin(text: &str) -> Layer {
        file("/etc/init.toml", text, Place::Early)
    }

    fn card(text: &str) -> Layer {
        file("/boot/init.toml", text, Place::BootPartition)
    }

    fn cmdline(text: &str) -> Layer {
        Layer::Table {
            name: "kernel command line".into(),
            table: text.parse().unwrap(),
        }
    }

    const BUILTIN: &str = "[system]\nlocked = [\"box.user\", \"box.no_new_privs\", \"boot.read_only\", \"service\"]\n\
                           [box]\nuser = 1000\nno_new_privs = true\n";

    #[test]
    fn a_card_cannot_set_a_locked_key() {
        let (cfg, errors) = load(&[
            builtin(BUILTIN),
            card("[system]\nhostname = \"x\"\n[box]\nargs = [\"a\"]\nuser = 0\n"),
        ]);
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            ["/boot/init.toml:5:8: `box.user`: locked by the built-in config (`[system] locked`): only the initramfs's init.toml can set it"]
        );
        // the card's file is ignored as a whole, as any broken layer
        assert_eq!(cfg.box_.user, Some(1000));
        assert!(cfg.box_.no_new_privs);
        assert!(cfg.box_.args.is_empty());
        assert_eq!(cfg.system.hostname, None);
    }

    #[test]
    fn unlocked_keys_and_early_layers_still_work() {
        let (cfg, errors) = load(&[
            builtin(BUILTIN),
            file("/env.toml", "[box]\nuser = 2000\n", Place::Early),
            card("[box]\nargs = [\"a\"]\n[boot]\n"),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(cfg.box_.user, Some(2000));
        assert_eq!(cfg.box_.args, ["a"]);
    }

    #[test]
    fn the_command_line_and_the_lock_itself() {
        let cases = [
            (
                cmdline("box.no_new_privs = false"),
                "kernel command line: `box.no_new_privs`: locked",
            ),
            (
                cmdline("system.locked = []"),
                "kernel command line: `system.locked`: locked",
            ),
            (
                card("[[service]]\npath = \"/bin/sh\"\n"),
                "/boot/init.toml:1:1: `service`: locked",
            ),
            (
                card("[boot]\nread_only = false\n"),
                "/boot/init.toml:2:13: `boot.read_only`: locked",
            ),
        ];
        for (layer, want) in cases {
            let (cfg, errors) = load(&[builtin(BUILTIN), layer]);
            assert_eq!(errors.len(), 1, "{want}: {errors:?}");
            assert!(errors[0].to_string().starts_with(want), "{}", errors[0]);
            assert!(cfg.box_.no_new_privs && cfg.service.is_empty() && cfg.boot.read_only);
        }
        // without a built-in lock, only `system.locked` itself is kept from the card
        let (_, errors) = load(&[card("[system]\nlocked = [\"box\"]\n")]);
        assert_eq!(errors.len(), 1);
        let (_, errors) = load(&[card("[box]\nuser = 0\n"), cmdline("box.user = 5")]);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn locked_names_must_be_keys() {
        let cases = [
            (
                "[\"box.usr\"]",
                "`box.usr` is not a key; did you mean `user`?",
            ),
            ("[\"bx\"]", "`bx` is not a key; did you mean `box`?"),
            ("[\"box.\"]", "`box.` is not a key"),
            (
                "[\"service.user\"]",
                "`service.user`: lock `service` as a whole",
            ),
        ];
        for (list, want) in cases {
            let (_, errors) = load(&[builtin(&format!("[system]\nlocked = {list}\n"))]);
            assert_eq!(errors.len(), 1, "{list}");
            assert!(errors[0].message.contains(want), "{}", errors[0]);
            assert_eq!(errors[0].line, Some(2), "{}", errors[0]);
        }
        let ok = "[system]\nlocked = [\"box\", \"box.backoff.max\", \"watchdog\", \"system.hostname\", \"modules.load\"]\n";
        let (_, errors) = load(&[builtin(ok)]);
        assert!(errors.is_empty(), "{errors:?}");
    }
}
