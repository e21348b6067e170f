//! Per-tenant token buckets kept in shared data, so every worker enforces one limit.

pub mod bucket;
pub mod headers;
