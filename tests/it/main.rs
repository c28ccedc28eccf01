//! Integration tests that need nothing but Rust: the real `wxcube` binary against the built-in
//! simulator, on local disk.
//!
//! The simulator runs in the test process (its data generator is also the oracle the output is
//! checked against); wxcube runs as a child process, exactly as a user or a scheduler runs it.
//! The tests that need DuckDB, PySpark, moto or Airflow are in `tests/tools/`, which
//! `scripts/test.sh` runs once it has installed them.

#[path = "../common/kill.rs"]
mod kill;
#[path = "../common/moto.rs"]
#[allow(dead_code)]
mod moto;
#[path = "../common/scenarios.rs"]
#[allow(dead_code)]
mod scenarios;
#[path = "../common/support.rs"]
#[allow(dead_code)]
mod support;

mod accounts;
mod bad_input;
mod crash;
mod delta;
mod families;
mod faults;
mod pipeline;
mod published;
mod raw;
mod writers;
