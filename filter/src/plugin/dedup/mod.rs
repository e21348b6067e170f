//! Webhook deduplication in the glue: records in shared data (`records`), duplicates that
//! wait for a first attempt (`waiters`), and first attempts the root context sends to the
//! origin (`delivery`). Their state lives in `state`.

pub mod delivery;
pub mod fleet;
pub mod records;
pub mod state;
pub mod waiters;
