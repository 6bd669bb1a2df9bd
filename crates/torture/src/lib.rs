//! Torture drivers for cf-store: scripted multi-column-family workloads run against the
//! crash simulator (`flush::testing::CrashBackend`), crashed at every I/O call, and each
//! crash image checked against what had been committed.

pub mod corrupt;
pub mod crash;
pub mod script;
pub mod soak;

pub use crash::{explore, replay_command, run_to_crash, verify_image, Failure, History};
pub use script::{Kind, Script, Step};
