//! `boxinit-net time [--interval SECS] [--dhcp-servers] [--save PATH] [SERVER[:PORT]...]`:
//! SNTP against the servers (and those DHCP learnt, from the lease files), stepping the clock
//! at the first answer and slewing it after; asking every second for the first minute while
//! no server answers, then backing off; a kiss-o'-death holds a server off (`RATE`) or ends
//! its asking (`DENY`, `RSTR`); an answer before the build time is not used; saving the time
//! when asked, and at SIGTERM, which it acts on while it resolves a name or waits for a
//! server too (so it saves within shutdown's grace). The packets are the library's
//! `net::protocol::sntp`.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use boxinit::net::protocol::sntp;
use boxinit::net::{clock, resolv};
use boxinit::sys::linux::Linux;
use boxinit::sys::Sys;
use nix::sys::signalfd::SignalFd;

use crate::process::{start, wait, Woke};

const NTP_PORT: u16 = 123;
/// How long to wait for one SNTP answer.
const SNTP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after it starts `boxinit-net time` asks every second while no server answers.
const EAGER_RETRIES: Duration = Duration::from_secs(60);
/// How often a wait for a name's resolution looks whether it is done (a stop signal ends it
/// at once).
const RESOLVE_POLL: Duration = Duration::from_millis(50);
/// Offsets below this are slewed (adjtimex); above, the clock is stepped again.
const MAX_SLEW_NANOS: i128 = 1_000_000_000;

/// `boxinit-net time`'s settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeArgs {
    pub interval: Duration,
    pub dhcp_servers: bool,
    pub save: Option<PathBuf>,
    pub servers: Vec<String>,
}

/// Parses `[--interval SECS] [--dhcp-servers] [--save PATH] [SERVER...]`.
pub fn parse_time_args(args: &[String]) -> Result<TimeArgs, String> {
    let mut t = TimeArgs {
        interval: Duration::from_secs(1800),
        ..TimeArgs::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--interval" => {
                let secs = it
                    .next()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or("--interval needs seconds")?;
                t.interval = Duration::from_secs(secs.max(1));
            }
            "--dhcp-servers" => t.dhcp_servers = true,
            "--save" => t.save = Some(PathBuf::from(it.next().ok_or("--save needs a path")?)),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => t.servers.push(s.to_string()),
        }
    }
    Ok(t)
}

/// `host`, `host:port`, `1.2.3.4:1123` as socket addresses (port 123 by default); names are
/// resolved through /etc/resolv.conf.
fn resolve(server: &str) -> Vec<SocketAddr> {
    match with_port(server).to_socket_addrs() {
        Ok(addrs) => addrs.filter(SocketAddr::is_ipv4).collect(),
        Err(e) => {
            log::debug!("time: cannot resolve {server}: {e}");
            Vec::new()
        }
    }
}

fn with_port(server: &str) -> String {
    if server.contains(':') {
        server.to_string()
    } else {
        format!("{server}:{NTP_PORT}")
    }
}

/// Why asking stopped short of an answer.
#[derive(Debug)]
enum Asking {
    /// A stop signal came (shutdown): save and end now, within the grace.
    Stopped,
    /// Nothing came back.
    Silent(io::Error),
    /// An answer came back that cannot be used.
    Refused(sntp::SntpError),
}

/// [`resolve`], with `resolver` in a thread of its own so that a stop signal ends the wait:
/// musl's resolver may take its whole timeout (5 s a try) on a network without an answer.
/// Addresses given as such need no thread.
fn resolve_or_stop(
    server: &str,
    signals: &SignalFd,
    resolver: fn(&str) -> Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, Asking> {
    if let Ok(addr) = with_port(server).parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let name = server.to_string();
    let spawned = std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || tx.send(resolver(&name)));
    if spawned.is_err() {
        // no thread (out of memory): resolve here, without an ear for signals meanwhile
        return Ok(resolver(server));
    }
    loop {
        match rx.try_recv() {
            Ok(addrs) => return Ok(addrs),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return Ok(Vec::new()),
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
        }
        if let Woke::Stop = wait(signals, None, RESOLVE_POLL) {
            // the thread is left to finish on its own; the program ends
            return Err(Asking::Stopped);
        }
    }
}

