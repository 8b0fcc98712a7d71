//! DHCPv4 messages (RFC 2131, options from RFC 2132): encode what the client sends, decode
//! what servers answer, with an error for every way a packet can be malformed. No state, no
//! I/O: the lease state machine is `dhcp_state.rs`, the sockets `boxinit-net dhcp`'s
//! (`src/bin/boxinit-net/dhcp.rs`).
//!
//! Hand-written rather than `dhcproto`: that crate pulls `hickory-proto` (a whole DNS
//! library), `rand`, `ipnet` and `thiserror` for a client that needs a dozen options; this
//! codec is a few hundred lines with its tests and a fuzz target (`fuzz/`), against a binary
//! held under 800 KiB. Option overloading (option 52, options in `sname`/`file`) is not
//! read: servers use it only when options do not fit in 312 bytes, which ours never ask for.

use std::fmt;
use std::net::Ipv4Addr;

/// The fixed part of a message, before the magic cookie.
const FIXED_LEN: usize = 236;
/// RFC 2131 §3: the options field starts with 99.130.83.99.
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// BOOTREQUEST / BOOTREPLY.
const OP_REQUEST: u8 = 1;
const OP_REPLY: u8 = 2;
/// Ethernet.
const HTYPE_ETHERNET: u8 = 1;
/// The BROADCAST bit of `flags`: servers answer to 255.255.255.255, which a socket on an
/// interface without an address can receive.
const FLAG_BROADCAST: u16 = 0x8000;

/// Option codes (RFC 2132).
mod code {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN: u8 = 15;
    pub const NTP: u8 = 42;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETERS: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_SIZE: u8 = 57;
    pub const RENEWAL: u8 = 58;
    pub const REBINDING: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const END: u8 = 255;
}

/// Option 53, the DHCP message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl MessageType {
    fn from_byte(b: u8) -> Option<MessageType> {
        Some(match b {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            _ => return None,
        })
    }
}

/// The options boxinit reads or writes; all others are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub subnet_mask: Option<Ipv4Addr>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub ntp: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
    pub domain: Option<String>,
    pub requested_ip: Option<Ipv4Addr>,
    /// Seconds.
    pub lease_time: Option<u32>,
    pub server_id: Option<Ipv4Addr>,
    /// T1, seconds.
    pub renewal: Option<u32>,
    /// T2, seconds.
    pub rebinding: Option<u32>,
    /// A server's explanation, with a NAK.
    pub message: Option<String>,
    /// Option 55: what the client asks for.
    pub parameters: Vec<u8>,
    /// Option 61: hardware type and address.
    pub client_id: Vec<u8>,
    pub max_size: Option<u16>,
}

/// One DHCP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// BOOTREPLY when a server sent it.
    pub reply: bool,
    pub xid: u32,
    /// Seconds since the client began.
    pub secs: u16,
    pub broadcast: bool,
    /// The client's address, when it has one (renewing, rebinding, releasing).
    pub ciaddr: Ipv4Addr,
    /// "your" address: what the server offers.
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 6],
    pub kind: MessageType,
    pub options: Options,
}

/// Why a packet is not a DHCP message we can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the fixed header and the cookie.
    TooShort(usize),
    /// Not 99.130.83.99 after the fixed header.
    NoMagicCookie,
    /// An option's length runs past the end of the packet.
    OptionPastEnd { code: u8 },
    /// An option's value has a length its type cannot have.
    BadOptionLength { code: u8, len: usize },
    /// No option 53 (a BOOTP packet, not DHCP).
    NoMessageType,
    /// Option 53 holds an unknown value.
    UnknownMessageType(u8),
    /// Not an Ethernet address of 6 bytes.
    NotEthernet { htype: u8, hlen: u8 },
    /// `op` is neither BOOTREQUEST nor BOOTREPLY.
    BadOp(u8),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooShort(n) => write!(f, "{n} bytes, shorter than a DHCP message"),
            ParseError::NoMagicCookie => write!(f, "no DHCP magic cookie (a BOOTP packet?)"),
            ParseError::OptionPastEnd { code } => {
                write!(f, "option {code} runs past the end of the packet")
            }
            ParseError::BadOptionLength { code, len } => {
                write!(f, "option {code} has a wrong length ({len})")
            }
            ParseError::NoMessageType => write!(f, "no message type (option 53)"),
            ParseError::UnknownMessageType(t) => write!(f, "unknown message type {t}"),
            ParseError::NotEthernet { htype, hlen } => {
                write!(f, "hardware type {htype} length {hlen}, not Ethernet")
            }
            ParseError::BadOp(op) => write!(f, "op {op} is neither request nor reply"),
        }
    }
}

