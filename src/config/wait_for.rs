//! `wait_for` of `[box]` and `[[service]]`: what a program needs before it starts, one word
//! each — a path (`"/dev/spidev0.0"`), `"module:NAME"`, `"net:IFACE"`, `"service:NAME"`,
//! `"time-synced"`, `"coldplug"` — parsed here, with a suggestion for a word that is none of
//! them. Pure: whether a need is met is the supervisor's question (`supervision/wait.rs`);
//! which names a `service:` may take is checked over the whole config (`validate.rs`).

use std::fmt;

use super::error::suggest;

/// One thing a program waits for before it starts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Need {
    /// `"/dev/spidev0.0"`: this path exists (a device node, a mount point's file, any file).
    Path(String),
    /// `"module:snd_bcm2835"`: the kernel has this module (loaded and live, or built in).
    Module(String),
    /// `"net:eth0"`, `"net:usb*"`: an interface (a glob matches any) has an address, as the
    /// lease file `/run/boxinit/net/IFACE` the network programs write says.
    Net(String),
    /// `"service:NAME"`: that `[[service]]` (or `box`) has been started.
    Service(String),
    /// `"time-synced"`: the clock was set by SNTP (`/run/boxinit/time-synced` exists).
    TimeSynced,
    /// `"coldplug"`: the drivers of every device present at boot are loaded (coldplug's
    /// second pass is over and no module load is queued).
    Coldplug,
}

/// The words and prefixes `wait_for` takes, as messages list them.
pub const KINDS: &[&str] = &[
    "/PATH",
    "module:NAME",
    "net:IFACE",
    "service:NAME",
    "time-synced",
    "coldplug",
];

const PREFIXES: &[&str] = &["module", "net", "service"];
const WORDS: &[&str] = &["time-synced", "coldplug"];

/// What people who know systemd, gokrazy or udev may write, and what it is here.
const GUESSES: &[(&str, &str)] = &[
    ("path", "/PATH (the path itself)"),
    ("dev", "/PATH (the path itself)"),
    ("device", "/PATH (the path itself)"),
    ("file", "/PATH (the path itself)"),
    ("mod", "module:NAME"),
    ("kmod", "module:NAME"),
    ("driver", "module:NAME"),
    ("interface", "net:IFACE"),
    ("iface", "net:IFACE"),
    ("link", "net:IFACE"),
    ("address", "net:IFACE"),
    ("ip", "net:IFACE"),
    ("network", "net:IFACE"),
    ("network-online", "net:IFACE (net:* for any interface)"),
    ("unit", "service:NAME"),
    ("program", "service:NAME"),
    ("box", "service:box"),
    ("time", "time-synced"),
    ("time-sync", "time-synced"),
    ("clock", "time-synced"),
    ("clock-synced", "time-synced"),
    ("ntp", "time-synced"),
    ("sntp", "time-synced"),
    ("settle", "coldplug"),
    ("udev-settle", "coldplug"),
    ("devices", "coldplug"),
    ("drivers", "coldplug"),
];

/// Interface names are at most 15 bytes (`IFNAMSIZ` less the NUL).
const MAX_IFACE: usize = 15;

impl std::str::FromStr for Need {
    type Err = String;

    fn from_str(text: &str) -> Result<Need, String> {
        if text.starts_with('/') {
            return Ok(Need::Path(text.to_string()));
        }
        match text {
            "time-synced" => return Ok(Need::TimeSynced),
            "coldplug" => return Ok(Need::Coldplug),
            _ => {}
        }
        let Some((kind, name)) = text.split_once(':') else {
            return Err(unknown(text, text, false));
        };
        if !PREFIXES.contains(&kind) {
            return Err(unknown(text, kind, true));
        }
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!(
                "`{text}` names no {kind}: write `{kind}:` and the name, like `{}`",
                example(kind)
            ));
        }
        match kind {
            "module" if name.contains('/') => Err(format!(
                "`{text}`: a module is named without its path or `.ko`, like `module:snd_bcm2835`"
            )),
            "module" => Ok(Need::Module(name.replace('-', "_"))),
            "net" if name.len() > MAX_IFACE || name.contains('/') => Err(format!(
                "`{text}`: `{name}` cannot be an interface name (at most {MAX_IFACE} bytes, no `/`)"
            )),
            "net" => Ok(Need::Net(name.to_string())),
            _ => Ok(Need::Service(name.to_string())),
        }
    }
}

fn example(kind: &str) -> &'static str {
    match kind {
        "module" => "module:snd_bcm2835",
        "net" => "net:eth0",
        _ => "service:myservice",
    }
}

