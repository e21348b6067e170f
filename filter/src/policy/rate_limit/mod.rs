//! Per-tenant token buckets kept in shared data, so every worker enforces one limit.

pub mod bucket;
pub mod degrade;
pub mod headers;
pub mod slot;
pub mod tenant;
pub mod verdict;
