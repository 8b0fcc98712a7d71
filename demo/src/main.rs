//! The demo box: the program boxinit runs as `/boot/box`.
//!
//! It shows what the init set up (PID, uptime, mounts, the boot partition,
//! the environment) and then does what its arguments say, one after another,
//! so that the QEMU scenarios can drive the init through it: leave orphans for
//! PID 1 to reap and check that no zombie stays, exit or crash to exercise the
//! supervisor, write to the boot partition without syncing, and ask the init to
//! power off, reboot or halt. See [`args`] for the words, or run it and type
//! `help`.
//!
//! Every line it prints starts with `demo: `, for the tests to grep the
//! console. It installs no signal handler: the init's SIGTERM at shutdown ends
//! it.

mod args;

use std::fs;
use std::io::{self, BufRead, IsTerminal, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use rustix::time::{clock_gettime_dynamic, DynamicClockId};

use args::{Action, InitRequest, ParseError};

/// How long `check-zombies` waits for the orphans to be reaped.
const ZOMBIE_WAIT: Duration = Duration::from_secs(5);
/// How often `check-zombies` looks at /proc.
const ZOMBIE_POLL: Duration = Duration::from_millis(50);
/// How long each orphan lives after its parent has gone.
const ORPHAN_LIFETIME: Duration = Duration::from_millis(200);
/// The command-line flag of the orphans, by which `check-zombies` finds them.
const ORPHAN_CHILD_FLAG: &str = "--orphan-child";
/// The command-line flag of the short-lived parent of the orphans.
const ORPHAN_PARENT_FLAG: &str = "--orphan-parent";
/// The command-line flag of the parent of `reap=N`'s zombies.
const ZOMBIE_PARENT_FLAG: &str = "--zombie-parent";
/// The command-line flag of `reap=N`'s children, which exit at once.
const ZOMBIE_CHILD_FLAG: &str = "--exit-at-once";
/// How long `reap=N` waits for PID 1 to reap the zombies it was handed.
const REAP_WAIT: Duration = Duration::from_secs(10);
/// How long the kernel's log must stay quiet before the prompt is printed.
const QUIET: Duration = Duration::from_millis(1000);
/// The longest the prompt waits for that.
const QUIET_LIMIT: Duration = Duration::from_secs(10);

/// Prints one line, `demo: ` and the formatted text, and flushes it.
macro_rules! say {
    ($($arg:tt)*) => {
        say(format_args!($($arg)*))
    };
}

/// Writes `demo: <text>` and a newline to stdout and flushes. A console that
/// went away is no reason to stop, so errors are ignored.
fn say(text: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "demo: {text}");
    let _ = out.flush();
}

mod flood;
mod hidden;
mod modes;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();

    // The two helper roles of `orphans=N`, which print nothing.
    match args.first().map(String::as_str) {
        Some(ORPHAN_CHILD_FLAG) => {
            thread::sleep(ORPHAN_LIFETIME);
            return;
        }
        Some(ORPHAN_PARENT_FLAG) => {
            let count = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(0);
            orphan_parent(count);
        }
        Some(ZOMBIE_CHILD_FLAG) => return,
        Some(hidden::FLAG) => hidden::run(args.get(1).map_or("", String::as_str)),
        Some(ZOMBIE_PARENT_FLAG) => {
            let count = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(0);
            zombie_parent(count);
        }
        _ => {}
    }

    banner(&args);

    let words: Vec<String> = if args.is_empty() {
        say!("no arguments: {}", args::DEFAULT_ARGS.join(" "));
        args::DEFAULT_ARGS.iter().map(|w| w.to_string()).collect()
    } else {
        args
    };
    for word in &words {
        match args::parse(word) {
            Ok(action) => run(action),
            Err(error) => report_parse_error(word, &error, false),
        }
    }
    say!("done");
}

/// The lines printed first, whatever the arguments.
fn banner(args: &[String]) {
    say!("hello from the box");
    say!("pid {}", std::process::id());
    match uptime() {
        // Milliseconds: the benchmark reads this line as the time the box started.
        Some(up) => say!("uptime {:.3}s", up.as_secs_f64()),
        None => say!("uptime unknown"),
    }
    if args.is_empty() {
        say!("args (none)");
    } else {
        say!("args {}", args.join(" "));
    }
    show_mounts();
    if let Ok(boot) = std::env::var("BOXINIT_BOOT") {
        say!("env BOXINIT_BOOT={boot}");
    }
}