/// The error for a word that is no kind: a suggestion when it is close to one, or a known
/// guess from other systems, and the list of kinds. `word` is the part compared (the text
/// before `:` when `prefixed`).
fn unknown(text: &str, word: &str, prefixed: bool) -> String {
    let lower = word.to_ascii_lowercase();
    let guess = GUESSES
        .iter()
        .find(|(guess, _)| *guess == lower)
        .map(|(_, kind)| kind.to_string());
    let close = if prefixed {
        suggest(&lower, PREFIXES.iter().copied()).map(|k| format!("{k}:"))
    } else {
        suggest(&lower, WORDS.iter().copied())
            .map(str::to_string)
            .or_else(|| {
                // a relative path: `dev/spidev0.0`
                (word.contains('/') && !word.contains(':')).then(|| format!("/{word}"))
            })
    };
    let known = KINDS.join(", ");
    match guess.or(close) {
        Some(hint) => format!(
            "`{text}` is not something to wait for, did you mean `{hint}`? (one of {known})"
        ),
        None => format!("`{text}` is not something to wait for; write one of {known}"),
    }
}

impl TryFrom<String> for Need {
    type Error = String;
    fn try_from(text: String) -> Result<Need, String> {
        text.parse()
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Path(path) => f.write_str(path),
            Need::Module(name) => write!(f, "module:{name}"),
            Need::Net(iface) => write!(f, "net:{iface}"),
            Need::Service(name) => write!(f, "service:{name}"),
            Need::TimeSynced => f.write_str("time-synced"),
            Need::Coldplug => f.write_str("coldplug"),
        }
    }
}

/// A program with a `wait_for`, as the whole-config checks see it.
pub struct Waiter<'a> {
    /// Its key path: `box`, `service[2]`.
    pub at: String,
    /// What `service:` calls it: `box` (or `[box] name`), a service's name or `serviceN`.
    pub name: String,
    /// `mode = "exec"`: no service or network program ever runs beside it.
    pub exec: bool,
    pub needs: &'a [Need],
}

/// The network programs' names (`dhcp-eth0`, `static-eth0`, `wifi-wlan0`, `time`): waited
/// for by what they bring (`net:IFACE`, `time-synced`), not by name.
fn is_network_program(name: &str) -> bool {
    name == "time"
        || ["dhcp-", "static-", "wifi-"]
            .iter()
            .any(|p| name.starts_with(p))
}

