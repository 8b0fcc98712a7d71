//! The DHCP client's lease state machine (RFC 2131 §4.4): INIT → SELECTING → REQUESTING →
//! BOUND → RENEWING (T1) → REBINDING (T2) → expired, and RELEASE; INIT-REBOOT for an address a
//! previous run of the client left (§3.2). Pure: time comes in as an
//! `Instant` and packets as decoded messages; what to do comes out as [`Action`]s, so the
//! tests drive it with a fake clock. The sockets and netlink calls are `boxinit-net dhcp`'s.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::dhcp::{Message, MessageType, Options};
use crate::net::link::Cidr;

/// What the client asks servers for (option 55): mask, router, DNS, domain, NTP, times.
const PARAMETERS: [u8; 8] = [1, 3, 6, 15, 42, 51, 58, 59];
/// The first retransmission delay; it doubles up to [`MAX_RETRANSMIT`] (RFC 2131 §4.1).
const FIRST_RETRANSMIT: Duration = Duration::from_secs(4);
const MAX_RETRANSMIT: Duration = Duration::from_secs(64);
/// REQUESTs sent in REQUESTING before starting over with a DISCOVER.
const MAX_REQUESTS: u32 = 4;
/// REQUESTs sent in INIT-REBOOT (4 s, then 8 s) before the previous address is given up and
/// a DISCOVER goes out: a server that knows the client answers at once.
const MAX_REBOOT_REQUESTS: u32 = 2;
/// In RENEWING and REBINDING the wait is half the time left, but at least this (§4.4.5).
const MIN_RENEW_RETRANSMIT: Duration = Duration::from_secs(60);
/// A lease without option 51 (it is mandatory in an ACK; some servers forget it).
const DEFAULT_LEASE: Duration = Duration::from_secs(3600);

/// A lease as bound: what the interface gets, and when it runs out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub cidr: Cidr,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub ntp: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// The server that granted it (option 54).
    pub server: Ipv4Addr,
    pub duration: Duration,
    /// T1 and T2, from the time it was granted.
    pub renew_after: Duration,
    pub rebind_after: Duration,
    /// When the REQUEST that got the ACK was sent (§4.4.1: times count from then).
    pub granted: Instant,
}

impl Lease {
    /// The lease in an ACK, or None when it cannot be used (no address, no server id).
    fn from_ack(ack: &Message, granted: Instant) -> Option<Lease> {
        let o = &ack.options;
        if ack.yiaddr.is_unspecified() || ack.yiaddr.is_broadcast() {
            return None;
        }
        let prefix = o
            .subnet_mask
            .and_then(Cidr::prefix_of_mask)
            .unwrap_or_else(|| classful_prefix(ack.yiaddr));
        let duration = o
            .lease_time
            .map_or(DEFAULT_LEASE, |s| Duration::from_secs(u64::from(s)));
        // §4.4.5: T1 defaults to half the lease, T2 to 7/8; keep T1 <= T2 <= lease.
        let rebind_after = o
            .rebinding
            .map_or(duration * 7 / 8, |s| Duration::from_secs(u64::from(s)))
            .min(duration);
        let renew_after = o
            .renewal
            .map_or(duration / 2, |s| Duration::from_secs(u64::from(s)))
            .min(rebind_after);
        Some(Lease {
            cidr: Cidr {
                address: ack.yiaddr,
                prefix,
            },
            router: o.routers.first().copied(),
            dns: o.dns.clone(),
            ntp: o.ntp.clone(),
            domain: o.domain.clone(),
            server: o.server_id.unwrap_or(ack.siaddr),
            duration,
            renew_after,
            rebind_after,
            granted,
        })
    }

    pub fn renew_at(&self) -> Instant {
        self.granted + self.renew_after
    }
    pub fn rebind_at(&self) -> Instant {
        self.granted + self.rebind_after
    }
    pub fn expires_at(&self) -> Instant {
        self.granted + self.duration
    }

    /// The seconds left at `now`, as the kernel takes an address's lifetime: whole seconds,
    /// at most `u32::MAX - 1` (`u32::MAX` is "for ever").
    pub fn valid_for(&self, now: Instant) -> u32 {
        let left = self.expires_at().saturating_duration_since(now).as_secs();
        u32::try_from(left)
            .unwrap_or(u32::MAX - 1)
            .min(u32::MAX - 1)
    }