fn addr_at(buf: &[u8], at: usize) -> Ipv4Addr {
    let mut octets = [0u8; 4];
    for (i, o) in octets.iter_mut().enumerate() {
        *o = buf.get(at + i).copied().unwrap_or(0);
    }
    Ipv4Addr::from(octets)
}

/// Decodes a packet's UDP payload.
pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
    if buf.len() < FIXED_LEN + MAGIC_COOKIE.len() {
        return Err(ParseError::TooShort(buf.len()));
    }
    let byte = |at: usize| buf.get(at).copied().unwrap_or(0);
    let reply = match byte(0) {
        OP_REQUEST => false,
        OP_REPLY => true,
        op => return Err(ParseError::BadOp(op)),
    };
    let (htype, hlen) = (byte(1), byte(2));
    if htype != HTYPE_ETHERNET || hlen != 6 {
        return Err(ParseError::NotEthernet { htype, hlen });
    }
    if buf.get(FIXED_LEN..FIXED_LEN + 4) != Some(&MAGIC_COOKIE[..]) {
        return Err(ParseError::NoMagicCookie);
    }
    let mut chaddr = [0u8; 6];
    for (i, b) in chaddr.iter_mut().enumerate() {
        *b = byte(28 + i);
    }
    let (kind, options) = parse_options(buf.get(FIXED_LEN + 4..).unwrap_or_default())?;
    Ok(Message {
        reply,
        xid: u32::from_be_bytes([byte(4), byte(5), byte(6), byte(7)]),
        secs: u16::from_be_bytes([byte(8), byte(9)]),
        broadcast: u16::from_be_bytes([byte(10), byte(11)]) & FLAG_BROADCAST != 0,
        ciaddr: addr_at(buf, 12),
        yiaddr: addr_at(buf, 16),
        siaddr: addr_at(buf, 20),
        giaddr: addr_at(buf, 24),
        chaddr,
        kind,
        options,
    })
}

/// The options field: (code, value) pairs until END or the end of the packet.
fn parse_options(mut rest: &[u8]) -> Result<(MessageType, Options), ParseError> {
    let mut kind = None;
    let mut o = Options::default();
    while let Some((&code, after)) = rest.split_first() {
        if code == code::END {
            break;
        }
        if code == code::PAD {
            rest = after;
            continue;
        }
        let (&len, after) = after
            .split_first()
            .ok_or(ParseError::OptionPastEnd { code })?;
        let len = usize::from(len);
        let value = after.get(..len).ok_or(ParseError::OptionPastEnd { code })?;
        rest = after.get(len..).unwrap_or_default();
        let bad = || ParseError::BadOptionLength { code, len };
        match code {
            code::MESSAGE_TYPE => {
                let [t] = value else { return Err(bad()) };
                kind = Some(MessageType::from_byte(*t).ok_or(ParseError::UnknownMessageType(*t))?);
            }
            code::SUBNET_MASK => o.subnet_mask = Some(one_addr(value).ok_or_else(bad)?),
            code::ROUTER => o.routers = addrs(value).ok_or_else(bad)?,
            code::DNS => o.dns = addrs(value).ok_or_else(bad)?,
            code::NTP => o.ntp = addrs(value).ok_or_else(bad)?,
            code::HOSTNAME => o.hostname = Some(text(value)),
            code::DOMAIN => o.domain = Some(text(value)),
            code::MESSAGE => o.message = Some(text(value)),
            code::REQUESTED_IP => o.requested_ip = Some(one_addr(value).ok_or_else(bad)?),
            code::SERVER_ID => o.server_id = Some(one_addr(value).ok_or_else(bad)?),
            code::LEASE_TIME => o.lease_time = Some(seconds(value).ok_or_else(bad)?),
            code::RENEWAL => o.renewal = Some(seconds(value).ok_or_else(bad)?),
            code::REBINDING => o.rebinding = Some(seconds(value).ok_or_else(bad)?),
            code::PARAMETERS => o.parameters = value.to_vec(),
            code::CLIENT_ID => o.client_id = value.to_vec(),
            code::MAX_SIZE => {
                let [a, b] = value else { return Err(bad()) };
                o.max_size = Some(u16::from_be_bytes([*a, *b]));
            }
            _ => {}
        }
    }
    Ok((kind.ok_or(ParseError::NoMessageType)?, o))
}

