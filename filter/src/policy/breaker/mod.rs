//! The adaptive circuit breaker's state machine, kept in shared data per service.

pub mod machine;
