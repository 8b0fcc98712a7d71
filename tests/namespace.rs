//! PID-namespace tests: the real boxinit binary as PID 1 of `unshare --pid --fork --mount-proc
//! --mount --uts --ipc` (root needed, as in CI), with `BOXINIT_CONFIG` naming a test init.toml
//! (`[boot] device = "none"`, host programs as the box) and `BOXINIT_LOG=console`, so its log and
//! the box's output arrive on one pipe, in order. reboot(2) in a PID namespace ends the
//! namespace: the kernel kills its init with SIGHUP (restart) or SIGINT (power-off, halt), and
//! `unshare` dies of the same signal, which the tests read from its exit status.
//!
//! These tests fail, never skip, when they cannot run (not root, no `unshare`).
//!
//! Longer than 800 lines for one job: each test is a scenario of its own (a config, what to
//! do to the namespace, what must be seen), and they share the harness above them (`Ns`).

// Test helpers may panic: the no-panic lints are for the init (Cargo.toml).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pidns;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Where the tests keep their files: the target dir's scratch space, unless the init's early
/// mounts would hide it inside the namespace (a checkout under /tmp: boxinit mounts a fresh
/// tmpfs there, as it must for the box). Then a directory under /var/tmp, which no early
/// mount covers.
fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| pidns::scratch_root("namespace-tests"))
}

/// The boxinit binary as the namespace sees it: a copy in [`scratch_root`] when the build's
/// own is hidden by the init's mounts (the box runs it as `reboot`, `poweroff`).
fn bin() -> &'static str {
    const BUILT: &str = env!("CARGO_BIN_EXE_boxinit");
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let real = std::fs::canonicalize(BUILT).unwrap();
        if !boxinit::mounts::hidden_by_early_mounts(&real) {
            return BUILT.to_string();
        }
        let copy = scratch_root().join("boxinit");
        std::fs::create_dir_all(scratch_root()).unwrap();
        // Copied beside, then renamed: a test that runs the copy never sees half a file.
        let part = scratch_root().join(format!("boxinit.{}", std::process::id()));
        std::fs::copy(BUILT, &part).unwrap();
        std::fs::rename(&part, &copy).unwrap();
        copy.display().to_string()
    })
}
const SIGHUP: i32 = 1;
const SIGINT: i32 = 2;

