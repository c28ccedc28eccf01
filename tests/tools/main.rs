//! Integration tests that need what `scripts/test.sh` installs: DuckDB and PySpark (the
//! readers the output is proven against), moto (an S3-compatible server) and Apache Airflow.
//! Run them with `scripts/test.sh`; run alone without those, each fails with one line saying so.

#[path = "../common/kill.rs"]
#[allow(dead_code)]
mod kill;
#[path = "../common/moto.rs"]
mod moto;
#[path = "../common/proxy.rs"]
mod proxy;
#[path = "../common/scenarios.rs"]
#[allow(dead_code)]
mod scenarios;
#[path = "../common/support.rs"]
#[allow(dead_code)]
mod support;

mod airflow;
mod crash;
mod delta;
mod install;
mod readback;
mod s3;
mod writers;
