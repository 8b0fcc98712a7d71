//! boxinit-net: the network programs PID 1 supervises, one multi-call binary beside `/init`
//! (`net::PROGRAM`): `boxinit-net dhcp IFACE`, `static IFACE CIDR [GATEWAY]`, `time ...` and
//! `wifi IFACE CONF DRIVER SUPPLICANT [NETWORK]`, a file each here (`wifi_key.rs`: the Wi-Fi
//! key derived from a passphrase); `process.rs` is what dhcp, static and
//! time do around their work (log like PID 1, read their stop signals), `interface.rs` the
//! wait for an interface all four share. The protocols are the library's (`net::protocol`, pure and fuzzed). A binary of its
//! own so that PID 1's carries none of this code (ARCHITECTURE.md, "Network clients are
//! programs"). This file only dispatches.

mod dhcp;
mod interface;
mod process;
mod static_address;
mod time;
mod wifi;
mod wifi_key;

use boxinit::net;
use std::ffi::OsString;

// The static release build has no unwinder, as the init's (see the file): a panic here is
// std's message and an abort, which PID 1 sees as an exit and restarts with backoff.
#[cfg(all(panic = "abort", target_env = "musl"))]
#[path = "../../no_unwinder.rs"]
mod no_unwinder;

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    std::process::exit(run(&args));
}

/// Runs the program `args[1]` names with the arguments after it; the exit code.
fn run(args: &[OsString]) -> i32 {
    let program = args.get(1).and_then(|a| a.to_str()).unwrap_or("");
    let main: fn(&[String]) -> i32 = match program {
        "dhcp" => dhcp::main,
        "static" => static_address::main,
        "time" => time::main,
        "wifi" => wifi::main,
        _ => {
            eprintln!(
                "usage: {} dhcp|static|time|wifi ...   the network programs boxinit runs \
                 (README \"Network and time\")",
                net::PROGRAM
            );
            return 2;
        }
    };
    match boxinit::utf8_args(args.get(2..).unwrap_or_default()) {
        Some(rest) => main(&rest),
        None => {
            eprintln!("{} {program}: an argument is not UTF-8 text", net::PROGRAM);
            2
        }
    }
}
