//! The committed C header is exactly what cbindgen generates from src/ffi,
//! and it compiles cleanly as C11 and C++11. Regenerate it with `make header`
//! (which runs this test with BITCASK_UPDATE_HEADER=1).

use std::path::{Path, PathBuf};
use std::process::Command;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generated_header() -> String {
    let dir = crate_dir();
    let config =
        cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

/// With BITCASK_UPDATE_HEADER=1 (`make header`) the header is rewritten
/// first, and then checked like any other time: what is on disk must be
/// what cbindgen generates. `make test` runs this with the variable unset,
/// so that it can never silence the check there.
#[test]
fn committed_header_is_fresh() {
    let path = crate_dir().join("include/bitcask.h");
    let fresh = generated_header();
    if std::env::var("BITCASK_UPDATE_HEADER").is_ok_and(|v| v == "1") {
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, &fresh).expect("write include/bitcask.h");
        eprintln!(
            "include/bitcask.h {}",
            if old == fresh {
                "was already fresh"
            } else {
                "rewritten"
            }
        );
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/bitcask.h is stale: it differs from what cbindgen generates from src/ffi. \
         Regenerate it with `make header` and commit the result."
    );
}

#[test]
fn every_name_in_the_header_has_the_library_prefix() {
    let header = generated_header();
    for line in header.lines() {
        let name = if let Some(rest) = line.strip_prefix("#define ") {
            rest.split_whitespace().next().unwrap_or("")
        } else if let Some(rest) = line.strip_prefix("typedef ").filter(|r| r.contains("(*")) {
            // A function pointer type: typedef int (*name)(...);
            let after = rest.split("(*").nth(1).unwrap_or("");
            after.split(')').next().unwrap_or("")
        } else if line.ends_with(");") && !line.starts_with(' ') && !line.starts_with('*') {
            // A prototype: the name stands before the first '('.
            let head = line.split('(').next().unwrap_or("");
            head.rsplit([' ', '*']).next().unwrap_or("")
        } else {
            continue;
        };
        assert!(
            name == "BITCASK_H" || name.starts_with("bitcask_") || name.starts_with("BITCASK_"),
            "{name:?} reached include/bitcask.h without the bitcask_/BITCASK_ prefix; \
             add it to [export] exclude in cbindgen.toml if it is not part of the C interface"
        );
    }
}

fn compile(compiler: &str, std: &str, lang: &str, source: &Path) {
    let out = std::env::temp_dir().join(format!("bitcask-header-{}-{lang}.o", std::process::id()));
    let status = Command::new(compiler)
        .args([
            std,
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-x",
            lang,
            "-c",
        ])
        .arg(source)
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    let _ = std::fs::remove_file(&out);
    assert!(
        status.success(),
        "include/bitcask.h does not compile with {compiler} {std}"
    );
}

#[test]
fn header_compiles_as_c11_and_cpp11() {
    let source = std::env::temp_dir().join(format!("bitcask-header-{}.c", std::process::id()));
    // Uses one name of each kind, so that the compiler checks their declarations.
    std::fs::write(
        &source,
        "#include <bitcask.h>\n\
         int use_header(void);\n\
         int use_header(void) {\n\
             bitcask_status s = BITCASK_OK;\n\
             bitcask_options *o = bitcask_options_new();\n\
             s = bitcask_options_set_sync_writes(o, true);\n\
             bitcask_options_free(o);\n\
             return (int)s + (int)(BITCASK_MAX_KEY_LEN > 0) + (int)(bitcask_version_number() == BITCASK_VERSION_NUMBER);\n\
         }\n",
    )
    .unwrap();
    compile("cc", "-std=c11", "c", &source);
    compile("c++", "-std=c++11", "c++", &source);
    let _ = std::fs::remove_file(&source);
}
