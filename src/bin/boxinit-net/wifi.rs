//! `boxinit-net wifi IFACE CONF DRIVER SUPPLICANT [NETWORK]`, the service PID 1 makes of
//! `[wifi]` (`net::wifi`): writes CONF from PID 1's NETWORK file when given one
//! (`wifi_key.rs`), waits for the supplicant program (it may be unpacked from the card's
//! extras after the box started), then for the interface to appear (its driver may be waiting for firmware:
//! gokrazy#111 restart-looped instead), starts Debian's `wpa_supplicant` and turns its event
//! lines into log lines: "associated", "wrong key", "network not found"; a supplicant that
//! ends soon after its start gets its last lines logged. The supplicant does the 802.11 work;
//! the address comes from the DHCP program, which waits for the link.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use boxinit::kmsg;

use crate::{interface, wifi_key};

/// How often the service looks for its interface while it waits.
const POLL: Duration = Duration::from_millis(250);
/// After this long without the interface, say what may be missing (and go on waiting).
const PATIENCE: Duration = Duration::from_secs(15);
/// A supplicant that ends within this of its start has its last lines of output logged: it
/// could not start (a config it cannot parse, a driver it cannot use), and said why.
const EARLY_END: Duration = Duration::from_secs(10);
/// How many of its last lines are kept for that.
const LAST_LINES: usize = 8;
/// How long it waits for the supplicant program, which may come after it starts: unpacked
/// from the card's extras (`[boot] extras`) once the box runs. Then it gives up, saying so,
/// and is restarted with backoff.
const PROGRAM_PATIENCE: Duration = Duration::from_secs(120);

/// What a supplicant line tells (wpa_supplicant prints its events on stdout, `IFACE: EVENT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `Trying to associate with BSSID (SSID='name' freq=2412 MHz)`
    Associating { ssid: String },
    /// `CTRL-EVENT-CONNECTED - Connection to BSSID completed`
    Connected { bssid: String },
    /// `CTRL-EVENT-DISCONNECTED bssid=... reason=N`
    Disconnected { reason: String },
    /// `CTRL-EVENT-SSID-TEMP-DISABLED ... reason=WRONG_KEY`: the passphrase is wrong
    WrongKey { ssid: String },
    /// `CTRL-EVENT-NETWORK-NOT-FOUND`: no configured network in range
    NotFound,
    /// any other line
    Other,
}

/// Reads one line of the supplicant's output.
pub fn parse_event(line: &str) -> Event {
    // lines are "wlan0: EVENT ..." (interface events) or bare messages
    let text = line.split_once(": ").map_or(line, |(_, rest)| rest);
    let word = |key: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
    };
    if let Some(rest) = text.strip_prefix("CTRL-EVENT-CONNECTED - Connection to ") {
        let bssid = rest.split_whitespace().next().unwrap_or("").to_string();
        return Event::Connected { bssid };
    }
    if text.starts_with("CTRL-EVENT-DISCONNECTED") {
        return Event::Disconnected {
            reason: word("reason=").unwrap_or_default(),
        };
    }
    if text.starts_with("CTRL-EVENT-SSID-TEMP-DISABLED") && text.contains("reason=WRONG_KEY") {
        return Event::WrongKey {
            ssid: ssid_text(&quoted(text, "ssid=\"").unwrap_or_default()),
        };
    }
    if text.starts_with("CTRL-EVENT-NETWORK-NOT-FOUND") {
        return Event::NotFound;
    }
    if text.starts_with("Trying to associate with ") {
        return Event::Associating {
            ssid: ssid_text(&quoted(text, "SSID='").unwrap_or_default()),
        };
    }
    Event::Other
}

/// The text after `open` up to the matching closing quote (the last one of its kind).
fn quoted(text: &str, open: &str) -> Option<String> {
    let close = open.chars().last()?;
    let start = text.find(open)? + open.len();
    let rest = text.get(start..)?;
    let end = rest.rfind(close)?;
    rest.get(..end).map(str::to_string)
}

/// An SSID as the supplicant prints it (`wpa_ssid_txt`: bytes outside printable ASCII as
/// `\xNN`, and `\\`, `\"`, `\n`, `\r`, `\t`, `\e`) as text: `Caf\xc3\xa9` is `Café`. An
/// SSID that is not UTF-8 is shown as the supplicant printed it.
pub fn ssid_text(printed: &str) -> String {
    let mut bytes = Vec::with_capacity(printed.len());
    let mut rest = printed.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        let Some((&e, tail)) = rest.split_first() else {
            bytes.push(b);
            break;
        };
        rest = tail;
        match e {
            b'n' => bytes.push(b'\n'),
            b'r' => bytes.push(b'\r'),
            b't' => bytes.push(b'\t'),
            b'e' => bytes.push(0x1b),
            b'x' => {
                let byte = rest
                    .get(..2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match byte {
                    Some(v) => {
                        bytes.push(v);
                        rest = rest.get(2..).unwrap_or_default();
                    }
                    None => bytes.extend_from_slice(b"\\x"),
                }
            }
            other => bytes.push(other),
        }
    }
    match String::from_utf8(bytes) {
        Ok(text) if !text.chars().any(char::is_control) => text,
        _ => printed.to_string(),
    }
}

