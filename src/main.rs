//! boxinit: a PID 1 for an initramfs. This file is the boot sequence, one step per line, and
//! the only place that ends the machine. As any other pid it is a multi-call tool: `modprobe`
//! (for the kernel's request_module), `reboot`/`poweroff`/`halt`, and `boxinit check FILE`.

use boxinit::config::files::{
    early_config_layers, load_config, read_capped, read_layer, reload_early_layers,
    with_boot_layer, BOOT_DIR,
};
use boxinit::config::{self, cmdline, Config, DeviceSpec, Layer, Place};
use boxinit::devices::{hotplug, modules};
use boxinit::events::{self, Events};
use boxinit::field::{self, Card};
use boxinit::kmsg;
use boxinit::mounts;
use boxinit::net;
use boxinit::storage::bootpart;
use boxinit::storage::extras::Extras;
use boxinit::supervision::event_loop::{Judge, NoJudge, Stop};
use boxinit::supervision::last_resort::LastResort;
use boxinit::supervision::program::{self, Program};
use boxinit::supervision::relay::Relay;
use boxinit::supervision::reload::{ReadConfig, Reload};
use boxinit::supervision::supervisor::Supervisor;
use boxinit::supervision::{cover, event_loop, exec, shutdown, watchdog};
use boxinit::sys::{linux::Linux, Reboot, Sys};
use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

// The static release build has no unwinder: see the file.
#[cfg(all(panic = "abort", target_env = "musl"))]
mod no_unwinder;

/// `BOXINIT_LOG=console`: log to stderr (init's console) instead of `/dev/kmsg`, and leave
/// the kernel's printk settings alone. For PID namespaces, whose kmsg is the host's.
const LOG_ENV: &str = "BOXINIT_LOG";

fn main() {
    // As OS strings: the kernel gives PID 1 the command line's bare words as they were
    // written, and `std::env::args()` panics on one that is not UTF-8 (before any hook).
    let args: Vec<OsString> = std::env::args_os().collect();
    if rustix::process::getpid().is_init() {
        // An exec'd box (`mode = "exec"`) whose shell execs `poweroff` as its last command
        // makes this binary PID 1 under that name: there is no init left to ask, so it acts
        // at once, as with `-f`, instead of booting again.
        if let Some(tool @ ("reboot" | "poweroff" | "halt")) = tool_name(&args) {
            std::process::exit(signal_init(tool, &["-f".to_string()]));
        }
        boot();
    }
    std::process::exit(multicall(&args));
}

/// The name this binary was started as: argv[0]'s file name.
fn tool_name(args: &[OsString]) -> Option<&str> {
    args.first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|name| name.to_str())
}

/// Not PID 1: act as the tool named by argv[0] (or argv[1]).
fn multicall(args: &[OsString]) -> i32 {
    let argv0 = tool_name(args).unwrap_or("");
    let rest = args.get(1..).unwrap_or_default();
    let tool_with =
        |args: &[OsString], run: &dyn Fn(&[String]) -> i32| match boxinit::utf8_args(args) {
            Some(args) => run(&args),
            None => {
                eprintln!("{argv0}: an argument is not UTF-8 text");
                2
            }
        };
    let tool = |run: &dyn Fn(&[String]) -> i32| tool_with(rest, run);
    match argv0 {
        "modprobe" => tool(&|rest| modules::modprobe_main(rest)),
        "reboot" | "poweroff" | "halt" => tool(&|rest| signal_init(argv0, rest)),
        _ => match rest.first().and_then(|a| a.to_str()) {
            Some("check") => check_config(rest.get(1..).unwrap_or_default()),
            Some("modprobe" | "reboot" | "poweroff" | "halt") => multicall(rest),
            _ => {
                eprintln!("boxinit: runs as PID 1 (the /init of an initramfs).\nusage: boxinit check [--builtin] FILE    validate an init.toml\n       boxinit modprobe|reboot|poweroff|halt ...\nthe network programs (dhcp, static, time, wifi) are the binary boxinit-net beside it");
                2
            }
        },
    }
}

