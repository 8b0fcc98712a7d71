//! Interfaces through rtnetlink: the requests boxinit makes (link up, add or remove an IPv4
//! address, add a default route) encoded as netlink messages, the kernel's acknowledgement
//! decoded, and the facts read from sysfs (index, MAC address, operational state). It does not
//! send anything: `sys::Sys::netlink_route` does, so the recorder sees every request.
//!
//! Hand-written rather than `netlink-packet-route` + `rtnetlink`: boxinit sends four fixed
//! message shapes and reads only the error code of the acknowledgement, about 150 lines here;
//! the crates bring every attribute of every rtnetlink family (and rtnetlink an async runtime)
//! into a binary held under 800 KiB. Formats: <https://man7.org/linux/man-pages/man7/rtnetlink.7.html>.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

/// An IPv4 address with its prefix length, `10.0.2.15/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub address: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    /// The subnet's broadcast address (all host bits set).
    pub fn broadcast(self) -> Ipv4Addr {
        let host_bits = u32::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
        Ipv4Addr::from(u32::from(self.address) | host_bits)
    }

    /// The prefix length of a subnet mask (`255.255.255.0` is 24), if it is one.
    pub fn prefix_of_mask(mask: Ipv4Addr) -> Option<u8> {
        let bits = u32::from(mask);
        let ones = bits.leading_ones();
        (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad =
            || format!("`{s}` is not an IPv4 address with a prefix such as \"192.168.1.10/24\"");
        let (address, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Cidr { address, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// One rtnetlink request. `index` is the interface index (`/sys/class/net/IFACE/ifindex`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteRequest {
    /// `RTM_NEWLINK` setting `IFF_UP`.
    LinkUp { index: u32 },
    /// `RTM_NEWADDR`; replaces the same address (so a renewal may repeat it). With
    /// `valid_for` (seconds) the kernel removes the address when that runs out
    /// (`IFA_CACHEINFO`): a leased address does not outlive its lease when its client dies.
    AddAddress {
        index: u32,
        cidr: Cidr,
        valid_for: Option<u32>,
    },
    /// `RTM_DELADDR`: an expired or released lease.
    DeleteAddress { index: u32, cidr: Cidr },
    /// `RTM_NEWROUTE`: the default route through `gateway` on the interface.
    AddDefaultRoute { index: u32, gateway: Ipv4Addr },
}

impl fmt::Display for RouteRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteRequest::LinkUp { index } => write!(f, "link {index} up"),
            RouteRequest::AddAddress {
                index,
                cidr,
                valid_for,
            } => {
                write!(f, "address {cidr} on link {index}")?;
                match valid_for {
                    Some(s) => write!(f, " for {s}s"),
                    None => Ok(()),
                }
            }
            RouteRequest::DeleteAddress { index, cidr } => {
                write!(f, "remove address {cidr} from link {index}")
            }
            RouteRequest::AddDefaultRoute { index, gateway } => {
                write!(f, "default route via {gateway} on link {index}")
            }
        }
    }
}

impl RouteRequest {
    /// What gives interface `index` the address `cidr` (for `valid_for` seconds, or for ever)
    /// and, with a `gateway`, the default route through it, in that order: a lease's or a
    /// static address's requests.
    pub fn address(
        index: u32,
        cidr: Cidr,
        gateway: Option<Ipv4Addr>,
        valid_for: Option<u32>,
    ) -> Vec<RouteRequest> {
        let mut requests = vec![RouteRequest::AddAddress {
            index,
            cidr,
            valid_for,
        }];
        requests.extend(gateway.map(|gateway| RouteRequest::AddDefaultRoute { index, gateway }));
        requests
    }
}

const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const AF_INET: u8 = 2;
const IFF_UP: u32 = 0x1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_CACHEINFO: u16 = 6;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_HOST: u8 = 254;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;