/// The service's state between lines: what to say, said once.
#[derive(Debug, Default)]
pub struct Watcher {
    ssid: String,
    connected: bool,
    not_found_said: bool,
}

impl Watcher {
    /// The log line (level, text) a supplicant line deserves, if any; `iface` names it.
    pub fn on_line(&mut self, iface: &str, line: &str) -> Option<(log::Level, String)> {
        match parse_event(line) {
            Event::Associating { ssid } => {
                self.ssid = ssid;
                None
            }
            Event::Connected { bssid } => {
                self.connected = true;
                self.not_found_said = false;
                Some((
                    log::Level::Info,
                    format!("wifi: {iface} associated with \"{}\" ({bssid})", self.ssid),
                ))
            }
            Event::Disconnected { reason } if self.connected => {
                self.connected = false;
                Some((
                    log::Level::Warn,
                    format!("wifi: {iface} lost \"{}\" (reason {reason})", self.ssid),
                ))
            }
            Event::Disconnected { .. } | Event::Other => None,
            Event::WrongKey { ssid } => Some((
                log::Level::Error,
                format!("wifi: {iface}: wrong passphrase for \"{ssid}\"; check [wifi] psk or the psk in the supplicant's config"),
            )),
            Event::NotFound if !self.not_found_said => {
                self.not_found_said = true;
                Some((
                    log::Level::Warn,
                    format!("wifi: {iface}: no configured network in range yet; still scanning"),
                ))
            }
            Event::NotFound => None,
        }
    }
}

/// Waits until `program` is a file, looking every `poll`, for at most `limit` (the pauses'
/// sum); says once that it waits and, when it comes, after how long. Whether it is there.
fn wait_for_program(
    program: &Path,
    poll: Duration,
    limit: Duration,
    pause: &mut dyn FnMut(Duration),
) -> bool {
    let mut waited = Duration::ZERO;
    loop {
        if program.is_file() {
            if !waited.is_zero() {
                log::info!(
                    "wifi: {} appeared after {}ms",
                    program.display(),
                    waited.as_millis()
                );
            }
            return true;
        }
        if waited >= limit {
            return false;
        }
        if waited.is_zero() {
            log::info!(
                "wifi: waiting for {} to appear (unpacked from the card's extras)",
                program.display()
            );
        }
        pause(poll);
        waited += poll;
    }
}