/// Time since boot, suspend included: CLOCK_BOOTTIME, or /proc/uptime.
fn uptime() -> Option<Duration> {
    if let Ok(now) = clock_gettime_dynamic(DynamicClockId::Boottime) {
        let secs = u64::try_from(now.tv_sec).ok()?;
        let nanos = u32::try_from(now.tv_nsec).ok()?;
        return Some(Duration::new(secs, nanos));
    }
    let text = fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// One line per entry of /proc/mounts, then whether /boot is read-only.
fn show_mounts() {
    let mounts = match fs::read_to_string("/proc/mounts") {
        Ok(mounts) => mounts,
        Err(error) => {
            say!("cannot read /proc/mounts: {error}");
            return;
        }
    };
    // The last mount on /boot is the one that is visible.
    let mut boot_read_only = None;
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [source, target, fstype, options, ..] = fields[..] else {
            continue;
        };
        say!("mount {source} on {target} type {fstype} ({options})");
        if target == "/boot" {
            boot_read_only = Some(options.split(',').any(|option| option == "ro"));
        }
    }
    match boot_read_only {
        Some(true) => say!("boot partition read-only"),
        Some(false) => say!("boot partition read-write"),
        None => say!("boot partition not mounted"),
    }
}

/// Does one thing. The words that end the box (`exit`, `crash`, `poweroff`,
/// `reboot`, `halt`, `wait`, `interactive`) do not return.
fn run(action: Action) {
    match action {
        Action::Orphans(count) => leave_orphans(count),
        Action::CheckZombies => check_zombies(),
        Action::Reap(count) => time_reaping(count),
        Action::Sleep(duration) => thread::sleep(duration),
        Action::Exit(status) => {
            say!("exiting with status {status}");
            std::process::exit(status.into());
        }
        Action::Crash => {
            say!("crashing");
            std::process::abort();
        }
        Action::Write { path, text } => {
            let contents = format!("{text}\n");
            // No fsync on purpose: the init must sync before powering off.
            match fs::write(&path, &contents) {
                Ok(()) => say!("wrote {} bytes to {}", contents.len(), path.display()),
                Err(error) => say!("cannot write {}: {error}", path.display()),
            }
        }
        Action::SlowWrite { path, lines } => slow_write(&path, lines),
        Action::BulkWrite { path, lines } => bulk_write(&path, lines),
        Action::HiddenWriter(path) => hidden::start(&path),
        Action::HoldTerm => {
            let mut term = nix::sys::signal::SigSet::empty();
            term.add(nix::sys::signal::Signal::SIGTERM);
            match nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_BLOCK,
                Some(&term),
                None,
            ) {
                Ok(()) => say!("holding SIGTERM until the work is done"),
                Err(error) => say!("cannot block SIGTERM: {error}"),
            }
        }
        Action::PoweroffAfter(delay) => {
            thread::spawn(move || {
                thread::sleep(delay);
                say!("asking init to poweroff");
                let _ = rustix::process::kill_process(
                    rustix::process::Pid::INIT,
                    rustix::process::Signal::USR2,
                );
            });
        }
        Action::Heartbeat(count) => heartbeat(count),
        Action::AskInit(request) => ask_init(request),
        Action::Rss => show_init_rss(),
        Action::Ls(path) => describe_file(&path),
        Action::Cat(path) => match fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    say!("{}: {line}", path.display());
                }
            }
            Err(error) => say!("cannot read {}: {error}", path.display()),
        },
        Action::WaitMount(path, mounted) => wait_mount(&path, mounted),
        Action::WaitPath(path) => {
            let deadline = Instant::now() + Duration::from_secs(20);
            while fs::symlink_metadata(&path).is_err() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            describe_file(&path);
        }
        Action::Modes {
            dir,
            prefix,
            count,
            mode,
        } => modes::wait(&dir, &prefix, count, mode),
        Action::Chmod { dir, prefix, mode } => modes::chmod(&dir, &prefix, mode),
        Action::UeventFlood(count) => flood::run(count),
        Action::Clock => {
            let now = boxinit::net::clock::now_seconds();
            say!("clock {}", boxinit::net::clock::date(now));
        }
        Action::ClockNotBefore(path) => {
            let now = boxinit::net::clock::now_seconds();
            let floor = fs::read_to_string(&path)
                .ok()
                .and_then(|t| boxinit::net::clock::parse_seconds(&t));
            match floor {
                Some(floor) if now >= floor => say!("clock is not before {}", path.display()),
                Some(floor) => say!(
                    "clock {} is before {} ({})",
                    boxinit::net::clock::date(now),
                    path.display(),
                    boxinit::net::clock::date(floor)
                ),
                None => say!("cannot read seconds from {}", path.display()),
            }
        }
        Action::Wait => {
            say!("waiting");
            sleep_forever();
        }
        Action::Addresses => match fs::read_to_string("/proc/net/fib_trie") {
            Ok(trie) => {
                let found = local_addresses(&trie);
                if found.is_empty() {
                    say!("no IPv4 address");
                }
                for address in found {
                    say!("address {address}");
                }
            }
            Err(error) => say!("cannot read /proc/net/fib_trie: {error}"),
        },
        Action::Serve(port) => serve(port),
        Action::Interactive => interactive(),
        Action::Help => {
            for line in args::HELP {
                say!("  {line}");
            }
        }
    }
}

