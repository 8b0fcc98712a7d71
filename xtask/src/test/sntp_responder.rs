//! A test SNTP server on the host's loopback for the time scenarios: it answers every request
//! with a known time (advancing with the wall clock from when it started), on a port chosen
//! per run. QEMU's user network passes UDP sent to 10.0.2.2:PORT to the host's
//! 127.0.0.1:PORT, so the guest asks it as `10.0.2.2:{sntp_port}`. The packets are the
//! init's own code (`boxinit::net::protocol::sntp`).

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// A running responder; dropping it stops it.
pub struct Responder {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    /// Starts answering on 127.0.0.1 (a free port) with `unix_seconds` plus the time since.
    pub fn start(unix_seconds: i64) -> Result<Responder> {
        let socket = UdpSocket::bind("127.0.0.1:0").context("cannot bind the SNTP responder")?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let port = socket.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let now = i128::from(unix_seconds) * 1_000_000_000
                    + i128::try_from(started.elapsed().as_nanos()).unwrap_or(0);
                if let Some(reply) = boxinit::net::protocol::sntp::reply_to(&buf[..n], now) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        Ok(Responder {
            port,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_its_time() {
        let r = Responder::start(1_893_456_000).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let sent = 5_000_000_000i128;
        client
            .send_to(
                &boxinit::net::protocol::sntp::request(sent),
                ("127.0.0.1", r.port),
            )
            .unwrap();
        let mut buf = [0u8; 64];
        let n = client.recv(&mut buf).unwrap();
        let reply = boxinit::net::protocol::sntp::parse_reply(&buf[..n], sent, sent).unwrap();
        let want = 1_893_456_000i128 * 1_000_000_000 - sent;
        assert!((reply.offset - want).abs() < 10_000_000_000);
    }
}