/// One namespace at a time: the timing tests must not compete with a 10,000-orphan storm on a
/// two-core machine.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running namespace: its `unshare` process, the merged output so far, its files.
struct Ns {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    /// The thread reading the output: it ends at end of file, once every process of the
    /// namespace is gone.
    reader: Option<std::thread::JoinHandle<()>>,
    dir: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

/// A scratch directory for `name` (outside /tmp and /run: the init mounts tmpfs there).
fn scratch(name: &str) -> PathBuf {
    let dir = scratch_root().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Ns {
    /// Boots boxinit with `config` (`@DIR@` is replaced by the scratch dir, `@BIN@` by the
    /// boxinit binary).
    fn start(name: &str, config: &str) -> Ns {
        let serial = serial();
        let dir = scratch(name);
        Ns::start_in(dir, config, serial)
    }

    fn start_in(dir: PathBuf, config: &str, serial: MutexGuard<'static, ()>) -> Ns {
        Ns::start_with(dir, config, None, serial)
    }

    /// As [`start`](Self::start), with a shell `prelude` run as PID 1 inside the namespace
    /// before it execs boxinit (which stays PID 1): for mounts the test needs.
    fn start_with(
        dir: PathBuf,
        config: &str,
        prelude: Option<&str>,
        serial: MutexGuard<'static, ()>,
    ) -> Ns {
        let config_path = dir.join("init.toml");
        std::fs::write(&config_path, expand(config, &dir)).unwrap();
        let (reader, writer) = std::io::pipe().unwrap();
        let mut args: Vec<String> = Vec::new();
        match prelude {
            Some(script) => args.extend([
                "/bin/sh".to_string(),
                "-c".to_string(),
                format!("{}; exec {}", expand(script, &dir), bin()),
            ]),
            None => args.push(bin().to_string()),
        }
        let mut child = pidns::unshare()
            .args(&args)
            .env("BOXINIT_CONFIG", &config_path)
            .stdin(Stdio::piped())
            .stdout(writer.try_clone().unwrap())
            .stderr(writer)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run unshare (util-linux) for the PID-namespace tests: {e}; install util-linux and run as root"));
        let stdin = child.stdin.take();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        Ns {
            child,
            stdin,
            reader: Some(reader),
            lines,
            dir,
            _serial: serial,
        }
    }

    fn transcript(&self) -> String {
        let lines = self.lines.lock().unwrap();
        lines.iter().map(|(_, l)| format!("{l}\n")).collect()
    }

    /// Lines containing `pattern`, with when they arrived.
    fn matching(&self, pattern: &str) -> Vec<(Instant, String)> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter(|(_, l)| l.contains(pattern))
            .cloned()
            .collect()
    }

    fn count(&self, pattern: &str) -> usize {
        self.matching(pattern).len()
    }

    /// Waits until `n` lines contain `pattern`.
    fn wait_for_n(&mut self, pattern: &str, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.count(pattern) < n {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "timed out after {limit:?} waiting for {n} line(s) with {pattern:?}; output so far:\n{}",
                    self.transcript()
                );
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                if self.count(pattern) >= n {
                    return;
                }
                panic!(
                    "the namespace ended ({status}) before {n} line(s) with {pattern:?}; output:\n{}",
                    self.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_for(&mut self, pattern: &str) {
        self.wait_for_n(pattern, 1, Duration::from_secs(20));
    }

    /// Waits for the namespace to end; returns its status and the whole output.
    fn wait_end(&mut self, limit: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines: it ends at end of file (a fixed
                // pause was too short on a loaded machine). A process of the namespace that
                // outlived it cannot hold the pipe open: the namespace's end killed them all.
                let reader = self.reader.take();
                let until = Instant::now() + Duration::from_secs(10);
                if let Some(reader) = reader {
                    while !reader.is_finished() && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                return (status, self.transcript());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the namespace did not end within {limit:?}; output:\n{}",
                    self.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The host pid of the namespace's PID 1 (unshare's only child).
    fn init_pid(&self) -> i32 {
        let pid = self.child.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            if let Some(first) = children.split_whitespace().next() {
                return first.parse().unwrap();
            }
            assert!(Instant::now() < deadline, "unshare has no child");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.init_pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    fn type_in(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// PID 1's open fds and VmRSS (kB) at rest: the least of a few samples, since a spawn in
    /// progress holds a pipe for a moment.
    fn settled_fds_and_rss(&self) -> (usize, u64) {
        // The least of many samples: a restart under way holds its exec pipe open for a
        // moment, and under load (a busy CI machine) 20 samples all caught one.
        (0..100)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(5));
                self.init_fds_and_rss()
            })
            .fold((usize::MAX, u64::MAX), |(f, r), (f2, r2)| {
                (f.min(f2), r.min(r2))
            })
    }

    /// PID 1's open fds and VmRSS (kB), read from the host.
    fn init_fds_and_rss(&self) -> (usize, u64) {
        let pid = self.init_pid();
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        (fds, rss)
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGKILL to the namespace's init ends everything in it.
            if let Ok(children) =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.child.id()))
            {
                for pid in children.split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn expand(text: &str, dir: &Path) -> String {
    text.replace("@DIR@", &dir.display().to_string())
        .replace("@BIN@", bin())
}

/// A config whose box is `/bin/sh -c SCRIPT`; `extra` is more TOML for `[box]` and after.
fn sh_box(script: &str, extra: &str) -> String {
    format!(
        "[boot]\ndevice = \"none\"\n[modules]\ncoldplug = false\n[shutdown]\ngrace = \"1s\"\n[box]\npath = \"/bin/sh\"\nargs = [\"-c\", {script:?}]\n{extra}\n"
    )
}

fn assert_ended_by(status: ExitStatus, signal: i32, output: &str) {
    assert_eq!(
        status.signal(),
        Some(signal),
        "expected the namespace to end by signal {signal} (reboot(2) in a PID namespace), got {status}; output:\n{output}"
    );
}

/// Asserts `needles` appear in `haystack` in this order.
fn assert_in_order(haystack: &str, needles: &[&str]) {
    let mut rest = haystack;
    for needle in needles {
        match rest.find(needle) {
            Some(at) => rest = &rest[at + needle.len()..],
            None => panic!("{needle:?} missing or out of order in:\n{haystack}"),
        }
    }
}

#[test]
fn exit_actions_end_the_machine_as_configured() {
    // (on_exit, how the namespace ends, what init says last)
    let table = [
        ("poweroff", SIGINT, "powering off"),
        ("reboot", SIGHUP, "rebooting"),
        ("halt", SIGINT, "halting"),
    ];
    for (action, signal, last) in table {
        let config = sh_box(
            "echo box-ran",
            &format!("restart = \"never\"\non_exit = \"{action}\""),
        );
        let mut ns = Ns::start(&format!("exit-{action}"), &config);
        let (status, out) = ns.wait_end(Duration::from_secs(20));
        assert_ended_by(status, signal, &out);
        assert_in_order(
            &out,
            &[
                "no boot partition",
                "box-ran",
                "will not be restarted (restart = \"never\")",
                "shutdown: synced",
                last,
            ],
        );
        assert_eq!(out.matches("box-ran").count(), 1, "{out}");
    }
}

#[test]
fn on_exit_wait_keeps_the_machine_up_until_a_signal() {
    let config = sh_box("echo box-ran", "restart = \"never\"\non_exit = \"wait\"");
    let mut ns = Ns::start("exit-wait", &config);
    ns.wait_for("waiting (on_exit = \"wait\")");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        ns.child.try_wait().unwrap().is_none(),
        "init ended while waiting"
    );
    ns.signal("TERM");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
}

#[test]
fn on_exit_shell_runs_a_shell_on_the_console() {
    let config = sh_box("exit 3", "restart = \"on-failure\"\ncrash_loop = { max = 1, within = \"1m\", action = \"shell\" }\nbackoff = { initial = \"100ms\" }");
    let mut ns = Ns::start("exit-shell", &config);
    ns.wait_for("starting a shell");
    ns.type_in("echo shell-says-$((6*7))\nexit\n");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    // The shell exits: the machine reboots.
    assert_ended_by(status, SIGHUP, &out);
    assert_in_order(
        &out,
        &[
            "crash loop, more than 1 restarts",
            "starting a shell",
            "shell-says-42",
            "shell /bin/sh exited with status 0",
            "rebooting",
        ],
    );
}

#[test]
fn signals_follow_busybox_conventions() {
    let mounts_before = std::fs::read_to_string("/proc/self/mounts").unwrap();
    // (signal, how the namespace ends, what init says)
    let table = [
        ("TERM", SIGHUP, "rebooting"),
        ("INT", SIGHUP, "rebooting"),
        ("USR1", SIGINT, "halting"),
        ("PWR", SIGINT, "halting"),
        ("USR2", SIGINT, "powering off"),
    ];
    for (signal, ends_by, says) in table {
        let config = sh_box("echo box-up; exec sleep 1000", "");
        let mut ns = Ns::start(&format!("signal-{signal}"), &config);
        ns.wait_for("box-up");
        ns.signal(signal);
        let (status, out) = ns.wait_end(Duration::from_secs(20));
        assert_ended_by(status, ends_by, &out);
        assert_in_order(
            &out,
            &[
                &format!("received SIG{signal}"),
                "shutdown: box stopped",
                says,
            ],
        );
    }
    // Ctrl-Alt-Del's action is configurable.
    let config = sh_box(
        "echo box-up; exec sleep 1000",
        "[system]\nctrl_alt_del = \"poweroff\"",
    );
    let mut ns = Ns::start("signal-cad-poweroff", &config);
    ns.wait_for("box-up");
    ns.signal("INT");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGINT, &out);
    assert_in_order(&out, &["ctrl_alt_del = \"poweroff\"", "powering off"]);
    drop(ns);
    // The init's mounts stayed in its own mount namespace.
    assert_eq!(
        std::fs::read_to_string("/proc/self/mounts").unwrap(),
        mounts_before
    );
}

#[test]
fn reboot_tools_signal_init_or_act_at_once() {
    // Without -f: an orderly shutdown; with -f: no process is asked to stop, but the file
    // systems are synced and unmounted before reboot(2), from the box.
    let config = sh_box("exec @BIN@ poweroff", "");
    let mut ns = Ns::start("tool-poweroff", &config);
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGINT, &out);
    assert_in_order(
        &out,
        &["received SIGUSR2", "shutdown: synced", "powering off"],
    );

    let config = sh_box("exec @BIN@ reboot -f", "");
    drop(ns);
    let mut ns = Ns::start("tool-reboot-f", &config);
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
    assert!(
        !out.contains("received SIG") && !out.contains("stopped after"),
        "reboot -f must not shut down in order:\n{out}"
    );
    assert_in_order(&out, &["shutdown: synced", "shutdown: unmounted /tmp"]);
}

#[test]
fn restart_policy_and_backoff_timing() {
    // always: a clean exit is restarted too.
    let config = sh_box(
        "echo run",
        "restart = \"always\"\nbackoff = { initial = \"200ms\", max = \"800ms\", reset_after = \"1m\" }",
    );
    let mut ns = Ns::start("backoff", &config);
    ns.wait_for_n("run", 6, Duration::from_secs(30));
    ns.signal("TERM");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
    let runs: Vec<Instant> = ns
        .matching("run")
        .into_iter()
        .filter(|(_, l)| l == "run")
        .map(|(t, _)| t)
        .collect();
    let want = [200, 400, 800, 800, 800];
    for (i, expected) in want.iter().enumerate() {
        let gap = runs[i + 1].duration_since(runs[i]).as_millis() as u64;
        assert!(
            // The lines' arrival times carry the reader thread's scheduling noise on a loaded
            // machine (one came 24 ms late once): a margin below, a larger one above.
            gap + 60 >= *expected && gap < expected + 400,
            "restart {} came after {gap}ms, expected about {expected}ms; output:\n{out}",
            i + 1
        );
    }
    // reset_after: a run that lasted long enough counts as healthy, the delay starts over.
    drop(ns);
    let config = sh_box(
        "n=$(cat @DIR@/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > @DIR@/count; echo start-$n; [ $n -eq 3 ] && sleep 0.7; exit 1",
        "restart = \"always\"\nbackoff = { initial = \"400ms\", max = \"10s\", reset_after = \"500ms\" }",
    );
    let mut ns = Ns::start("backoff-reset", &config);
    ns.wait_for("start-4");
    let start = |n: u32| ns.matching(&format!("start-{n}"))[0].0;
    let (third, fourth) = (start(3), start(4));
    ns.signal("TERM");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
    // 700 ms of run, then the initial 400 ms again (not 1600 ms, the doubled delay).
    let gap = fourth.duration_since(third).as_millis();
    assert!(
        (1080..1500).contains(&gap),
        "run 4 started {gap}ms after run 3, expected about 1100ms (a reset backoff); output:\n{out}"
    );
    // on-failure: a clean exit is final.
    let config = sh_box(
        "echo once",
        "restart = \"on-failure\"\non_exit = \"poweroff\"",
    );
    drop(ns);
    let mut ns = Ns::start("on-failure", &config);
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGINT, &out);
    assert_eq!(out.matches("once").count(), 1, "{out}");
}

/// Issue 17: `backoff = "0s"` is raised to the floor (100 ms), said once: a box that exits at
/// once restarts about ten times a second, not in a tight loop (thousands a second before).
#[test]
fn a_zero_backoff_is_raised_to_the_floor() {
    let config = sh_box(
        "exit 1",
        "restart = \"always\"\nbackoff = { initial = \"0s\", max = \"0s\" }",
    );
    let mut ns = Ns::start("backoff-floor", &config);
    ns.wait_for("box: backoff below the floor of 100ms (initial 0s, max 0s)");
    ns.wait_for("started box");
    let first = ns.count("started box");
    std::thread::sleep(Duration::from_secs(2));
    let starts = ns.count("started box") - first;
    ns.signal("TERM");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
    assert!(
        (5..=21).contains(&starts),
        "{starts} starts in 2 s at the 100 ms floor; output:\n{out}"
    );
}

#[test]
fn crash_loop_limit_takes_its_action() {
    let config = sh_box(
        "echo crashing; kill -SEGV $$",
        "restart = \"always\"\nbackoff = { initial = \"100ms\", max = \"100ms\" }\ncrash_loop = { max = 3, within = \"10s\", action = \"halt\" }",
    );
    let mut ns = Ns::start("crash-loop", &config);
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGINT, &out);
    // The first run and three restarts, then the action.
    assert_eq!(out.matches("crashing").count(), 4, "{out}");
    assert_in_order(
        &out,
        &[
            "was killed by SIGSEGV",
            "crash loop, more than 3 restarts within 10s: halt",
            "halting",
        ],
    );
}

