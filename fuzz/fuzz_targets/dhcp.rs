//! Fuzz target `dhcp`: a UDP payload through `dhcp::parse`, as `boxinit-net dhcp` receives it
//! from the network. Never a panic; a parsed message encodes and parses back to itself, and
//! a client in every state takes it without panicking.
#![no_main]

use std::time::{Duration, Instant};

use boxinit::net::protocol::{dhcp, dhcp_state};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = dhcp::parse(data) else {
        return;
    };
    let again = dhcp::parse(&dhcp::encode(&message)).expect("an encoded message parses");
    assert_eq!(again, message);
    // A client that sent a DISCOVER, then one that got this message as its offer.
    let t0 = Instant::now();
    let mut client = dhcp_state::Client::new(message.chaddr, None, message.xid, t0);
    for action in client.on_timeout(t0) {
        if let dhcp_state::Action::Send { message: sent, .. } = action {
            let mut answer = message.clone();
            answer.xid = sent.xid;
            let _ = client.on_message(&answer, t0 + Duration::from_secs(1));
            let _ = client.on_message(&answer, t0 + Duration::from_secs(2));
            let _ = client.on_timeout(client.deadline());
            let _ = client.release(t0 + Duration::from_secs(3));
        }
    }
});
