//! SNTP (RFC 4330) packets: the 48-byte client request, the server's reply checked and
//! turned into the clock's offset. No I/O and no clock: `boxinit-net time` sends, receives
//! and steps.
//!
//! Hand-written rather than `sntpc`: that crate is small, but it owns the socket and the
//! clock reading behind its own traits and hands back a finished result, so neither the
//! checks on a reply nor the parser could be unit-tested or fuzzed here; the format is one
//! fixed 48-byte layout.

use std::fmt;
use std::time::Duration;

/// The length of an SNTP packet without extensions.
pub const PACKET_LEN: usize = 48;
/// Seconds from 1900-01-01 (NTP's epoch) to 1970-01-01.
const NTP_TO_UNIX: u64 = 2_208_988_800;
/// LI = 0, VN = 4, mode = 3 (client).
const CLIENT_FIRST_BYTE: u8 = 0b00_100_011;
const MODE_SERVER: u8 = 4;
/// Strata 1-15 are synchronised servers; 0 is a kiss-o'-death, 16 and above mean unsynchronised
/// (RFC 5905 7.3).
const MAX_STRATUM: u8 = 15;

/// A wall-clock time as nanoseconds since the Unix epoch (signed: a clock before 1970 is
/// possible on a board without a real-time clock only in theory, but the arithmetic is safe).
pub type UnixNanos = i128;

/// A timestamp as NTP writes it: seconds since 1900 (era 0, or era 1 from 2036 on) and a
/// binary fraction.
fn to_ntp(t: UnixNanos) -> [u8; 8] {
    let secs = t.div_euclid(1_000_000_000);
    let nanos = t.rem_euclid(1_000_000_000);
    let ntp_secs = (secs + i128::from(NTP_TO_UNIX)) as u64 as u32;
    let fraction = ((nanos << 32) / 1_000_000_000) as u32;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&ntp_secs.to_be_bytes());
    out[4..].copy_from_slice(&fraction.to_be_bytes());
    out
}

/// RFC 4330 §3: a timestamp whose top bit is clear is in era 1 (from 2036-02-07).
fn from_ntp(b: [u8; 8]) -> UnixNanos {
    let [s0, s1, s2, s3, f0, f1, f2, f3] = b;
    let secs = u32::from_be_bytes([s0, s1, s2, s3]);
    let fraction = u32::from_be_bytes([f0, f1, f2, f3]);
    let mut secs = i128::from(secs);
    if secs & 0x8000_0000 == 0 {
        secs += 1 << 32;
    }
    let nanos = (i128::from(fraction) * 1_000_000_000) >> 32;
    (secs - i128::from(NTP_TO_UNIX)) * 1_000_000_000 + nanos
}

/// The request sent at `now`: its transmit timestamp is what the server echoes back as the
/// originate timestamp, which ties the reply to the request.
pub fn request(now: UnixNanos) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    p[0] = CLIENT_FIRST_BYTE;
    p[40..48].copy_from_slice(&to_ntp(now));
    p
}

/// What a good reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// How far the local clock is behind (positive) or ahead (negative), in nanoseconds:
    /// ((T2 - T1) + (T3 - T4)) / 2.
    pub offset: i128,
    /// The round trip minus the server's processing time.
    pub delay: i128,
    pub stratum: u8,
}

/// Why a reply is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SntpError {
    /// Not 48 bytes or more.
    TooShort(usize),
    /// Not a server (mode 4) packet: a client's, a broadcast (mode 5, which a unicast client
    /// must not take: RFC 4330 5), a symmetric peer's.
    NotAServer { mode: u8 },
    /// Version outside 1-4.
    BadVersion(u8),
    /// Stratum 0: a kiss-o'-death; the four-letter code (`RATE`, `DENY`, ...).
    KissOfDeath(String),
    /// Leap indicator 3: the server's clock is not synchronised.
    Unsynchronised,
    /// Stratum 16 or above: the server's clock is not synchronised either.
    BadStratum(u8),
    /// The originate timestamp is not our request's: a late or forged answer.
    NotOurRequest,
    /// The server's receive or transmit timestamp is zero (RFC 4330 5: a server that has
    /// never been synchronised).
    NoTime,
}

impl fmt::Display for SntpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SntpError::TooShort(n) => write!(f, "{n} bytes, shorter than an SNTP packet"),
            SntpError::NotAServer { mode } => write!(f, "mode {mode}, not a server's answer"),
            SntpError::BadVersion(v) => write!(f, "NTP version {v} unknown"),
            SntpError::KissOfDeath(code) => write!(f, "the server refused (kiss code {code})"),
            SntpError::Unsynchronised => write!(f, "the server's own clock is not synchronised"),
            SntpError::BadStratum(s) => {
                write!(f, "stratum {s}: the server's own clock is not synchronised")
            }
            SntpError::NotOurRequest => write!(f, "the answer is not to our request"),
            SntpError::NoTime => write!(f, "the answer carries no time"),
        }
    }
}