#[test]
fn shutdown_stops_services_then_kills_what_ignores_sigterm() {
    let config = "[boot]\ndevice = \"none\"\n[modules]\ncoldplug = false\n[shutdown]\ngrace = \"300ms\"\n\
        [box]\npath = \"/bin/sh\"\nargs = [\"-c\", \"trap 'echo box-got-TERM; exit 0' TERM; echo box-ready; while :; do sleep 0.05; done\"]\n\
        [[service]]\nname = \"stubborn\"\npath = \"/bin/sh\"\nargs = [\"-c\", \"trap '' TERM; echo stubborn-ready; exec sleep 1000\"]\n";
    let mut ns = Ns::start("shutdown-order", config);
    ns.wait_for("box-ready");
    ns.wait_for("stubborn-ready");
    ns.signal("TERM");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
    assert_in_order(
        &out,
        &[
            "received SIGTERM",
            "box-got-TERM",
            "shutdown: box stopped",
            "shutdown: stubborn still running",
            "shutdown: killed 1 process(es) still running after SIGTERM: ",
            "(sleep)",
            "shutdown: synced in",
            "shutdown: unmounted /tmp in",
            "shutdown: done in",
            "rebooting",
        ],
    );
}

#[test]
fn services_start_in_order_each_in_its_own_session() {
    let script = "echo $1 pid=$$ sid=$(cut -d' ' -f6 /proc/$$/stat) pgid=$(cut -d' ' -f5 /proc/$$/stat); exec sleep 1000";
    let config = format!(
        "[boot]\ndevice = \"none\"\n[modules]\ncoldplug = false\n[box]\npath = \"/bin/sh\"\nargs = [\"-c\", {script:?}, \"sh\", \"box\"]\n\
         [[service]]\nname = \"one\"\npath = \"/bin/sh\"\nargs = [\"-c\", {script:?}, \"sh\", \"one\"]\n\
         [[service]]\nname = \"two\"\npath = \"/bin/sh\"\nargs = [\"-c\", {script:?}, \"sh\", \"two\"]\n"
    );
    let mut ns = Ns::start("services", &config);
    for name in ["box pid", "one pid", "two pid"] {
        ns.wait_for(name);
    }
    ns.signal("TERM");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
    assert_in_order(&out, &["started box", "started one", "started two"]);
    for line in out.lines().filter(|l| l.contains(" pid=")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let pid = fields[1].trim_start_matches("pid=");
        assert_eq!(fields[2], format!("sid={pid}"), "{line}");
        assert_eq!(fields[3], format!("pgid={pid}"), "{line}");
    }
}

