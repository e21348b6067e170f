//! Monitoring the filter keeps in memory (host-free): request outcomes, latency histograms
//! over the last minute, top tenants, the snapshots workers publish to shared data, and the
//! report and alerts built from them.

pub mod alerts;
pub mod latency;
pub mod outcome;
pub mod report;
pub mod snapshot;
pub mod top_tenants;
pub mod window;