/// One SNTP exchange with `server`, given up at a stop signal.
fn query(server: SocketAddr, signals: &SignalFd) -> Result<sntp::Reply, Asking> {
    let io = Asking::Silent;
    let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).map_err(io)?;
    socket.connect(server).map_err(io)?;
    socket.set_nonblocking(true).map_err(io)?;
    let sent = clock::now_nanos();
    socket.send(&sntp::request(sent)).map_err(io)?;
    let deadline = Instant::now() + SNTP_TIMEOUT;
    let mut buf = [0u8; 128];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match wait(signals, Some(&socket), left) {
            Woke::Stop => return Err(Asking::Stopped),
            Woke::Timeout if left.is_zero() => {
                return Err(Asking::Silent(io::ErrorKind::TimedOut.into()))
            }
            Woke::Timeout | Woke::Readable => {}
        }
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(Asking::Silent(e)),
        };
        let received = clock::now_nanos();
        match sntp::parse_reply(buf.get(..n).unwrap_or_default(), sent, received) {
            Ok(reply) => return Ok(reply),
            // a late answer to an earlier request, or a forged one: wait for ours
            Err(e @ sntp::SntpError::NotOurRequest) => {
                log::debug!("time: ignoring an answer from {server}: {e}")
            }
            Err(e) => return Err(Asking::Refused(e)),
        }
    }
}

/// Servers that sent a kiss-o'-death (RFC 4330 8): not asked again until a time, or never
/// (DENY, RSTR) while this program runs.
#[derive(Debug, Default)]
struct Kissed {
    servers: Vec<(SocketAddr, Option<Instant>, Duration)>,
}

/// The first hold-off after a `RATE`; it doubles with each one after, up to the interval.
const FIRST_HOLD: Duration = Duration::from_secs(64);

impl Kissed {
    /// Whether `server` may be asked at `now`.
    fn may_ask(&self, server: SocketAddr, now: Instant) -> bool {
        match self.servers.iter().find(|(s, ..)| *s == server) {
            Some((_, Some(until), _)) => now >= *until,
            Some((_, None, _)) => false,
            None => true,
        }
    }

    /// Records a kiss from `server` at `now`; what to say about it.
    fn kiss(
        &mut self,
        server: SocketAddr,
        kiss: sntp::Kiss,
        now: Instant,
        most: Duration,
    ) -> String {
        let held = self.servers.iter().position(|(s, ..)| *s == server);
        let previous = held
            .and_then(|i| self.servers.get(i))
            .map_or(Duration::ZERO, |(_, _, hold)| *hold);
        let (until, hold, said) = match kiss {
            sntp::Kiss::Stop => (None, previous, "not asked again".to_string()),
            sntp::Kiss::SlowDown => {
                let hold = (previous * 2).max(FIRST_HOLD).min(most.max(FIRST_HOLD));
                (
                    Some(now + hold),
                    hold,
                    format!("not asked for {}s", hold.as_secs()),
                )
            }
        };
        match held.and_then(|i| self.servers.get_mut(i)) {
            Some(entry) => *entry = (server, until, hold),
            None => self.servers.push((server, until, hold)),
        }
        said
    }
}

/// Whether an answer would set the clock (now + offset, in nanoseconds) before `floor`
/// (seconds since 1970): the time this initramfs was built has passed, whatever a server says.
fn before_floor(now: i128, offset: i128, floor: Option<i64>) -> bool {
    floor.is_some_and(|f| now + offset < i128::from(f) * 1_000_000_000)
}

