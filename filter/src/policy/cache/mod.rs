//! Edge caching policy: what may be stored, for how long, under which key, in which tier.

pub mod cache_control;
pub mod coalesce;
pub mod encoding;
pub mod entry;
pub mod exchange;
pub mod freshness;
pub mod generations;
pub mod http_date;
pub mod key;
pub mod l1;
pub mod l2;
pub mod lease;
pub mod purge_request;
pub mod query;
pub mod tenant;
pub mod variants;
pub mod warm;