/// The local IPv4 addresses in `/proc/net/fib_trie` (an address line followed by
/// `/32 host LOCAL`), each once, in order, loopback left out.
fn local_addresses(trie: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut last = "";
    for line in trie.lines() {
        let line = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if line.ends_with("host LOCAL") {
            if !last.starts_with("127.") && !found.iter().any(|a| a == last) {
                found.push(last.to_string());
            }
        } else if line.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            last = line.split_whitespace().next().unwrap_or("");
        }
    }
    found
}

/// `serve=PORT`: a thread answering every HTTP request on PORT with one line, so that
/// `cargo xtask run --forward 8080:80` has something to show at http://127.0.0.1:8080.
fn serve(port: u16) {
    use std::io::{Read, Write};
    let listener = match std::net::TcpListener::bind(("0.0.0.0", port)) {
        Ok(listener) => listener,
        Err(error) => return say!("cannot listen on port {port}: {error}"),
    };
    say!("serving HTTP on port {port}");
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from the box\n",
            );
        }
    });
}

/// Writes `line 1`..`line N`, one write per line, 20 ms apart, without fsync: a power-off in
/// the middle is the init's to handle (grace period, sync, unmount).
fn slow_write(path: &std::path::Path, lines: u32) {
    use std::io::Write;
    let mut file = match fs::File::create(path) {
        Ok(file) => file,
        Err(error) => {
            say!("cannot write {}: {error}", path.display());
            return;
        }
    };
    for i in 1..=lines {
        if let Err(error) = file.write_all(format!("line {i}\n").as_bytes()) {
            say!("cannot write {}: {error}", path.display());
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    say!("wrote {lines} lines to {}", path.display());
}

/// `slow-write`'s lines at once, through a buffer: dirty pages for the shutdown to write back.
fn bulk_write(path: &std::path::Path, lines: u32) {
    use std::io::Write;
    let written = fs::File::create(path).and_then(|file| {
        let mut out = io::BufWriter::with_capacity(1 << 16, file);
        (1..=lines).try_for_each(|i| writeln!(out, "line {i}"))?;
        out.flush()
    });
    match written {
        Ok(()) => say!("wrote {lines} lines to {} (not synced)", path.display()),
        Err(error) => say!("cannot write {}: {error}", path.display()),
    }
}

/// Touches the file `BOXINIT_HEARTBEAT` names `count` times, 300 ms apart.
fn heartbeat(count: u32) {
    let Some(path) = std::env::var_os("BOXINIT_HEARTBEAT") else {
        say!("no BOXINIT_HEARTBEAT: is [watchdog] heartbeat set?");
        return;
    };
    for _ in 0..count {
        if let Err(error) = fs::write(&path, b"alive\n") {
            say!("cannot send a heartbeat: {error}");
        }
        thread::sleep(Duration::from_millis(300));
    }
    say!("heartbeat stopped");
}

/// Prints why a word was not understood; at the prompt, with a hint.
fn report_parse_error(word: &str, error: &ParseError, at_prompt: bool) {
    let hint = if at_prompt { " (type help)" } else { "" };
    match error {
        ParseError::Unknown => say!("unknown argument {word}{hint}"),
        ParseError::BadValue(why) => say!("bad argument {word}: {why}{hint}"),
    }
}

/// A command that runs this same program with `args`, shown as `box`.
fn this_program(args: &[&str]) -> Command {
    let mut command = Command::new("/proc/self/exe");
    command.arg0("box").args(args).stdin(Stdio::null());
    command
}

/// `orphans=N`: the orphan parent starts N orphans and exits without waiting
/// for them, so they are reparented to PID 1; we wait for the parent only.
fn leave_orphans(count: u32) {
    let status = this_program(&[ORPHAN_PARENT_FLAG, &count.to_string()]).status();
    match status {
        Ok(status) if status.success() => say!("left {count} orphans"),
        Ok(status) => say!("orphan parent failed: {status}"),
        Err(error) => say!("cannot start the orphan parent: {error}"),
    }
}

/// The orphan parent: starts `count` orphans and exits at once.
fn orphan_parent(count: u32) -> ! {
    for _ in 0..count {
        if let Err(error) = this_program(&[ORPHAN_CHILD_FLAG]).spawn() {
            say!("cannot start an orphan: {error}");
            std::process::exit(1);
        }
    }
    // Dropping a `Child` neither waits for it nor kills it.
    std::process::exit(0);
}

/// `reap=N`: a parent makes N zombies (children that exited, not waited for) and exits, which
/// hands all of them to PID 1 at once; we time from its exit until PID 1 has no more children
/// than before, i.e. until every zombie is reaped. Prints the rate, for the benchmark.
fn time_reaping(count: u32) {
    let before = match init_children() {
        Ok(children) => children,
        Err(error) => {
            say!("cannot read PID 1's children: {error}");
            return;
        }
    };
    let output = match this_program(&[ZOMBIE_PARENT_FLAG, &count.to_string()]).output() {
        Ok(output) if output.status.success() => output,
        Ok(output) => return say!("zombie parent failed: {}", output.status),
        Err(error) => return say!("cannot start the zombie parent: {error}"),
    };
    // The parent's last act was to print the time it exited (CLOCK_BOOTTIME, nanoseconds).
    let Some(handed_over) = String::from_utf8_lossy(&output.stdout).trim().parse().ok() else {
        return say!("the zombie parent did not say when it exited");
    };
    let deadline = Instant::now() + REAP_WAIT;
    loop {
        let now = boottime_nanos();
        match init_children() {
            Ok(children) if children <= before => {
                let seconds = now.saturating_sub(handed_over) as f64 / 1e9;
                let rate = f64::from(count) / seconds.max(1e-9);
                return say!(
                    "reaped {count} zombies in {:.1}ms: {rate:.0} per second",
                    seconds * 1e3
                );
            }
            Ok(children) if Instant::now() >= deadline => {
                return say!("zombies not reaped after {REAP_WAIT:?}: PID 1 has {children} children, had {before}");
            }
            Ok(_) => thread::sleep(Duration::from_micros(200)),
            Err(error) => return say!("cannot read PID 1's children: {error}"),
        }
    }
}

/// The parent of `reap=N`'s zombies: starts `count` children that exit at once, waits until
/// each is a zombie, prints the time and exits without reaping them.
fn zombie_parent(count: u32) -> ! {
    let mut pids = Vec::new();
    for _ in 0..count {
        match this_program(&[ZOMBIE_CHILD_FLAG]).spawn() {
            Ok(child) => pids.push(child.id()),
            Err(_) => std::process::exit(1),
        }
    }
    let deadline = Instant::now() + REAP_WAIT;
    while Instant::now() < deadline {
        let exited = pids.iter().all(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parse_stat(&stat))
                .is_some_and(|(state, _)| state == 'Z')
        });
        if exited {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{}", boottime_nanos());
    let _ = out.flush();
    // Exiting without waiting: the children are reparented to PID 1 as zombies.
    std::process::exit(0);
}

/// How many children PID 1 has (zombies included), from /proc/1/task/1/children.
fn init_children() -> io::Result<usize> {
    Ok(fs::read_to_string("/proc/1/task/1/children")?
        .split_whitespace()
        .count())
}

/// CLOCK_BOOTTIME in nanoseconds (0 if the clock cannot be read).
fn boottime_nanos() -> u64 {
    uptime().map_or(0, |up| u64::try_from(up.as_nanos()).unwrap_or(u64::MAX))
}

/// What one look through /proc found.
#[derive(Debug, Default)]
struct ProcessScan {
    /// Zombies that are not our own unreaped children.
    zombies: Vec<u32>,
    /// Orphans from `orphans=N` that are still running.
    orphans: Vec<u32>,
}

/// `check-zombies`: waits until every orphan has ended and been reaped, or
/// [`ZOMBIE_WAIT`] has passed, then reports the zombies left.
fn check_zombies() {
    let deadline = Instant::now() + ZOMBIE_WAIT;
    let scan = loop {
        let scan = match scan_processes() {
            Ok(scan) => scan,
            Err(error) => {
                say!("cannot read /proc: {error}");
                return;
            }
        };
        if (scan.zombies.is_empty() && scan.orphans.is_empty()) || Instant::now() >= deadline {
            break scan;
        }
        thread::sleep(ZOMBIE_POLL);
    };
    if scan.zombies.is_empty() {
        say!("zombies 0");
    } else {
        say!("zombies {}: {}", scan.zombies.len(), join(&scan.zombies));
    }
    if !scan.orphans.is_empty() {
        let (count, pids) = (scan.orphans.len(), join(&scan.orphans));
        say!("orphans still running {count}: {pids}");
    }
}

/// Space-joined numbers.
fn join(pids: &[u32]) -> String {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    pids.join(" ")
}

/// Looks at every /proc/<pid>/stat for zombies and running orphans.
fn scan_processes() -> io::Result<ProcessScan> {
    let me = std::process::id();
    let mut scan = ProcessScan::default();
    for entry in fs::read_dir("/proc")? {
        let Some(pid) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        // A process may end between read_dir and here: skip it.
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((state, parent)) = parse_stat(&stat) else {
            continue;
        };
        if state == 'Z' {
            if parent != me {
                scan.zombies.push(pid);
            }
        } else if is_orphan(pid) {
            scan.orphans.push(pid);
        }
    }
    scan.zombies.sort_unstable();
    scan.orphans.sort_unstable();
    Ok(scan)
}

/// The state letter and parent PID from a /proc/<pid>/stat line. The command
/// name in parentheses may hold spaces and parentheses, so parse after the
/// last `)`.
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// Whether the process is one of the orphans of `orphans=N`.
fn is_orphan(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| {
            cmdline
                .split(|&byte| byte == 0)
                .any(|arg| arg == ORPHAN_CHILD_FLAG.as_bytes())
        })
        .unwrap_or(false)
}

/// `poweroff`, `reboot`, `halt`: signals PID 1 as busybox init expects, then
/// sleeps until the init's SIGTERM ends us.
fn ask_init(request: InitRequest) -> ! {
    let signal = match request {
        InitRequest::Poweroff => Signal::USR2,
        InitRequest::Reboot => Signal::TERM,
        InitRequest::Halt => Signal::USR1,
    };
    say!("asking init to {}", request.name());
    if let Err(error) = kill_process(Pid::INIT, signal) {
        say!("cannot signal init: {error}");
    }
    sleep_forever();
}

/// `rss`: PID 1's resident set size, from /proc/1/status.
fn show_init_rss() {
    let status = match fs::read_to_string("/proc/1/status") {
        Ok(status) => status,
        Err(error) => {
            say!("cannot read /proc/1/status: {error}");
            return;
        }
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.split_whitespace().next())
    };
    // Anonymous: PID 1's heap, stack and data; shmem (in an initramfs, whose files are tmpfs
    // pages) and file: its binary's pages that are mapped, which are in RAM whether mapped or
    // not.
    match (
        field("VmRSS:"),
        field("RssAnon:"),
        field("RssFile:"),
        field("RssShmem:"),
    ) {
        (Some(rss), Some(anon), Some(file), Some(shmem)) => {
            say!("init rss {rss} kB (anon {anon} kB, file {file} kB, shmem {shmem} kB)")
        }
        (Some(rss), ..) => say!("init rss {rss} kB"),
        (None, ..) => say!("init rss unknown: no VmRSS in /proc/1/status"),
    }
}