/// `reboot`, `poweroff`, `halt`: ask PID 1, the way busybox init understands too; with `-f`,
/// act at once: sync and `reboot(2)`, no orderly shutdown.
fn signal_init(tool: &str, args: &[String]) -> i32 {
    use nix::sys::signal::Signal;
    let (signal, how) = match tool {
        "poweroff" => (Signal::SIGUSR2, Reboot::PowerOff),
        "halt" => (Signal::SIGUSR1, Reboot::Halt),
        _ => (Signal::SIGTERM, Reboot::Restart),
    };
    if args.iter().any(|a| a == "-f" || a == "--force") {
        // What the unmounts say goes to stderr (no kmsg: this is not PID 1).
        kmsg::init(log::LevelFilter::Info);
        let e = shutdown::force(&mut Linux, how, Path::new("/"));
        eprintln!("{tool} -f: reboot(2) failed: {e} (it needs root)");
        return 1;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(1), signal) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{tool}: cannot signal init: {e}");
            1
        }
    }
}

/// `boxinit check [--builtin] FILE`: validate an init.toml on the host before it goes on a
/// card (or, with `--builtin`, into the initramfs as `/etc/init.toml`), with the init's own
/// code and messages.
fn check_config(args: &[OsString]) -> i32 {
    let (place, args) = match args.split_first() {
        Some((flag, rest)) if flag == "--builtin" => (Place::Early, rest),
        _ => (Place::BootPartition, args),
    };
    let [path] = args else {
        eprintln!("usage: boxinit check [--builtin] path/to/init.toml");
        return 2;
    };
    let name = Path::new(path).display().to_string();
    let bytes = match read_capped(Path::new(path)) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("{name}: {e}");
            return 1;
        }
    };
    let layer = config::Layer::File {
        name: name.clone(),
        bytes: bytes.clone(),
        place,
    };
    let errors = config::check_file(&name, bytes, place);
    for e in &errors {
        eprintln!("{e}");
    }
    // Not errors: the init raises them to the floor and runs (an error would drop the file).
    for (key, value) in config::below_floor(&config::load(std::slice::from_ref(&layer)).0) {
        let floor = config::MIN_RESTART_DELAY.as_millis();
        eprintln!("{name}: warning: {key} = {value} is below the floor of {floor}ms; restarts wait at least {floor}ms");
    }
    if errors.is_empty() {
        println!("{name}: ok");
        0
    } else {
        1
    }
}

