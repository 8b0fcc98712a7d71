//! `/etc/resolv.conf` and `/etc/hosts`, and the lease files under `/run/boxinit/net/` they
//! are made from: every interface's client writes its own file (address, router, name
//! servers, time servers, domain), and whoever changes one rewrites resolv.conf from all of
//! them, so several interfaces (and the `[network] dns` list) add up. The box reads these
//! files too (README "Network and time"). Several programs publish at once (a DHCP client per
//! interface, `static`, PID 1 at boot): each read-modify-write holds a lock file
//! (`flock(2)`), and each writer's temporary files have names of their own.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::net::protocol::dhcp_state::Lease;

/// Where the lease files live, one per interface (`eth0`), plus `config` for `[network] dns`.
pub const NET_DIR: &str = "/run/boxinit/net";
/// The resolver's configuration, where musl and glibc look.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
pub const HOSTS: &str = "/etc/hosts";

/// What one source says about the network, as its file holds it (`key=value` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub address: Option<String>,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub ntp: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// Lease length in seconds (DHCP only).
    pub lease: Option<u64>,
}

impl Facts {
    pub fn from_lease(lease: &Lease) -> Facts {
        Facts {
            address: Some(lease.cidr.to_string()),
            router: lease.router,
            dns: lease.dns.clone(),
            ntp: lease.ntp.clone(),
            domain: lease.domain.clone(),
            lease: Some(lease.duration.as_secs()),
        }
    }

    /// The file's text: `address=10.0.2.15/24`, `router=`, one `dns=` / `ntp=` per server.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("{k}={v}\n"));
        if let Some(a) = &self.address {
            line("address", a.clone());
        }
        if let Some(r) = self.router {
            line("router", r.to_string());
        }
        for d in &self.dns {
            line("dns", d.to_string());
        }
        for n in &self.ntp {
            line("ntp", n.to_string());
        }
        if let Some(d) = &self.domain {
            line("domain", d.clone());
        }
        if let Some(l) = self.lease {
            line("lease", l.to_string());
        }
        out
    }

    /// Reads the text back; unknown or malformed lines are skipped.
    pub fn parse(text: &str) -> Facts {
        let mut f = Facts::default();
        for (key, value) in text.lines().filter_map(|l| l.split_once('=')) {
            let value = value.trim();
            match key.trim() {
                "address" => f.address = Some(value.to_string()),
                "router" => f.router = value.parse().ok(),
                "dns" => f.dns.extend(value.parse::<Ipv4Addr>().ok()),
                "ntp" => f.ntp.extend(value.parse::<Ipv4Addr>().ok()),
                "domain" if !value.is_empty() => f.domain = Some(value.to_string()),
                "lease" => f.lease = value.parse().ok(),
                _ => {}
            }
        }
        f
    }
}

/// resolv.conf for these sources, in order: `nameserver` lines without repeats, the domains
/// as `search`.
pub fn resolv_conf(all: &[Facts]) -> String {
    let mut out = String::from("# written by boxinit from /run/boxinit/net/\n");
    let mut seen = Vec::new();
    for dns in all.iter().flat_map(|f| &f.dns) {
        if !seen.contains(dns) {
            seen.push(*dns);
            out.push_str(&format!("nameserver {dns}\n"));
        }
    }
    let domains: Vec<&str> = all.iter().filter_map(|f| f.domain.as_deref()).collect();
    if !domains.is_empty() {
        out.push_str(&format!("search {}\n", domains.join(" ")));
    }
    out
}

/// `/etc/hosts`: localhost, and the host name on 127.0.1.1 (as Debian does) when set.
pub fn hosts(hostname: Option<&str>) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(name) = hostname {
        out.push_str(&format!("127.0.1.1\t{name}\n"));
    }
    out
}

/// The lock file every publisher holds while it reads the lease files and rewrites
/// resolv.conf, under [`NET_DIR`]; a dot-file, as the temporary files, so no reader takes it
/// for an interface's.
const LOCK: &str = ".lock";
/// How long a publisher waits for the lock before it writes without it (a holder stopped
/// with SIGSTOP must not stop every other, and PID 1 never waits long): the files stay whole,
/// only a concurrent change may be missed until the next.
const LOCK_PATIENCE: Duration = Duration::from_secs(2);

