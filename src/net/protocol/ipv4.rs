//! IPv4 and UDP headers made by hand, for the DHCP messages a client sends before it has an
//! address. Those must leave with the source address 0.0.0.0 (RFC 2131 4.1); through a UDP
//! socket the kernel picks one of another interface's addresses instead, so they go out
//! through a packet socket (`boxinit-net dhcp`) as the datagrams made here. Pure.

use std::net::Ipv4Addr;

/// IPv4 header length without options.
const IP_HEADER: usize = 20;
/// UDP header length.
const UDP_HEADER: usize = 8;
/// Hop limit: DHCP stays on the link, but relays need more than 1 (busybox and dhcpcd use 64).
const TTL: u8 = 64;
/// IANA protocol number of UDP.
const PROTOCOL_UDP: u8 = 17;

/// One UDP datagram from `src` to `dst` (ports `sport`, `dport`) carrying `payload`, as an
/// IPv4 packet: header checksum and UDP checksum filled in. None when the payload is longer
/// than an IPv4 packet can carry.
pub fn udp_datagram(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let udp_len = u16::try_from(UDP_HEADER + payload.len()).ok()?;
    let total = u16::try_from(IP_HEADER + usize::from(udp_len)).ok()?;
    let ([s0, s1, s2, s3], [d0, d1, d2, d3]) = (src.octets(), dst.octets());
    let [t0, t1] = total.to_be_bytes();
    // Version 4 with a 5-word header, no DSCP, the length, id 0 and don't fragment, the TTL,
    // UDP, the checksum (over the header with 0 there), the addresses.
    let ip_header = |[c0, c1]: [u8; 2]| -> [u8; IP_HEADER] {
        [
            0x45,
            0,
            t0,
            t1,
            0,
            0,
            0x40,
            0,
            TTL,
            PROTOCOL_UDP,
            c0,
            c1,
            s0,
            s1,
            s2,
            s3,
            d0,
            d1,
            d2,
            d3,
        ]
    };
    let [l0, l1] = udp_len.to_be_bytes();
    let [p0, p1] = sport.to_be_bytes();
    let [q0, q1] = dport.to_be_bytes();
    let udp_header = |[c0, c1]: [u8; 2]| -> [u8; UDP_HEADER] { [p0, p1, q0, q1, l0, l1, c0, c1] };
    // The UDP checksum also covers a pseudo-header of the addresses, protocol and length; a
    // sum of 0 is sent as 0xffff, since 0 means "no checksum".
    let pseudo = [s0, s1, s2, s3, d0, d1, d2, d3, 0, PROTOCOL_UDP, l0, l1];
    let udp_sum = match checksum(&[&pseudo, &udp_header([0, 0]), payload]) {
        0 => 0xffff,
        sum => sum,
    };
    let ip_sum = checksum(&[&ip_header([0, 0])]);
    let mut packet = Vec::with_capacity(usize::from(total));
    packet.extend_from_slice(&ip_header(ip_sum.to_be_bytes()));
    packet.extend_from_slice(&udp_header(udp_sum.to_be_bytes()));
    packet.extend_from_slice(payload);
    Some(packet)
}

/// The Internet checksum (RFC 1071) of the parts read as one byte string: the ones'
/// complement of the ones'-complement sum of its 16-bit big-endian words. Every part but the
/// last must have an even length.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for word in part.chunks(2) {
            let hi = word.first().copied().unwrap_or(0);
            let lo = word.get(1).copied().unwrap_or(0);
            sum += u32::from(u16::from_be_bytes([hi, lo]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_rfc_1071s_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (with carries).
        assert_eq!(
            checksum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
            !0xddf2
        );
        // an odd last part is padded with a zero byte
        assert_eq!(checksum(&[&[0x12, 0x34], &[0x56]]), !0x6834);
    }

    #[test]
    fn a_dhcp_discover_from_no_address() {
        let payload = b"dhcp message";
        let packet =
            udp_datagram(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, 68, 67, payload).unwrap();
        assert_eq!(packet.len(), 20 + 8 + payload.len());
        assert_eq!(packet[0], 0x45);
        assert_eq!(
            u16::from_be_bytes([packet[2], packet[3]]) as usize,
            packet.len()
        );
        assert_eq!(packet[9], 17);
        assert_eq!(&packet[12..16], &[0, 0, 0, 0]);
        assert_eq!(&packet[16..20], &[255, 255, 255, 255]);
        // a header with its checksum in sums to zero
        assert_eq!(checksum(&[&packet[..20]]), 0);
        // ports and the UDP length
        assert_eq!(&packet[20..26], &[0, 68, 0, 67, 0, 20]);
        // the UDP checksum verifies over the pseudo-header
        let pseudo = [0, 0, 0, 0, 255, 255, 255, 255, 0, 17, 0, 20];
        assert_eq!(checksum(&[&pseudo, &packet[20..]]), 0);
        assert_eq!(&packet[28..], payload);
    }

    #[test]
    fn too_long_a_payload_is_refused() {
        let huge = vec![0u8; 70_000];
        assert_eq!(
            udp_datagram(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, 68, 67, &huge),
            None
        );
    }
}
