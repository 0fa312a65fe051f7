//! The source tree keeps its layers (docs/architecture.md): each top-level
//! module imports only from the layers below it, and no module imports from
//! a module that imports it. Read from the `use` declarations of src/.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules, lowest layer first; a module may import from its
/// own layer's modules and from lower layers. The crate root's re-exports
/// are the top (only `ffi` uses them).
const LAYERS: &[&[&str]] = &[
    &["error", "failpoint", "options"],
    &["log"],
    &["keydir"],
    &["db"],
    &["maintenance"],
    &["bitcask"],
    &["ffi", ""],
];

fn layer_of(top: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&top))
        .unwrap_or_else(|| panic!("src/{top}: a top-level module missing from LAYERS"))
}

/// Every module of src/ by path (`["db", "engine"]`), with its file.
fn modules() -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .map(|file| {
            let rel = file.strip_prefix(&src).unwrap().with_extension("");
            let mut path: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
                path.pop();
            }
            (path, file)
        })
        .collect()
}

/// The paths named by the `use` declarations of `source` outside test
/// modules, one per imported name (`use super::{a, b::c}` gives `super::a`
/// and `super::b::c`).
fn imports(source: &str) -> Vec<String> {
    let code = source
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or("");
    let mut found = Vec::new();
    for decl in code.split("use ").skip(1) {
        let Some(decl) = decl.split(';').next() else {
            continue;
        };
        let decl: String = decl.split_whitespace().collect();
        if !(decl.starts_with("crate::") || decl.starts_with("super::")) {
            continue;
        }
        match decl.split_once("::{") {
            Some((base, group)) => {
                for name in group.trim_end_matches('}').split(',') {
                    if !name.is_empty() {
                        found.push(format!("{base}::{name}"));
                    }
                }
            }
            None => found.push(decl),
        }
    }
    found
}

/// The module an import path lands in: the longest module prefix of it.
fn resolve(
    from: &[String],
    path: &str,
    modules: &BTreeMap<Vec<String>, PathBuf>,
) -> Option<Vec<String>> {
    let mut parts = path.split("::").map(str::to_string).peekable();
    let mut full: Vec<String> = match parts.peek().map(String::as_str) {
        Some("crate") => {
            parts.next();
            Vec::new()
        }
        _ => from.to_vec(),
    };
    for part in parts {
        if part == "super" {
            full.pop();
        } else {
            full.push(part);
        }
    }
    (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|prefix| modules.contains_key(prefix))
}

#[test]
fn layers_import_only_downwards_and_no_module_imports_its_importer() {
    let modules = modules();
    let mut edges = BTreeSet::new();
    for (module, file) in &modules {
        let source = std::fs::read_to_string(file).unwrap();
        for path in imports(&source) {
            if let Some(target) = resolve(module, &path, &modules) {
                if &target != module {
                    edges.insert((module.clone(), target));
                }
            }
        }
    }
    assert!(edges.len() > 50, "too few imports found to mean anything");
    let mut problems = Vec::new();
    for (from, to) in &edges {
        if edges.contains(&(to.clone(), from.clone())) && from < to {
            problems.push(format!("{from:?} and {to:?} import each other"));
        }
        let top = |m: &[String]| m.first().cloned().unwrap_or_default();
        if layer_of(&top(from)) < layer_of(&top(to)) {
            problems.push(format!("{from:?} imports {to:?}, a higher layer"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A control: the checker finds a cycle and an upward import when there
/// are some.
#[test]
fn the_checker_sees_imports_that_break_the_rules() {
    let found = imports("use super::{a, b::c};\nuse crate::db::engine::Engine;\nuse std::fs;\n");
    assert_eq!(
        found,
        ["super::a", "super::b::c", "crate::db::engine::Engine"]
    );
    let mut modules = BTreeMap::new();
    for m in [&["db"][..], &["db", "engine"], &["log"]] {
        modules.insert(m.iter().map(|s| s.to_string()).collect(), PathBuf::new());
    }
    let log = vec!["log".to_string()];
    assert_eq!(
        resolve(&log, "crate::db::engine::Engine", &modules),
        Some(vec!["db".to_string(), "engine".to_string()])
    );
    assert!(layer_of("log") < layer_of("db"));
}