/// What cannot work in the `wait_for`s of `waiters` taken together, as (key path, message):
/// a `service:` naming no program, or the program itself, or closing a circle (none of them
/// would start before its timeout); in exec mode, a service, an address or the clock (no
/// program that brings them runs).
pub fn problems(waiters: &[Waiter<'_>]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let names: Vec<&str> = waiters.iter().map(|w| w.name.as_str()).collect();
    for w in waiters {
        for (i, need) in w.needs.iter().enumerate() {
            let at = format!("{}.wait_for[{i}]", w.at);
            if w.exec && matches!(need, Need::Service(_) | Need::Net(_) | Need::TimeSynced) {
                found.push((at, format!("`{need}` can never come with mode = \"exec\": no service or network program runs beside an exec'd box; wait for a path or a module, or supervise the box")));
                continue;
            }
            let Need::Service(name) = need else {
                continue;
            };
            if *name == w.name {
                found.push((at, format!("`{need}`: {} would wait for itself", w.name)));
            } else if !names.contains(&name.as_str()) {
                let hint = if is_network_program(name) {
                    " (a network program: wait for what it brings, `net:IFACE` or `time-synced`)"
                        .to_string()
                } else {
                    match suggest(name, names.iter().copied()) {
                        Some(close) => format!(", did you mean `service:{close}`?"),
                        None => format!(" (there are: {})", names.join(", ")),
                    }
                };
                found.push((at, format!("`{need}` names no [[service]]{hint}")));
            }
        }
    }
    if let Some((at, circle)) = first_circle(waiters) {
        found.push((
            at,
            format!(
                "a circle of waits: {}; none of them would start before its wait_timeout",
                circle.join(" waits for ")
            ),
        ));
    }
    found
}

/// The first circle of `service:` waits, as the key path of the wait that closes it and the
/// names along it (`a`, `b`, `a`).
fn first_circle(waiters: &[Waiter<'_>]) -> Option<(String, Vec<String>)> {
    let deps = |name: &str| -> Vec<(usize, &str)> {
        waiters
            .iter()
            .filter(|w| w.name == name)
            .flat_map(|w| w.needs.iter().enumerate())
            .filter_map(|(i, need)| match need {
                Need::Service(other) if other != name => Some((i, other.as_str())),
                _ => None,
            })
            .collect()
    };
    // depth-first from each program, the path kept; a name met again on the path closes it
    for start in waiters {
        let mut path: Vec<(&str, usize)> = Vec::new();
        let mut stack: Vec<(&str, usize, usize)> = vec![(start.name.as_str(), 0, 0)];
        while let Some((name, depth, via)) = stack.pop() {
            path.truncate(depth);
            if let Some(pos) = path.iter().position(|(seen, _)| *seen == name) {
                let mut circle: Vec<String> =
                    path.iter().skip(pos).map(|(n, _)| n.to_string()).collect();
                circle.push(name.to_string());
                let (closer, _) = path.last().copied().unwrap_or((name, 0));
                let at = waiters.iter().find(|w| w.name == closer)?;
                return Some((format!("{}.wait_for[{via}]", at.at), circle));
            }
            if path.len() > waiters.len() {
                continue;
            }
            path.push((name, via));
            for (i, next) in deps(name) {
                stack.push((next, depth + 1, i));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_become_needs_and_back() {
        let table = [
            ("/dev/spidev0.0", Need::Path("/dev/spidev0.0".into())),
            ("module:snd_bcm2835", Need::Module("snd_bcm2835".into())),
            ("module:snd-bcm2835", Need::Module("snd_bcm2835".into())),
            ("net:eth0", Need::Net("eth0".into())),
            ("net:usb*", Need::Net("usb*".into())),
            ("service:web", Need::Service("web".into())),
            ("time-synced", Need::TimeSynced),
            ("coldplug", Need::Coldplug),
        ];
        for (text, want) in table {
            let need: Need = text.parse().unwrap();
            assert_eq!(need, want, "{text}");
            if text != "module:snd-bcm2835" {
                assert_eq!(need.to_string(), text);
            }
        }
    }

    #[test]
    fn other_words_say_what_was_meant() {
        let table = [
            ("modul:snd", "did you mean `module:`?"),
            ("servce:web", "did you mean `service:`?"),
            ("interface:eth0", "did you mean `net:IFACE`?"),
            ("clock", "did you mean `time-synced`?"),
            ("time-syncd", "did you mean `time-synced`?"),
            ("coldplg", "did you mean `coldplug`?"),
            ("network-online", "net:* for any interface"),
            ("dev/spidev0.0", "did you mean `/dev/spidev0.0`?"),
            ("path:/dev/x", "did you mean `/PATH (the path itself)`?"),
            ("xyzzy", "write one of /PATH, module:NAME, net:IFACE"),
            ("module:", "names no module"),
            ("service: web", "names no service"),
            ("module:kernel/sound/snd.ko", "without its path"),
            ("net:averyveryverylongname", "cannot be an interface name"),
        ];
        for (text, want) in table {
            let err = text.parse::<Need>().unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    fn waiter<'a>(name: &str, needs: &'a [Need]) -> Waiter<'a> {
        Waiter {
            at: if name == "box" {
                "box".into()
            } else {
                format!("service[{name}]")
            },
            name: name.into(),
            exec: false,
            needs,
        }
    }

    fn service(name: &str) -> Need {
        Need::Service(name.into())
    }

    #[test]
    fn service_waits_are_checked_together() {
        let web = [service("db"), Need::TimeSynced];
        let db = [Need::Path("/dev/sda1".into())];
        let none: [Need; 0] = [];
        let fine = [waiter("box", &web), waiter("db", &db), waiter("web", &none)];
        assert_eq!(problems(&fine), []);

        let typo = [service("dbb")];
        let own = [service("box")];
        let net = [service("dhcp-eth0")];
        let cases: [(&[Waiter], &str); 3] = [
            (&[waiter("box", &typo), waiter("db", &db)], "box.wait_for[0]: `service:dbb` names no [[service]], did you mean `service:db`?"),
            (&[waiter("box", &own)], "box.wait_for[0]: `service:box`: box would wait for itself"),
            (&[waiter("box", &net)], "box.wait_for[0]: `service:dhcp-eth0` names no [[service]] (a network program: wait for what it brings, `net:IFACE` or `time-synced`)"),
        ];
        for (waiters, want) in cases {
            let shown: Vec<String> = problems(waiters)
                .into_iter()
                .map(|(at, m)| format!("{at}: {m}"))
                .collect();
            assert_eq!(shown, [want]);
        }
    }

    #[test]
    fn a_circle_of_waits_is_named() {
        let a = [Need::Coldplug, service("b")];
        let b = [service("c")];
        let c = [service("a")];
        let found = problems(&[
            waiter("box", &[]),
            waiter("a", &a),
            waiter("b", &b),
            waiter("c", &c),
        ]);
        assert_eq!(
            found,
            [(
                "service[c].wait_for[0]".to_string(),
                "a circle of waits: a waits for b waits for c waits for a; none of them would start before its wait_timeout".to_string()
            )]
        );
        // a diamond is no circle
        let top = [service("l"), service("r")];
        let side = [service("bottom")];
        let diamond = [
            waiter("box", &top),
            waiter("l", &side),
            waiter("r", &side),
            waiter("bottom", &[]),
        ];
        assert_eq!(problems(&diamond), []);
    }

    #[test]
    fn an_exec_box_cannot_wait_for_what_services_bring() {
        let needs = [
            Need::Path("/dev/x".into()),
            Need::TimeSynced,
            Need::Net("eth0".into()),
        ];
        let mut exec = waiter("box", &needs);
        exec.exec = true;
        let at: Vec<String> = problems(&[exec]).into_iter().map(|(at, _)| at).collect();
        assert_eq!(at, ["box.wait_for[1]", "box.wait_for[2]"]);
    }
}
