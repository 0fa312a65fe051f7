//! Gives the shared library its soname, `libbitcask.so.<C-ABI major>`, so that
//! programs linked against `libbitcask.so` record the ABI version they need.

/// The C-ABI version: bumped only when a released C signature or struct changes.
const C_ABI_MAJOR: u32 = 0;

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbitcask.so.{C_ABI_MAJOR}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
