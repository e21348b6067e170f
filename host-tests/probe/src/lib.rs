//! Test fixture guest for the host's self-tests. A request header `x-probe` names an action;
//! the plugin configuration (`queue=NAME;tick_ms=N;reject=1`) sets up the root context.
//! Panicking on purpose is this guest's job; the real filter never does.

#[cfg(target_arch = "wasm32")]
mod guest;