/// `boxinit-net wifi IFACE CONF DRIVER SUPPLICANT [NETWORK]`: writes CONF from NETWORK when
/// given, waits for the supplicant program (it may come with the card's extras), then for
/// the interface, then runs the supplicant with its output read line by line; exits with the
/// supplicant's status (the supervisor restarts it), 1 when the program did not come, or 0
/// when stopped while it waited.
pub fn main(args: &[String]) -> i32 {
    // Logged to kmsg, or (a PID namespace, a host: no /dev/kmsg) to the console.
    kmsg::init(log::LevelFilter::Info);
    let _ = kmsg::open_kmsg();
    let (iface, conf, driver, supplicant, network) = match args {
        [i, c, d, s] => (i, c, d, s, None),
        [i, c, d, s, n] => (i, c, d, s, Some(n)),
        _ => {
            eprintln!("usage: boxinit-net wifi IFACE CONF DRIVER SUPPLICANT [NETWORK]");
            return 2;
        }
    };
    if let Some(network) = network {
        if let Err(e) = wifi_key::write_conf(Path::new(network), Path::new(conf)) {
            log::error!("wifi: {e}; not started");
            return 1;
        }
    }
    // Its signals keep their default action (SIGTERM ends it, and the supplicant it starts
    // gets them as they are): it waits for as long as it takes, nothing asks it to stop.
    if !wait_for_program(
        Path::new(supplicant),
        POLL,
        PROGRAM_PATIENCE,
        &mut std::thread::sleep,
    ) {
        log::error!(
            "wifi: no {supplicant} after {}s: it is neither in the initramfs nor unpacked from the card's extras (see the extras: lines of the boot log)",
            PROGRAM_PATIENCE.as_secs()
        );
        return 1;
    }
    let mut sleep = |d| {
        std::thread::sleep(d);
        false
    };
    let _found = interface::wait_for(
        Path::new("/"),
        "wifi",
        iface,
        POLL,
        Some(PATIENCE),
        &mut sleep,
    );
    if !Path::new(conf).is_file() {
        log::error!("wifi: no {conf}: put a wpa_supplicant.conf there, or give [wifi] ssid/psk");
        return 1;
    }
    log::info!("wifi: starting {supplicant} on {iface}");
    // Its stdout and stderr on one pipe: events and error messages in the order written.
    let started = Instant::now();
    let spawned = std::io::pipe().and_then(|(reader, writer)| {
        let child = Command::new(supplicant)
            .args(["-i", iface, "-c", conf, "-D", driver])
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .spawn()?;
        // The Command and its copies of the write end are gone here: the reads below end
        // when the supplicant (and whatever it started) closes its own.
        Ok((child, reader))
    });
    let (mut child, reader) = match spawned {
        Ok(spawned) => spawned,
        Err(e) => {
            log::error!("wifi: cannot run {supplicant}: {e}");
            return 1;
        }
    };
    let mut watcher = Watcher::default();
    let mut last = VecDeque::with_capacity(LAST_LINES);
    for line in BufReader::new(reader).lines().map_while(Result::ok) {
        match watcher.on_line(iface, &line) {
            Some((level, text)) => log::log!(level, "{text}"),
            None => log::debug!("wifi: {line}"),
        }
        if last.len() == LAST_LINES {
            last.pop_front();
        }
        last.push_back(line);
    }
    match child.wait() {
        Ok(status) => {
            for (level, text) in ending(supplicant, &status.to_string(), started.elapsed(), &last) {
                log::log!(level, "{text}");
            }
            status.code().unwrap_or(1)
        }
        Err(e) => {
            log::error!("wifi: cannot wait for {supplicant}: {e}");
            1
        }
    }
}

