//! `cargo xtask fuzz`: a bounded libFuzzer run of every `cargo fuzz` target in `fuzz/` (see
//! `fuzz/README.md` for the layout), each seeded from its committed corpus `fuzz/seeds/NAME/`
//! and dictionary `fuzz/dicts/NAME.dict`; what a run learns stays under `target/fuzz/`
//! (`corpus/NAME/`, `artifacts/NAME/`, `NAME.log`). Installs the nightly toolchain and
//! cargo-fuzz when they are missing. It does not write the targets nor fix what they find.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::progress;

/// How long each target runs by default: six targets stay within CI's budget (about 5 min).
pub const DEFAULT_SECONDS: u64 = 40;

/// What `cargo xtask fuzz` runs.
pub struct Options {
    /// libFuzzer's `-max_total_time` for each target.
    pub seconds: u64,
    /// Only the targets whose name contains this.
    pub filter: Option<String>,
}

/// What one target's run reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Inputs executed.
    pub runs: u64,
    /// Coverage points (libFuzzer's `cov:`).
    pub coverage: u64,
    /// Inputs in the corpus at the end.
    pub corpus: u64,
}

/// Runs every target (or those matching the filter); fails on the first one that crashes,
/// naming the input that crashed it and how to reproduce it.
pub fn run(opts: &Options) -> Result<()> {
    let fuzz_dir = crate::workspace_root().join("fuzz");
    let mut targets = targets(&fuzz_dir)?;
    if let Some(filter) = &opts.filter {
        targets.retain(|t| t.contains(filter.as_str()));
        if targets.is_empty() {
            bail!("no fuzz target in fuzz/fuzz_targets matches {filter:?}");
        }
    }
    ensure_tools()?;
    let out = crate::target_dir().join("fuzz");
    progress!(
        "fuzz: building {} target(s) with cargo fuzz (nightly)",
        targets.len()
    );
    let status = cargo_fuzz(&out)
        .args(["build", "-s", "none", "--target-dir"])
        .arg(&out)
        .status()
        .context("cannot run cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build failed (the fuzz targets do not compile: see above)");
    }
    for target in &targets {
        let started = Instant::now();
        let stats = run_target(&fuzz_dir, &out, target, opts.seconds)?;
        progress!(
            "fuzz {target}: {} runs in {:.0}s, coverage {}, corpus {}, no crash",
            stats.runs,
            started.elapsed().as_secs_f64(),
            stats.coverage,
            stats.corpus
        );
    }
    Ok(())
}

/// The targets: one per `fuzz/fuzz_targets/NAME.rs`, each with seeds in `fuzz/seeds/NAME/`.
pub fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let mut names = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem() {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    for name in &names {
        let seeds = fuzz_dir.join("seeds").join(name);
        let count = fs::read_dir(&seeds).map(|d| d.count()).unwrap_or(0);
        if count == 0 {
            bail!(
                "fuzz target {name} has no seeds: add small real inputs under fuzz/seeds/{name}/ (see fuzz/README.md)"
            );
        }
    }
    Ok(names)
}

/// One bounded run; its libFuzzer output goes to `target/fuzz/NAME.log`.
fn run_target(fuzz_dir: &Path, out: &Path, target: &str, seconds: u64) -> Result<Stats> {
    let corpus = out.join("corpus").join(target);
    let artifacts = out.join("artifacts").join(target);
    fs::create_dir_all(&corpus)?;
    fs::create_dir_all(&artifacts)?;
    let log_path = out.join(format!("{target}.log"));
    let log = fs::File::create(&log_path)?;
    let mut command = cargo_fuzz(out);
    command
        .args(["run", "-s", "none", "--target-dir"])
        .arg(out)
        .arg(target)
        // the first directory receives new inputs; the seeds are only read
        .arg(&corpus)
        .arg(fuzz_dir.join("seeds").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()));
    let dict = fuzz_dir.join("dicts").join(format!("{target}.dict"));
    if dict.exists() {
        command.arg(format!("-dict={}", dict.display()));
    }
    let status = command
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("cannot run cargo fuzz run {target}"))?;
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        bail!("{}", crash_report(target, &text, &log_path));
    }
    Ok(stats(&text))
}

/// The failure message: the panic, the saved input, how to reproduce and what to do.
fn crash_report(target: &str, log: &str, log_path: &Path) -> String {
    let input = log
        .lines()
        .find_map(|l| l.split("Test unit written to ").nth(1))
        .map(|p| p.trim().to_string());
    let panic: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.contains("panicked at"))
        .take_while(|l| !l.starts_with("stack backtrace") && !l.starts_with("note:"))
        .take(12)
        .collect();
    let mut msg = format!("fuzz target {target} failed");
    if !panic.is_empty() {
        msg.push_str(&format!(":\n{}", panic.join("\n")));
    }
    match input {
        Some(input) => msg.push_str(&format!(
            "\ninput saved at {input}\nreproduce: cargo +nightly fuzz run -s none {target} {input}\n\
             then fix it and add the input as a regression unit test in the library (fuzz/README.md)"
        )),
        None => msg.push_str(&format!(
            "\nno crashing input was saved; see the whole log: {}",
            log_path.display()
        )),
    }
    msg
}

