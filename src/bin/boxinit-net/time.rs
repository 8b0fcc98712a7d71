//! `boxinit-net time [--interval SECS] [--dhcp-servers] [--save PATH] [SERVER[:PORT]...]`:
//! SNTP against the servers (and those DHCP learnt, from the lease files), stepping the clock
//! at the first answer and slewing it after; asking every second for the first minute, then
//! backing off; saving the time when asked, and at SIGTERM. The packets are the library's
//! `net::protocol::sntp`.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use boxinit::net::protocol::sntp;
use boxinit::net::{clock, resolv};
use boxinit::sys::linux::Linux;
use boxinit::sys::Sys;

use crate::process::{start, wait, Woke};

const NTP_PORT: u16 = 123;
/// How long to wait for one SNTP answer.
const SNTP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after it starts `boxinit-net time` asks every second while no server answers.
const EAGER_RETRIES: Duration = Duration::from_secs(60);
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
    let with_port = if server.contains(':') {
        server.to_string()
    } else {
        format!("{server}:{NTP_PORT}")
    };
    match with_port.to_socket_addrs() {
        Ok(addrs) => addrs.filter(SocketAddr::is_ipv4).collect(),
        Err(e) => {
            log::debug!("time: cannot resolve {server}: {e}");
            Vec::new()
        }
    }
}

/// One SNTP exchange with `server`.
fn query(server: SocketAddr) -> io::Result<sntp::Reply> {
    let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect(server)?;
    socket.set_read_timeout(Some(SNTP_TIMEOUT))?;
    let sent = clock::now_nanos();
    socket.send(&sntp::request(sent))?;
    let deadline = Instant::now() + SNTP_TIMEOUT;
    let mut buf = [0u8; 128];
    loop {
        let n = socket.recv(&mut buf)?;
        let received = clock::now_nanos();
        match sntp::parse_reply(buf.get(..n).unwrap_or_default(), sent, received) {
            Ok(reply) => return Ok(reply),
            Err(e) if Instant::now() >= deadline => return Err(io::Error::other(e.to_string())),
            Err(e) => log::debug!("time: ignoring an answer from {server}: {e}"),
        }
    }
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
    let mut sys = Linux;
    let mut synced = false;
    let mut retry = Duration::from_secs(1);
    let mut last_save = None;
    let started = Instant::now();
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
        let answer = servers
            .iter()
            .flat_map(|s| resolve(s).into_iter().map(move |a| (s.clone(), a)))
            .find_map(|(name, addr)| match query(addr) {
                Ok(reply) => Some((name, reply)),
                Err(e) => {
                    log::debug!("time: no answer from {name} ({addr}): {e}");
                    None
                }
            });
        let next = match answer {
            Some((server, reply)) => {
                adjust(&mut sys, &mut synced, &server, reply);
                retry = Duration::from_secs(1);
                t.interval
            }
            // At boot the network usually comes a few seconds after this program: ask every
            // second for the first minute, then back off to once a minute.
            None if started.elapsed() < EAGER_RETRIES => Duration::from_secs(1),
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
                save_time(path);
                last_save = Some(Instant::now());
            }
        }
        if let Woke::Stop = wait(&signals, None, next) {
            if let Some(path) = &t.save {
                save_time(path);
            }
            return 0;
        }
    }
}

fn save_time(path: &Path) {
    if let Err(e) = clock::save(path, clock::now_seconds()) {
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

    /// A real exchange over the host's loopback with the test responder's reply.

    #[test]
    fn query_a_local_responder() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = 4_000_000_000i128 * 1_000_000_000;
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let reply = sntp::reply_to(&buf[..n], t).unwrap();
            server.send_to(&reply, from).unwrap();
        });
        let reply = query(addr).unwrap();
        handle.join().unwrap();
        let want = t - clock::now_nanos();
        assert!(
            (reply.offset - want).abs() < 5_000_000_000,
            "{} vs {want}",
            reply.offset
        );
    }
}
