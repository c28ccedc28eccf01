//! Killing runs: a slow simulator, runs killed at random moments of their usual length, and the
//! check that every file a reader can see is whole.

use std::path::Path;
use std::time::Duration;

use wxcube_simulator::faults::Faults;
use wxcube_simulator::{Clock, RunningSimulator, SimConfig};

use crate::support::*;

pub const KILLS: usize = 20;
/// Accounts the S3 kills take turns among.
pub const ACCOUNTS: usize = 6;
pub const BEGIN: &str = "2023-07-01";
pub const END: &str = "2024-03-31";

/// A simulator slow enough (a few ms a request) that a run lasts a couple of seconds.
pub async fn slow_simulator() -> RunningSimulator {
    let faults = Faults { latency_ms: 4, ..Faults::default() };
    simulator_with(SimConfig { clock: Clock::noon_on(d(TODAY)), faults, accounts: ACCOUNTS, ..SimConfig::default() })
        .await
}

pub fn args<'a>(output: &'a str, base: &'a str, id: &'a str) -> Vec<&'a str> {
    vec!["extract", "--output", output, "--api-base", base, "--appid", id, "--begin", BEGIN, "--end", END]
}

/// How long a run takes here when it has nothing left to write (the shortest a run gets):
/// kills are drawn inside it, so that most land mid-run however fast this machine writes.
pub async fn run_length(sim: &RunningSimulator, env: &[(&'static str, String)], output: &str) -> Duration {
    let (base, id, key) = (sim.base_url(), appid(1), secret(1));
    let envs: Vec<(&str, &str)> =
        env.iter().map(|(k, v)| (*k, v.as_str())).chain([("WECHAT_SECRET", key.as_str())]).collect();
    wxcube(&args(output, &base, &id), &envs).await.assert_ok();
    let started = std::time::Instant::now();
    wxcube(&args(output, &base, &id), &envs).await.assert_ok();
    started.elapsed()
}

/// Starts a run of demo account `account` and, once it has taken its lease and started
/// extracting, kills it with SIGKILL at a random moment of its usual length; true if it was
/// still running.
pub async fn run_and_kill(
    output: &str,
    sim: &RunningSimulator,
    env: &[(&'static str, String)],
    length: Duration,
    account: usize,
    extra: &[&str],
) -> bool {
    use tokio::io::AsyncBufReadExt;
    let (base, id) = (sim.base_url(), appid(account));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxcube"))
        .args(args(output, &base, &id))
        .args(extra)
        .env("WECHAT_SECRET", secret(account))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The kill is timed from the start of the extraction, not of the process: a run may first
    // wait for the lease a killed run left (S3, where leases lapse rather than die with the
    // process).
    let mut log = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    while let Ok(Some(line)) = log.next_line().await {
        if line.contains("starting extraction") {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    tokio::time::sleep(length.mul_f64(fastrand::f64() * 0.9 + 0.02)).await;
    let running = child.try_wait().unwrap().is_none();
    let _ = child.start_kill(); // SIGKILL
    let _ = child.wait().await;
    running
}

/// Every file a reader can see is a complete Parquet file holding exactly its day's rows.
pub fn assert_local_output_readable(out: &Path) {
    for f in files(out) {
        let name = f.to_string_lossy();
        if name.starts_with("_wxcube/") {
            continue;
        }
        assert!(name.ends_with(".parquet"), "a reader would pick up {name}");
    }
    for t in &default_tables() {
        let rows = table_rows(out, t); // reads every file; panics on a torn one
        let days: std::collections::BTreeSet<_> = rows.iter().map(|r| r.1).collect();
        let want: Vec<Key> = expected_rows(t, &[1], BEGIN, END).into_iter().filter(|r| days.contains(&r.1)).collect();
        assert_eq!(rows, want, "{t}: every file holds its whole day");
    }
}