/// `wait-mount=PATH`, `wait-unmount=PATH`: polls /proc/self/mounts (a hotplug test's way to
/// know the init acted) and says what it found.
fn wait_mount(path: &std::path::Path, mounted: bool) {
    let target = path.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let found = mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(target.as_str()));
        match (found, mounted) {
            (Some(line), true) => {
                let source = line.split(' ').next().unwrap_or("?");
                say!("{target} mounted from {source}");
                return;
            }
            (None, false) => {
                say!("{target} not mounted");
                return;
            }
            _ if Instant::now() >= deadline => {
                say!(
                    "gave up waiting for {target} to be {}",
                    if mounted { "mounted" } else { "unmounted" }
                );
                return;
            }
            _ => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `ls=PATH`: `demo: /dev/hwrng char 10:183 mode 0640 uid 0 gid 20`, or `link -> TARGET`.
fn describe_file(path: &std::path::Path) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(error) => {
            say!("{}: {error}", path.display());
            return;
        }
    };
    let kind = meta.file_type();
    let rdev = meta.rdev();
    let numbers = format!("{}:{}", rustix::fs::major(rdev), rustix::fs::minor(rdev));
    let what = if kind.is_symlink() {
        match fs::read_link(path) {
            Ok(target) => format!("link -> {}", target.display()),
            Err(error) => format!("link (unreadable: {error})"),
        }
    } else if kind.is_char_device() {
        format!("char {numbers}")
    } else if kind.is_block_device() {
        format!("block {numbers}")
    } else if kind.is_dir() {
        "directory".to_string()
    } else {
        "file".to_string()
    };
    say!(
        "{} {what} mode {:04o} uid {} gid {}",
        path.display(),
        meta.mode() & 0o7777,
        meta.uid(),
        meta.gid()
    );
}

