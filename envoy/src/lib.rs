pub mod ctl;
pub mod launch;

pub mod origin;
