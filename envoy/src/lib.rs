pub mod launch;

pub mod origin;
