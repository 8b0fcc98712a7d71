//! A disk that stops answering, for the hung-disk scenarios: an NBD server on the host's
//! loopback (a free port per run) that QEMU's NBD client attaches as a guest disk
//! (`-drive file=nbd://127.0.0.1:PORT,...`). It serves a disk with an MBR and one partition
//! from 1 MiB, answers the reads the kernel's own partition scan makes (the first MiB, the
//! last 64 KiB) and never answers any other read, as a failing card or disk does: the guest's
//! read of the partition waits for ever. [`HungDisk::image_until`] serves a real image instead
//! (the boot disk as the harness built it, scenario file `boot-nbd`), reads and writes going to
//! the file, until the guest touches a chosen sector: every read and write after that is held,
//! a card that works at first and dies while in use.
//!
//! QEMU does not let a held request go: it drains a device's requests when the guest resets
//! it (the guest kernel does as it powers off: the vCPU then waits inside that register
//! write), on the guest's power-off and on SIGTERM. [`HungDisk::release`] (also on drop)
//! closes every connection, so the held requests fail and QEMU goes on; the harness calls it
//! once the console shows the machine on its way out. The protocol is NBD's fixed newstyle
//! handshake (`NBD_OPT_GO` or `NBD_OPT_EXPORT_NAME`) with simple replies
//! (<https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md>).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::media::image;

/// Reads that end within the first MiB are answered (the partition table)...
const ANSWERED_HEAD: u64 = 1 << 20;
/// ...and those that start in the last 64 KiB (a GPT's backup header, if the kernel looks).
const ANSWERED_TAIL: u64 = 64 << 10;

const NBDMAGIC: &[u8; 8] = b"NBDMAGIC";
const IHAVEOPT: u64 = 0x4948_4156_454F_5054;
const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_NO_ZEROES: u16 = 2;
const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;
const REP_ACK: u32 = 1;
const REP_INFO: u32 = 3;
const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
const INFO_EXPORT: u16 = 0;
/// Transmission flags: only `NBD_FLAG_HAS_FLAGS` (no flush, trim or read-only).
const TRANSMISSION_FLAGS: u16 = 1;
const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;

/// A running server; dropping it closes every connection and stops it.
pub struct HungDisk {
    pub port: u16,
    stop: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

impl HungDisk {
    /// Serves a disk of `size_mib` MiB (at least 2) on 127.0.0.1 (a free port).
    pub fn start(size_mib: u32) -> Result<HungDisk> {
        HungDisk::listen(Arc::new(Disk::new(size_mib.max(2))))
    }

    /// Serves the disk image at `path` (reads and writes go to the file) until the guest's
    /// first request that touches sector `trip` (512 bytes; that request is still answered):
    /// every read and write after it is held, as a card that dies while in use.
    pub fn image_until(path: &Path, trip: u64) -> Result<HungDisk> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open {} to serve it", path.display()))?;
        let size = file.metadata()?.len();
        HungDisk::listen(Arc::new(Dying {
            file,
            size,
            trip: trip.saturating_mul(SECTOR)..trip.saturating_add(1).saturating_mul(SECTOR),
            tripped: AtomicBool::new(false),
        }))
    }

