//! Fuzz target `sntp`: a UDP payload through `sntp::parse_reply`, as `boxinit-net time` receives
//! it; the first 16 bytes also pick the local send and receive times. Never a panic (the
//! offset arithmetic included); an accepted reply answers the request it names.
#![no_main]

use boxinit::net::protocol::sntp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let stamp = |at: usize| {
        let mut b = [0u8; 8];
        for (i, x) in b.iter_mut().enumerate() {
            *x = data.get(at + i).copied().unwrap_or(0);
        }
        i128::from(i64::from_le_bytes(b))
    };
    let (sent, received) = (stamp(0), stamp(8));
    if let Ok(reply) = sntp::parse_reply(data, sent, received) {
        assert!(reply.stratum > 0);
        let _ = sntp::show_offset(reply.offset);
    }
    // the same bytes as a request to the test responder's code
    if let Some(answer) = sntp::reply_to(data, sent) {
        assert_eq!(answer.len(), sntp::PACKET_LEN);
    }
});