/// PID 1's life: set up, run the box, shut down. Never returns.
fn boot() -> ! {
    // The benchmark's marker: when /init started, read before any work and logged once kmsg
    // is there.
    let started_at = boottime();
    let started = Instant::now();
    let mut sys = Linux;
    install_panic_hook();
    kmsg::init(log::LevelFilter::Info);
    // 1. Signals: all blocked, read from a signalfd in the loop; Ctrl-Alt-Del sends SIGINT.
    if let Err(e) = events::block_all_signals() {
        log::error!("cannot block signals: {e}");
    }
    // 2. Kernel filesystems; without proc, sys and /dev nothing else works.
    early_setup(&mut sys);
    log::info!("started at {started_at} (CLOCK_BOOTTIME)");
    let early = started.elapsed();
    let mut phase = Instant::now();
    // 3. Built-in config (and BOXINIT_CONFIG) + kernel command line.
    let cmdline = read_cmdline();
    let early_layers = early_config_layers();
    let (cfg, reported) = load_config(&early_layers, &cmdline, &[]);
    log::set_max_level(cfg.system.log_level.into());
    log::debug!("phase start and early mounts: {}us", early.as_micros());
    log_phase("built-in config", phase);
    phase = Instant::now();
    let events = match Events::open() {
        Ok(events) => events,
        Err(e) => rescue(
            &mut sys,
            &cfg,
            &format!("cannot open the signalfd: {e}"),
            None,
        ),
    };
    log_phase("signalfd and uevent socket", phase);
    phase = Instant::now();
    // 4. Modules: those named, and coldplug (what every device present needs).
    let mut hotplug = hotplug::Hotplug::new(&cfg, &cmdline, Path::new("/"));
    hotplug.boot(&mut sys, &events, &cfg);
    log_phase("modules", phase);
    phase = Instant::now();
    let seen = hotplug.before_boot_partition(
        &mut sys,
        &events,
        &cfg.boot.device,
        hotplug::BOOT_FIRST_GRACE.min(cfg.boot.timeout),
    );
    // 5. The boot partition, mounted on /boot (unless there is none); the uevents of the wait
    // go to hotplug (the disk's driver may come with one of them).
    let boot_dir = match cfg.boot.device {
        DeviceSpec::None => {
            log::info!("no boot partition ([boot] device = \"none\")");
            None
        }
        _ => bootpart::mount_boot(
            &mut sys,
            &events,
            &cfg.boot,
            Path::new(BOOT_DIR),
            seen,
            &hotplug.probes(),
            &mut |sys, message| {
                hotplug.handle(sys, message);
            },
        )
        .then_some(Path::new(BOOT_DIR)),
    };
    log_phase("boot partition", phase);
    phase = Instant::now();
    // 5b. The card's state: how the previous boot ended; what a cut left half done (a
    // promotion finished, a trial without a verdict reverted), before its config is read.
    let mut card =
        boot_dir.map(|dir| Card::open(&mut sys, dir, cfg.boot.read_only, Path::new("/")));
    // 6. The boot partition's init.toml over the built-in one; then what is new on the card
    // to try (init.toml.new, box.new), this boot recorded there, the boot-loop brake.
    let cfg = match (boot_dir, card.as_mut()) {
        (Some(dir), Some(card)) => {
            // The box's disk reads start now, in the background, while its config is read.
            bootpart::prefetch(&dir.join(&cfg.box_.path));
            // The early layers as read then (not read, parsed and reported again), plus the
            // boot partition's file; errors already logged are not logged twice.
            let layers = with_boot_layer(&early_layers, Some(dir), field::card::CONFIG);
            let (full, _) = load_config(&layers, &cmdline, &reported);
            let read_only =
                bootpart::apply_read_only(&mut sys, cfg.boot.read_only, &full.boot, dir);
            try_updates(&mut sys, card, full, &layers, &cmdline, read_only, dir)
        }
        _ => cfg,
    };
    // 6c. A new bundle in the other slot, recorded: reboot with tryboot into it now.
    if let Some(stop) = card.as_mut().and_then(Card::tryboot) {
        stop_and_report(&mut sys, card.as_mut(), stop);
    }
    log::set_max_level(cfg.system.log_level.into());
    hotplug.configure(&mut sys, &cfg, &cmdline);
    // The card's archives of what serves later (Wi-Fi's supplicant, firmware, modules),
    // unpacked where the second pass starts, wherever that runs.
    hotplug.set_extras(Extras::new(&cfg.boot.extras, boot_dir, Path::new("/")));
    // The other devices' drivers (coldplug loaded the boot disk's first): on the loader thread
    // once the box has started, unless every present device's driver is wanted before it
    // (`coldplug_after_box = false`), or the box is exec'd (no thread survives the exec).
    let exec_mode = cfg.box_.mode == config::Mode::Exec;
    if exec_mode || !cfg.modules.coldplug_after_box {
        hotplug.load_deferred(&mut sys, &events);
    }
    apply_system(&mut sys, &cfg);
    setup_network(&mut sys, &cfg, boot_dir);
    log_phase("boot partition config", phase);
    log::info!("setup done in {}ms", started.elapsed().as_millis());
    let trial = card.as_ref().map(Card::program_rules).unwrap_or_default();
    let mut box_program = match program::resolve(&cfg.box_, boot_dir) {
        Ok(program) => trial.apply(with_heartbeat(program, &cfg)),
        Err(_) if boot_dir.is_none() && cfg.boot.device != DeviceSpec::None => rescue(
            &mut sys,
            &cfg,
            "no boot partition, so no box to run",
            card.as_mut(),
        ),
        Err(e) => rescue(&mut sys, &cfg, &e, card.as_mut()),
    };
    // 7a. mode = "exec": the box becomes PID 1 and owes reaping and signals from now on.
    if exec_mode {
        if !cfg.box_.wait_for.is_empty() {
            let mut held = Supervisor::new(cfg.box_.clone(), box_program.clone(), Instant::now());
            event_loop::wait_before_exec(&events, &mut sys, &mut hotplug, &mut held);
        }
        log::info!(
            "exec {} as PID 1 (mode = \"exec\")",
            box_program.program.display()
        );
        // Returns only when the box cannot run; PID 1 is then as it was, root, for its rescue.
        let reading: Vec<_> = (hotplug.probes().reading_names().iter())
            .map(|name| Path::new("/dev").join(name))
            .collect();
        let why = exec::exec(&box_program, &reading);
        rescue(&mut sys, &cfg, &why, card.as_mut());
    }
    // The box's output through PID 1, for the shutdown report (`[report] box_output`).
    let relay = card
        .as_mut()
        .and_then(|card| relay_output(&mut sys, &cfg, card, &mut box_program));
    // A reload keeps the relay's pty as the box's console (when it has none of its own).
    let console = box_program.setup.console.clone();
    log_phase("setup, before the box starts", started);
    // 7b. Run and supervise the box and the services until a signal or an exit action says stop.
    let mut supervisors = vec![Supervisor::new(
        cfg.box_.clone(),
        box_program,
        Instant::now(),
    )];
    // DHCP globs expand to the interfaces present now, and to these same ones at every reload:
    // a glob's client that adopted an interface since keeps it (README, "Network and time").
    let interfaces_at_boot = net::link::interfaces(Path::new("/"));
    for (service, program) in service_programs(&cfg, boot_dir, &interfaces_at_boot) {
        supervisors.push(Supervisor::new(service, program, Instant::now()));
    }
    // From here on modules load on the loader thread, which starts once the box has.
    hotplug.after_boot(Box::new(Linux));
    let mut watchdog = watchdog::Watchdog::open(
        &cfg.watchdog,
        Path::new(watchdog::HEARTBEAT),
        Instant::now(),
    );
    if let (Some(card), Some(save)) = (card.as_mut(), cfg.time.save.as_deref()) {
        card.keep_time(save, cfg.time.interval, Instant::now());
    }
    // The card's writes (the boot's record, health, reports, the time) from now on on a
    // thread: a slow card must not hold up reaping and the watchdog.
    if let Some(card) = card.as_mut() {
        card.write_off_loop(Box::new(Linux));
    }
    // SIGHUP's reading, done on a thread (`reload`): what it needs is its own.
    let boot = boot_dir.map(Path::to_path_buf);
    let reload_layers = early_layers.clone();
    let reload_cmdline = cmdline.clone();
    let read: ReadConfig = Arc::new(move || {
        let boot_dir = boot.as_deref();
        let layers = with_boot_layer(
            &reload_early_layers(&reload_layers),
            boot_dir,
            &trial.config_name(),
        );
        let (cfg, _) = load_config(&layers, &reload_cmdline, &[]);
        log::set_max_level(cfg.system.log_level.into());
        let mut programs = match program::resolve(&cfg.box_, boot_dir) {
            Ok(program) => {
                let mut program = trial.apply(with_heartbeat(program, &cfg));
                if cfg.box_.console.is_none() {
                    program.setup.console.clone_from(&console);
                }
                vec![(cfg.box_.clone(), program)]
            }
            Err(e) => {
                log::error!("reload: {e}; keeping the running configuration");
                return None;
            }
        };
        programs.extend(service_programs(&cfg, boot_dir, &interfaces_at_boot));
        Some((programs, cfg.shutdown.grace))
    });
    let mut reload = Reload::new(read);
    let mut no_judge = NoJudge;
    let judge: &mut dyn Judge = match card.as_mut() {
        Some(card) => card,
        None => &mut no_judge,
    };
    let stop = event_loop::run(
        event_loop::Loop {
            events: &events,
            sys: &mut sys,
            watchdog: watchdog.as_mut(),
            reload: &mut reload,
            ctrl_alt_del: cfg.system.ctrl_alt_del,
            devices: &mut hotplug,
            judge,
        },
        &mut supervisors,
    );
    // 8. Orderly shutdown.
    // The network and time programs (the binary beside the init) stop last.
    let net_exe = net::program_beside(&std::env::current_exe().unwrap_or_else(|_| "/init".into()));
    let (network, groups): (Vec<_>, Vec<_>) = supervisors
        .iter()
        .filter_map(|s| {
            let group = (s.name().to_string(), s.process_group()?);
            Some((s.spec().program == net_exe, group))
        })
        .partition(|(is_net, _)| *is_net);
    let groups: Vec<(String, i32)> = groups.into_iter().map(|(_, g)| g).collect();
    let network: Vec<(String, i32)> = network.into_iter().map(|(_, g)| g).collect();
    // The watchdog is petted from a thread through every wait of the shutdown (grace, sync,
    // unmount), up to a limit (further while the write-back falls), then disarmed.
    let keeper = watchdog.map(|w| {
        w.keep_petting(
            shutdown::time_limit(cfg.shutdown.grace),
            cover::progress_now,
        )
    });
    let started = Instant::now();
    let stopped = shutdown::stop_processes(
        &mut sys,
        Some(&events),
        &groups,
        &network,
        cfg.shutdown.grace,
        Path::new("/"),
    );
    if let Some(relay) = relay {
        relay.stop(Duration::from_millis(500));
    }
    // The report on the card (why, how the stop went, the last lines), before it is unmounted.
    if let Some(card) = card.as_mut() {
        card.shutdown(&mut sys, &stop, stopped);
    }
    sync_and_unmount(&mut sys, stop.how);
    log::info!("shutdown: done in {}ms", started.elapsed().as_millis());
    if let Some(keeper) = keeper {
        keeper.close();
    }
    shutdown::finish(&mut sys, stop.how)
}