    /// What a previous run of the client left (its lease file): the address and what came
    /// with it, with no server and no time left known, for INIT-REBOOT.
    pub fn previous(
        cidr: Cidr,
        router: Option<Ipv4Addr>,
        dns: Vec<Ipv4Addr>,
        ntp: Vec<Ipv4Addr>,
        now: Instant,
    ) -> Lease {
        Lease {
            cidr,
            router,
            dns,
            ntp,
            domain: None,
            server: Ipv4Addr::UNSPECIFIED,
            duration: Duration::ZERO,
            renew_after: Duration::ZERO,
            rebind_after: Duration::ZERO,
            granted: now,
        }
    }
}

/// Without a subnet mask option: the address's old class (A /8, B /16, C /24).
fn classful_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// Where the client is in RFC 2131's state diagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// DISCOVER sent; waiting for an OFFER.
    Selecting,
    /// REQUEST for `offer` sent `sent` times.
    Requesting { offer: Box<Message>, sent: u32 },
    /// The lease is ours until T1.
    Bound,
    /// Asking the granting server (unicast) to extend it, until T2.
    Renewing,
    /// Asking any server (broadcast), until the lease expires.
    Rebinding,
    /// INIT-REBOOT: asking to keep the address a previous run left (REQUEST sent `sent`
    /// times), until a server answers or the client gives it up.
    Rebooting { sent: u32 },
}

impl State {
    /// Whether a REQUEST of ours is out, which a server answers with an ACK or a NAK.
    fn awaits_ack(&self) -> bool {
        !matches!(self, State::Selecting | State::Bound)
    }
}

/// What the client's process must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this message; to the broadcast address, or unicast to a server.
    Send { message: Message, to: Ipv4Addr },
    /// Put the lease on the interface (address, route, name servers). Also after a renewal:
    /// the same lease again, perhaps with new servers.
    Configure(Lease),
    /// Take the lease off the interface: it expired, a server refused it, or it was released.
    Deconfigure(Lease),
    /// A server said no; its message, for the log.
    Refused(String),
}

/// One interface's DHCP client.
#[derive(Debug, Clone)]
pub struct Client {
    mac: [u8; 6],
    hostname: Option<String>,
    state: State,
    lease: Option<Lease>,
    xid: u32,
    /// When the current exchange began (for `secs`, and the lease times).
    started: Instant,
    /// When the last message of the exchange went out.
    sent_at: Instant,
    /// When to act next (retransmit, T1, T2, expiry).
    deadline: Instant,
    retransmit: Duration,
}

impl Client {
    /// A client that starts in INIT-REBOOT at `now`: it asks to keep `previous` (what a
    /// previous run left on the interface), takes it off if a server refuses or none answers,
    /// and then starts over with a DISCOVER.
    pub fn rebooting(
        mac: [u8; 6],
        hostname: Option<String>,
        xid: u32,
        previous: Lease,
        now: Instant,
    ) -> Client {
        let mut client = Client::new(mac, hostname, xid, now);
        client.state = State::Rebooting { sent: 0 };
        client.lease = Some(previous);
        client
    }

