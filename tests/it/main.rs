//! Integration tests: the real `wxcube` binary against the built-in simulator.
//!
//! The simulator runs in the test process (its data generator is also the oracle the output is
//! checked against); wxcube runs as a child process, exactly as a user or a scheduler runs it.

mod accounts;
mod airflow;
mod bad_input;
mod crash;
mod faults;
mod pipeline;
mod proxy;
mod raw;
mod readback;
mod s3;
mod support;
mod writers;