/// 6b. What is new on the card, tried this boot: `init.toml.new` (complete and loading
/// without an error, its config runs instead), the box's `PATH.new`; the boot recorded on the
/// card before anything starts; and safe mode when the boot-loop brake holds.
fn try_updates(
    sys: &mut dyn Sys,
    card: &mut Card,
    cfg: Config,
    layers: &[Layer],
    cmdline: &str,
    mut read_only: bool,
    dir: &Path,
) -> Config {
    card.configure(&cfg, read_only);
    let below = layers
        .get(..layers.len().saturating_sub(1))
        .unwrap_or_default();
    let tried = card.try_config(&mut |path| {
        let mut trial_layers = below.to_vec();
        trial_layers.push(read_layer(path, Place::BootPartition));
        let (trial, errors) = config::load_with_cmdline(&trial_layers, cmdline);
        let name = path.display().to_string();
        match errors.iter().find(|e| e.source == name) {
            Some(e) => Err(e.to_string()),
            None => Ok(trial),
        }
    });
    let cfg = match tried {
        Some(trial) => {
            read_only = bootpart::apply_read_only(sys, read_only, &trial.boot, dir);
            card.configure(&trial, read_only);
            trial
        }
        None => cfg,
    };
    card.try_box(&cfg);
    card.try_bundle();
    card.begin(sys);
    match card.safe_mode() {
        Some(_) => field::card::safe_config(cfg),
        None => cfg,
    }
}