/// What to log when the supplicant ended (`status` in words) `ran` after its start, with
/// `last` its last lines: soon after its start, those lines, since they say why it could not
/// run (a config it cannot parse, a driver it cannot use); later, that it ended.
fn ending(
    supplicant: &str,
    status: &str,
    ran: Duration,
    last: &VecDeque<String>,
) -> Vec<(log::Level, String)> {
    if ran >= EARLY_END {
        return vec![(
            log::Level::Warn,
            format!("wifi: {supplicant} ended ({status})"),
        )];
    }
    let mut lines = vec![(
        log::Level::Error,
        format!(
            "wifi: {supplicant} ended ({status}) {}ms after its start; its last lines:",
            ran.as_millis()
        ),
    )];
    for line in last {
        lines.push((
            log::Level::Error,
            format!("wifi: {supplicant} said: {line}"),
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supplicant_lines() {
        let cases = [
            (
                "wlan0: Trying to associate with 02:00:00:00:01:00 (SSID='boxinit test' freq=2412 MHz)",
                Event::Associating { ssid: "boxinit test".into() },
            ),
            (
                "wlan0: CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=0 id_str=]",
                Event::Connected { bssid: "02:00:00:00:01:00".into() },
            ),
            (
                "wlan0: CTRL-EVENT-DISCONNECTED bssid=02:00:00:00:01:00 reason=3 locally_generated=1",
                Event::Disconnected { reason: "3".into() },
            ),
            (
                "wlan0: CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid=\"box\" auth_failures=1 duration=10 reason=WRONG_KEY",
                Event::WrongKey { ssid: "box".into() },
            ),
            ("wlan0: CTRL-EVENT-NETWORK-NOT-FOUND", Event::NotFound),
            ("Successfully initialized wpa_supplicant", Event::Other),
            ("", Event::Other),
            ("wlan0: Trying to associate with 02:00 (SSID=", Event::Associating { ssid: String::new() }),
            // issue 17: SSIDs as text, not as the supplicant escapes them
            (
                "wlan0: Trying to associate with 02:00:00:00:01:00 (SSID='Caf\\xc3\\xa9 puzzle box' freq=2437 MHz)",
                Event::Associating { ssid: "Caf\u{e9} puzzle box".into() },
            ),
            (
                "wlan0: CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid=\"Caf\\xc3\\xa9 \\\"box\\\"\" auth_failures=1 duration=10 reason=WRONG_KEY",
                Event::WrongKey { ssid: "Caf\u{e9} \"box\"".into() },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse_event(line), want, "{line}");
        }
    }

    /// Issue 17: a supplicant that ends at once has its last lines logged (here wpa_supplicant
    /// 2.10's own, for the config boxinit wrote before it wrote the key in hex).
    #[test]
    fn an_early_end_shows_the_last_lines() {
        let last: VecDeque<String> = [
            "Line 6: invalid quoted string",
            "Line 6: failed to parse psk '\"p\"ss'.",
            "Failed to read or parse configuration '/run/boxinit/wifi-wlan0.conf'.",
        ]
        .map(String::from)
        .into();
        let shown: Vec<String> = ending(
            "/sbin/wpa_supplicant",
            "exit status: 255",
            Duration::from_millis(40),
            &last,
        )
        .into_iter()
        .map(|(level, text)| format!("{level}: {text}"))
        .collect();
        assert_eq!(
            shown,
            [
                "ERROR: wifi: /sbin/wpa_supplicant ended (exit status: 255) 40ms after its start; its last lines:",
                "ERROR: wifi: /sbin/wpa_supplicant said: Line 6: invalid quoted string",
                "ERROR: wifi: /sbin/wpa_supplicant said: Line 6: failed to parse psk '\"p\"ss'.",
                "ERROR: wifi: /sbin/wpa_supplicant said: Failed to read or parse configuration '/run/boxinit/wifi-wlan0.conf'.",
            ]
        );
        let later = ending(
            "/sbin/wpa_supplicant",
            "signal: 15 (SIGTERM)",
            EARLY_END,
            &last,
        );
        assert_eq!(
            later,
            [(
                log::Level::Warn,
                "wifi: /sbin/wpa_supplicant ended (signal: 15 (SIGTERM))".to_string()
            )]
        );
    }

    #[test]
    fn ssids_as_text() {
        let table = [
            ("boxinit test", "boxinit test"),
            ("Caf\\xc3\\xa9 puzzle box", "Caf\u{e9} puzzle box"),
            ("a\\\\b \\\"q\\\"", "a\\b \"q\""),
            // not UTF-8, a control character, a cut-off escape: as printed
            ("\\xff\\xfe", "\\xff\\xfe"),
            ("a\\nb", "a\\nb"),
            ("a\\x4", "a\\x4"),
            ("a\\", "a\\"),
            ("", ""),
        ];
        for (printed, want) in table {
            assert_eq!(ssid_text(printed), want, "{printed}");
        }
    }

    #[test]
    fn waits_for_its_program_for_a_while() {
        let dir = std::env::temp_dir().join(format!("boxinit-wifi-wait-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let program = dir.join("wpa_supplicant");
        let poll = Duration::from_millis(250);
        // it comes during the third pause
        let mut pauses = 0;
        let mut appear = |_| {
            pauses += 1;
            if pauses == 3 {
                std::fs::write(&program, b"\x7fELF").unwrap();
            }
        };
        assert!(wait_for_program(
            &program,
            poll,
            Duration::from_secs(1),
            &mut appear
        ));
        assert_eq!(pauses, 3);
        // there already: no pause
        assert!(wait_for_program(
            &program,
            poll,
            Duration::ZERO,
            &mut |_| panic!()
        ));
        // never there: it gives up after its limit (4 pauses of 250ms)
        std::fs::remove_file(&program).unwrap();
        let mut pauses = 0;
        let mut count = |_| pauses += 1;
        assert!(!wait_for_program(
            &program,
            poll,
            Duration::from_secs(1),
            &mut count
        ));
        assert_eq!(pauses, 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn watcher_says_each_thing_once() {
        let mut w = Watcher::default();
        let mut say = |line: &str| w.on_line("wlan0", line).map(|(l, t)| format!("{l}: {t}"));
        assert_eq!(
            say("wlan0: CTRL-EVENT-NETWORK-NOT-FOUND").as_deref(),
            Some("WARN: wifi: wlan0: no configured network in range yet; still scanning")
        );
        assert_eq!(say("wlan0: CTRL-EVENT-NETWORK-NOT-FOUND"), None);
        assert_eq!(
            say("wlan0: CTRL-EVENT-DISCONNECTED bssid=00:00:00:00:00:00 reason=3"),
            None
        );
        assert_eq!(
            say("wlan0: Trying to associate with 02:00:00:00:01:00 (SSID='box' freq=2412 MHz)"),
            None
        );
        assert_eq!(
            say("wlan0: CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=0 id_str=]").as_deref(),
            Some("INFO: wifi: wlan0 associated with \"box\" (02:00:00:00:01:00)")
        );
        assert_eq!(
            say("wlan0: CTRL-EVENT-DISCONNECTED bssid=02:00:00:00:01:00 reason=4").as_deref(),
            Some("WARN: wifi: wlan0 lost \"box\" (reason 4)")
        );
        assert!(say("wlan0: CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid=\"box\" auth_failures=1 duration=10 reason=WRONG_KEY").unwrap().contains("wrong passphrase for \"box\""));
    }
}
