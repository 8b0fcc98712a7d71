//! The network programs, each a process of its own started and restarted by PID 1 (their own
//! binary, multi-call): `boxinit-net dhcp IFACE`, `boxinit-net static IFACE CIDR [GATEWAY]` and
//! `boxinit-net time [--interval SECS] [--dhcp-servers] [--save PATH] [SERVER[:PORT]...]`. Their
//! sockets, waits and signal handling; the protocols are in `dhcp*.rs` and `sntp.rs`.
//!
//! A process of its own means a malformed packet that trips a bug costs a restart of this
//! program, never PID 1; each blocks SIGTERM and reads it from a signalfd, so shutdown's
//! SIGTERM releases the lease (and saves the time) before it exits.

use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use rustix::event::{PollFd, PollFlags};

use super::dhcp_state::{Action, Client};
use super::link::{self, RouteRequest};
use super::resolv::{self, Facts};
use super::{clock, dhcp, ipv4, sntp};
use crate::sys::{linux::Linux, Sys};

/// The log level PID 1 passes to its network programs.
pub const LOG_LEVEL_ENV: &str = "BOXINIT_LOG_LEVEL";
const DHCP_SERVER_PORT: u16 = 67;
const DHCP_CLIENT_PORT: u16 = 68;
const NTP_PORT: u16 = 123;
/// How long to wait for one SNTP answer.
const SNTP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after it starts `boxinit-net time` asks every second while no server answers.
const EAGER_RETRIES: Duration = Duration::from_secs(60);
/// Offsets below this are slewed (adjtimex); above, the clock is stepped again.
const MAX_SLEW_NANOS: i128 = 1_000_000_000;

/// Logging to kmsg as `boxinit: ...`, at the level PID 1 runs at; SIGTERM, SIGINT and
/// SIGHUP blocked and read from the returned signalfd.
fn start(what: &str) -> Option<SignalFd> {
    let level = std::env::var(LOG_LEVEL_ENV)
        .ok()
        .and_then(|l| l.parse::<crate::config::LogLevel>().ok())
        .unwrap_or_default();
    crate::kmsg::init(level.into());
    let _ = crate::kmsg::open_kmsg();
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    let signals = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .and_then(|()| SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK));
    match signals {
        Ok(fd) => Some(fd),
        Err(e) => {
            log::error!("{what}: cannot set up its signals: {e}");
            None
        }
    }
}

/// What woke a wait.
enum Woke {
    Stop,
    Readable,
    Timeout,
}

/// Waits up to `timeout` for `socket` to be readable or a stop signal.
fn wait(signals: &SignalFd, socket: Option<&UdpSocket>, timeout: Duration) -> Woke {
    let mut fds = vec![PollFd::new(signals, PollFlags::IN)];
    if let Some(s) = socket {
        fds.push(PollFd::new(s, PollFlags::IN));
    }
    let ts = rustix::time::Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    match rustix::event::poll(&mut fds, Some(&ts)) {
        Ok(0) | Err(_) => return Woke::Timeout,
        Ok(_) => {}
    }
    let signalled = fds.first().is_some_and(|f| !f.revents().is_empty());
    // SIGTERM or SIGINT stop it; SIGHUP (blocked, so it cannot kill it) is read and ignored.
    if signalled {
        if let Ok(Some(info)) = signals.read_signal() {
            if info.ssi_signo != Signal::SIGHUP as u32 {
                return Woke::Stop;
            }
        }
    }
    if fds.get(1).is_some_and(|f| !f.revents().is_empty()) {
        Woke::Readable
    } else {
        Woke::Timeout
    }
}