/// `boxinit-net time ...`: SNTP against the servers (and DHCP's), stepping the clock at the first
/// answer and slewing it after; saving the time when asked.
pub fn main(args: &[String]) -> i32 {
    let t = match parse_time_args(args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("boxinit-net time: {e}\nusage: boxinit-net time [--interval SECS] [--dhcp-servers] [--save PATH] [SERVER[:PORT]...]");
            return 2;
        }
    };
    let Some(signals) = start("time") else {
        return 1;
    };
    let floor = clock::build_time(Path::new("/"));
    let mut sys = Linux;
    let mut synced = false;
    let mut retry = Duration::from_secs(1);
    let mut last_save = None;
    let mut kissed = Kissed::default();
    let started = Instant::now();
    let stop = |path: &Option<PathBuf>| {
        if let Some(path) = path {
            save_time(path, floor);
        }
        0
    };
    loop {
        let mut servers = t.servers.clone();
        if t.dhcp_servers {
            let dir = Path::new(resolv::NET_DIR);
            servers.extend(
                resolv::read_all(dir)
                    .iter()
                    .flat_map(|f| f.ntp.iter().map(|a| a.to_string())),
            );
        }
        let mut answer = None;
        // whether any server answered at all (then the network is there: no hurry)
        let mut heard = false;
        'ask: for name in &servers {
            let addrs = match resolve_or_stop(name, &signals, resolve) {
                Ok(addrs) => addrs,
                Err(_) => return stop(&t.save),
            };
            for addr in addrs {
                if !kissed.may_ask(addr, Instant::now()) {
                    continue;
                }
                match query(addr, &signals) {
                    Ok(reply) if before_floor(clock::now_nanos(), reply.offset, floor) => {
                        heard = true;
                        log::warn!(
                            "time: {name} ({addr}) says it is {}, before this system was built ({}); not used",
                            clock::date(clock::seconds_of(clock::now_nanos() + reply.offset)),
                            clock::date(floor.unwrap_or_default())
                        );
                    }
                    Ok(reply) => {
                        answer = Some((name.clone(), reply));
                        break 'ask;
                    }
                    Err(Asking::Stopped) => return stop(&t.save),
                    Err(Asking::Silent(e)) => {
                        log::debug!("time: no answer from {name} ({addr}): {e}")
                    }
                    Err(Asking::Refused(e)) => {
                        heard = true;
                        match e.kiss() {
                            Some(kiss) => {
                                let said = kissed.kiss(addr, kiss, Instant::now(), t.interval);
                                log::warn!("time: {name} ({addr}): {e}; {said}");
                            }
                            None => {
                                log::debug!("time: ignoring an answer from {name} ({addr}): {e}")
                            }
                        }
                    }
                }
            }
        }
        let next = match answer {
            Some((server, reply)) => {
                adjust(&mut sys, &mut synced, &server, reply);
                retry = Duration::from_secs(1);
                t.interval
            }
            // At boot the network usually comes a few seconds after this program: ask every
            // second for the first minute while nothing answers at all, then back off to
            // once a minute. A server that answers without a usable time is not asked
            // every second (RFC 4330 10).
            None if !heard && started.elapsed() < EAGER_RETRIES => Duration::from_secs(1),
            None => {
                if !servers.is_empty() && retry >= Duration::from_secs(16) {
                    log::warn!(
                        "time: no answer from {}; trying again in {}s",
                        servers.join(", "),
                        retry.as_secs()
                    );
                }
                let wait = retry.min(t.interval);
                retry = (retry * 2).min(Duration::from_secs(64));
                wait
            }
        };
        if let Some(path) = &t.save {
            let due = last_save.is_none_or(|at: Instant| at.elapsed() >= t.interval);
            if due || synced && last_save.is_none() {
                save_time(path, floor);
                last_save = Some(Instant::now());
            }
        }
        if let Woke::Stop = wait(&signals, None, next) {
            return stop(&t.save);
        }
    }
}

/// Saves the clock's time, unless it is before `floor` (the build time): such a time is
/// wrong, and saved it would come back at the next boot.
fn save_time(path: &Path, floor: Option<i64>) {
    let now = clock::now_seconds();
    if floor.is_some_and(|f| now < f) {
        log::debug!(
            "time: not saving {}: before this system was built",
            clock::date(now)
        );
        return;
    }
    if let Err(e) = clock::save(path, now) {
        log::warn!("time: cannot save the time: {e}");
    }
}

/// How the clock is brought to a server's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adjustment {
    /// Set it (`clock_settime`): the first answer, or one a second or more off.
    Step,
    /// Slew it gently by this many microseconds (`adjtime`).
    Slew(i64),
}

/// Steps at the first answer (whatever its offset: the clock may be at its floor, or a
/// board's own clock may be off by less than a second yet never have been set by us) and for
/// any offset of a second or more; slews otherwise.
fn adjustment(synced: bool, offset: i128) -> Adjustment {
    if !synced || offset.abs() >= MAX_SLEW_NANOS {
        Adjustment::Step
    } else {
        Adjustment::Slew(i64::try_from(offset / 1000).unwrap_or(0))
    }
}

