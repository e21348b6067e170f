//! Webhook deduplication: who a delivery is, and what its record in shared data says.

pub mod identity;
pub mod record;
pub mod signature;