/// `interactive`: runs the words typed on stdin, one a line, until EOF.
fn interactive() -> ! {
    wait_for_quiet_console();
    say!("type help, or poweroff to end");
    let stdin = io::stdin();
    // A terminal (the serial console) echoes what is typed; a pipe does not,
    // so echo it ourselves to keep the transcript one command a line.
    let echo = !stdin.is_terminal();
    let mut line = String::new();
    loop {
        {
            let mut out = io::stdout().lock();
            let _ = out.write_all(b"demo> ");
            let _ = out.flush();
        }
        line.clear();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let word = line.trim();
        if echo {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{word}");
            let _ = out.flush();
        }
        match args::parse(word) {
            _ if word.is_empty() => {}
            Ok(Action::Interactive) => say!("already interactive"),
            Ok(action) => run(action),
            Err(error) => report_parse_error(word, &error, true),
        }
    }
    // Keep the line after the prompt clean.
    let _ = io::stdout().write_all(b"\n");
    say!("end of input; waiting for init to stop us");
    sleep_forever();
}

/// Waits until the kernel's log has had no new record for [`QUIET`] (at most
/// [`QUIET_LIMIT`]): boxinit's lines and the kernel's share the console and are printed as
/// they are logged, so the prompt, printed after them, stays the console's last line. A box
/// that cannot read `/dev/kmsg` (not root) does not wait.
fn wait_for_quiet_console() {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::fs::{open, seek, Mode, OFlags, SeekFrom};
    let Ok(kmsg) = open(
        "/dev/kmsg",
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    // what was logged before now is on the console already
    let _ = seek(&kmsg, SeekFrom::End(0));
    let deadline = Instant::now() + QUIET_LIMIT;
    let mut record = vec![0u8; 8192];
    loop {
        let wait = QUIET.min(deadline.saturating_duration_since(Instant::now()));
        let timeout = Timespec::try_from(wait).ok();
        let mut fds = [PollFd::new(&kmsg, PollFlags::IN)];
        match poll(&mut fds, timeout.as_ref()) {
            // quiet for QUIET
            Ok(0) => return,
            Ok(_) => {}
            Err(_) => return,
        }
        // read what came (a record a read; EPIPE: records overwritten, read on; EAGAIN: done)
        loop {
            match rustix::io::read(&kmsg, &mut record) {
                Ok(0) => return,
                Ok(_) | Err(rustix::io::Errno::PIPE) => {}
                Err(_) => break,
            }
        }
        if Instant::now() >= deadline {
            return;
        }
    }
}

/// Sleeps until a signal ends the process.
fn sleep_forever() -> ! {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        assert_eq!(
            parse_stat("42 (box) Z 1 42 42 0 -1 4194564 0"),
            Some(('Z', 1))
        );
        assert_eq!(parse_stat("7 (a) b (c)) S 3 7 7 0 -1"), Some(('S', 3)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn addresses_from_fib_trie() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n\
                    \x20    |-- 10.0.2.15\n        /32 host LOCAL\n     |-- 127.0.0.1\n\
                    \x20       /32 host LOCAL\nLocal:\n     |-- 10.0.2.15\n        /32 host LOCAL\n";
        assert_eq!(local_addresses(trie), ["10.0.2.15"]);
        assert!(local_addresses("").is_empty());
    }

    #[test]
    fn join_pids() {
        assert_eq!(join(&[]), "");
        assert_eq!(join(&[3, 10, 200]), "3 10 200");
    }
}
