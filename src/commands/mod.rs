//! What each subcommand does beyond `extract` (whose work is the connector's `run`).

pub mod check;
pub mod demo;
pub mod dry_run;
pub mod rebuild;
pub mod tables;