#[test]
fn process_setup_ids_umask_rlimits_env_cwd() {
    let script = "echo ids uid=$(id -u) gid=$(id -g) groups=\"$(id -G)\"; echo umask=$(umask); \
                  echo nofile=$(ulimit -n); grep NoNewPrivs /proc/self/status; echo cwd=$(pwd); \
                  echo env: $(env | sort | tr '\\n' ' ')";
    let config = sh_box(
        script,
        "restart = \"never\"\non_exit = \"poweroff\"\nuser = 1000\ngroup = 1001\ngroups = [1001, 5, 20]\n\
         umask = \"027\"\nrlimits = { nofile = 256 }\nno_new_privs = true\nworking_dir = \"/proc\"\nenv = { FOO = \"bar\" }",
    );
    let mut ns = Ns::start("setup", &config);
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGINT, &out);
    assert!(
        out.contains("ids uid=1000 gid=1001 groups=\"1001 5 20\"")
            || out.contains("ids uid=1000 gid=1001 groups=1001 5 20"),
        "{out}"
    );
    assert!(out.contains("umask=0027"), "{out}");
    assert!(out.contains("nofile=256"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("cwd=/proc"), "{out}");
    let env = out.lines().find(|l| l.starts_with("env:")).unwrap();
    assert!(
        env.contains("FOO=bar") && env.contains("HOME=/") && env.contains("PATH="),
        "{env}"
    );
    // A clean environment: nothing of init's own (BOXINIT_CONFIG, BOXINIT_LOG) leaks in.
    assert!(!env.contains("BOXINIT"), "{env}");
}

