//! The static release build's stand-in for the unwinder (LLVM's libunwind, which std links for
//! the musl target): every `_Unwind_*` function std may call, doing nothing. Binary-only
//! (`main.rs`, `bin/boxinit-net/main.rs`), and only where `panic = "abort"`, so tests and host
//! builds keep the real one.
//!
//! Why: under `panic = "abort"` nothing unwinds, so the unwinder's only remaining caller is
//! std's backtrace capture in its default panic hook, which boxinit replaces (`main.rs` logs
//! the message and location). But the code stays linked, and with it everything a backtrace
//! needs: libunwind's DWARF interpreter, and gimli, addr2line, miniz_oxide and rustc-demangle
//! to symbolize the frames. Defining the archive's symbols here keeps the linker from pulling
//! libunwind in at all; and because these bodies are Rust, link-time optimisation sees that
//! `_Unwind_Backtrace` never calls its callback and drops the symbolizer behind it. About
//! 250 KiB of an 816 KiB binary (BENCHMARKS.md, README's *Size*).
//!
//! The signatures are the C ones of `unwind.h` (pointers as pointers, `uintptr_t` as `usize`),
//! so that LTO merges these definitions with std's declarations of the same functions. The
//! walkers report an empty stack; the functions that would start or resume an unwind cannot be
//! reached under `panic = "abort"` and abort if they ever are.

use std::ffi::{c_int, c_void};

/// `_URC_END_OF_STACK`: what a walk of a stack without frames returns.
const END_OF_STACK: c_int = 5;

#[no_mangle]
extern "C" fn _Unwind_Backtrace(_trace: *const c_void, _arg: *mut c_void) -> c_int {
    END_OF_STACK
}

#[no_mangle]
extern "C" fn _Unwind_GetIP(_context: *mut c_void) -> usize {
    0
}

#[no_mangle]
extern "C" fn _Unwind_GetIPInfo(_context: *mut c_void, _before: *mut c_int) -> usize {
    0
}

#[no_mangle]
extern "C" fn _Unwind_GetCFA(_context: *mut c_void) -> usize {
    0
}

#[no_mangle]
extern "C" fn _Unwind_GetGR(_context: *mut c_void, _register: c_int) -> usize {
    0
}

#[no_mangle]
extern "C" fn _Unwind_SetGR(_context: *mut c_void, _register: c_int, _value: usize) {}

#[no_mangle]
extern "C" fn _Unwind_SetIP(_context: *mut c_void, _value: usize) {}

#[no_mangle]
extern "C" fn _Unwind_GetLanguageSpecificData(_context: *mut c_void) -> *mut c_void {
    std::ptr::null_mut()
}

#[no_mangle]
extern "C" fn _Unwind_GetRegionStart(_context: *mut c_void) -> usize {
    0
}

#[no_mangle]
extern "C" fn _Unwind_GetTextRelBase(_context: *mut c_void) -> usize {
    0
}

#[no_mangle]
extern "C" fn _Unwind_GetDataRelBase(_context: *mut c_void) -> usize {
    0
}

#[no_mangle]
extern "C" fn _Unwind_FindEnclosingFunction(_pc: *mut c_void) -> *mut c_void {
    std::ptr::null_mut()
}

#[no_mangle]
extern "C" fn _Unwind_Find_FDE(_pc: *mut c_void, _bases: *mut c_void) -> *mut c_void {
    std::ptr::null_mut()
}

#[no_mangle]
extern "C" fn _Unwind_DeleteException(_exception: *mut c_void) {}

#[no_mangle]
extern "C" fn _Unwind_RaiseException(_exception: *mut c_void) -> c_int {
    std::process::abort()
}

#[no_mangle]
extern "C" fn _Unwind_Resume(_exception: *mut c_void) {
    std::process::abort()
}

#[no_mangle]
extern "C" fn _Unwind_Resume_or_Rethrow(_exception: *mut c_void) -> c_int {
    std::process::abort()
}

#[no_mangle]
extern "C" fn _Unwind_ForcedUnwind(
    _exception: *mut c_void,
    _stop: *const c_void,
    _arg: *mut c_void,
) -> c_int {
    std::process::abort()
}