fn one_addr(value: &[u8]) -> Option<Ipv4Addr> {
    let [a, b, c, d] = value else { return None };
    Some(Ipv4Addr::new(*a, *b, *c, *d))
}

/// A list of addresses: a non-empty multiple of 4 bytes.
fn addrs(value: &[u8]) -> Option<Vec<Ipv4Addr>> {
    if value.is_empty() || !value.len().is_multiple_of(4) {
        return None;
    }
    Some(value.chunks_exact(4).filter_map(one_addr).collect())
}

fn seconds(value: &[u8]) -> Option<u32> {
    let [a, b, c, d] = value else { return None };
    Some(u32::from_be_bytes([*a, *b, *c, *d]))
}

/// Text options: printable ASCII kept, anything else (NULs some servers append, control
/// characters that would reach resolv.conf or the console) dropped.
fn text(value: &[u8]) -> String {
    value
        .iter()
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .map(|b| char::from(*b))
        .collect()
}

/// Encodes a message, padded to the 300 bytes that old relays expect.
pub fn encode(m: &Message) -> Vec<u8> {
    let mut out = vec![0u8; FIXED_LEN];
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(slot) = out.get_mut(at..at + bytes.len()) {
            slot.copy_from_slice(bytes);
        }
    };
    put(
        0,
        &[
            if m.reply { OP_REPLY } else { OP_REQUEST },
            HTYPE_ETHERNET,
            6,
            0,
        ],
    );
    put(4, &m.xid.to_be_bytes());
    put(8, &m.secs.to_be_bytes());
    let flags = if m.broadcast { FLAG_BROADCAST } else { 0 };
    put(10, &flags.to_be_bytes());
    put(12, &m.ciaddr.octets());
    put(16, &m.yiaddr.octets());
    put(20, &m.siaddr.octets());
    put(24, &m.giaddr.octets());
    put(28, &m.chaddr);
    out.extend_from_slice(&MAGIC_COOKIE);
    option(&mut out, code::MESSAGE_TYPE, &[m.kind as u8]);
    let o = &m.options;
    let addr = |a: &Option<Ipv4Addr>| a.map(|a| a.octets().to_vec());
    let list =
        |l: &[Ipv4Addr]| (!l.is_empty()).then(|| l.iter().flat_map(|a| a.octets()).collect());
    let secs = |s: &Option<u32>| s.map(|s| s.to_be_bytes().to_vec());
    let string = |s: &Option<String>| s.as_ref().map(|s| s.as_bytes().to_vec());
    let bytes = |b: &[u8]| (!b.is_empty()).then(|| b.to_vec());
    let fields: [(u8, Option<Vec<u8>>); 15] = [
        (code::CLIENT_ID, bytes(&o.client_id)),
        (code::MAX_SIZE, o.max_size.map(|s| s.to_be_bytes().to_vec())),
        (code::REQUESTED_IP, addr(&o.requested_ip)),
        (code::SERVER_ID, addr(&o.server_id)),
        (code::HOSTNAME, string(&o.hostname)),
        (code::PARAMETERS, bytes(&o.parameters)),
        (code::SUBNET_MASK, addr(&o.subnet_mask)),
        (code::ROUTER, list(&o.routers)),
        (code::DNS, list(&o.dns)),
        (code::NTP, list(&o.ntp)),
        (code::DOMAIN, string(&o.domain)),
        (code::LEASE_TIME, secs(&o.lease_time)),
        (code::RENEWAL, secs(&o.renewal)),
        (code::REBINDING, secs(&o.rebinding)),
        (code::MESSAGE, string(&o.message)),
    ];
    for (code, value) in fields {
        if let Some(value) = value {
            option(&mut out, code, &value);
        }
    }
    out.push(code::END);
    if out.len() < 300 {
        out.resize(300, 0);
    }
    out
}

/// Appends one option; values over 255 bytes are cut (none that boxinit sends is).
fn option(out: &mut Vec<u8>, code: u8, value: &[u8]) {
    let value = value.get(..255).unwrap_or(value);
    out.push(code);
    out.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(value);
}