#[test]
fn a_bad_console_is_a_failed_start() {
    let config = sh_box(
        "echo box-ran-anyway",
        "restart = \"never\"\non_exit = \"poweroff\"\nconsole = \"/nonexistent/tty\"",
    );
    let mut ns = Ns::start("bad-console", &config);
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGINT, &out);
    assert!(
        out.contains("cannot start box /bin/sh: No such file or directory"),
        "{out}"
    );
    assert!(!out.contains("box-ran-anyway"), "{out}");
}

#[test]
fn exec_mode_with_a_box_that_cannot_run_still_reboots() {
    // The box runs as another user: PID 1 must find out that it cannot run before it gives up
    // root, or it cannot reboot afterwards and the machine hangs.
    let exec_as_nobody = |path: &str, args: &str| {
        format!(
            "[boot]\ndevice = \"none\"\n[modules]\ncoldplug = false\n[system]\nrescue = \"reboot\"\nrescue_delay = \"0s\"\n\
             [box]\nmode = \"exec\"\nuser = 65534\ngroup = 65534\npath = \"{path}\"\nargs = {args}\n"
        )
    };
    let config = exec_as_nobody("/nonexistent/box", "[]");
    let mut ns = Ns::start("exec-missing", &config);
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
    assert_in_order(
        &out,
        &[
            "cannot boot: /nonexistent/box does not exist",
            "rescue: Restart",
            "rebooting",
        ],
    );
    // An execve that fails after the setup (an argument over the kernel's 128 KiB limit:
    // E2BIG, which no check looks for): PID 1 takes root back and reboots.
    let huge = format!("[\"-c\", \"true\", \"{}\"]", "x".repeat(200 * 1024));
    let config = exec_as_nobody("/bin/sh", &huge);
    drop(ns);
    let mut ns = Ns::start("exec-e2big", &config);
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
    assert_in_order(
        &out,
        &[
            "cannot boot: cannot exec /bin/sh: Argument list too long",
            "rescue: Restart",
            "rebooting",
        ],
    );
    assert!(!out.contains("reboot(Restart) failed"), "{out}");
}