/// The figures of libFuzzer's last status line (`#N DONE cov: C ft: F corp: K/...`).
pub fn stats(log: &str) -> Stats {
    let field = |line: &str, name: &str| -> u64 {
        line.split_whitespace()
            .skip_while(|w| *w != name)
            .nth(1)
            .and_then(|v| v.split('/').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let last = log
        .lines()
        .rfind(|l| l.starts_with('#') && l.contains("cov:"))
        .unwrap_or("");
    Stats {
        runs: last
            .trim_start_matches('#')
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        coverage: field(last, "cov:"),
        corpus: field(last, "corp:"),
    }
}

/// `rustup run nightly cargo fuzz ...` in the workspace root: cargo fuzz needs nightly's
/// flags, and the `cargo` that runs xtask is stable (its `CARGO` must not leak into it).
fn cargo_fuzz(out: &Path) -> Command {
    let mut command = Command::new("rustup");
    command
        .args(["run", "nightly", "cargo", "fuzz"])
        .current_dir(crate::workspace_root())
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTFLAGS")
        .env("CARGO_TARGET_DIR", out);
    command
}

/// The nightly toolchain and cargo-fuzz, installed when missing (as `.ci/run` does).
fn ensure_tools() -> Result<()> {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !nightly {
        progress!("fuzz: no nightly toolchain: rustup toolchain install nightly --profile minimal");
        run_tool(&[
            "rustup",
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ])?;
    }
    let has_fuzz = Command::new("cargo-fuzz")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_fuzz {
        progress!("fuzz: no cargo-fuzz: cargo install cargo-fuzz --locked");
        run_tool(&["cargo", "install", "cargo-fuzz", "--locked"])?;
    }
    Ok(())
}

fn run_tool(argv: &[&str]) -> Result<()> {
    let (program, args) = argv.split_first().context("empty command")?;
    let ok = Command::new(program)
        .args(args)
        .env_remove("RUSTUP_TOOLCHAIN")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!("`{}` failed; run it yourself, then retry", argv.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_seeds_a_bin_entry_and_dicts_name_targets() {
        let fuzz_dir = crate::workspace_root().join("fuzz");
        let names = targets(&fuzz_dir).unwrap();
        assert!(names.len() >= 6, "{names:?}");
        let manifest = fs::read_to_string(fuzz_dir.join("Cargo.toml")).unwrap();
        for name in &names {
            let entry = format!("name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\"");
            assert!(
                manifest.contains(&entry),
                "fuzz/Cargo.toml needs a [[bin]] for {name}"
            );
        }
        for dict in fs::read_dir(fuzz_dir.join("dicts")).unwrap() {
            let path = dict.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(names.contains(&stem), "{} names no target", path.display());
        }
    }

    #[test]
    fn stats_from_libfuzzer_output() {
        let log = "INFO: Seed: 1\n#2\tINITED cov: 10 ft: 11 corp: 2/30b exec/s: 0 rss: 30Mb\n\
                   #12499426\tDONE   cov: 168 ft: 662 corp: 306/19Kb lim: 4096 exec/s: 103301 rss: 36Mb\n\
                   Done 12499426 runs in 121 second(s)\n";
        assert_eq!(
            stats(log),
            Stats {
                runs: 12_499_426,
                coverage: 168,
                corpus: 306
            }
        );
        assert_eq!(
            stats(""),
            Stats {
                runs: 0,
                coverage: 0,
                corpus: 0
            }
        );
    }

    #[test]
    fn a_crash_report_names_the_input_and_what_to_do() {
        let log = "thread '<unnamed>' (1) panicked at fuzz_targets/fnmatch.rs:24:9:\n\
                   assertion failed: boxinit says true\nstack backtrace:\n   0: x\n\
                   artifact_prefix='a/'; Test unit written to a/crash-12ab\n";
        let msg = crash_report("fnmatch", log, Path::new("t/fnmatch.log"));
        assert!(msg.contains("panicked at fuzz_targets/fnmatch.rs"), "{msg}");
        assert!(msg.contains("boxinit says true"), "{msg}");
        assert!(!msg.contains("0: x"), "{msg}");
        assert!(
            msg.contains("cargo +nightly fuzz run -s none fnmatch a/crash-12ab"),
            "{msg}"
        );
        assert!(msg.contains("regression unit test"), "{msg}");
    }
}