/// Whether `message` sent to `to` is a broadcast of a client without an address yet
/// (DISCOVER, and REQUEST while selecting or rebooting), which must leave from 0.0.0.0
/// (RFC 2131 4.1): through a packet socket, not the UDP socket, whose source would be another
/// interface's address.
pub fn leaves_from_no_address(message: &Message, to: Ipv4Addr) -> bool {
    to.is_broadcast() && message.ciaddr.is_unspecified()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What boxinit and QEMU's user network (slirp, QEMU 7.2) exchanged in scenario 100,
    /// recorded with `-object filter-dump` (UDP payloads): DISCOVER, OFFER, REQUEST, ACK and,
    /// at power-off, RELEASE. The OFFER: 10.0.2.15 from 10.0.2.2, DNS 10.0.2.3, a day's lease,
    /// no NTP server; padded to 548 bytes.
    pub const QEMU_DISCOVER: &[u8] = include_bytes!("testdata/qemu-discover.bin");
    pub const QEMU_OFFER: &[u8] = include_bytes!("testdata/qemu-offer.bin");
    pub const QEMU_REQUEST: &[u8] = include_bytes!("testdata/qemu-request.bin");
    pub const QEMU_ACK: &[u8] = include_bytes!("testdata/qemu-ack.bin");
    pub const QEMU_RELEASE: &[u8] = include_bytes!("testdata/qemu-release.bin");

    pub fn qemu_offer() -> Vec<u8> {
        QEMU_OFFER.to_vec()
    }

    #[test]
    fn only_broadcasts_before_an_address_leave_from_0_0_0_0() {
        let discover = parse(QEMU_DISCOVER).unwrap();
        let request = parse(QEMU_REQUEST).unwrap();
        let release = parse(QEMU_RELEASE).unwrap();
        assert!(leaves_from_no_address(&discover, Ipv4Addr::BROADCAST));
        assert!(leaves_from_no_address(&request, Ipv4Addr::BROADCAST));
        // with an address (renewing, rebinding, releasing) the UDP socket's source is right
        assert!(!leaves_from_no_address(&release, Ipv4Addr::BROADCAST));
        assert!(!leaves_from_no_address(
            &request,
            Ipv4Addr::new(10, 0, 2, 2)
        ));
    }

    #[test]
    fn an_offer_from_qemu() {
        let m = parse(&qemu_offer()).unwrap();
        assert!(m.reply);
        assert_eq!(m.kind, MessageType::Offer);
        assert_eq!(m.xid, 0x880f_e31a);
        assert_eq!(m.yiaddr, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(m.siaddr, Ipv4Addr::new(10, 0, 2, 2));
        assert_eq!(m.chaddr, [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(m.options.server_id, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(m.options.lease_time, Some(86400));
        assert_eq!(m.options.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(m.options.routers, [Ipv4Addr::new(10, 0, 2, 2)]);
        assert_eq!(m.options.dns, [Ipv4Addr::new(10, 0, 2, 3)]);
        assert!(m.options.ntp.is_empty());
    }

    /// What boxinit sent encodes back byte for byte; the ACK is the OFFER's twin.
    #[test]
    fn recorded_exchange() {
        for (bytes, kind) in [
            (QEMU_DISCOVER, MessageType::Discover),
            (QEMU_REQUEST, MessageType::Request),
            (QEMU_RELEASE, MessageType::Release),
        ] {
            let m = parse(bytes).unwrap();
            assert_eq!(m.kind, kind);
            assert!(!m.reply);
            assert_eq!(encode(&m), bytes, "{kind:?}");
        }
        let discover = parse(QEMU_DISCOVER).unwrap();
        assert!(discover.broadcast);
        assert_eq!(discover.options.parameters, [1, 3, 6, 15, 42, 51, 58, 59]);
        let request = parse(QEMU_REQUEST).unwrap();
        assert_eq!(
            request.options.requested_ip,
            Some(Ipv4Addr::new(10, 0, 2, 15))
        );
        assert_eq!(request.options.server_id, Some(Ipv4Addr::new(10, 0, 2, 2)));
        let release = parse(QEMU_RELEASE).unwrap();
        assert_eq!(release.ciaddr, Ipv4Addr::new(10, 0, 2, 15));
        let ack = parse(QEMU_ACK).unwrap();
        assert_eq!(ack.kind, MessageType::Ack);
        assert_eq!(ack.xid, request.xid);
        assert_eq!(ack.options, parse(QEMU_OFFER).unwrap().options);
    }

    #[test]
    fn round_trip() {
        let m = Message {
            reply: false,
            xid: 0xdeadbeef,
            secs: 3,
            broadcast: true,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [1, 2, 3, 4, 5, 6],
            kind: MessageType::Request,
            options: Options {
                requested_ip: Some(Ipv4Addr::new(10, 0, 2, 15)),
                server_id: Some(Ipv4Addr::new(10, 0, 2, 2)),
                hostname: Some("puzzlebox".into()),
                parameters: vec![1, 3, 6, 42],
                client_id: vec![1, 1, 2, 3, 4, 5, 6],
                max_size: Some(1500),
                ntp: vec![Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8)],
                lease_time: Some(60),
                renewal: Some(30),
                rebinding: Some(52),
                message: Some("hi".into()),
                domain: Some("example.org".into()),
                ..Options::default()
            },
        };
        let bytes = encode(&m);
        assert!(bytes.len() >= 300);
        assert_eq!(
            encode(&Message {
                options: Options::default(),
                ..m.clone()
            })
            .len(),
            300
        );
        assert_eq!(&bytes[0..4], &[1, 1, 6, 0]);
        assert_eq!(&bytes[10..12], &[0x80, 0]);
        assert_eq!(parse(&bytes).unwrap(), m);
    }

    #[test]
    fn malformed_packets() {
        let good = qemu_offer();
        let cookie = FIXED_LEN;
        let options = cookie + 4;
        assert_eq!(parse(&good[..100]), Err(ParseError::TooShort(100)));
        assert_eq!(parse(&[]), Err(ParseError::TooShort(0)));
        let mut b = good.clone();
        b[cookie] = 0;
        assert_eq!(parse(&b), Err(ParseError::NoMagicCookie));
        let mut b = good.clone();
        b[0] = 9;
        assert_eq!(parse(&b), Err(ParseError::BadOp(9)));
        let mut b = good.clone();
        b[2] = 16;
        assert_eq!(
            parse(&b),
            Err(ParseError::NotEthernet { htype: 1, hlen: 16 })
        );
        // a message type out of range, of the wrong length, missing
        let mut b = good.clone();
        b[options + 2] = 99;
        assert_eq!(parse(&b), Err(ParseError::UnknownMessageType(99)));
        let mut b = good.clone();
        b[options + 1] = 2;
        assert!(matches!(
            parse(&b),
            Err(ParseError::BadOptionLength { code: 53, .. })
                | Err(ParseError::OptionPastEnd { .. })
        ));
        let mut b = good[..options].to_vec();
        b.extend_from_slice(&[0, 0, 255]);
        assert_eq!(parse(&b), Err(ParseError::NoMessageType));
        // an option whose length runs past the end (cut in the middle of the lease time)
        let mut b = good[..options].to_vec();
        b.extend_from_slice(&[53, 1, 2, 51, 4, 0, 1]);
        assert_eq!(parse(&b), Err(ParseError::OptionPastEnd { code: 51 }));
        let mut b = good[..options].to_vec();
        b.extend_from_slice(&[53, 1, 2, 51]);
        assert_eq!(parse(&b), Err(ParseError::OptionPastEnd { code: 51 }));
        // address lists not a multiple of 4, empty; a short mask
        for (code, value) in [(6u8, &[10u8, 0, 2][..]), (3, &[][..]), (1, &[255, 255][..])] {
            let mut b = good[..options].to_vec();
            b.extend_from_slice(&[53, 1, 2, code, value.len() as u8]);
            b.extend_from_slice(value);
            b.push(255);
            assert_eq!(
                parse(&b),
                Err(ParseError::BadOptionLength {
                    code,
                    len: value.len()
                })
            );
        }
        // no END: the options simply stop at the end of the packet
        let mut b = good[..options].to_vec();
        b.extend_from_slice(&[53, 1, 5]);
        assert_eq!(parse(&b).unwrap().kind, MessageType::Ack);
        // unknown options are skipped; text loses control characters
        let mut b = good[..options].to_vec();
        b.extend_from_slice(&[53, 1, 6, 200, 2, 1, 2, 56, 4, b'n', 0, b'\n', b'o', 255]);
        let m = parse(&b).unwrap();
        assert_eq!(m.kind, MessageType::Nak);
        assert_eq!(m.options.message.as_deref(), Some("no"));
        for e in [
            ParseError::TooShort(1),
            ParseError::NoMagicCookie,
            ParseError::OptionPastEnd { code: 1 },
            ParseError::BadOptionLength { code: 1, len: 2 },
            ParseError::NoMessageType,
            ParseError::UnknownMessageType(9),
            ParseError::NotEthernet { htype: 6, hlen: 6 },
            ParseError::BadOp(0),
        ] {
            assert!(!e.to_string().is_empty());
        }
    }
}