/// The request as one netlink message with sequence number `seq`, asking for an ACK.
pub fn encode(request: &RouteRequest, seq: u32) -> Vec<u8> {
    let mut body = Vec::new();
    let (kind, flags) = match *request {
        RouteRequest::LinkUp { index } => {
            // struct ifinfomsg: family, pad, type, index, flags, change
            body.extend_from_slice(&[0, 0, 0, 0]);
            body.extend_from_slice(&index.to_ne_bytes());
            body.extend_from_slice(&IFF_UP.to_ne_bytes());
            body.extend_from_slice(&IFF_UP.to_ne_bytes());
            (RTM_NEWLINK, 0)
        }
        RouteRequest::AddAddress { index, cidr, .. }
        | RouteRequest::DeleteAddress { index, cidr } => {
            let scope = if cidr.address.is_loopback() {
                RT_SCOPE_HOST
            } else {
                RT_SCOPE_UNIVERSE
            };
            // struct ifaddrmsg: family, prefixlen, flags, scope, index
            body.extend_from_slice(&[AF_INET, cidr.prefix, 0, scope]);
            body.extend_from_slice(&index.to_ne_bytes());
            attribute(&mut body, IFA_LOCAL, &cidr.address.octets());
            attribute(&mut body, IFA_ADDRESS, &cidr.address.octets());
            if let RouteRequest::AddAddress { valid_for, .. } = *request {
                if cidr.prefix < 31 {
                    attribute(&mut body, IFA_BROADCAST, &cidr.broadcast().octets());
                }
                if let Some(secs) = valid_for {
                    // struct ifa_cacheinfo: preferred, valid (seconds from now), then two
                    // timestamps the kernel fills in; a valid time of 0 is refused (EINVAL)
                    let secs = secs.max(1);
                    let mut info = [0u8; 16];
                    info[..4].copy_from_slice(&secs.to_ne_bytes());
                    info[4..8].copy_from_slice(&secs.to_ne_bytes());
                    attribute(&mut body, IFA_CACHEINFO, &info);
                }
                (RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE)
            } else {
                (RTM_DELADDR, 0)
            }
        }
        RouteRequest::AddDefaultRoute { index, gateway } => {
            // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
            body.extend_from_slice(&[
                AF_INET,
                0,
                0,
                0,
                RT_TABLE_MAIN,
                RTPROT_BOOT,
                RT_SCOPE_UNIVERSE,
                RTN_UNICAST,
            ]);
            body.extend_from_slice(&0u32.to_ne_bytes());
            attribute(&mut body, RTA_GATEWAY, &gateway.octets());
            attribute(&mut body, RTA_OIF, &index.to_ne_bytes());
            (RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE)
        }
    };
    let mut message = Vec::with_capacity(16 + body.len());
    let len = u32::try_from(16 + body.len()).unwrap_or(u32::MAX);
    message.extend_from_slice(&len.to_ne_bytes());
    message.extend_from_slice(&kind.to_ne_bytes());
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | flags).to_ne_bytes());
    message.extend_from_slice(&seq.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes());
    message.extend_from_slice(&body);
    message
}

/// Appends a `struct rtattr` (length, type, value, padding to 4 bytes).
fn attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// The kernel's answer to request `seq`: `Some(Ok)` for an ACK, `Some(Err)` with its errno,
/// `None` when the buffer holds no answer to that request (read again).
pub fn decode_ack(buf: &[u8], seq: u32) -> Option<io::Result<()>> {
    let mut rest = buf;
    while rest.len() >= 16 {
        let len = usize::try_from(u32_at(rest, 0)?).ok()?;
        let kind = u16::from_ne_bytes([*rest.get(4)?, *rest.get(5)?]);
        let this_seq = u32_at(rest, 8)?;
        if len < 16 || len > rest.len() {
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed netlink answer",
            )));
        }
        if kind == NLMSG_ERROR && this_seq == seq {
            // struct nlmsgerr: int error (negative errno, 0 for an ACK), then the request
            let error = i32::from_ne_bytes(rest.get(16..20)?.try_into().ok()?);
            return Some(if error == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(error.saturating_neg()))
            });
        }
        let aligned = len.checked_add(3)? & !3;
        rest = rest.get(aligned.min(rest.len())..)?;
    }
    None
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

/// An interface as sysfs shows it under `root/sys/class/net/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
}

/// Reads an interface's index and MAC address; errors name the file.
pub fn interface(root: &Path, name: &str) -> io::Result<Interface> {
    let dir = root.join("sys/class/net").join(name);
    let read = |file: &str| {
        std::fs::read_to_string(dir.join(file))
            .map(|s| s.trim().to_string())
            .map_err(|e| io::Error::new(e.kind(), format!("{}/{file}: {e}", dir.display())))
    };
    let index = read("ifindex")?.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}/ifindex is not a number", dir.display()),
        )
    })?;
    let address = read("address")?;
    let mac = parse_mac(&address).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}/address: `{address}` is not a MAC address",
                dir.display()
            ),
        )
    })?;
    Ok(Interface {
        name: name.to_string(),
        index,
        mac,
    })
}

