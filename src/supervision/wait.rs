//! Whether a program's `wait_for` is met: each [`Need`] asked of [`Facts`], which the event
//! loop answers from the machine (files under a `root`, the supervisors, the devices) and tests
//! from a table. When to ask, and what to do at the timeout, is `supervisor`'s; the words
//! themselves are `config/wait_for.rs`'.

use std::path::Path;
use std::time::Duration;

use crate::config::Need;
use crate::fnmatch::fnmatch;

/// How often a waiting program's needs are checked again when no event comes (a uevent, a
/// child's exit or any other wake-up of the loop checks them too): a lease file, the clock's
/// flag and a module's state change without a uevent the loop would see.
pub const RECHECK: Duration = Duration::from_millis(100);

/// Where the network programs write an interface's lease or static address.
pub const LEASE_DIR: &str = crate::net::resolv::NET_DIR;
/// What `boxinit-net time` creates once SNTP set the clock.
pub const TIME_SYNCED: &str = crate::net::clock::SYNCED_FILE;

/// What the loop knows of the machine, as `wait_for` asks it.
pub trait Facts {
    /// The path exists (absolute, as written in `wait_for`).
    fn path_exists(&self, path: &str) -> bool;
    /// The module is loaded and live, or built into the kernel.
    fn module_ready(&self, name: &str) -> bool;
    /// An interface matching `glob` has an address (its lease file exists).
    fn interface_addressed(&self, glob: &str) -> bool;
    /// SNTP has set the clock.
    fn time_synced(&self) -> bool;
    /// The program of that name has been started.
    fn service_started(&self, name: &str) -> bool;
    /// Coldplug's second pass is over and no module load is queued.
    fn coldplug_done(&self) -> bool;
}

/// Whether `facts` says `need` is there.
pub fn is_met(need: &Need, facts: &dyn Facts) -> bool {
    match need {
        Need::Path(path) => facts.path_exists(path),
        Need::Module(name) => facts.module_ready(name),
        Need::Net(glob) => facts.interface_addressed(glob),
        Need::Service(name) => facts.service_started(name),
        Need::TimeSynced => facts.time_synced(),
        Need::Coldplug => facts.coldplug_done(),
    }
}

/// The needs of `needs` that are not there yet, in their order.
pub fn missing<'a>(needs: &'a [Need], facts: &dyn Facts) -> Vec<&'a Need> {
    needs.iter().filter(|n| !is_met(n, facts)).collect()
}

/// `needs` as a message shows them: `/dev/x, module:y`.
pub fn list(needs: &[&Need]) -> String {
    needs
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `path` (absolute) under `root`.
pub fn under(root: &Path, path: &str) -> std::path::PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Whether an interface matching `glob` has an address: a file of that name in `root`'s
/// [`LEASE_DIR`] with an `address=` line (the directory also holds `[network] dns`'s
/// `config`, and the `.tmp` files written before a rename).
pub fn lease_exists(root: &Path, glob: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(under(root, LEASE_DIR)) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return false;
        };
        !name.contains('.')
            && fnmatch(glob, name)
            && std::fs::read_to_string(entry.path())
                .is_ok_and(|text| text.lines().any(|l| l.starts_with("address=")))
    })
}

/// Tests: facts from a list of what is there.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// Facts from a list of what is there, as the words `wait_for` uses (`net:usb0` for an
    /// interface with an address).
    pub struct Table(pub Vec<&'static str>);

    impl Facts for Table {
        fn path_exists(&self, path: &str) -> bool {
            self.0.contains(&path)
        }
        fn module_ready(&self, name: &str) -> bool {
            self.0
                .iter()
                .any(|f| f.strip_prefix("module:") == Some(name))
        }
        fn interface_addressed(&self, glob: &str) -> bool {
            self.0
                .iter()
                .filter_map(|f| f.strip_prefix("net:"))
                .any(|iface| fnmatch(glob, iface))
        }
        fn time_synced(&self) -> bool {
            self.0.contains(&"time-synced")
        }
        fn service_started(&self, name: &str) -> bool {
            self.0
                .iter()
                .any(|f| f.strip_prefix("service:") == Some(name))
        }
        fn coldplug_done(&self) -> bool {
            self.0.contains(&"coldplug")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Table;
    use super::*;

    #[test]
    fn each_kind_of_need_asks_its_fact() {
        let needs: Vec<Need> = [
            "/dev/spidev0.0",
            "module:snd_bcm2835",
            "net:usb*",
            "service:db",
            "time-synced",
            "coldplug",
        ]
        .iter()
        .map(|w| w.parse().unwrap())
        .collect();
        let nothing = Table(vec![]);
        assert_eq!(missing(&needs, &nothing).len(), 6);
        let all = Table(vec![
            "/dev/spidev0.0",
            "module:snd_bcm2835",
            "net:usb0",
            "service:db",
            "time-synced",
            "coldplug",
        ]);
        assert!(missing(&needs, &all).is_empty());
        let some = Table(vec!["net:eth0", "service:web", "coldplug"]);
        assert_eq!(
            list(&missing(&needs, &some)),
            "/dev/spidev0.0, module:snd_bcm2835, net:usb*, service:db, time-synced"
        );
    }

    #[test]
    fn lease_files_are_found_by_glob() {
        let root = std::env::temp_dir().join(format!("boxinit-wait-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        assert!(!lease_exists(&root, "*"));
        let dir = under(&root, LEASE_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("usb0.tmp"), "address=10.0.2.15/24\n").unwrap();
        std::fs::write(dir.join("config"), "dns=9.9.9.9\n").unwrap();
        assert!(!lease_exists(&root, "usb*"));
        assert!(!lease_exists(&root, "*"));
        std::fs::write(dir.join("usb0"), "address=10.0.2.15/24\n").unwrap();
        assert!(lease_exists(&root, "usb*"));
        assert!(lease_exists(&root, "usb0"));
        assert!(!lease_exists(&root, "eth0"));
        assert_eq!(under(&root, "/dev/x"), root.join("dev/x"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