/// With `[report] box_output` (and a box on init's console, supervised), the box's console
/// becomes a pty that a thread of PID 1 relays to the console, keeping its last output for
/// the card's report. None (said why) when it cannot be.
fn relay_output(
    sys: &mut dyn Sys,
    cfg: &Config,
    card: &mut Card,
    program: &mut Program,
) -> Option<Relay> {
    let wanted = cfg.report.enabled
        && cfg.report.box_output
        && cfg.box_.console.is_none()
        && cfg.box_.mode == config::Mode::Supervise;
    if !wanted {
        return None;
    }
    match Relay::start(sys, cfg.box_.user, cfg.box_.group) {
        Ok(relay) => {
            program.setup.console = Some(relay.console());
            card.set_output(relay.tail());
            Some(relay)
        }
        Err(e) => {
            log::warn!("report: cannot pass the box's output through a pty ({e}); it goes straight to the console and the reports will not have it");
            None
        }
    }
}

/// With `[watchdog] heartbeat`, the box is told where to send it: `BOXINIT_HEARTBEAT`.
fn with_heartbeat(mut program: Program, cfg: &Config) -> Program {
    if cfg.watchdog.device.is_some() && cfg.watchdog.heartbeat.is_some() {
        program.env.push((
            "BOXINIT_HEARTBEAT".to_string(),
            watchdog::HEARTBEAT.to_string(),
        ));
    }
    program
}

/// The `[[service]]`s that can run; each one that cannot is logged and left out.
fn service_programs(
    cfg: &Config,
    boot_dir: Option<&Path>,
    present: &[String],
) -> Vec<(config::BoxConfig, Program)> {
    let mut programs = Vec::new();
    for service in cfg.named_services() {
        match program::resolve(&service, boot_dir) {
            Ok(program) => programs.push((service, program)),
            Err(e) => log::error!("[[service]] {e}; it is not started"),
        }
    }
    // The network and time programs: the binary beside this one (`/boxinit-net dhcp eth0`).
    let init_exe = std::env::current_exe().unwrap_or_else(|_| "/init".into());
    let exe = net::program_beside(&init_exe);
    let mut network = net::wifi::programs(cfg, &exe, boot_dir, Path::new("/"));
    network.extend(net::programs(cfg, &exe, present, boot_dir));
    if !network.is_empty() && !exe.is_file() {
        // Said once here, rather than as a failed start of each program with backoff.
        let names: Vec<&str> = network.iter().map(|(_, p)| p.name.as_str()).collect();
        log::error!(
            "network: {} is missing, so {} cannot run; it belongs beside {} (every initramfs cargo xtask packs has it)",
            exe.display(),
            names.join(", "),
            init_exe.display()
        );
        return programs;
    }
    programs.extend(network);
    programs
}

