//! The daemon's core stays sans-IO and at the bottom of the import graph: nothing under
//! `src/core/` (nor the call engine it owns) reaches the adapters that drive it, a clock, a
//! lock, a task or a socket. Read from the source, so a new `use` that breaks the shape
//! fails here rather than in review.

use std::fs;
use std::path::{Path, PathBuf};

/// Modules that sit around the core; the core must not name them.
const ADAPTERS: [&str; 7] = [
    "crate::driver",
    "crate::dbus",
    "crate::link",
    "crate::messages",
    "crate::files",
    "crate::voice",
    "crate::call::media",
];

/// I/O, clocks, locks and runtimes; the core is handed the time and returns effects.
const IO: [&str; 10] = [
    "smol::",
    "zbus::",
    "quinn::",
    "phoned_client",
    "std::sync::Mutex",
    "std::sync::RwLock",
    "Instant::now",
    "SystemTime::now",
    "std::thread",
    "std::net",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("the daemon's source is readable") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "tests" {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (doc comments may name the driver).
fn code(path: &Path) -> String {
    fs::read_to_string(path)
        .expect("a source file is readable")
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_core_and_its_call_engine_name_no_adapter_and_do_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src.join("core"), &mut files);
    files.push(src.join("call/engine.rs"));
    assert!(files.len() > 3, "the core's files are found: {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let code = code(file);
        for bad in ADAPTERS.iter().chain(IO.iter()) {
            if code.contains(bad) {
                found.push(format!("{} uses {bad}", file.display()));
            }
        }
    }
    assert!(found.is_empty(), "the core must stay sans-IO: {found:#?}");
}

#[test]
fn only_the_driver_owns_a_core() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let owners: Vec<_> = files
        .iter()
        .filter(|f| !f.starts_with(src.join("core")))
        .filter(|f| code(f).contains("Core::new("))
        .map(|f| f.strip_prefix(&src).unwrap_or(f).display().to_string())
        .collect();
    assert_eq!(owners, ["driver/mod.rs"], "who builds a Core");
}
