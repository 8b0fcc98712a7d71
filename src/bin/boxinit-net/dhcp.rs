//! `boxinit-net dhcp IFACE`: a DHCP client for one interface (or the first matching a glob),
//! for as long as it runs: its sockets (UDP port 68 on that interface, and a packet socket for
//! the broadcasts sent before it has an address), the lease state machine's actions carried
//! out (address, default route, the lease file and resolv.conf), and a release at SIGTERM.
//! The messages and the state machine are the library's `net::protocol`.

use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::Instant;

use boxinit::net::clock;
use boxinit::net::link::{self, RouteRequest};
use boxinit::net::protocol::dhcp_state::{Action, Client};
use boxinit::net::protocol::{dhcp, ipv4};
use boxinit::net::resolv::{self, Facts};
use boxinit::sys::linux::{send_link_broadcast, Linux};
use boxinit::sys::Sys;

use crate::interface;
use crate::process::{start, wait, Woke};

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

/// `boxinit-net dhcp IFACE`: a DHCP client for one interface, for as long as it runs.
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
    let Some(iface) = interface::up_and_running("dhcp", pattern, &signals, &mut sys) else {
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
                for r in RouteRequest::address(iface.index, lease.cidr, lease.router) {
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