/// Brings the clock to `reply` as [`adjustment`] says; the first time, writes
/// [`clock::SYNCED_FILE`] for the box.
fn adjust(sys: &mut dyn Sys, synced: &mut bool, server: &str, reply: sntp::Reply) {
    let offset = reply.offset;
    match adjustment(*synced, offset) {
        Adjustment::Step => {
            let was = clock::now_seconds();
            match sys.clock_settime(clock::now_nanos() + offset) {
                Ok(()) => log::info!(
                    "time: clock set to {} by {server} (it was {}, off by {})",
                    clock::date(clock::now_seconds()),
                    clock::date(was),
                    sntp::show_offset(offset)
                ),
                Err(e) => {
                    log::error!("time: cannot set the clock: {e}");
                    return;
                }
            }
        }
        Adjustment::Slew(micros) => match sys.adjtime(micros) {
            Err(e) => log::warn!(
                "time: cannot slew the clock by {}: {e}",
                sntp::show_offset(offset)
            ),
            Ok(()) => log::debug!("time: slewing by {} ({server})", sntp::show_offset(offset)),
        },
    }
    if !*synced {
        *synced = true;
        let text = format!("{server}\n");
        if let Err(e) = std::fs::create_dir_all("/run/boxinit")
            .and_then(|()| std::fs::write(clock::SYNCED_FILE, text))
        {
            log::warn!("time: cannot write {}: {e}", clock::SYNCED_FILE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn time_arguments() {
        let t = parse_time_args(&strings(&[
            "--interval",
            "60",
            "--dhcp-servers",
            "--save",
            "/boot/t",
            "a",
            "b:1",
        ]))
        .unwrap();
        assert_eq!(t.interval, Duration::from_secs(60));
        assert!(t.dhcp_servers);
        assert_eq!(t.save, Some(PathBuf::from("/boot/t")));
        assert_eq!(t.servers, ["a", "b:1"]);
        assert!(parse_time_args(&strings(&["--interval"])).is_err());
        assert!(parse_time_args(&strings(&["--bogus"])).is_err());
        assert_eq!(
            parse_time_args(&[]).unwrap().interval,
            Duration::from_secs(1800)
        );
    }

    #[test]
    fn the_first_answer_steps_later_ones_slew_unless_far_off() {
        let table = [
            // (synced before, offset in ns, what is done)
            (false, 2_000_000, Adjustment::Step),
            (false, 0, Adjustment::Step),
            (false, -5_000_000_000, Adjustment::Step),
            (true, 2_000_000, Adjustment::Slew(2000)),
            (true, -999_999_999, Adjustment::Slew(-999_999)),
            (true, 1_000_000_000, Adjustment::Step),
            (true, -5_000_000_000, Adjustment::Step),
        ];
        for (synced, offset, want) in table {
            assert_eq!(
                adjustment(synced, offset),
                want,
                "synced {synced}, {offset}ns"
            );
        }
    }

    #[test]
    fn server_names() {
        assert_eq!(
            resolve("127.0.0.1:1123"),
            ["127.0.0.1:1123".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve("127.0.0.1"),
            ["127.0.0.1:123".parse::<SocketAddr>().unwrap()]
        );
    }

    /// A stop signal's fd for this test's thread: SIGTERM blocked here only (a thread's own
    /// mask), so a SIGTERM sent to this thread is read from it.
    fn stop_signals() -> SignalFd {
        crate::process::signal_fd().unwrap()
    }

    /// Sends SIGTERM to the calling thread after `after`.
    fn sigterm_me_after(after: Duration) -> std::thread::JoinHandle<()> {
        let me = nix::sys::pthread::pthread_self();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            nix::sys::pthread::pthread_kill(me, nix::sys::signal::Signal::SIGTERM).unwrap();
        })
    }

    /// A real exchange over the host's loopback with the test responder's reply.
    #[test]
    fn query_a_local_responder() {
        let signals = stop_signals();
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = 4_000_000_000i128 * 1_000_000_000;
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let reply = sntp::reply_to(&buf[..n], t).unwrap();
            server.send_to(&reply, from).unwrap();
        });
        let reply = query(addr, &signals).unwrap();
        handle.join().unwrap();
        let want = t - clock::now_nanos();
        assert!(
            (reply.offset - want).abs() < 5_000_000_000,
            "{} vs {want}",
            reply.offset
        );
    }

    /// Issue 17: shutdown's SIGTERM ends the wait for a server that does not answer (2 s) and
    /// for a name's resolution (musl: 5 s a try), so the time is saved within the grace.
    #[test]
    fn a_stop_signal_ends_the_waits() {
        let signals = stop_signals();
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let kill = sigterm_me_after(Duration::from_millis(200));
        let started = Instant::now();
        let asked = query(silent.local_addr().unwrap(), &signals);
        kill.join().unwrap();
        assert!(matches!(asked, Err(Asking::Stopped)), "{asked:?}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        fn slow(_: &str) -> Vec<SocketAddr> {
            std::thread::sleep(Duration::from_secs(5));
            Vec::new()
        }
        let kill = sigterm_me_after(Duration::from_millis(200));
        let started = Instant::now();
        let resolved = resolve_or_stop("ntp.example", &signals, slow);
        kill.join().unwrap();
        assert!(matches!(resolved, Err(Asking::Stopped)), "{resolved:?}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // an address needs no resolver
        assert_eq!(
            resolve_or_stop("10.0.2.2:1123", &signals, slow).unwrap(),
            ["10.0.2.2:1123".parse::<SocketAddr>().unwrap()]
        );
        // nothing to stop for: the resolver's answer
        fn fast(_: &str) -> Vec<SocketAddr> {
            vec!["10.0.2.3:123".parse().unwrap()]
        }
        assert_eq!(resolve_or_stop("ntp", &signals, fast).unwrap().len(), 1);
    }

    /// Issue 17: a kiss-o'-death (RFC 4330 8) holds a server off, doubling, or for good.
    #[test]
    fn kisses_hold_servers_off() {
        let a: SocketAddr = "10.0.2.2:123".parse().unwrap();
        let b: SocketAddr = "10.0.2.3:123".parse().unwrap();
        let t0 = Instant::now();
        let most = Duration::from_secs(1800);
        let mut k = Kissed::default();
        assert!(k.may_ask(a, t0));
        assert_eq!(
            k.kiss(a, sntp::Kiss::SlowDown, t0, most),
            "not asked for 64s"
        );
        assert!(!k.may_ask(a, t0 + Duration::from_secs(63)));
        assert!(k.may_ask(a, t0 + Duration::from_secs(64)));
        assert!(k.may_ask(b, t0), "another server is asked");
        let t1 = t0 + Duration::from_secs(64);
        assert_eq!(
            k.kiss(a, sntp::Kiss::SlowDown, t1, most),
            "not asked for 128s"
        );
        assert!(!k.may_ask(a, t1 + Duration::from_secs(127)));
        // the hold-off stops growing at the interval
        let mut t = t1;
        for _ in 0..10 {
            k.kiss(a, sntp::Kiss::SlowDown, t, most);
            t += Duration::from_secs(1);
        }
        assert_eq!(
            k.kiss(a, sntp::Kiss::SlowDown, t, most),
            "not asked for 1800s"
        );
        assert_eq!(k.kiss(b, sntp::Kiss::Stop, t0, most), "not asked again");
        assert!(!k.may_ask(b, t0 + Duration::from_secs(1_000_000)));
        assert_eq!(k.servers.len(), 2);
    }

    /// Issue 17: an answer that would set the clock before the build time is not used, and
    /// a clock before it is not saved.
    #[test]
    fn the_build_time_is_a_floor_for_answers_and_saves() {
        const SEC: i128 = 1_000_000_000;
        let floor = Some(1_795_996_800); // 2026-11-30
        let now = 1_795_996_800 * SEC;
        assert!(!before_floor(now, 0, floor));
        assert!(!before_floor(now, 5 * SEC, floor));
        assert!(before_floor(now, -SEC, floor));
        assert!(before_floor(0, 0, floor), "a server saying 1970");
        assert!(!before_floor(0, 0, None), "no build time known");
        let dir = std::env::temp_dir().join(format!("boxinit-time-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t");
        save_time(&path, Some(clock::now_seconds() + 3600));
        assert!(!path.exists(), "a clock before the floor is not saved");
        save_time(&path, Some(clock::now_seconds() - 3600));
        assert!(path.is_file());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