/// Waits for an interface named `pattern` (or the first matching it, for a glob) to exist
/// and carry traffic, bringing it up; None when told to stop first.
fn wait_for_interface(
    what: &str,
    pattern: &str,
    signals: &SignalFd,
    sys: &mut dyn Sys,
) -> Option<link::Interface> {
    let root = Path::new("/");
    let mut said = false;
    let iface = loop {
        let found = link::interfaces(root)
            .into_iter()
            .find(|n| n != "lo" && crate::fnmatch::fnmatch(pattern, n));
        if let Some(iface) = found.and_then(|n| link::interface(root, &n).ok()) {
            break iface;
        }
        if !said {
            log::info!("{what}: waiting for {pattern} to appear");
            said = true;
        }
        if let Woke::Stop = wait(signals, None, Duration::from_secs(1)) {
            return None;
        }
    };
    if let Err(e) = sys.netlink_route(&RouteRequest::LinkUp { index: iface.index }) {
        log::warn!("{what}: cannot bring {} up: {e}", iface.name);
    }
    let mut said = false;
    while !link::is_running(root, &iface.name) {
        if !said {
            log::info!("{what}: waiting for a link on {}", iface.name);
            said = true;
        }
        if let Woke::Stop = wait(signals, None, Duration::from_millis(200)) {
            return None;
        }
    }
    Some(iface)
}

/// A UDP socket on port 68 of this interface only, able to send and receive broadcasts
/// before the interface has an address (SO_BINDTODEVICE; SO_REUSEADDR lets one client per
/// interface bind the same port).
fn dhcp_socket(iface: &str) -> io::Result<UdpSocket> {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::DGRAM, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_broadcast(&fd, true)?;
    nix::sys::socket::setsockopt(
        &fd,
        nix::sys::socket::sockopt::BindToDevice,
        &OsString::from(iface),
    )?;
    rustix::net::bind(
        &fd,
        &SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, DHCP_CLIENT_PORT),
    )?;
    Ok(UdpSocket::from(fd))
}

/// A packet socket for sending IPv4 datagrams made whole by `ipv4::udp_datagram` (packet(7),
/// `SOCK_DGRAM`: the kernel adds the Ethernet header). Protocol 0: it receives nothing (the
/// answers come to the UDP socket), so the kernel queues it no copies of the traffic.
fn packet_socket() -> io::Result<std::os::fd::OwnedFd> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    Ok(rustix::net::socket_with(
        AddressFamily::PACKET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Where the client's messages leave from: the UDP socket on port 68 (which also receives),
/// and a packet socket for the broadcasts sent before the interface has an address, whose
/// source must be 0.0.0.0 (RFC 2131 4.1): through the UDP socket the kernel would give them
/// the address of another interface, where there is one.
struct Sockets {
    udp: UdpSocket,
    /// None when it cannot be opened: the UDP socket sends everything then.
    packet: Option<std::os::fd::OwnedFd>,
}

impl Sockets {
    fn send(
        &self,
        iface: &link::Interface,
        message: &dhcp::Message,
        to: Ipv4Addr,
    ) -> io::Result<()> {
        let bytes = dhcp::encode(message);
        if let (Some(packet), true) = (&self.packet, from_no_address(message, to)) {
            let datagram = ipv4::udp_datagram(
                Ipv4Addr::UNSPECIFIED,
                to,
                DHCP_CLIENT_PORT,
                DHCP_SERVER_PORT,
                &bytes,
            )
            .ok_or_else(|| io::Error::other("the message is too long for one datagram"))?;
            return crate::sys::linux::send_link_broadcast(packet, iface.index, &datagram);
        }
        self.udp
            .send_to(&bytes, SocketAddrV4::new(to, DHCP_SERVER_PORT))
            .map(|_| ())
    }
}

/// Whether `message` to `to` is a broadcast of a client without an address yet (DISCOVER,
/// and REQUEST while selecting or rebooting), which must leave from 0.0.0.0.
fn from_no_address(message: &dhcp::Message, to: Ipv4Addr) -> bool {
    to.is_broadcast() && message.ciaddr.is_unspecified()
}

/// A transaction id seed: from the kernel's random pool, else from the clock.
fn random_u32() -> u32 {
    use std::io::Read;
    let mut b = [0u8; 4];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
        Ok(()) => u32::from_ne_bytes(b),
        Err(_) => clock::now_nanos() as u32,
    }
}

/// `boxinit-net dhcp IFACE`: a DHCP client for one interface, for as long as it runs.
pub fn dhcp_main(args: &[String]) -> i32 {
    let [pattern] = args else {
        eprintln!(
            "usage: boxinit-net dhcp IFACE   (a name, or a glob: the first interface matching it)"
        );
        return 2;
    };
    let Some(signals) = start("dhcp") else {
        return 1;
    };
    let mut sys = Linux;
    let Some(iface) = wait_for_interface("dhcp", pattern, &signals, &mut sys) else {
        return 0;
    };
    let name = iface.name.clone();
    let socket = match dhcp_socket(&name) {
        Ok(s) => s,
        Err(e) => {
            log::error!("dhcp: {name}: cannot open its socket on port 68: {e}");
            return 1;
        }
    };
    let packet = packet_socket()
        .inspect_err(|e| {
            log::warn!("dhcp: {name}: no packet socket ({e}): broadcasts before an address may carry another interface's address as their source")
        })
        .ok();
    let sockets = Sockets {
        udp: socket,
        packet,
    };
    let socket = &sockets.udp;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h != "(none)");
    let mut client = Client::new(iface.mac, hostname, random_u32(), Instant::now());
    let mut buf = [0u8; 1500];
    loop {
        let actions = client.on_timeout(Instant::now());
        act(&mut sys, &iface, &sockets, actions);
        let timeout = client.deadline().saturating_duration_since(Instant::now());
        match wait(&signals, Some(socket), timeout) {
            Woke::Stop => {
                let actions = client.release(Instant::now());
                act(&mut sys, &iface, &sockets, actions);
                return 0;
            }
            Woke::Timeout => {}
            Woke::Readable => {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                match dhcp::parse(buf.get(..n).unwrap_or_default()) {
                    Ok(message) => {
                        let actions = client.on_message(&message, Instant::now());
                        act(&mut sys, &iface, &sockets, actions);
                    }
                    Err(e) => log::debug!("dhcp: {name}: ignoring a packet from {from}: {e}"),
                }
            }
        }
    }
}