fn stamp(p: &[u8], at: usize) -> [u8; 8] {
    let mut b = [0u8; 8];
    for (i, x) in b.iter_mut().enumerate() {
        *x = p.get(at + i).copied().unwrap_or(0);
    }
    b
}

/// Checks a reply to the request sent at `sent` (T1) and received at `received` (T4), both
/// on the local wall clock.
pub fn parse_reply(p: &[u8], sent: UnixNanos, received: UnixNanos) -> Result<Reply, SntpError> {
    if p.len() < PACKET_LEN {
        return Err(SntpError::TooShort(p.len()));
    }
    let first = p.first().copied().unwrap_or(0);
    let (leap, version, mode) = (first >> 6, (first >> 3) & 7, first & 7);
    if mode != MODE_SERVER {
        return Err(SntpError::NotAServer { mode });
    }
    if !(1..=4).contains(&version) {
        return Err(SntpError::BadVersion(version));
    }
    let stratum = p.get(1).copied().unwrap_or(0);
    if stratum == 0 {
        let code: String = p
            .get(12..16)
            .unwrap_or_default()
            .iter()
            .filter(|b| b.is_ascii_alphanumeric())
            .map(|b| char::from(*b))
            .collect();
        return Err(SntpError::KissOfDeath(code));
    }
    if leap == 3 {
        return Err(SntpError::Unsynchronised);
    }
    if stratum > MAX_STRATUM {
        return Err(SntpError::BadStratum(stratum));
    }
    if stamp(p, 24) != to_ntp(sent) {
        return Err(SntpError::NotOurRequest);
    }
    if stamp(p, 32) == [0; 8] || stamp(p, 40) == [0; 8] {
        return Err(SntpError::NoTime);
    }
    let t2 = from_ntp(stamp(p, 32));
    let t3 = from_ntp(stamp(p, 40));
    let (t1, t4) = (sent, received);
    Ok(Reply {
        offset: ((t2 - t1) + (t3 - t4)) / 2,
        delay: (t4 - t1) - (t3 - t2),
        stratum,
    })
}

/// What a kiss-o'-death asks of the client (RFC 4330 8, RFC 5905 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kiss {
    /// `DENY`, `RSTR`: stop sending to that server.
    Stop,
    /// `RATE` (and any other code): ask less often.
    SlowDown,
}

impl SntpError {
    /// What a kiss-o'-death asks for; None for the other errors.
    pub fn kiss(&self) -> Option<Kiss> {
        match self {
            SntpError::KissOfDeath(code) if code == "DENY" || code == "RSTR" => Some(Kiss::Stop),
            SntpError::KissOfDeath(_) => Some(Kiss::SlowDown),
            _ => None,
        }
    }
}

/// A server's reply to `request` with its clock at `server_time` (for tests and the test
/// responder that `cargo xtask test` runs on the host).
pub fn reply_to(request: &[u8], server_time: UnixNanos) -> Option<[u8; PACKET_LEN]> {
    if request.len() < PACKET_LEN || request.first().map(|b| b & 7) != Some(3) {
        return None;
    }
    let mut p = [0u8; PACKET_LEN];
    p[0] = 0b00_100_100; // LI 0, VN 4, mode 4
    p[1] = 1; // stratum 1
    p[12..16].copy_from_slice(b"TEST");
    p[16..24].copy_from_slice(&to_ntp(server_time));
    p[24..32].copy_from_slice(&stamp(request, 40));
    p[32..40].copy_from_slice(&to_ntp(server_time));
    p[40..48].copy_from_slice(&to_ntp(server_time));
    Some(p)
}

