//! The short regression run of the fuzz targets: every file of `filter/fuzz/corpus/<target>/`
//! goes through the target's check, natively and without a fuzzer. The checks are the very
//! functions the cargo-fuzz binaries call (`filter/fuzz/checks/`), so an input that once made a
//! target fail, added to its corpus, keeps failing here until the defect is fixed.

#![cfg(not(target_arch = "wasm32"))]

#[path = "../fuzz/checks/mod.rs"]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn replay(target: &str) {
    let check = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, check)| *check);
    assert!(check.is_some(), "no check named {target}");
    let Some(check) = check else { return };
    let files = corpus(target);
    assert!(!files.is_empty(), "the corpus of {target} is empty");
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_default();
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} corpus files fail: {failed:#?}",
        failed.len(),
        files.len()
    );
}

macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        /// Every check has a test above, a fuzz binary and a corpus directory, and every corpus
        /// directory belongs to a check.
        #[test]
        fn every_target_is_replayed_and_fuzzable() {
            let tested = [$(stringify!($name)),*];
            for (name, _) in checks::TARGETS {
                assert!(tested.contains(name), "{name} has no replay test");
                let binary = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
                assert!(binary.is_file(), "{name} has no fuzz binary");
            }
            let dirs = std::fs::read_dir(fuzz_dir().join("corpus"))
                .map(|d| d.filter_map(|e| e.ok()).collect::<Vec<_>>())
                .unwrap_or_default();
            assert_eq!(dirs.len(), checks::TARGETS.len(), "one corpus per target");
            for dir in dirs {
                let name = dir.file_name().to_string_lossy().into_owned();
                assert!(
                    checks::TARGETS.iter().any(|(target, _)| *target == name),
                    "corpus/{name} belongs to no target"
                );
            }
        }
    };
}

targets!(
    breaker,
    bucket,
    cache_control,
    config,
    dedup_record,
    entry,
    generations,
    http_date,
    key,
    lease,
    purge,
    snapshot,
    targeted,
);
