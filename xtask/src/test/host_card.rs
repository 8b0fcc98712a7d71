//! A Raspberry Pi card made by the host's own tools rather than xtask's FAT writer (for the
//! `host-card` scenarios): what a user's card formatted elsewhere looks like.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// An SD card image of `folder` made by the host's own tools, not by xtask's FAT writer: an
/// MBR with one FAT32 partition at 1 MiB (`sfdisk`), formatted by `mkfs.vfat` with the label
/// PICARD, the files copied by `mcopy` — as a user's card formatted elsewhere would be.
pub fn card_by_host_tools(folder: &Path, image: &Path, size_mib: u32) -> Result<()> {
    let run = |program: &str, args: &[&std::ffi::OsStr], input: Option<&str>| -> Result<()> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!("cannot run {program}: apt-get install fdisk dosfstools mtools")
            })?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "{program} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    let _ = std::fs::remove_file(image);
    std::fs::File::create(image)?.set_len(u64::from(size_mib) << 20)?;
    let img = image.as_os_str();
    run(
        "sfdisk",
        &["-q".as_ref(), img],
        Some("start=2048, type=c\n"),
    )?;
    let blocks = (u64::from(size_mib) * 1024 - 1024).to_string();
    run(
        "mkfs.vfat",
        &[
            "-F".as_ref(),
            "32".as_ref(),
            "-s".as_ref(),
            "1".as_ref(),
            "-n".as_ref(),
            "PICARD".as_ref(),
            "--offset".as_ref(),
            "2048".as_ref(),
            img,
            blocks.as_ref(),
        ],
        None,
    )?;
    let mut target = image.as_os_str().to_os_string();
    target.push("@@1048576");
    let mut args: Vec<std::ffi::OsString> = vec!["-s".into(), "-i".into(), target];
    for entry in std::fs::read_dir(folder)? {
        args.push(entry?.path().into_os_string());
    }
    args.push("::".into());
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    run("mcopy", &args, None)
}
