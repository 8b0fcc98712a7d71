//! `boxinit-net static IFACE CIDR [GATEWAY]`: waits for the interface, sets the address (and
//! default route), publishes it in its lease file (and so resolv.conf), then stays until
//! SIGTERM, so that its supervisor sets it again should the program end; at SIGTERM it takes
//! the address off again.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use boxinit::net::link::{self, RouteRequest};
use boxinit::net::resolv::{self, Facts};
use boxinit::sys::linux::Linux;
use boxinit::sys::Sys;

use crate::interface;
use crate::process::{start, wait, Woke};

/// `boxinit-net static IFACE CIDR [GATEWAY]`: waits for the interface, sets the address (and
/// default route), publishes it, then stays until shutdown.
pub fn main(args: &[String]) -> i32 {
    let usage = "usage: boxinit-net static IFACE ADDRESS/PREFIX [GATEWAY]";
    let (pattern, cidr, gateway) = match args {
        [i, c] => (i, c, None),
        [i, c, g] => (i, c, Some(g)),
        _ => {
            eprintln!("{usage}");
            return 2;
        }
    };
    let (Ok(cidr), Ok(gateway)) = (
        cidr.parse::<link::Cidr>(),
        gateway.map(|g| g.parse::<Ipv4Addr>()).transpose(),
    ) else {
        eprintln!("{usage}");
        return 2;
    };
    let Some(signals) = start("static") else {
        return 1;
    };
    let mut sys = Linux;
    let Some(iface) = interface::up_and_running("static", pattern, &signals, &mut sys) else {
        return 0;
    };
    let requests = RouteRequest::address(iface.index, cidr, gateway, None);
    for r in &requests {
        if let Err(e) = sys.netlink_route(r) {
            log::error!("static: {}: cannot set {r}: {e}", iface.name);
            return 1;
        }
    }
    let facts = Facts {
        address: Some(cidr.to_string()),
        router: gateway,
        ..Facts::default()
    };
    if let Err(e) = resolv::publish(Path::new("/"), &iface.name, Some(&facts)) {
        log::warn!("static: {}: cannot publish the address: {e}", iface.name);
    }
    log::info!(
        "static: {}: {cidr}{}",
        iface.name,
        gateway.map_or(String::new(), |g| format!(" router {g}"))
    );
    while !matches!(wait(&signals, None, Duration::from_secs(3600)), Woke::Stop) {}
    take_off(&mut sys, &iface, cidr);
    0
}

/// At SIGTERM (shutdown, or a reload that changed or removed this address): the address off
/// the interface (its routes go with it) and out of the lease files, so a reload that gives
/// the interface another address does not leave it with both.
fn take_off(sys: &mut dyn Sys, iface: &link::Interface, cidr: link::Cidr) {
    let r = RouteRequest::DeleteAddress {
        index: iface.index,
        cidr,
    };
    match sys.netlink_route(&r) {
        // already gone (with its interface, say): nothing to take off
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
        Err(e) => log::warn!(
            "static: {}: cannot take the address off ({r}): {e}",
            iface.name
        ),
        Ok(()) => log::info!("static: {}: {cidr} taken off", iface.name),
    }
    if let Err(e) = resolv::publish(Path::new("/"), &iface.name, None) {
        log::warn!("static: {}: cannot publish the address: {e}", iface.name);
    }
}