#[test]
fn exec_mode_hands_pid_1_to_the_box() {
    let config = sh_box("echo box-is-pid-$$; exit 7", "mode = \"exec\"");
    let mut ns = Ns::start("exec", &config);
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert!(out.contains("box-is-pid-1"), "{out}");
    assert_eq!(status.code(), Some(7), "{out}");
}

#[test]
fn sighup_restarts_what_changed_and_keeps_the_rest() {
    let service = |name: &str| {
        format!("[[service]]\nname = \"{name}\"\npath = \"/bin/sh\"\nargs = [\"-c\", \"echo {name}-up; exec sleep 1000\"]\n")
    };
    let config = |version: &str, services: &[&str]| {
        let mut text = format!(
            "[boot]\ndevice = \"none\"\n[modules]\ncoldplug = false\n[box]\npath = \"/bin/sh\"\nargs = [\"-c\", \"echo box-{version}; exec sleep 1000\"]\n"
        );
        for name in services {
            text.push_str(&service(name));
        }
        text
    };
    let mut ns = Ns::start("reload", &config("v1", &["steady"]));
    ns.wait_for("box-v1");
    ns.wait_for("steady-up");
    // The box changes, a service is added, the other is left as it was.
    std::fs::write(
        ns.dir.join("init.toml"),
        config("v2", &["steady", "newbie"]),
    )
    .unwrap();
    ns.signal("HUP");
    ns.wait_for("box-v2");
    ns.wait_for("newbie-up");
    // A service removed from the file is stopped and not started again.
    std::fs::write(ns.dir.join("init.toml"), config("v2", &["newbie"])).unwrap();
    ns.signal("HUP");
    ns.wait_for("steady /bin/sh was killed by SIGTERM");
    ns.signal("TERM");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
    assert_in_order(
        &out,
        &[
            "received SIGHUP",
            "box: configuration changed, stopping it",
            "was killed by SIGTERM",
            "box: starting it with the new configuration",
            "box-v2",
        ],
    );
    assert_in_order(
        &out,
        &["newbie: new in the configuration, starting it", "newbie-up"],
    );
    assert_eq!(
        out.matches("steady-up").count(),
        1,
        "steady was restarted:\n{out}"
    );
    assert_eq!(
        out.matches("box-v2").count(),
        1,
        "an unchanged box was restarted:\n{out}"
    );
    assert_eq!(out.matches("newbie-up").count(), 1, "{out}");
}

/// Issue 17, item 11: a SIGHUP whose reading hangs (the config file became a FIFO nobody
/// writes: a hung card's read) no longer stops the loop: orphans are still reaped, a second
/// SIGHUP is noted, a slow reload is named, and SIGTERM still reboots. (The reading once ran
/// on the loop, which then never woke again.)
#[test]
fn a_reload_whose_reading_hangs_leaves_the_loop_running() {
    let config = sh_box(
        "while true; do (sleep 0.05 &); echo beat; sleep 0.1; done",
        "",
    );
    let mut ns = Ns::start("reload-hung", &config);
    ns.wait_for("beat");
    let file = ns.dir.join("init.toml");
    std::fs::remove_file(&file).unwrap();
    let made = Command::new("mkfifo").arg(&file).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    ns.signal("HUP");
    ns.wait_for("re-reading the configuration");
    let beats = ns.count("beat");
    std::thread::sleep(Duration::from_secs(1));
    ns.signal("HUP");
    ns.wait_for("while the last reload is still reading");
    ns.wait_for("reload: still reading the configuration after");
    assert!(ns.count("beat") > beats + 5, "the box stopped");
    // Orphans die every 100 ms: zombies pile up unless the loop reaps them.
    let init = ns.init_pid();
    let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap();
    let zombies = children
        .split_whitespace()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        })
        .count();
    assert!(zombies <= 3, "{zombies} zombies: the loop is not reaping");
    ns.signal("TERM");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
}

