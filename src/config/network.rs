//! `[network]` and `[time]` in `init.toml`: which interfaces get DHCP or a static address,
//! extra name servers, time servers and where the last known time is kept. Schema and
//! validation only; `net/` acts on it.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::net::link::Cidr;

/// `[network]`: off unless configured (a box without network needs nothing).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// Interfaces configured by DHCP: names or globs (`eth0`, `eth*`, `enx*`).
    pub dhcp: Vec<String>,
    /// `[[network.static]]`: fixed addresses.
    #[serde(rename = "static")]
    pub static_: Vec<StaticAddress>,
    /// Name servers for `/etc/resolv.conf`, before those DHCP gives.
    #[serde(deserialize_with = "addresses")]
    pub dns: Vec<Ipv4Addr>,
}

/// `[[network.static]]`: one interface with a fixed address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticAddress {
    /// The interface name (`eth0`).
    pub interface: String,
    /// Address and prefix length, `"192.168.1.10/24"`.
    #[serde(deserialize_with = "cidr")]
    pub address: Cidr,
    /// The default route's next hop, if any.
    #[serde(default, deserialize_with = "optional_address")]
    pub gateway: Option<Ipv4Addr>,
}

/// `[time]`: the clock floor and SNTP.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Time {
    /// SNTP servers, `host` or `host:port` (names are resolved through `/etc/resolv.conf`).
    pub servers: Vec<String>,
    /// Also ask the NTP servers a DHCP server offers (option 42).
    pub dhcp_servers: bool,
    /// How often to ask again once synced.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// A file (relative to the boot partition unless absolute) where the time is saved every
    /// `interval` and at shutdown, and read at boot as a floor. Needs a writable place, e.g.
    /// `[boot] read_only = false`. None: not kept.
    pub save: Option<String>,
}

impl Default for Time {
    fn default() -> Time {
        Time {
            servers: Vec::new(),
            dhcp_servers: true,
            interval: Duration::from_secs(30 * 60),
            save: None,
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    super::parse_duration(&text).map_err(serde::de::Error::custom)
}

fn cidr<'de, D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

fn parse_address(text: &str) -> Result<Ipv4Addr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an IPv4 address such as \"192.168.1.1\""))
}

fn optional_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv4Addr>, D::Error> {
    let text = String::deserialize(d)?;
    parse_address(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn addresses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ipv4Addr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|t| parse_address(t))
        .collect::<Result<_, _>>()
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use crate::config::tests::parse;

    #[test]
    fn network_and_time() {
        let c = parse(
            r#"
[network]
dhcp = ["eth*"]
dns = ["9.9.9.9"]
[[network.static]]
interface = "eth1"
address = "192.168.1.10/24"
gateway = "192.168.1.1"
[time]
servers = ["10.0.2.2:1123", "pool.ntp.org"]
dhcp_servers = false
interval = "5m"
save = "clock.txt"
"#,
        )
        .unwrap();
        assert_eq!(c.network.dhcp, ["eth*"]);
        assert_eq!(
            c.network.dns,
            ["9.9.9.9".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        let s = &c.network.static_[0];
        assert_eq!(
            (s.interface.as_str(), s.address.to_string()),
            ("eth1", "192.168.1.10/24".into())
        );
        assert_eq!(s.gateway, Some("192.168.1.1".parse().unwrap()));
        assert_eq!(c.time.servers.len(), 2);
        assert!(!c.time.dhcp_servers);
        assert_eq!(c.time.interval, std::time::Duration::from_secs(300));
        assert_eq!(c.time.save.as_deref(), Some("clock.txt"));
        let d = parse("").unwrap();
        assert!(d.network.dhcp.is_empty() && d.network.static_.is_empty());
        assert!(d.time.servers.is_empty() && d.time.dhcp_servers && d.time.save.is_none());
    }

    #[test]
    fn bad_addresses_say_where() {
        let e = parse("[network]\ndns = [\"9.9.9\"]\n").unwrap_err();
        assert!(
            e.contains("init.toml:2") && e.contains("`9.9.9` is not an IPv4 address"),
            "{e}"
        );
        let e = parse("[[network.static]]\ninterface = \"eth0\"\naddress = \"10.0.0.1\"\n")
            .unwrap_err();
        assert!(e.contains("192.168.1.10/24"), "{e}");
        let e = parse("[[network.static]]\naddress = \"10.0.0.1/8\"\n").unwrap_err();
        assert!(e.contains("interface"), "{e}");
        let e = parse("[time]\nservrs = []\n").unwrap_err();
        assert!(e.contains("did you mean `servers`"), "{e}");
    }
}