/// `nanos` as a signed duration for messages: `+1.250s`, `-0.003s`.
pub fn show_offset(nanos: i128) -> String {
    let sign = if nanos < 0 { '-' } else { '+' };
    let d = Duration::from_nanos(u64::try_from(nanos.unsigned_abs()).unwrap_or(u64::MAX));
    format!("{sign}{}.{:03}s", d.as_secs(), d.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i128 = 1_000_000_000;
    /// 2026-11-30 00:00:00 UTC
    const T: i128 = 1_795_996_800 * SEC;

    #[test]
    fn timestamps_round_trip_across_eras() {
        // NTP's two eras cover 1968-2104
        for t in [
            0,
            T,
            T + 123_456_789,
            2_085_978_496 * SEC,
            4_000_000_000 * SEC,
        ] {
            let back = from_ntp(to_ntp(t));
            assert!((back - t).abs() <= 1, "{t} -> {back}");
        }
        // 1970 is NTP second 2208988800
        assert_eq!(&to_ntp(0)[..4], &2_208_988_800u32.to_be_bytes());
    }

    #[test]
    fn a_reply_gives_the_offset() {
        // our clock says 1970 + 5 s; the server says T; 100 ms round trip
        let t1 = 5 * SEC;
        let req = request(t1);
        assert_eq!(req[0], 0x23);
        let rep = reply_to(&req, T).unwrap();
        let r = parse_reply(&rep, t1, t1 + SEC / 10).unwrap();
        assert_eq!(r.stratum, 1);
        assert_eq!(r.delay, SEC / 10);
        // T - (t1 + 50 ms)
        assert_eq!(r.offset, T - t1 - SEC / 20);
        assert!(show_offset(r.offset).starts_with('+'));
        assert_eq!(show_offset(-3_000_000), "-0.003s");
        assert_eq!(show_offset(1_250_000_000), "+1.250s");
    }

    #[test]
    fn bad_replies() {
        let t1 = T;
        let good = reply_to(&request(t1), T).unwrap();
        assert_eq!(
            parse_reply(&good[..47], t1, t1),
            Err(SntpError::TooShort(47))
        );
        assert_eq!(parse_reply(&[], t1, t1), Err(SntpError::TooShort(0)));
        let mut p = good;
        p[0] = 0x23;
        assert_eq!(
            parse_reply(&p, t1, t1),
            Err(SntpError::NotAServer { mode: 3 })
        );
        let mut p = good;
        p[0] = 0b00_111_100;
        assert_eq!(parse_reply(&p, t1, t1), Err(SntpError::BadVersion(7)));
        let mut p = good;
        p[1] = 0;
        p[12..16].copy_from_slice(b"RATE");
        assert_eq!(
            parse_reply(&p, t1, t1),
            Err(SntpError::KissOfDeath("RATE".into()))
        );
        let mut p = good;
        p[0] |= 0b11_000_000;
        assert_eq!(parse_reply(&p, t1, t1), Err(SntpError::Unsynchronised));
        assert_eq!(
            parse_reply(&good, t1 + 1000, t1),
            Err(SntpError::NotOurRequest)
        );
        let mut p = good;
        p[40..48].fill(0);
        assert_eq!(parse_reply(&p, t1, t1), Err(SntpError::NoTime));
        // issue 17: a zero receive timestamp, stratum 16 and above, a broadcast (mode 5)
        let mut p = good;
        p[32..40].fill(0);
        assert_eq!(parse_reply(&p, t1, t1), Err(SntpError::NoTime));
        for stratum in [16, 17, 255] {
            let mut p = good;
            p[1] = stratum;
            assert_eq!(parse_reply(&p, t1, t1), Err(SntpError::BadStratum(stratum)));
        }
        let mut p = good;
        p[1] = 15;
        assert!(parse_reply(&p, t1, t1).is_ok());
        for mode in [0, 1, 2, 5, 6, 7] {
            let mut p = good;
            p[0] = (p[0] & !7) | mode;
            assert_eq!(parse_reply(&p, t1, t1), Err(SntpError::NotAServer { mode }));
        }
        // version 3 servers are fine; extensions after 48 bytes ignored
        let mut p = good.to_vec();
        p[0] = 0b00_011_100;
        p.extend_from_slice(&[0; 20]);
        assert!(parse_reply(&p, t1, t1).is_ok());
        assert!(reply_to(&good, T).is_none(), "not a request");
    }

    #[test]
    fn kisses_of_death() {
        let good = reply_to(&request(T), T).unwrap();
        let table = [
            ("DENY", Some(Kiss::Stop)),
            ("RSTR", Some(Kiss::Stop)),
            ("RATE", Some(Kiss::SlowDown)),
            ("XYZZ", Some(Kiss::SlowDown)),
        ];
        for (code, want) in table {
            let mut p = good;
            p[1] = 0;
            p[12..16].copy_from_slice(code.as_bytes());
            let e = parse_reply(&p, T, T).unwrap_err();
            assert_eq!(e, SntpError::KissOfDeath(code.into()));
            assert_eq!(e.kiss(), want, "{code}");
        }
        assert_eq!(SntpError::NoTime.kiss(), None);
    }

    /// What the time program logs for an answer it drops (`time: ignoring an answer from
    /// ...: <this>`): each error in words, with its value.
    #[test]
    fn errors_in_words() {
        let table = [
            (
                SntpError::TooShort(1),
                "1 bytes, shorter than an SNTP packet",
            ),
            (
                SntpError::NotAServer { mode: 1 },
                "mode 1, not a server's answer",
            ),
            (SntpError::BadVersion(0), "NTP version 0 unknown"),
            (
                SntpError::KissOfDeath("DENY".into()),
                "the server refused (kiss code DENY)",
            ),
            (
                SntpError::Unsynchronised,
                "the server's own clock is not synchronised",
            ),
            (
                SntpError::BadStratum(16),
                "stratum 16: the server's own clock is not synchronised",
            ),
            (SntpError::NotOurRequest, "the answer is not to our request"),
            (SntpError::NoTime, "the answer carries no time"),
        ];
        for (error, want) in table {
            assert_eq!(error.to_string(), want, "{error:?}");
        }
    }
}