#[test]
fn early_failure_takes_the_rescue_action() {
    // No boot partition appears, so there is no box to run: rescue. (A relative box path with
    // `device = "none"` is a config error now, which ignores that file instead.)
    let config = "[boot]\ndevice = \"LABEL=NO-SUCH\"\ntimeout = \"100ms\"\n[modules]\ncoldplug = false\n[system]\nrescue = \"poweroff\"\nrescue_delay = \"0s\"\n";
    let mut ns = Ns::start("rescue-poweroff", config);
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGINT, &out);
    assert_in_order(
        &out,
        &[
            "cannot boot: no boot partition, so no box to run",
            "rescue: PowerOff",
            "powering off",
        ],
    );

    let config = "[boot]\ndevice = \"LABEL=NO-SUCH\"\ntimeout = \"100ms\"\n[modules]\ncoldplug = false\n[system]\nrescue = \"shell\"\n";
    drop(ns);
    let mut ns = Ns::start("rescue-shell", config);
    ns.wait_for("rescue: a shell on the console");
    ns.type_in("echo rescue-shell-$((1+1))\nexit\n");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
    assert_in_order(&out, &["rescue-shell-2", "rebooting"]);
}

#[test]
fn watchdog_is_petted_only_while_the_box_beats_and_closed_on_shutdown() {
    let serial = serial();
    let dir = scratch("watchdog");
    // A plain file stands in for /dev/watchdog: each pet appends a byte, the magic close a 'V'.
    let device = dir.join("watchdog");
    std::fs::write(&device, "").unwrap();
    let config = sh_box(
        "echo beating; for i in 1 2 3 4 5 6 7 8; do touch $BOXINIT_HEARTBEAT; sleep 0.2; done; echo heartbeat-stopped; exec sleep 1000",
        "[watchdog]\ndevice = \"@DIR@/watchdog\"\ntimeout = \"1s\"\nheartbeat = \"800ms\"",
    );
    let mut ns = Ns::start_in(dir, &config, serial);
    ns.wait_for("heartbeat-stopped");
    let petted = std::fs::metadata(&device).unwrap().len();
    assert!(petted >= 2, "only {petted} pets while the box was beating");
    ns.wait_for("no heartbeat from the box for 800ms");
    let starved = std::fs::metadata(&device).unwrap().len();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        std::fs::metadata(&device).unwrap().len(),
        starved,
        "petted without a heartbeat"
    );
    ns.signal("TERM");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
    let bytes = std::fs::read(&device).unwrap();
    assert_eq!(bytes.last(), Some(&b'V'), "no magic close:\n{out}");
    assert_in_order(
        &out,
        &[
            "watchdog: ",
            "armed, timeout 1s",
            "no heartbeat",
            "disarmed (magic close)",
            "rebooting",
        ],
    );
}

#[test]
fn watchdog_is_petted_through_a_grace_period_longer_than_its_timeout() {
    let serial = serial();
    let dir = scratch("watchdog-grace");
    let device = dir.join("watchdog");
    std::fs::write(&device, "").unwrap();
    // The box finishes its work for 3 s after SIGTERM; the watchdog's timeout is 1 s.
    let config = sh_box(
        "trap 'echo term-held; sleep 3; echo work-done; exit 0' TERM; echo box-up; while :; do sleep 0.1; done",
        "[watchdog]\ndevice = \"@DIR@/watchdog\"\ntimeout = \"1s\"",
    )
    .replace("grace = \"1s\"", "grace = \"10s\"");
    let mut ns = Ns::start_in(dir, &config, serial);
    ns.wait_for("box-up");
    ns.signal("TERM");
    ns.wait_for("term-held");
    // Sample the pets (one byte each) while the box holds the shutdown up.
    let mut sizes = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        sizes.push((start.elapsed(), std::fs::metadata(&device).unwrap().len()));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, out) = ns.wait_end(Duration::from_secs(30));
    assert_ended_by(status, SIGHUP, &out);
    // Never a second without a pet: the longest stretch of one size stays under the timeout.
    let mut longest = Duration::ZERO;
    let mut since = Duration::ZERO;
    for pair in sizes.windows(2) {
        if pair[1].1 != pair[0].1 {
            since = pair[1].0;
        }
        longest = longest.max(pair[1].0 - since);
    }
    assert!(
        longest < Duration::from_millis(1000),
        "no pet for {longest:?} during the grace period; sizes {sizes:?}\n{out}"
    );
    assert_eq!(std::fs::read(&device).unwrap().last(), Some(&b'V'));
    assert_in_order(
        &out,
        &[
            "work-done",
            "shutdown: box stopped after",
            "disarmed (magic close)",
            "rebooting",
        ],
    );
}

