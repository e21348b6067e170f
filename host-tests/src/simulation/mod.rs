//! Deterministic simulation of many clients against several workers: a seeded schedule of
//! requests, hang-ups, clock moves, lost CAS races and origin faults, with invariants checked
//! after every step (FoundationDB/VOPR style). A failing seed is shrunk to a short schedule and
//! replays with `SIM_SEED=<seed>`.

mod invariant;
mod op;
mod origin;
mod run;
mod shrink;

pub use invariant::Violation;
pub use op::{schedule, Op};
pub use run::{run, Report, SIM_CONFIG};
pub use shrink::shrink;