/// Before the box starts: the clock floor, loopback, `/etc/hosts` and `/etc/resolv.conf`.
fn setup_network(sys: &mut dyn Sys, cfg: &Config, boot_dir: Option<&Path>) {
    let root = Path::new("/");
    let saved = cfg
        .time
        .save
        .as_deref()
        .and_then(|p| net::save_path(p, boot_dir));
    // In a PID namespace (the namespace tests) the clock and the loopback are the host's.
    if !shutdown::is_first_pid_namespace(root) {
        return;
    }
    net::clock::apply_floor(sys, root, saved.as_deref());
    net::loopback_up(sys, root);
    net::write_resolver_files(root, cfg);
}

/// `/proc/cmdline`'s words that are UTF-8 text; each one that is not is logged and left out
/// (the rest of the line still applies).
fn read_cmdline() -> String {
    let bytes = match std::fs::read("/proc/cmdline") {
        Ok(bytes) => bytes,
        Err(e) => {
            log::error!("/proc/cmdline: cannot read it: {e}; no boxinit.* settings apply");
            return String::new();
        }
    };
    let (text, skipped) = cmdline::from_bytes(&bytes);
    for message in skipped {
        log::warn!("{message}");
    }
    text
}

/// Whether logs go to `/dev/kmsg` (the default) rather than stderr (`BOXINIT_LOG=console`).
fn log_to_kmsg() -> bool {
    std::env::var_os(LOG_ENV).is_none_or(|v| v != "console")
}

/// The boot path's profile at `boxinit.loglevel=debug`: how long a phase took, in µs, and
/// when it ended (CLOCK_BOOTTIME, to set beside the box's own start time).
fn log_phase(name: &str, since: Instant) {
    if log::log_enabled!(log::Level::Debug) {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        log::debug!(
            "phase {name}: {}us (done at {}.{:06}s)",
            since.elapsed().as_micros(),
            t.tv_sec,
            t.tv_nsec / 1000
        );
    }
}

fn early_setup(sys: &mut dyn Sys) {
    match mounts::mount_early(sys) {
        Ok(report) => {
            if log_to_kmsg() {
                let _ = kmsg::open_kmsg();
            }
            // Lines that go to the console (no kmsg) never wait for it: PID 1's loop logs.
            let _ = kmsg::open_console();
            if report.dev_fallback {
                log::warn!(
                    "no devtmpfs in this kernel: /dev is a tmpfs with the essential nodes only"
                );
            }
            for warning in &report.warnings {
                log::warn!("{warning}");
            }
        }
        Err(e) => {
            if log_to_kmsg() {
                let _ = kmsg::open_kmsg();
            }
            // No /proc, so no command line: the built-in config (and BOXINIT_CONFIG) say
            // which rescue action to take.
            let (cfg, _) = load_config(&early_config_layers(), "", &[]);
            rescue(sys, &cfg, &e.to_string(), None);
        }
    }
    // Userspace writes to kmsg are rate-limited by default (10 lines per 5 s): lift that, as
    // systemd does, so no boot message is lost.
    if log_to_kmsg() {
        let _ = sys.write_file(Path::new("/proc/sys/kernel/printk_devkmsg"), "on\n");
    }
    match sys.reboot(Reboot::CtrlAltDelOff) {
        Ok(()) => {}
        // In a PID namespace reboot(2) only knows restart, power-off and halt: nothing to turn off.
        Err(e)
            if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
                && !shutdown::is_first_pid_namespace(Path::new("/")) => {}
        Err(e) => log::warn!("cannot turn Ctrl-Alt-Del off: {e}"),
    }
}

