pub mod ctl;
pub mod launch;

pub mod oci;

pub mod origin;