/// Carries out the state machine's actions on the interface.
fn act(sys: &mut dyn Sys, iface: &link::Interface, sockets: &Sockets, actions: Vec<Action>) {
    let name = &iface.name;
    for action in actions {
        match action {
            Action::Send { message, to } => {
                if let Err(e) = sockets.send(iface, &message, to) {
                    log::warn!(
                        "dhcp: {name}: cannot send a {:?} to {to}: {e}",
                        message.kind
                    );
                }
            }
            Action::Configure(lease) => {
                let index = iface.index;
                let mut requests = vec![RouteRequest::AddAddress {
                    index,
                    cidr: lease.cidr,
                }];
                requests.extend(
                    lease
                        .router
                        .map(|gateway| RouteRequest::AddDefaultRoute { index, gateway }),
                );
                for r in requests {
                    if let Err(e) = sys.netlink_route(&r) {
                        log::error!("dhcp: {name}: cannot set {r}: {e}");
                    }
                }
                if let Err(e) =
                    resolv::publish(Path::new("/"), name, Some(&Facts::from_lease(&lease)))
                {
                    log::warn!("dhcp: {name}: cannot publish the lease: {e}");
                }
                let show = |v: &[Ipv4Addr]| {
                    v.iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                log::info!(
                    "dhcp: {name}: {} router {} dns {} ntp {} lease {}s from {}",
                    lease.cidr,
                    lease.router.map_or("none".to_string(), |r| r.to_string()),
                    if lease.dns.is_empty() {
                        "none".to_string()
                    } else {
                        show(&lease.dns)
                    },
                    if lease.ntp.is_empty() {
                        "none".to_string()
                    } else {
                        show(&lease.ntp)
                    },
                    lease.duration.as_secs(),
                    lease.server
                );
            }
            Action::Deconfigure(lease) => {
                let r = RouteRequest::DeleteAddress {
                    index: iface.index,
                    cidr: lease.cidr,
                };
                if let Err(e) = sys.netlink_route(&r) {
                    log::warn!("dhcp: {name}: cannot take the address off ({r}): {e}");
                }
                if let Err(e) = resolv::publish(Path::new("/"), name, None) {
                    log::warn!("dhcp: {name}: cannot publish the lease: {e}");
                }
                log::info!("dhcp: {name}: {} given up", lease.cidr);
            }
            Action::Refused(why) => log::warn!("dhcp: {name}: the server refused: {why}"),
        }
    }
}

/// `boxinit-net static IFACE CIDR [GATEWAY]`: waits for the interface, sets the address (and
/// default route), publishes it, then stays until shutdown.
pub fn static_main(args: &[String]) -> i32 {
    let usage = "usage: boxinit-net static IFACE ADDRESS/PREFIX [GATEWAY]";
    let (pattern, cidr, gateway) = match args {
        [i, c] => (i, c, None),
        [i, c, g] => (i, c, Some(g)),
        _ => {
            eprintln!("{usage}");
            return 2;
        }
    };
    let (Ok(cidr), Ok(gateway)) = (
        cidr.parse::<link::Cidr>(),
        gateway.map(|g| g.parse::<Ipv4Addr>()).transpose(),
    ) else {
        eprintln!("{usage}");
        return 2;
    };
    let Some(signals) = start("static") else {
        return 1;
    };
    let mut sys = Linux;
    let Some(iface) = wait_for_interface("static", pattern, &signals, &mut sys) else {
        return 0;
    };
    let index = iface.index;
    let mut requests = vec![RouteRequest::AddAddress { index, cidr }];
    requests.extend(gateway.map(|gateway| RouteRequest::AddDefaultRoute { index, gateway }));
    for r in &requests {
        if let Err(e) = sys.netlink_route(r) {
            log::error!("static: {}: cannot set {r}: {e}", iface.name);
            return 1;
        }
    }
    let facts = Facts {
        address: Some(cidr.to_string()),
        router: gateway,
        ..Facts::default()
    };
    if let Err(e) = resolv::publish(Path::new("/"), &iface.name, Some(&facts)) {
        log::warn!("static: {}: cannot publish the address: {e}", iface.name);
    }
    log::info!(
        "static: {}: {cidr}{}",
        iface.name,
        gateway.map_or(String::new(), |g| format!(" router {g}"))
    );
    while !matches!(wait(&signals, None, Duration::from_secs(3600)), Woke::Stop) {}
    0
}

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
pub fn time_main(args: &[String]) -> i32 {
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

/// Steps the clock at the first answer (and for any offset over a second), slews it after.
fn adjust(sys: &mut dyn Sys, synced: &mut bool, server: &str, reply: sntp::Reply) {
    let offset = reply.offset;
    if !*synced || offset.abs() >= MAX_SLEW_NANOS {
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
    } else if let Err(e) = sys.adjtime(i64::try_from(offset / 1000).unwrap_or(0)) {
        log::warn!(
            "time: cannot slew the clock by {}: {e}",
            sntp::show_offset(offset)
        );
    } else {
        log::debug!("time: slewing by {} ({server})", sntp::show_offset(offset));
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
    use crate::net::dhcp::tests::{QEMU_DISCOVER, QEMU_RELEASE, QEMU_REQUEST};
    use crate::sys::recorder::Recorder;

    #[test]
    fn only_broadcasts_before_an_address_leave_from_0_0_0_0() {
        let discover = dhcp::parse(QEMU_DISCOVER).unwrap();
        let request = dhcp::parse(QEMU_REQUEST).unwrap();
        let release = dhcp::parse(QEMU_RELEASE).unwrap();
        assert!(from_no_address(&discover, Ipv4Addr::BROADCAST));
        assert!(from_no_address(&request, Ipv4Addr::BROADCAST));
        // with an address (renewing, rebinding, releasing) the UDP socket's source is right
        assert!(!from_no_address(&release, Ipv4Addr::BROADCAST));
        assert!(!from_no_address(&request, Ipv4Addr::new(10, 0, 2, 2)));
    }

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
    fn first_answer_steps_later_ones_slew() {
        let mut sys = Recorder::new();
        let mut synced = true;
        adjust(
            &mut sys,
            &mut synced,
            "s",
            sntp::Reply {
                offset: 2_000_000,
                delay: 0,
                stratum: 1,
            },
        );
        assert_eq!(sys.transcript(), "adjtime(2000us)\n");
        let mut sys = Recorder::new();
        adjust(
            &mut sys,
            &mut synced,
            "s",
            sntp::Reply {
                offset: -5_000_000_000,
                delay: 0,
                stratum: 1,
            },
        );
        assert!(
            sys.transcript().starts_with("clock_settime("),
            "{}",
            sys.transcript()
        );
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