/// Takes the publishers' lock in `dir` (None, said at debug level, when it cannot be had in
/// [`LOCK_PATIENCE`]); held until the fd is dropped.
fn lock(dir: &Path) -> Option<OwnedFd> {
    use rustix::fs::{flock, FlockOperation, Mode, OFlags};
    let path = dir.join(LOCK);
    let fd = rustix::fs::open(
        &path,
        OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .inspect_err(|e| log::debug!("cannot open {}: {e}", path.display()))
    .ok()?;
    let started = Instant::now();
    loop {
        match flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Some(fd),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK && started.elapsed() < LOCK_PATIENCE => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                log::debug!("cannot lock {}: {e}; writing without it", path.display());
                return None;
            }
        }
    }
}

/// The facts of every file under `dir`, in name order (`config` sorts before `eth0`).
pub fn read_all(dir: &Path) -> Vec<Facts> {
    read_all_but(dir, "", None)
}

/// [`read_all`], with the file `name` taken to hold `facts` (None: taken to be absent).
fn read_all_but(dir: &Path, name: &str, facts: Option<&Facts>) -> Vec<Facts> {
    let is_name = |p: &Path| p.file_name().is_some_and(|n| n == name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    // the lock and temporary files are dot-files; an interface's name may hold a dot (eth0.5)
    let hidden = |p: &Path| {
        p.file_name()
            .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
    };
    files.retain(|p| !hidden(p) && !is_name(p));
    if facts.is_some() {
        files.push(dir.join(name));
    }
    files.sort_unstable();
    files
        .iter()
        .filter_map(|p| match is_name(p) {
            true => facts.cloned(),
            false => std::fs::read_to_string(p).ok().map(|t| Facts::parse(&t)),
        })
        .collect()
}

/// Writes (or with None, removes) one source's file under `root/run/boxinit/net/`, and
/// rewrites `root/etc/resolv.conf` from all of them: resolv.conf first when a file is
/// written, since a box waits for the file (README) and may then read resolv.conf at once.
/// Writes go through a temporary file and a rename, so a reader never sees half a file; the
/// whole read-modify-write holds the publishers' lock, so two publishers at once cannot
/// leave out each other's servers.
pub fn publish(root: &Path, name: &str, facts: Option<&Facts>) -> io::Result<()> {
    let dir = root.join(NET_DIR.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).map_err(|e| named(&dir, e))?;
    let _lock = lock(&dir);
    let file = dir.join(name);
    let conf = resolv_conf(&read_all_but(&dir, name, facts));
    let resolv = root.join(RESOLV_CONF.trim_start_matches('/'));
    match facts {
        Some(f) => {
            // The lease file even when resolv.conf cannot be written: it says the address
            // is there, which holds either way.
            let resolv_written = write_atomically(&resolv, &conf);
            write_atomically(&file, &f.to_text())?;
            resolv_written
        }
        None => {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(named(&file, e)),
                _ => {}
            }
            write_atomically(&resolv, &conf)
        }
    }
}

