//! The fleet tier: state shared by every Envoy replica through Redis, reached over HTTP through
//! a bridge (webdis). Host-free: the configuration, the commands (webdis's URL/body form),
//! the replies (RESP, webdis's `.raw` output), the Lua scripts, what a reply means for each
//! feature, and whether the tier is worth calling right now.

pub mod cache;
pub mod command;
pub mod config;
pub mod dedup;
pub mod generations;
pub mod rate;
pub mod reply;
pub mod scripts;
pub mod sha1;
pub mod tier;

pub use config::{FailureMode, FleetBridge, FleetSection};
