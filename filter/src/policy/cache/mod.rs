//! Edge caching policy: what may be stored, for how long, under which key, in which tier.

pub mod age;
pub mod cache_control;
pub mod coalesce;
pub mod conditional;
pub mod encoding;
pub mod entry;
pub mod exchange;
pub mod freshness;
pub mod generations;
pub mod hot_keys;
pub mod http_date;
pub mod immutable;
pub mod key;
pub mod l1;
pub mod l2;
pub mod lease;
pub mod post_reuse;
pub mod purge_request;
pub mod query;
pub mod range;
pub mod status;
pub mod supersede;
pub mod targeted;
pub mod tenant;
pub mod variants;
pub mod warm;