/// `52:54:00:12:34:56` as bytes.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in mac.iter_mut() {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Whether the interface can carry traffic: `operstate` is `up` (or `unknown`, which drivers
/// without carrier reporting show). A Wi-Fi interface is `dormant` until it is associated.
pub fn is_running(root: &Path, name: &str) -> bool {
    let path = root.join("sys/class/net").join(name).join("operstate");
    matches!(
        std::fs::read_to_string(path).as_deref().map(str::trim),
        Ok("up" | "unknown")
    )
}

/// The names of the interfaces present, sorted.
pub fn interfaces(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("sys/class/net"))
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort_unstable();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_then_its_default_route() {
        let shown = |gateway: Option<Ipv4Addr>| -> Vec<String> {
            RouteRequest::address(3, cidr("10.0.2.15/24"), gateway, None)
                .iter()
                .map(|r| r.to_string())
                .collect()
        };
        assert_eq!(
            shown(Some(Ipv4Addr::new(10, 0, 2, 2))),
            [
                "address 10.0.2.15/24 on link 3",
                "default route via 10.0.2.2 on link 3"
            ]
        );
        assert_eq!(shown(None), ["address 10.0.2.15/24 on link 3"]);
        assert_eq!(
            RouteRequest::address(3, cidr("10.0.2.15/24"), None, Some(600))[0].to_string(),
            "address 10.0.2.15/24 on link 3 for 600s"
        );
    }

    #[test]
    fn cidrs_parse_and_show() {
        assert_eq!(cidr("10.0.2.15/24").to_string(), "10.0.2.15/24");
        assert_eq!(
            cidr("10.0.2.15/24").broadcast(),
            Ipv4Addr::new(10, 0, 2, 255)
        );
        assert_eq!(
            cidr("127.0.0.1/8").broadcast(),
            Ipv4Addr::new(127, 255, 255, 255)
        );
        assert_eq!(cidr("1.2.3.4/0").broadcast(), Ipv4Addr::BROADCAST);
        assert_eq!(cidr("1.2.3.4/32").broadcast(), Ipv4Addr::new(1, 2, 3, 4));
        for bad in [
            "10.0.2.15",
            "10.0.2.15/33",
            "10.0.2/24",
            "x/24",
            "10.0.2.15/",
        ] {
            let e = bad.parse::<Cidr>().unwrap_err();
            assert!(e.contains("192.168.1.10/24"), "{e}");
        }
        assert_eq!(
            Cidr::prefix_of_mask(Ipv4Addr::new(255, 255, 255, 0)),
            Some(24)
        );
        assert_eq!(
            Cidr::prefix_of_mask(Ipv4Addr::new(255, 255, 254, 0)),
            Some(23)
        );
        assert_eq!(Cidr::prefix_of_mask(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(Cidr::prefix_of_mask(Ipv4Addr::BROADCAST), Some(32));
        assert_eq!(Cidr::prefix_of_mask(Ipv4Addr::new(255, 0, 255, 0)), None);
    }

    #[test]
    fn link_up_message() {
        let m = encode(&RouteRequest::LinkUp { index: 1 }, 7);
        let mut want = Vec::new();
        want.extend_from_slice(&32u32.to_ne_bytes());
        want.extend_from_slice(&16u16.to_ne_bytes());
        want.extend_from_slice(&5u16.to_ne_bytes());
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[0, 0, 0, 0]);
        want.extend_from_slice(&1u32.to_ne_bytes());
        want.extend_from_slice(&1u32.to_ne_bytes());
        want.extend_from_slice(&1u32.to_ne_bytes());
        assert_eq!(m, want);
    }

    #[test]
    fn address_and_route_messages() {
        let m = encode(
            &RouteRequest::AddAddress {
                index: 2,
                cidr: cidr("10.0.2.15/24"),
                valid_for: None,
            },
            1,
        );
        // header 16 + ifaddrmsg 8 + three 8-byte attributes
        assert_eq!(m.len(), 48);
        assert_eq!(u32_at(&m, 0), Some(48));
        assert_eq!(&m[16..20], &[2, 24, 0, 0]);
        assert_eq!(&m[28..32], &[10, 0, 2, 15]);
        assert_eq!(&m[44..48], &[10, 0, 2, 255]);
        let flags = u16::from_ne_bytes([m[6], m[7]]);
        assert_eq!(flags, 0x1 | 0x4 | 0x100 | 0x400);
        let lo = encode(
            &RouteRequest::AddAddress {
                index: 1,
                cidr: cidr("127.0.0.1/8"),
                valid_for: None,
            },
            1,
        );
        assert_eq!(lo[19], RT_SCOPE_HOST);
        // issue 17: a lease's address carries its lifetime (IFA_CACHEINFO, type 6): preferred
        // and valid 600 s, the kernel's timestamps zero
        let leased = encode(
            &RouteRequest::AddAddress {
                index: 2,
                cidr: cidr("10.0.2.15/24"),
                valid_for: Some(600),
            },
            1,
        );
        assert_eq!(leased.len(), 48 + 20);
        assert_eq!(&leased[48..52], &[20, 0, 6, 0]);
        assert_eq!(&leased[52..56], &600u32.to_ne_bytes());
        assert_eq!(&leased[56..60], &600u32.to_ne_bytes());
        assert_eq!(&leased[60..68], &[0; 8]);
        // none left: still one second (0 is EINVAL)
        let last = encode(
            &RouteRequest::AddAddress {
                index: 2,
                cidr: cidr("10.0.2.15/24"),
                valid_for: Some(0),
            },
            1,
        );
        assert_eq!(&last[56..60], &1u32.to_ne_bytes());
        let del = encode(
            &RouteRequest::DeleteAddress {
                index: 2,
                cidr: cidr("10.0.2.15/24"),
            },
            2,
        );
        assert_eq!(del.len(), 40);
        assert_eq!(u16::from_ne_bytes([del[4], del[5]]), RTM_DELADDR);
        let route = encode(
            &RouteRequest::AddDefaultRoute {
                index: 2,
                gateway: Ipv4Addr::new(10, 0, 2, 2),
            },
            3,
        );
        assert_eq!(route.len(), 16 + 12 + 8 + 8);
        assert_eq!(&route[16..24], &[2, 0, 0, 0, 254, 3, 0, 1]);
        assert_eq!(&route[32..36], &[10, 0, 2, 2]);
        assert_eq!(&route[40..44], &2u32.to_ne_bytes());
    }

    fn answer(kind: u16, seq: u32, error: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&error.to_ne_bytes());
        m.extend_from_slice(&[0; 16]);
        m
    }

    #[test]
    fn acknowledgements() {
        assert!(matches!(decode_ack(&answer(2, 5, 0), 5), Some(Ok(()))));
        let e = decode_ack(&answer(2, 5, -17), 5).unwrap().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(17));
        assert!(decode_ack(&answer(2, 4, 0), 5).is_none());
        // another message first, then the answer
        let mut two = answer(3, 5, 0);
        two.extend(answer(2, 5, -1));
        assert_eq!(
            decode_ack(&two, 5).unwrap().unwrap_err().raw_os_error(),
            Some(1)
        );
        // malformed: too short, a length past the end, a zero length
        assert!(decode_ack(&[1, 2, 3], 5).is_none());
        let mut long = answer(2, 5, 0);
        long[0] = 200;
        assert!(decode_ack(&long, 5).unwrap().is_err());
        let mut zero = answer(2, 5, 0);
        zero[0..4].copy_from_slice(&0u32.to_ne_bytes());
        assert!(decode_ack(&zero, 5).unwrap().is_err());
        let mut cut = answer(2, 5, 0);
        cut.truncate(18);
        cut[0..4].copy_from_slice(&18u32.to_ne_bytes());
        assert!(decode_ack(&cut, 5).is_none());
    }

    #[test]
    fn sysfs_facts() {
        let dir = std::env::temp_dir().join(format!("boxinit-link-{}", std::process::id()));
        let eth = dir.join("sys/class/net/eth0");
        std::fs::create_dir_all(&eth).unwrap();
        std::fs::create_dir_all(dir.join("sys/class/net/lo")).unwrap();
        std::fs::write(eth.join("ifindex"), "2\n").unwrap();
        std::fs::write(eth.join("address"), "52:54:00:12:34:56\n").unwrap();
        std::fs::write(eth.join("operstate"), "down\n").unwrap();
        let i = interface(&dir, "eth0").unwrap();
        assert_eq!(i.index, 2);
        assert_eq!(i.mac, [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert!(!is_running(&dir, "eth0"));
        std::fs::write(eth.join("operstate"), "up\n").unwrap();
        assert!(is_running(&dir, "eth0"));
        assert_eq!(interfaces(&dir), ["eth0", "lo"]);
        let e = interface(&dir, "lo").unwrap_err().to_string();
        assert!(e.contains("sys/class/net/lo/ifindex"), "{e}");
        assert_eq!(parse_mac("52:54:00:12:34"), None);
        assert_eq!(parse_mac("52:54:00:12:34:56:78"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