/// Writes `text` to `path` through a temporary file beside it and a rename. The temporary
/// name is this writer's own (`.NAME.PID.N.tmp`): with one name for all, one writer could
/// rename another's half-written file into place, or find its own gone.
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::write(&tmp, text)
        .map_err(|e| named(&tmp, e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| named(path, e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn facts_round_trip_and_resolv_conf() {
        let eth0 = Facts {
            address: Some("10.0.2.15/24".into()),
            router: Some(ip("10.0.2.2")),
            dns: vec![ip("10.0.2.3"), ip("9.9.9.9")],
            ntp: vec![ip("10.0.2.2")],
            domain: Some("example.org".into()),
            lease: Some(86400),
        };
        let text = eth0.to_text();
        assert_eq!(
            text,
            "address=10.0.2.15/24\nrouter=10.0.2.2\ndns=10.0.2.3\ndns=9.9.9.9\nntp=10.0.2.2\ndomain=example.org\nlease=86400\n"
        );
        assert_eq!(Facts::parse(&text), eth0);
        assert_eq!(
            Facts::parse("dns=x\nrouter=\nwhat\nother=1\n"),
            Facts::default()
        );
        let config = Facts {
            dns: vec![ip("9.9.9.9")],
            ..Facts::default()
        };
        assert_eq!(
            resolv_conf(&[config, eth0]),
            "# written by boxinit from /run/boxinit/net/\nnameserver 9.9.9.9\nnameserver 10.0.2.3\nsearch example.org\n"
        );
        assert!(hosts(Some("box")).ends_with("127.0.1.1\tbox\n"));
        assert!(hosts(None).starts_with("127.0.0.1\tlocalhost\n"));
    }

    #[test]
    fn publish_and_withdraw() {
        let root = std::env::temp_dir().join(format!("boxinit-resolv-{}", std::process::id()));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let f = Facts {
            dns: vec![ip("10.0.2.3")],
            ..Facts::default()
        };
        publish(&root, "eth0", Some(&f)).unwrap();
        let conf = std::fs::read_to_string(root.join("etc/resolv.conf")).unwrap();
        assert!(conf.contains("nameserver 10.0.2.3\n"), "{conf}");
        assert_eq!(
            std::fs::read_to_string(root.join("run/boxinit/net/eth0")).unwrap(),
            "dns=10.0.2.3\n"
        );
        publish(&root, "eth0", None).unwrap();
        let conf = std::fs::read_to_string(root.join("etc/resolv.conf")).unwrap();
        assert!(!conf.contains("nameserver"), "{conf}");
        publish(&root, "eth0", None).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        let e = publish(Path::new("/proc/no-such"), "x", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/proc/no-such/run/boxinit/net"), "{e}");
    }

    /// Issue 17: publishers at once (a DHCP client per interface, `static`, PID 1) neither
    /// trip over each other's temporary files nor lose each other's servers.
    #[test]
    fn publishers_at_once_lose_nothing() {
        let root = std::env::temp_dir().join(format!("boxinit-publishers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let threads: Vec<_> = (1..=4u8)
            .map(|n| {
                let root = root.clone();
                std::thread::spawn(move || {
                    let name = format!("eth{n}");
                    let facts = Facts {
                        dns: vec![Ipv4Addr::new(10, 0, n, 3)],
                        ..Facts::default()
                    };
                    let mine = format!("nameserver 10.0.{n}.3\n");
                    for round in 0..150 {
                        let f = (round % 3 != 1).then_some(&facts);
                        publish(&root, &name, f).unwrap();
                        // once published, its server stays until it withdraws it: no other
                        // publisher writes a resolv.conf made before this one's file was
                        let conf = std::fs::read_to_string(root.join("etc/resolv.conf")).unwrap();
                        assert_eq!(conf.contains(&mine), f.is_some(), "round {round}: {conf}");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let conf = std::fs::read_to_string(root.join("etc/resolv.conf")).unwrap();
        for n in 1..=4 {
            assert!(conf.contains(&format!("nameserver 10.0.{n}.3\n")), "{conf}");
        }
        let mut left: Vec<String> = std::fs::read_dir(root.join("etc"))
            .unwrap()
            .chain(std::fs::read_dir(root.join("run/boxinit/net")).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != LOCK)
            .collect();
        left.sort();
        assert_eq!(left, ["eth1", "eth2", "eth3", "eth4", "resolv.conf"]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn lease_files_of_interfaces_with_a_dot_count() {
        let dir = std::env::temp_dir().join(format!("boxinit-dotted-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("eth0.5"), "dns=10.0.5.3\n").unwrap();
        std::fs::write(dir.join(".eth0.7.1.tmp"), "dns=10.0.7.3\n").unwrap();
        std::fs::write(dir.join(LOCK), "").unwrap();
        assert_eq!(read_all(&dir), [Facts::parse("dns=10.0.5.3\n")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resolv_conf_is_written_before_the_lease_file_a_box_waits_for() {
        let root = std::env::temp_dir().join(format!("boxinit-order-{}", std::process::id()));
        let f = Facts {
            dns: vec![ip("10.0.2.3")],
            ..Facts::default()
        };
        // The lease file cannot be written (a directory is in its place): resolv.conf is
        // there already, with the lease's name server.
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("run/boxinit/net/eth0")).unwrap();
        assert!(publish(&root, "eth0", Some(&f)).is_err());
        let conf = std::fs::read_to_string(root.join("etc/resolv.conf")).unwrap();
        assert!(conf.contains("nameserver 10.0.2.3\n"), "{conf}");
        // resolv.conf cannot be written (no /etc): the lease file is written all the same.
        std::fs::remove_dir_all(&root).unwrap();
        let e = publish(&root, "eth0", Some(&f)).unwrap_err().to_string();
        assert!(e.contains("resolv.conf"), "{e}");
        assert!(root.join("run/boxinit/net/eth0").is_file());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