    /// A client that sends its first DISCOVER at `now`. `xid` seeds the transaction ids.
    pub fn new(mac: [u8; 6], hostname: Option<String>, xid: u32, now: Instant) -> Client {
        Client {
            mac,
            hostname,
            state: State::Selecting,
            lease: None,
            xid,
            started: now,
            sent_at: now,
            deadline: now,
            retransmit: Duration::ZERO,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// When [`Client::on_timeout`] must run next.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The deadline passed: retransmit, move to RENEWING / REBINDING, or let the lease expire.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<Action> {
        if now < self.deadline {
            return Vec::new();
        }
        match self.state.clone() {
            State::Selecting => {
                if self.retransmit.is_zero() {
                    self.new_exchange(now);
                }
                self.backoff(now);
                vec![self.discover(now)]
            }
            State::Requesting { offer, sent } if sent < MAX_REQUESTS => {
                self.state = State::Requesting {
                    offer: offer.clone(),
                    sent: sent + 1,
                };
                self.backoff(now);
                vec![self.request_offer(&offer, now)]
            }
            State::Requesting { .. } => self.restart(now, Vec::new()),
            State::Rebooting { sent } if sent < MAX_REBOOT_REQUESTS => {
                if sent == 0 {
                    self.new_exchange(now);
                }
                self.state = State::Rebooting { sent: sent + 1 };
                self.backoff(now);
                vec![self.request_previous(now)]
            }
            // no server answered: the previous address is unconfirmed, so it goes
            State::Rebooting { .. } => {
                let previous = self.lease.clone().map(Action::Deconfigure);
                self.restart(now, previous.into_iter().collect())
            }
            State::Bound | State::Renewing | State::Rebinding => self.lease_timer(now),
        }
    }

    /// T1, T2, expiry and the retransmissions between them.
    fn lease_timer(&mut self, now: Instant) -> Vec<Action> {
        let Some(lease) = self.lease.clone() else {
            return self.restart(now, Vec::new());
        };
        if now >= lease.expires_at() {
            log::debug!("lease on {} expired", lease.cidr);
            return self.restart(now, vec![Action::Deconfigure(lease)]);
        }
        let (state, to, until) = if now >= lease.rebind_at() {
            (State::Rebinding, Ipv4Addr::BROADCAST, lease.expires_at())
        } else {
            (State::Renewing, lease.server, lease.rebind_at())
        };
        if state != self.state {
            self.new_exchange(now);
        }
        self.state = state;
        // §4.4.5: wait half the time left until the next step, at least 60 s, not past it.
        let wait = (until.saturating_duration_since(now) / 2).max(MIN_RENEW_RETRANSMIT);
        self.deadline = (now + wait).min(until);
        self.sent_at = now;
        let message = self.message(
            MessageType::Request,
            lease.cidr.address,
            Options::default(),
            now,
        );
        vec![Action::Send { message, to }]
    }

    /// A message from a server arrived on the interface.
    pub fn on_message(&mut self, m: &Message, now: Instant) -> Vec<Action> {
        if !m.reply || m.xid != self.xid || m.chaddr != self.mac {
            return Vec::new();
        }
        match (&self.state, m.kind) {
            (State::Selecting, MessageType::Offer) if !m.yiaddr.is_unspecified() => {
                self.state = State::Requesting {
                    offer: Box::new(m.clone()),
                    sent: 1,
                };
                self.retransmit = Duration::ZERO;
                self.backoff(now);
                vec![self.request_offer(m, now)]
            }
            (state, MessageType::Ack) if state.awaits_ack() => self.bind(m, now),
            (state, MessageType::Nak) if state.awaits_ack() => {
                let why = m
                    .options
                    .message
                    .clone()
                    .unwrap_or_else(|| "no reason given".to_string());
                let mut actions = vec![Action::Refused(why)];
                actions.extend(self.lease.clone().map(Action::Deconfigure));
                self.restart(now, actions)
            }
            _ => Vec::new(),
        }
    }

    /// Gives the lease back (shutdown): a RELEASE to its server, and off the interface.
    pub fn release(&mut self, now: Instant) -> Vec<Action> {
        let Some(lease) = self.lease.take() else {
            return Vec::new();
        };
        if let State::Rebooting { .. } = self.state {
            // no server known to release it to: only off the interface
            self.state = State::Selecting;
            self.retransmit = Duration::ZERO;
            self.deadline = now;
            return vec![Action::Deconfigure(lease)];
        }
        self.new_exchange(now);
        let options = Options {
            server_id: Some(lease.server),
            ..Options::default()
        };
        let message = self.message(MessageType::Release, lease.cidr.address, options, now);
        self.state = State::Selecting;
        self.retransmit = Duration::ZERO;
        self.deadline = now;
        vec![
            Action::Send {
                message,
                to: lease.server,
            },
            Action::Deconfigure(lease),
        ]
    }

    fn bind(&mut self, ack: &Message, now: Instant) -> Vec<Action> {
        let Some(lease) = Lease::from_ack(ack, self.sent_at) else {
            log::warn!("dhcp: an ACK without a usable address; starting over");
            return self.restart(now, Vec::new());
        };
        let mut actions = Vec::new();
        if let Some(old) = &self.lease {
            if old.cidr != lease.cidr {
                actions.push(Action::Deconfigure(old.clone()));
            }
        }
        actions.push(Action::Configure(lease.clone()));
        self.deadline = lease.renew_at();
        self.lease = Some(lease);
        self.state = State::Bound;
        self.retransmit = Duration::ZERO;
        actions
    }

    /// Back to INIT: a DISCOVER goes out at once.
    fn restart(&mut self, now: Instant, mut actions: Vec<Action>) -> Vec<Action> {
        self.lease = None;
        self.state = State::Selecting;
        self.retransmit = Duration::ZERO;
        self.deadline = now;
        actions.extend(self.on_timeout(now));
        actions
    }

    fn new_exchange(&mut self, now: Instant) {
        self.xid = self.xid.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        self.started = now;
    }

    /// Doubles the retransmission delay (4, 8, 16, 32, 64 s) and sets the deadline.
    fn backoff(&mut self, now: Instant) {
        self.retransmit = if self.retransmit.is_zero() {
            FIRST_RETRANSMIT
        } else {
            (self.retransmit * 2).min(MAX_RETRANSMIT)
        };
        self.deadline = now + self.retransmit;
        self.sent_at = now;
    }

    fn discover(&self, now: Instant) -> Action {
        let message = self.message(
            MessageType::Discover,
            Ipv4Addr::UNSPECIFIED,
            Options::default(),
            now,
        );
        Action::Send {
            message,
            to: Ipv4Addr::BROADCAST,
        }
    }

    /// The REQUEST answering an OFFER (SELECTING): the offered address and its server.
    fn request_offer(&self, offer: &Message, now: Instant) -> Action {
        let options = Options {
            requested_ip: Some(offer.yiaddr),
            server_id: offer.options.server_id,
            ..Options::default()
        };
        let message = self.message(MessageType::Request, Ipv4Addr::UNSPECIFIED, options, now);
        Action::Send {
            message,
            to: Ipv4Addr::BROADCAST,
        }
    }

    /// The INIT-REBOOT REQUEST: the previous address asked for, no server named, from
    /// 0.0.0.0 (§4.3.2), broadcast.
    fn request_previous(&self, now: Instant) -> Action {
        let options = Options {
            requested_ip: self.lease.as_ref().map(|l| l.cidr.address),
            ..Options::default()
        };
        let message = self.message(MessageType::Request, Ipv4Addr::UNSPECIFIED, options, now);
        Action::Send {
            message,
            to: Ipv4Addr::BROADCAST,
        }
    }

    /// A client message of this exchange, with the options every message carries.
    fn message(
        &self,
        kind: MessageType,
        ciaddr: Ipv4Addr,
        mut options: Options,
        now: Instant,
    ) -> Message {
        let mut client_id = vec![1];
        client_id.extend_from_slice(&self.mac);
        options.client_id = client_id;
        if kind != MessageType::Release {
            options.parameters = PARAMETERS.to_vec();
            options.max_size = Some(1500);
            options.hostname = self.hostname.clone();
        }
        let secs = now.saturating_duration_since(self.started).as_secs();
        Message {
            reply: false,
            xid: self.xid,
            secs: u16::try_from(secs).unwrap_or(u16::MAX),
            // Without an address the interface cannot receive a unicast answer.
            broadcast: ciaddr.is_unspecified(),
            ciaddr,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: self.mac,
            kind,
            options,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::dhcp::{self, tests::qemu_offer};
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A server reply to `request`, built from QEMU's recorded OFFER.
    fn reply(request: &Message, kind: MessageType, lease: u32) -> Message {
        let mut m = dhcp::parse(&qemu_offer()).unwrap();
        m.xid = request.xid;
        m.kind = kind;
        m.options.lease_time = Some(lease);
        m
    }

    fn sent(actions: &[Action]) -> (&Message, Ipv4Addr) {
        match actions.iter().find(|a| matches!(a, Action::Send { .. })) {
            Some(Action::Send { message, to }) => (message, *to),
            _ => panic!("nothing sent: {actions:?}"),
        }
    }

    /// A client bound at `t0` with a lease of `lease` seconds; returns the last REQUEST too.
    fn bound(t0: Instant, lease: u32) -> Client {
        let mut c = Client::new(MAC, Some("box".into()), 7, t0);
        let a = c.on_timeout(t0);
        let (discover, to) = sent(&a);
        assert_eq!(discover.kind, MessageType::Discover);
        assert_eq!(to, Ipv4Addr::BROADCAST);
        assert!(discover.broadcast);
        let a = c.on_message(&reply(discover, MessageType::Offer, lease), t0 + secs(1));
        let (request, to) = sent(&a);
        assert_eq!(request.kind, MessageType::Request);
        assert_eq!(to, Ipv4Addr::BROADCAST);
        assert_eq!(request.options.requested_ip, Some(ME));
        assert_eq!(request.options.server_id, Some(SERVER));
        assert_eq!(request.secs, 1);
        let request = request.clone();
        let a = c.on_message(&reply(&request, MessageType::Ack, lease), t0 + secs(2));
        match a.as_slice() {
            [Action::Configure(l)] => {
                assert_eq!(l.cidr.to_string(), "10.0.2.15/24");
                assert_eq!(l.router, Some(SERVER));
                assert_eq!(l.dns, [Ipv4Addr::new(10, 0, 2, 3)]);
                assert_eq!(l.granted, t0 + secs(1));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.state(), &State::Bound);
        c
    }

    #[test]
    fn discover_offer_request_ack() {
        let t0 = Instant::now();
        let c = bound(t0, 86400);
        assert_eq!(c.deadline(), t0 + secs(1) + secs(43200));
        // encodes to something a server can parse back
        let m = c.message(
            MessageType::Discover,
            Ipv4Addr::UNSPECIFIED,
            Options::default(),
            t0,
        );
        let back = dhcp::parse(&dhcp::encode(&m)).unwrap();
        assert_eq!(back.options.parameters, PARAMETERS);
        assert_eq!(back.options.hostname.as_deref(), Some("box"));
        assert_eq!(back.options.client_id, [1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    }

    #[test]
    fn retransmissions_back_off_and_stray_packets_are_ignored() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, None, 1, t0);
        let first = sent(&c.on_timeout(t0)).0.clone();
        assert!(c.on_timeout(t0 + secs(3)).is_empty(), "too early");
        let mut t = t0;
        for wait in [4, 8, 16, 32, 64, 64] {
            assert_eq!(c.deadline(), t + secs(wait));
            t += secs(wait);
            let again = sent(&c.on_timeout(t)).0.clone();
            assert_eq!(again.xid, first.xid, "same exchange");
            assert_eq!(again.kind, MessageType::Discover);
        }
        // another client's answer, our xid but another MAC, a request: ignored
        let mut other = reply(&first, MessageType::Offer, 60);
        other.xid ^= 1;
        assert!(c.on_message(&other, t).is_empty());
        let mut other = reply(&first, MessageType::Offer, 60);
        other.chaddr = [0; 6];
        assert!(c.on_message(&other, t).is_empty());
        let mut other = reply(&first, MessageType::Offer, 60);
        other.reply = false;
        assert!(c.on_message(&other, t).is_empty());
        // an ACK while selecting means nothing
        assert!(c
            .on_message(&reply(&first, MessageType::Ack, 60), t)
            .is_empty());
        assert_eq!(c.state(), &State::Selecting);
    }

    #[test]
    fn unanswered_requests_start_over() {
        let t0 = Instant::now();
        let mut c = Client::new(MAC, None, 1, t0);
        let discover = sent(&c.on_timeout(t0)).0.clone();
        c.on_message(&reply(&discover, MessageType::Offer, 60), t0);
        let mut t;
        for _ in 1..MAX_REQUESTS {
            t = c.deadline();
            assert_eq!(sent(&c.on_timeout(t)).0.kind, MessageType::Request);
        }
        t = c.deadline();
        let a = c.on_timeout(t);
        assert_eq!(sent(&a).0.kind, MessageType::Discover);
        assert_eq!(c.state(), &State::Selecting);
    }

    #[test]
    fn renewal_at_t1_unicast_then_rebinding_at_t2_broadcast_then_expiry() {
        let t0 = Instant::now();
        let mut c = bound(t0, 1000);
        let granted = t0 + secs(1);
        // T1 = 500 s: RENEWING, a unicast REQUEST from our address
        let a = c.on_timeout(granted + secs(500));
        let (renew, to) = sent(&a);
        assert_eq!(c.state(), &State::Renewing);
        assert_eq!(to, SERVER);
        assert_eq!(renew.ciaddr, ME);
        assert!(!renew.broadcast);
        assert_eq!(renew.options.requested_ip, None);
        assert_eq!(renew.options.server_id, None);
        // half of the 375 s left until T2 = 187 s
        assert_eq!(
            c.deadline(),
            granted + secs(500) + Duration::from_millis(187_500)
        );
        let a = c.on_timeout(c.deadline());
        assert_eq!(sent(&a).1, SERVER);
        // past that, the retransmissions are 60 s apart but never past T2 (875 s)
        while c.deadline() < granted + secs(875) {
            let d = c.deadline();
            c.on_timeout(d);
        }
        assert_eq!(c.deadline(), granted + secs(875));
        let a = c.on_timeout(granted + secs(875));
        let (rebind, to) = sent(&a);
        assert_eq!(c.state(), &State::Rebinding);
        assert_eq!(to, Ipv4Addr::BROADCAST);
        assert_eq!(rebind.ciaddr, ME);
        // half of the 125 s left (62.5 s), more than the 60 s minimum
        assert_eq!(c.deadline(), granted + Duration::from_millis(937_500));
        // expiry: the address comes off and a DISCOVER goes out
        let a = c.on_timeout(granted + secs(1000));
        assert!(matches!(a.first(), Some(Action::Deconfigure(l)) if l.cidr.address == ME));
        assert_eq!(sent(&a).0.kind, MessageType::Discover);
        assert_eq!(c.state(), &State::Selecting);
        assert!(c.lease().is_none());
    }

    #[test]
    fn renewal_answered_extends_the_lease() {
        let t0 = Instant::now();
        let mut c = bound(t0, 1000);
        let t1 = t0 + secs(501);
        let renew = sent(&c.on_timeout(t1)).0.clone();
        let a = c.on_message(&reply(&renew, MessageType::Ack, 2000), t1 + secs(1));
        match a.as_slice() {
            [Action::Configure(l)] => {
                assert_eq!(l.duration, secs(2000));
                assert_eq!(l.granted, t1);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.state(), &State::Bound);
        assert_eq!(c.deadline(), t1 + secs(1000));
    }

    #[test]
    fn rebinding_answered_and_nak_while_renewing() {
        let t0 = Instant::now();
        let mut c = bound(t0, 800);
        let granted = t0 + secs(1);
        let rebind = sent(&c.on_timeout(granted + secs(700))).0.clone();
        assert_eq!(c.state(), &State::Rebinding);
        let a = c.on_message(&reply(&rebind, MessageType::Ack, 800), granted + secs(701));
        assert!(matches!(a.as_slice(), [Action::Configure(_)]));
        // a NAK while renewing: refused, off the interface, DISCOVER
        let renew = sent(&c.on_timeout(c.deadline())).0.clone();
        let mut nak = reply(&renew, MessageType::Nak, 0);
        nak.options.message = Some("address taken".into());
        let a = c.on_message(&nak, c.deadline());
        assert_eq!(a.first(), Some(&Action::Refused("address taken".into())));
        assert!(matches!(a.get(1), Some(Action::Deconfigure(_))));
        assert_eq!(sent(&a).0.kind, MessageType::Discover);
    }

    #[test]
    fn release_at_shutdown() {
        let t0 = Instant::now();
        let mut c = bound(t0, 86400);
        let a = c.release(t0 + secs(10));
        let (release, to) = sent(&a);
        assert_eq!(release.kind, MessageType::Release);
        assert_eq!(to, SERVER);
        assert_eq!(release.ciaddr, ME);
        assert_eq!(release.options.server_id, Some(SERVER));
        assert!(matches!(a.get(1), Some(Action::Deconfigure(_))));
        assert!(
            c.release(t0 + secs(11)).is_empty(),
            "nothing left to release"
        );
    }

    fn previous(now: Instant) -> Lease {
        let cidr = Cidr {
            address: ME,
            prefix: 24,
        };
        Lease::previous(cidr, Some(SERVER), vec![], vec![], now)
    }

    /// Issue 17: a client that finds what a previous run left asks to keep it (INIT-REBOOT)
    /// and is bound again at once when the server agrees, without taking it off first.
    #[test]
    fn init_reboot_keeps_the_address_when_the_server_agrees() {
        let t0 = Instant::now();
        let mut c = Client::rebooting(MAC, None, 3, previous(t0), t0);
        let a = c.on_timeout(t0);
        let (request, to) = sent(&a);
        assert_eq!(a.len(), 1, "nothing taken off: {a:?}");
        assert_eq!(request.kind, MessageType::Request);
        assert_eq!(to, Ipv4Addr::BROADCAST);
        assert_eq!(request.ciaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(request.options.requested_ip, Some(ME));
        assert_eq!(request.options.server_id, None);
        assert!(request.broadcast);
        assert_eq!(c.state(), &State::Rebooting { sent: 1 });
        let request = request.clone();
        let a = c.on_message(&reply(&request, MessageType::Ack, 600), t0 + secs(1));
        assert!(
            matches!(a.as_slice(), [Action::Configure(l)] if l.cidr.address == ME),
            "{a:?}"
        );
        assert_eq!(c.state(), &State::Bound);
        // the time left, for the kernel's address lifetime; never "for ever" (u32::MAX)
        assert_eq!(c.lease().unwrap().valid_for(t0 + secs(100)), 500);
        assert_eq!(c.lease().unwrap().valid_for(t0 + secs(5000)), 0);
        assert_eq!(
            bound(t0, u32::MAX).lease().unwrap().valid_for(t0),
            u32::MAX - 1
        );
    }

    #[test]
    fn init_reboot_refused_or_unanswered_gives_the_address_up() {
        let t0 = Instant::now();
        // refused: off the interface, a DISCOVER
        let mut c = Client::rebooting(MAC, None, 3, previous(t0), t0);
        let request = sent(&c.on_timeout(t0)).0.clone();
        let a = c.on_message(&reply(&request, MessageType::Nak, 0), t0 + secs(1));
        assert!(matches!(a.first(), Some(Action::Refused(_))), "{a:?}");
        assert!(matches!(a.get(1), Some(Action::Deconfigure(l)) if l.cidr.address == ME));
        assert_eq!(sent(&a).0.kind, MessageType::Discover);
        assert_eq!(c.state(), &State::Selecting);
        // unanswered: a second REQUEST 4 s later, then off and a DISCOVER 8 s after that
        let mut c = Client::rebooting(MAC, None, 3, previous(t0), t0);
        c.on_timeout(t0);
        assert_eq!(c.deadline(), t0 + secs(4));
        let a = c.on_timeout(t0 + secs(4));
        assert_eq!(sent(&a).0.kind, MessageType::Request);
        assert_eq!(c.deadline(), t0 + secs(12));
        let a = c.on_timeout(t0 + secs(12));
        assert!(matches!(a.first(), Some(Action::Deconfigure(l)) if l.cidr.address == ME));
        assert_eq!(sent(&a).0.kind, MessageType::Discover);
        assert!(c.lease().is_none());
        // stopped meanwhile: off the interface, nothing sent (no server to release it to)
        let mut c = Client::rebooting(MAC, None, 3, previous(t0), t0);
        c.on_timeout(t0);
        let a = c.release(t0 + secs(1));
        assert!(matches!(a.as_slice(), [Action::Deconfigure(_)]), "{a:?}");
    }

    #[test]
    fn lease_times_from_options_and_defaults() {
        let t0 = Instant::now();
        let mut ack = dhcp::parse(&qemu_offer()).unwrap();
        ack.kind = MessageType::Ack;
        let l = Lease::from_ack(&ack, t0).unwrap();
        assert_eq!(
            (l.renew_after, l.rebind_after, l.duration),
            (secs(43200), secs(75600), secs(86400))
        );
        ack.options.renewal = Some(100);
        ack.options.rebinding = Some(50);
        ack.options.lease_time = Some(40);
        let l = Lease::from_ack(&ack, t0).unwrap();
        assert_eq!(
            (l.renew_after, l.rebind_after, l.duration),
            (secs(40), secs(40), secs(40))
        );
        ack.options = Options::default();
        let l = Lease::from_ack(&ack, t0).unwrap();
        assert_eq!(l.duration, DEFAULT_LEASE);
        assert_eq!(l.cidr.prefix, 8, "10/8 without a mask");
        assert_eq!(l.server, SERVER, "siaddr without option 54");
        ack.yiaddr = Ipv4Addr::UNSPECIFIED;
        assert!(Lease::from_ack(&ack, t0).is_none());
    }
}
