//! `boxinit-net dhcp IFACE`: a DHCP client for one interface (or the first matching a glob),
//! for as long as it runs: its sockets (UDP port 68 on that interface, and a packet socket for
//! the broadcasts sent before it has an address), the lease state machine's actions carried
//! out (address, default route, the lease file and resolv.conf), and a release at SIGTERM.
//! The messages and the state machine are the library's `net::protocol`.

use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use boxinit::net::clock;
use boxinit::net::link::{self, RouteRequest};
use boxinit::net::protocol::dhcp_state::{Action, Client, Lease};
use boxinit::net::protocol::{dhcp, ipv4};
use boxinit::net::resolv::{self, Facts};
use boxinit::sys::linux::{send_link_broadcast, Linux};
use boxinit::sys::Sys;

use crate::interface;
use crate::process::{start, wait, Woke};
use nix::sys::signalfd::SignalFd;

const DHCP_SERVER_PORT: u16 = 67;
const DHCP_CLIENT_PORT: u16 = 68;

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
        if let (Some(packet), true) = (&self.packet, dhcp::leaves_from_no_address(message, to)) {
            let datagram = ipv4::udp_datagram(
                Ipv4Addr::UNSPECIFIED,
                to,
                DHCP_CLIENT_PORT,
                DHCP_SERVER_PORT,
                &bytes,
            )
            .ok_or_else(|| io::Error::other("the message is too long for one datagram"))?;
            return send_link_broadcast(packet, iface.index, &datagram);
        }
        self.udp
            .send_to(&bytes, SocketAddrV4::new(to, DHCP_SERVER_PORT))
            .map(|_| ())
    }
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

/// How often a client looks whether its interface is still the one it serves (a USB adapter
/// pulled out, or pulled and plugged back: a new interface, perhaps with the same name).
const STILL_THERE: Duration = Duration::from_secs(1);

/// How serving an interface ended.
enum Served {
    /// A stop signal: the lease was released.
    Stopped,
    /// The interface went away (or came back as another): wait for one again.
    Gone,
    /// The client cannot work on it (no socket); the supervisor restarts the program.
    Failed,
}

/// `boxinit-net dhcp IFACE`: a DHCP client for one interface, for as long as it runs. When
/// the interface goes away (a USB adapter unplugged) it waits for one matching IFACE again,
/// and serves that: an adapter plugged back gets its lease again.
pub fn main(args: &[String]) -> i32 {
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
    loop {
        let Some(iface) = interface::up_and_running("dhcp", pattern, &signals, &mut sys) else {
            return 0;
        };
        match serve(&mut sys, &iface, &signals) {
            Served::Stopped => return 0,
            Served::Failed => return 1,
            Served::Gone => {
                // its addresses went with it; what was published about it goes too
                if let Err(e) = resolv::publish(Path::new("/"), &iface.name, None) {
                    log::warn!("dhcp: {}: cannot publish the lease: {e}", iface.name);
                }
                log::info!(
                    "dhcp: {} is gone; waiting for {pattern} to come back",
                    iface.name
                );
            }
        }
    }
}

/// Whether `iface` is still there as the same interface (same index).
fn still_there(iface: &link::Interface) -> bool {
    link::interface(Path::new("/"), &iface.name).is_ok_and(|now| now.index == iface.index)
}

/// Runs the client on `iface` until a stop signal, or until the interface is gone.
fn serve(sys: &mut dyn Sys, iface: &link::Interface, signals: &SignalFd) -> Served {
    let name = iface.name.clone();
    let socket = match dhcp_socket(&name) {
        Ok(s) => s,
        Err(e) => {
            log::error!("dhcp: {name}: cannot open its socket on port 68: {e}");
            return Served::Failed;
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
    let mut client = match previous_lease(&name) {
        Some(previous) => {
            log::info!(
                "dhcp: {name}: {} from a previous run; asking to keep it (INIT-REBOOT)",
                previous.cidr
            );
            Client::rebooting(iface.mac, hostname, random_u32(), previous, Instant::now())
        }
        None => Client::new(iface.mac, hostname, random_u32(), Instant::now()),
    };
    let mut buf = [0u8; 1500];
    loop {
        let actions = client.on_timeout(Instant::now());
        act(sys, iface, &sockets, actions);
        let timeout = client
            .deadline()
            .saturating_duration_since(Instant::now())
            .min(STILL_THERE);
        let woke = wait(signals, Some(socket), timeout);
        if !matches!(woke, Woke::Stop) && !still_there(iface) {
            return Served::Gone;
        }
        match woke {
            Woke::Stop => {
                let actions = client.release(Instant::now());
                act(sys, iface, &sockets, actions);
                return Served::Stopped;
            }
            Woke::Timeout => {}
            Woke::Readable => {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                match dhcp::parse(buf.get(..n).unwrap_or_default()) {
                    Ok(message) => {
                        let actions = client.on_message(&message, Instant::now());
                        act(sys, iface, &sockets, actions);
                    }
                    Err(e) => log::debug!("dhcp: {name}: ignoring a packet from {from}: {e}"),
                }
            }
        }
    }
}

/// What a previous run of the client left for interface `name` (it was killed, or crashed,
/// and is restarted): its lease file, if it names an address. A file that names none is
/// removed.
fn previous_lease(name: &str) -> Option<Lease> {
    let path = Path::new(resolv::NET_DIR).join(name);
    let facts = Facts::parse(&std::fs::read_to_string(path).ok()?);
    match facts.address.as_deref().map(str::parse::<link::Cidr>) {
        Some(Ok(cidr)) => Some(Lease::previous(
            cidr,
            facts.router,
            facts.dns,
            facts.ntp,
            Instant::now(),
        )),
        _ => {
            if let Err(e) = resolv::publish(Path::new("/"), name, None) {
                log::warn!("dhcp: {name}: cannot publish the lease: {e}");
            }
            None
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
                // the lease's time left goes with the address: should this program die, the
                // kernel still takes the address off when the lease runs out (RFC 2131 4.4.5)
                let valid_for = Some(lease.valid_for(Instant::now()));
                for r in RouteRequest::address(iface.index, lease.cidr, lease.router, valid_for) {
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
                match sys.netlink_route(&r) {
                    // already gone: the kernel took it off when its lifetime ran out, or a
                    // previous run's address went with a restart of the interface
                    Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
                    Err(e) => log::warn!("dhcp: {name}: cannot take the address off ({r}): {e}"),
                    Ok(()) => {}
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
