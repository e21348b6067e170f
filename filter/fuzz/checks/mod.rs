//! The fuzz targets' checks, one module per decoder or parser that reads bytes from outside the
//! VM (client and origin headers, the operator's configuration) or from shared data (other
//! workers' values). Each `check` takes arbitrary bytes and asserts properties, not only the
//! absence of a panic.
//!
//! The same functions run in two places: `cargo fuzz run <target>` (the binaries in
//! `fuzz_targets/`, libFuzzer), and the workspace's `cargo test` (`filter/tests/fuzz_corpora.rs`
//! replays every file of `corpus/<target>/` through them, natively, no fuzzer needed).

pub mod breaker;
pub mod bucket;
pub mod cache_control;
pub mod config;
pub mod dedup_record;
pub mod entry;
pub mod generations;
pub mod http_date;
pub mod input;
pub mod key;
pub mod lease;
pub mod purge;
pub mod snapshot;
pub mod targeted;

/// A target's check: panics (an assertion) when the input shows a defect.
pub type Check = fn(&[u8]);

/// Every target: its name (the fuzz binary and the corpus directory) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("breaker", breaker::check),
    ("bucket", bucket::check),
    ("cache_control", cache_control::check),
    ("config", config::check),
    ("dedup_record", dedup_record::check),
    ("entry", entry::check),
    ("generations", generations::check),
    ("http_date", http_date::check),
    ("key", key::check),
    ("lease", lease::check),
    ("purge", purge::check),
    ("snapshot", snapshot::check),
    ("targeted", targeted::check),
];
