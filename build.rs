//! Link arguments for the init's static release build, where nothing can unwind (panic =
//! "abort"): drop the unwind tables (`link/no-unwind-tables.ld` says why), and do not pad the
//! code into pages of its own (`-z noseparate-code`: the initramfs has no attacker to keep
//! from reading code as data, and the padding is up to 12 KiB). Tests and the host's dev
//! builds unwind, so they keep everything.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/no-unwind-tables.ld");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    // Build scripts are not told the profile's panic strategy (CARGO_CFG_PANIC is the
    // target's default); the release profile's is "abort" (Cargo.toml), and the static musl
    // binary is what ships.
    if env("PROFILE") != "release" || env("CARGO_CFG_TARGET_ENV") != "musl" {
        return;
    }
    let script = std::path::Path::new(&env("CARGO_MANIFEST_DIR")).join("link/no-unwind-tables.ld");
    // x86_64 links through `cc` (GNU ld); aarch64 with rust-lld directly (.cargo/config.toml),
    // which takes the linker's own arguments and does not separate code by default.
    let lld = std::path::Path::new(&env("RUSTC_LINKER"))
        .file_name()
        .is_some_and(|name| name.to_string_lossy().contains("lld"));
    if lld {
        println!("cargo:rustc-link-arg-bins=-T");
        println!("cargo:rustc-link-arg-bins={}", script.display());
    } else {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
        println!("cargo:rustc-link-arg-bins=-Wl,-z,noseparate-code");
    }
}