fn apply_system(sys: &mut dyn Sys, cfg: &Config) {
    mounts::resize_tmpfs(sys, &cfg.system);
    if let Some(name) = &cfg.system.hostname {
        if let Err(e) = sys.sethostname(name) {
            log::warn!("cannot set the hostname to {name:?}: {e}");
        }
    }
}

/// Boot cannot go on: say why, then do what `[system] rescue` says (with a report on the
/// card, when it is mounted).
fn rescue(sys: &mut dyn Sys, cfg: &Config, why: &str, card: Option<&mut Card>) -> ! {
    use config::RescueAction;
    let delay = cfg.system.rescue_delay;
    let how = match cfg.system.rescue {
        RescueAction::Reboot => Some(Reboot::Restart),
        RescueAction::Poweroff => Some(Reboot::PowerOff),
        RescueAction::Halt => Some(Reboot::Halt),
        RescueAction::Shell => {
            log::error!("cannot boot: {why}");
            rescue_shell(sys, card)
        }
        RescueAction::Wait => None,
    };
    log::error!("cannot boot: {why}");
    match how {
        Some(how) => {
            log::error!("rescue: {how:?} in {}", config::format_duration(delay));
            std::thread::sleep(delay);
            // As the orderly shutdown: whatever runs is stopped, the cards are left clean.
            let why = format!("rescue ([system] rescue): cannot boot: {why}");
            stop_and_report(sys, card, Stop { how, why })
        }
        None => loop {
            log::error!(
                "rescue: waiting (system.rescue = \"wait\"); fix the problem and power-cycle"
            );
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
}

/// The shutdown's sync and unmounts, watched by the last resort: a disk that stops
/// answering does not hold the machine up for ever.
fn sync_and_unmount(sys: &mut dyn Sys, how: Reboot) {
    let watch = LastResort::arm(Box::new(Linux), how);
    shutdown::sync_and_unmount(sys, Path::new("/"));
    if let Some(watch) = watch {
        watch.disarm();
    }
}

/// The end of the rescue paths: everything stopped, the report on the card, the cards left
/// clean, then `reboot(2)`.
fn stop_and_report(sys: &mut dyn Sys, card: Option<&mut Card>, stop: Stop) -> ! {
    let stopped = shutdown::stop_processes(sys, None, &[], &[], Duration::ZERO, Path::new("/"));
    if let Some(card) = card {
        card.shutdown(sys, &stop, stopped);
    }
    sync_and_unmount(sys, stop.how);
    shutdown::finish(sys, stop.how)
}

/// `rescue = "shell"`: a shell on the console, reaping everything until it exits; then reboot.
/// Without `/bin/sh` in the initramfs: reboot at once, saying why.
fn rescue_shell(sys: &mut dyn Sys, card: Option<&mut Card>) -> ! {
    let started = program::shell_program().map(|(_, program)| program::spawn(&program));
    match started {
        Some(Ok(pid)) => {
            log::error!(
                "rescue: a shell on the console ({}, pid {pid}); the machine reboots when it exits",
                program::SHELL
            );
            loop {
                match rustix::process::wait(rustix::process::WaitOptions::empty()) {
                    Ok(Some((reaped, _))) if reaped.as_raw_nonzero().get() == pid => break,
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    // ECHILD: nothing left to wait for.
                    Err(_) => break,
                }
            }
        }
        Some(Err(e)) => log::error!("rescue: cannot start {}: {e}; rebooting", program::SHELL),
        None => log::error!(
            "rescue: no {} in this initramfs for a shell; rebooting",
            program::SHELL
        ),
    }
    let why = "rescue ([system] rescue = \"shell\"): the shell ended".to_string();
    stop_and_report(
        sys,
        card,
        Stop {
            how: Reboot::Restart,
            why,
        },
    )
}

/// Seconds since boot, from CLOCK_BOOTTIME, for the benchmark's markers.
fn boottime() -> String {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    format!("{}.{:03}s", t.tv_sec, t.tv_nsec / 1_000_000)
}

/// The backstop: if anything panics after all, log it, sync, and reboot after a delay rather
/// than let PID 1 die (which panics the kernel).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        log::error!("internal error: {info}; rebooting in 5s");
        shutdown::sync_and_unmount(&mut Linux, Path::new("/"));
        std::thread::sleep(Duration::from_secs(5));
        let _ = rustix::system::reboot(rustix::system::RebootCommand::Restart);
    }));
}