#[test]
fn shutdown_names_who_holds_a_mount_it_cannot_unmount() {
    // PID 1 itself holds a file on a mount of its own: the watchdog "device" (a plain file).
    let serial = serial();
    let dir = scratch("held-mount");
    std::fs::create_dir_all(dir.join("held")).unwrap();
    let config = sh_box(
        "echo box-up; exec sleep 1000",
        "[watchdog]\ndevice = \"@DIR@/held/watchdog\"\ntimeout = \"10s\"",
    );
    let prelude = "mount -t tmpfs held @DIR@/held && : > @DIR@/held/watchdog";
    let mut ns = Ns::start_with(dir.clone(), &config, Some(prelude), serial);
    ns.wait_for("box-up");
    ns.signal("TERM");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
    let held = format!(
        "shutdown: cannot unmount {}/held (Device or resource busy (os error 16), held by 1 (boxinit))",
        dir.display()
    );
    assert_in_order(&out, &[&held, "rebooting"]);
}

#[test]
fn stress_ten_thousand_orphans_are_reaped() {
    // Each orphan is a grandchild whose parent exits at once, so PID 1 must reap it.
    let script = "sh -c 'i=0; while [ $i -lt 10000 ]; do ( ( exit 0 ) & ); i=$((i+1)); done'; \
                  echo orphans-made; exec sleep 1000";
    let config = format!("[system]\nlog_level = \"debug\"\n{}", sh_box(script, ""));
    let mut ns = Ns::start("orphans", &config);
    ns.wait_for_n("reaped orphan pid", 10_000, Duration::from_secs(60));
    ns.wait_for("orphans-made");
    std::thread::sleep(Duration::from_millis(200));
    // None left, not even a zombie: PID 1's only child is the box.
    let init = ns.init_pid();
    let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap();
    assert_eq!(
        children.split_whitespace().count(),
        1,
        "children of PID 1: {children}"
    );
    ns.signal("TERM");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
    assert_eq!(out.matches("reaped orphan pid").count(), 10_000);
}

#[test]
fn stress_a_thousand_restarts_leak_no_fds_and_no_memory() {
    // Restarts wait at least 100 ms (issue 17: no tight loop at `backoff = "0s"`), so ten
    // programs exit at once side by side: about 100 restarts a second through PID 1.
    let services: String = (0..9)
        .map(|n| {
            format!(
                "[[service]]\nname = \"crash{n}\"\npath = \"/bin/sh\"\nargs = [\"-c\", \"exit 1\"]\n\
                 restart = \"always\"\nbackoff = {{ initial = \"100ms\", max = \"100ms\" }}\n"
            )
        })
        .collect();
    let config = sh_box(
        "exit 1",
        &format!("restart = \"always\"\nbackoff = {{ initial = \"100ms\", max = \"100ms\" }}\n{services}"),
    );
    let mut ns = Ns::start("restarts", &config);
    // Warm up first: PID 1's heap grows over the first thousand restarts and then stays
    // (measured: +64 kB from restart 500 to 1500, then not one kB more up to 10500).
    let started = "/bin/sh (pid ";
    ns.wait_for_n(started, 1500, Duration::from_secs(60));
    let (fds_before, rss_before) = ns.settled_fds_and_rss();
    ns.wait_for_n(started, 2500, Duration::from_secs(60));
    let (fds_after, rss_after) = ns.settled_fds_and_rss();
    ns.signal("TERM");
    let (status, out) = ns.wait_end(Duration::from_secs(20));
    assert_ended_by(status, SIGHUP, &out);
    assert_eq!(fds_after, fds_before, "PID 1 leaks fds");
    // A page or two of allocator slack, not growth per restart (1000 restarts would show MBs).
    println!("PID 1: {fds_before} -> {fds_after} fds, VmRSS {rss_before} -> {rss_after} kB");
    assert!(
        rss_after <= rss_before + 64,
        "PID 1's VmRSS grew from {rss_before} kB to {rss_after} kB over 1000 restarts"
    );
}