    fn listen(disk: Arc<dyn Served>) -> Result<HungDisk> {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("cannot bind the hung disk's NBD server")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (stopping, conns) = (stop.clone(), connections.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        if let (Ok(kept), Ok(mut list)) = (stream.try_clone(), conns.lock()) {
                            // released meanwhile: this one is closed too (release sets the
                            // flag before it takes the list)
                            if stopping.load(Ordering::Relaxed) {
                                let _ = kept.shutdown(std::net::Shutdown::Both);
                            }
                            list.push(kept);
                        }
                        let disk = disk.clone();
                        std::thread::spawn(move || {
                            // the connection ends when QEMU or release() closes it
                            let _ = serve(stream, &*disk);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(HungDisk {
            port,
            stop,
            connections,
            thread: Some(thread),
        })
    }

    /// What QEMU's `-drive file=` takes.
    pub fn url(&self) -> String {
        format!("nbd://127.0.0.1:{}", self.port)
    }

    /// Stops listening and closes every connection: the requests held fail, QEMU goes on.
    /// (Still listening, QEMU's NBD client would connect again and send the read again.)
    pub fn release(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(list) = self.connections.lock() {
            for stream in list.iter() {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

impl Drop for HungDisk {
    fn drop(&mut self) {
        self.release();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const SECTOR: u64 = 512;

/// What a server serves: the bytes of a read, None for one it holds (no reply, for ever);
/// whether a write is done (false: held).
trait Served: Send + Sync {
    fn size(&self) -> u64;
    fn read(&self, offset: u64, len: u32) -> Option<Vec<u8>>;
    fn write(&self, offset: u64, data: &[u8]) -> bool;
}

/// A real image, served until a request touches `trip` (a byte range).
struct Dying {
    file: std::fs::File,
    size: u64,
    trip: Range<u64>,
    tripped: AtomicBool,
}

impl Dying {
    /// Whether the request at `offset`, `len` bytes, is answered; the one that touches the
    /// trip sector is, and trips the disk.
    fn answers(&self, offset: u64, len: u64) -> bool {
        if self.tripped.load(Ordering::SeqCst) {
            return false;
        }
        if offset < self.trip.end && offset.saturating_add(len) > self.trip.start {
            self.tripped.store(true, Ordering::SeqCst);
        }
        offset.saturating_add(len) <= self.size
    }
}

impl Served for Dying {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, offset: u64, len: u32) -> Option<Vec<u8>> {
        if !self.answers(offset, u64::from(len)) {
            return None;
        }
        let mut bytes = vec![0u8; usize::try_from(len).ok()?];
        self.file.read_exact_at(&mut bytes, offset).ok()?;
        Some(bytes)
    }

    fn write(&self, offset: u64, data: &[u8]) -> bool {
        self.answers(offset, data.len() as u64) && self.file.write_all_at(data, offset).is_ok()
    }
}

/// The disk's bytes where it answers: an MBR with one partition (type 0x0C) from 1 MiB to
/// the end, zeros elsewhere.
struct Disk {
    size: u64,
    mbr: [u8; 512],
}

impl Disk {
    fn new(size_mib: u32) -> Disk {
        let size = u64::from(size_mib) << 20;
        let start = image::PARTITION_START_SECTOR;
        let sectors = u32::try_from(size / image::SECTOR - u64::from(start)).unwrap_or(0);
        Disk {
            size,
            mbr: image::mbr(0x4E42_D15C, 0x0C, start, sectors),
        }
    }
}

impl Served for Disk {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&self, offset: u64, len: u32) -> Option<Vec<u8>> {
        let end = offset.checked_add(u64::from(len))?;
        let answered = end <= ANSWERED_HEAD || offset >= self.size.saturating_sub(ANSWERED_TAIL);
        if !answered || end > self.size {
            return None;
        }
        let mut bytes = vec![0u8; usize::try_from(len).ok()?];
        for (i, b) in bytes.iter_mut().enumerate() {
            let at = offset + i as u64;
            if let Some(&m) = usize::try_from(at).ok().and_then(|at| self.mbr.get(at)) {
                *b = m;
            }
        }
        Some(bytes)
    }

    /// Taken and dropped: no test writes to it.
    fn write(&self, _offset: u64, _data: &[u8]) -> bool {
        true
    }
}

fn read_u16(s: &mut TcpStream) -> std::io::Result<u16> {
    let mut b = [0u8; 2];
    s.read_exact(&mut b)?;
    Ok(u16::from_be_bytes(b))
}

fn read_u32(s: &mut TcpStream) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    s.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_u64(s: &mut TcpStream) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    s.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

fn option_reply(s: &mut TcpStream, option: u32, kind: u32, data: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(20 + data.len());
    out.extend_from_slice(&REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(data);
    s.write_all(&out)
}

/// One client: the handshake, then requests until it disconnects.
fn serve(mut s: TcpStream, disk: &dyn Served) -> std::io::Result<()> {
    s.write_all(NBDMAGIC)?;
    s.write_all(&IHAVEOPT.to_be_bytes())?;
    s.write_all(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes())?;
    let client_flags = read_u32(&mut s)?;
    loop {
        if read_u64(&mut s)? != IHAVEOPT {
            return Ok(());
        }
        let option = read_u32(&mut s)?;
        let len = read_u32(&mut s)?;
        let mut data = vec![0u8; usize::try_from(len).unwrap_or(0).min(1 << 16)];
        s.read_exact(&mut data)?;
        match option {
            OPT_EXPORT_NAME => {
                s.write_all(&disk.size().to_be_bytes())?;
                s.write_all(&TRANSMISSION_FLAGS.to_be_bytes())?;
                if client_flags & u32::from(FLAG_NO_ZEROES) == 0 {
                    s.write_all(&[0u8; 124])?;
                }
                break;
            }
            OPT_GO | OPT_INFO => {
                let mut info = INFO_EXPORT.to_be_bytes().to_vec();
                info.extend_from_slice(&disk.size().to_be_bytes());
                info.extend_from_slice(&TRANSMISSION_FLAGS.to_be_bytes());
                option_reply(&mut s, option, REP_INFO, &info)?;
                option_reply(&mut s, option, REP_ACK, &[])?;
                if option == OPT_GO {
                    break;
                }
            }
            OPT_ABORT => {
                option_reply(&mut s, option, REP_ACK, &[])?;
                return Ok(());
            }
            // structured replies, meta contexts, TLS, lists: not offered
            _ => option_reply(&mut s, option, REP_ERR_UNSUP, &[])?,
        }
    }
    loop {
        if read_u32(&mut s)? != REQUEST_MAGIC {
            return Ok(());
        }
        let _flags = read_u16(&mut s)?;
        let kind = read_u16(&mut s)?;
        let cookie = read_u64(&mut s)?;
        let offset = read_u64(&mut s)?;
        let len = read_u32(&mut s)?;
        let reply = |error: u32| {
            let mut out = SIMPLE_REPLY_MAGIC.to_be_bytes().to_vec();
            out.extend_from_slice(&error.to_be_bytes());
            out.extend_from_slice(&cookie.to_be_bytes());
            out
        };
        match kind {
            CMD_READ => {
                // held: no reply, the guest's read waits until release()
                if let Some(bytes) = disk.read(offset, len) {
                    let mut out = reply(0);
                    out.extend_from_slice(&bytes);
                    s.write_all(&out)?;
                }
            }
            CMD_WRITE => {
                let mut data = vec![0u8; usize::try_from(len).unwrap_or(0)];
                s.read_exact(&mut data)?;
                // held: no reply, as a read
                if disk.write(offset, &data) {
                    s.write_all(&reply(0))?;
                }
            }
            CMD_DISC => return Ok(()),
            _ => s.write_all(&reply(0))?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side of the handshake (`NBD_OPT_GO`), then a read of `len` at `offset`:
    /// its bytes, or None when no reply came within 300 ms.
    fn read_through(port: u16, reads: &[(u64, u32)]) -> Vec<Option<Vec<u8>>> {
        let requests: Vec<_> = reads.iter().map(|&(o, l)| (CMD_READ, o, l)).collect();
        requests_through(port, &requests)
    }

    /// As [`read_through`], each request a read or a write (of `len` bytes 0xAB; its answer
    /// no bytes).
    fn requests_through(port: u16, requests: &[(u16, u64, u32)]) -> Vec<Option<Vec<u8>>> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut hello = [0u8; 18];
        s.read_exact(&mut hello).unwrap();
        assert_eq!(&hello[..8], NBDMAGIC);
        s.write_all(&3u32.to_be_bytes()).unwrap();
        // an option the server does not offer, then GO for the default export
        for (option, data) in [(8u32, Vec::new()), (OPT_GO, vec![0, 0, 0, 0, 0, 0])] {
            let mut req = IHAVEOPT.to_be_bytes().to_vec();
            req.extend_from_slice(&option.to_be_bytes());
            req.extend_from_slice(&(data.len() as u32).to_be_bytes());
            req.extend_from_slice(&data);
            s.write_all(&req).unwrap();
        }
        let mut replies = Vec::new();
        while replies.last() != Some(&REP_ACK) {
            assert_eq!(read_u64(&mut s).unwrap(), REPLY_MAGIC);
            let _option = read_u32(&mut s).unwrap();
            let kind = read_u32(&mut s).unwrap();
            let len = read_u32(&mut s).unwrap();
            let mut data = vec![0u8; len as usize];
            s.read_exact(&mut data).unwrap();
            if kind == REP_INFO {
                assert_eq!(u64::from_be_bytes(data[2..10].try_into().unwrap()), 8 << 20);
            }
            replies.push(kind);
        }
        assert_eq!(replies, [REP_ERR_UNSUP, REP_INFO, REP_ACK]);
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut out = Vec::new();
        for (cookie, &(kind, offset, len)) in requests.iter().enumerate() {
            let mut req = REQUEST_MAGIC.to_be_bytes().to_vec();
            req.extend_from_slice(&0u16.to_be_bytes());
            req.extend_from_slice(&kind.to_be_bytes());
            req.extend_from_slice(&(cookie as u64).to_be_bytes());
            req.extend_from_slice(&offset.to_be_bytes());
            req.extend_from_slice(&len.to_be_bytes());
            if kind == CMD_WRITE {
                req.extend(std::iter::repeat_n(0xAB, len as usize));
            }
            s.write_all(&req).unwrap();
            let mut head = [0u8; 16];
            match s.read_exact(&mut head) {
                Ok(()) => {
                    assert_eq!(head[..4], SIMPLE_REPLY_MAGIC.to_be_bytes());
                    assert_eq!(head[8..], (cookie as u64).to_be_bytes());
                    let mut data = vec![0u8; if kind == CMD_READ { len as usize } else { 0 }];
                    s.read_exact(&mut data).unwrap();
                    out.push(Some(data));
                }
                Err(_) => out.push(None),
            }
        }
        out
    }

    #[test]
    fn answers_the_partition_table_and_holds_the_partition() {
        let server = HungDisk::start(8).unwrap();
        let got = read_through(server.port, &[(0, 512), ((8 << 20) - 4096, 4096)]);
        let sector0 = got[0].as_ref().unwrap();
        let mbr = boxinit::storage::partition::parse_mbr(sector0).unwrap();
        assert_eq!(mbr.partitions.len(), 1);
        assert_eq!(mbr.partitions[0].start_lba, 2048);
        assert!(got[1].as_ref().unwrap().iter().all(|&b| b == 0));
        // the partition's first sector: no answer, also later
        let held = read_through(server.port, &[(1 << 20, 512)]);
        assert_eq!(held, [None]);
        assert_eq!(server.url(), format!("nbd://127.0.0.1:{}", server.port));
        // release closes the connections; a client sees the end
        server.release();
        drop(server);
    }

    #[test]
    fn an_image_is_served_until_its_trip_sector_is_touched() {
        let path = std::env::temp_dir().join(format!("nbd-dying-{}.img", std::process::id()));
        let mut bytes = vec![0u8; 8 << 20];
        bytes[..4].copy_from_slice(b"BOOT");
        std::fs::write(&path, &bytes).unwrap();
        let server = HungDisk::image_until(&path, 2047).unwrap();
        let sector = |n: u64| n * SECTOR;
        let got = requests_through(
            server.port,
            &[
                (CMD_READ, 0, 4),
                (CMD_WRITE, sector(4), 512),
                // ends where the trip sector begins: not yet
                (CMD_READ, sector(2046), 512),
                // the one that touches it is answered...
                (CMD_READ, sector(2040), 8 * 512),
                // ...every one after it held, reads and writes, on any connection
                (CMD_READ, 0, 4),
                (CMD_WRITE, sector(5), 512),
            ],
        );
        assert_eq!(got[0].as_deref(), Some(&b"BOOT"[..]));
        assert_eq!(got[1].as_deref(), Some(&[][..]));
        assert_eq!(got[2].as_deref(), Some(&[0u8; 512][..]));
        assert_eq!(got[3].as_ref().map(Vec::len), Some(4096));
        assert_eq!(got[4..], [None, None]);
        assert_eq!(read_through(server.port, &[(0, 4)]), [None]);
        drop(server);
        let on_disk = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        // the answered write is in the file, the held one not
        assert!(on_disk[2048..2560].iter().all(|&b| b == 0xAB));
        assert!(on_disk[2560..3072].iter().all(|&b| b == 0));
    }
}
