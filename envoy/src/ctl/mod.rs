//! `edge-ctl`: the operator's tool for a running edge. One concept per file: arguments
//! (`cli`), exit codes (`exit`), the running edge (`edge`), the configuration file
//! (`config_file`), human output (`style`, `progress`, `diff`), traffic (`zipf`, `workload`),
//! and one file per action (`validate`, `benchmark`, `warm`, `optimize`, `report`), run by
//! `commands`.

pub mod benchmark;
pub mod cli;
pub mod commands;
pub mod config_file;
pub mod diff;
pub mod edge;
pub mod exit;
pub mod optimize;
pub mod progress;
pub mod report;
pub mod style;
pub mod validate;
pub mod warm;
pub mod workload;
pub mod zipf;
