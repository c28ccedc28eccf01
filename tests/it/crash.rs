//! Killed runs: SIGKILL at random moments never leaves a half-written file where a reader
//! looks, and a re-run completes the output; SIGTERM stops cleanly with a summary.

use std::path::Path;
use std::time::Duration;

use object_store::ObjectStoreExt;
use wxcube_registry as registry;
use wxcube_simulator::faults::Faults;
use wxcube_simulator::{Clock, RunningSimulator, SimConfig};

use crate::s3::Moto;
use crate::support::*;

const KILLS: usize = 20;
/// Accounts the S3 kills take turns among.
const ACCOUNTS: usize = 6;
const BEGIN: &str = "2023-07-01";
const END: &str = "2024-03-31";

/// A simulator slow enough (a few ms a request) that a run lasts a couple of seconds.
async fn slow_simulator() -> RunningSimulator {
    let faults = Faults { latency_ms: 4, ..Faults::default() };
    simulator_with(SimConfig { clock: Clock::noon_on(d(TODAY)), faults, accounts: ACCOUNTS, ..SimConfig::default() })
        .await
}

fn args<'a>(output: &'a str, base: &'a str, id: &'a str) -> Vec<&'a str> {
    vec!["extract", "--output", output, "--api-base", base, "--appid", id, "--begin", BEGIN, "--end", END]
}

/// How long a run takes here when it has nothing left to write (the shortest a run gets):
/// kills are drawn inside it, so that most land mid-run however fast this machine writes.
async fn run_length(sim: &RunningSimulator, env: &[(&'static str, String)], output: &str) -> Duration {
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
async fn run_and_kill(
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
fn assert_local_output_readable(out: &Path) {
    for f in files(out) {
        let name = f.to_string_lossy();
        if name.starts_with("_wxcube/") {
            continue;
        }
        assert!(name.ends_with(".parquet"), "a reader would pick up {name}");
    }
    for t in registry::tables() {
        let rows = table_rows(out, t); // reads every file; panics on a torn one
        let days: std::collections::BTreeSet<_> = rows.iter().map(|r| r.1).collect();
        let want: Vec<Key> = expected_rows(t, &[1], BEGIN, END).into_iter().filter(|r| days.contains(&r.1)).collect();
        assert_eq!(rows, want, "{t}: every file holds its whole day");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_on_local_disk_never_leaves_a_torn_file() {
    let sim = slow_simulator().await;
    let out = tempfile::tempdir().unwrap();
    let output = out.path().to_str().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let length = run_length(&sim, &[], scratch.path().to_str().unwrap()).await;
    let mut mid_run = 0;
    for _ in 0..KILLS {
        mid_run += usize::from(run_and_kill(output, &sim, &[], length, 1, &[]).await);
        assert_local_output_readable(out.path());
    }
    assert!(mid_run >= KILLS / 2, "only {mid_run} kills landed mid-run");
    let (base, id) = (sim.base_url(), appid(1));
    wxcube(&args(output, &base, &id), &[("WECHAT_SECRET", &secret(1))]).await.assert_ok();
    for t in registry::tables() {
        assert_eq!(table_rows(out.path(), t), expected_rows(t, &[1], BEGIN, END), "{t}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_on_s3_never_leaves_a_torn_object() {
    let (moto, sim) = (Moto::start().await, slow_simulator().await);
    let env = moto.env(&moto.endpoint);
    let store = moto.store();
    let length = run_length(&sim, &env, "s3://lake/crash-length").await;
    // A killed run's lease on S3 lapses only after --lease-secs: the kills take turns among a
    // few accounts, so each run meets a lapsed lease, or waits it out (--lease-wait-secs).
    // Ten seconds, not less: on a loaded machine a renewal (a read and a conditional write on
    // moto) can take seconds, and a run that cannot renew in time stops writing.
    let lease = ["--lease-secs", "10", "--lease-wait-secs", "30"];
    let mut mid_run = 0;
    for i in 0..KILLS {
        mid_run += usize::from(run_and_kill("s3://lake/crash", &sim, &env, length, i % ACCOUNTS + 1, &lease).await);
        for key in moto.keys("crash").await {
            assert!(key.starts_with("crash/_wxcube/") || key.ends_with(".parquet"), "unexpected object {key}");
            if key.ends_with(".parquet") {
                let bytes =
                    store.get(&object_store::path::Path::from(key.as_str())).await.unwrap().bytes().await.unwrap();
                let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes);
                assert!(reader.is_ok(), "{key} is not a complete Parquet file");
            }
        }
    }
    assert!(mid_run >= KILLS / 2, "only {mid_run} kills landed mid-run");
    let base = sim.base_url();
    for i in 1..=ACCOUNTS {
        let (id, key) = (appid(i), secret(i));
        let envs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (*k, v.as_str())).chain([("WECHAT_SECRET", key.as_str())]).collect();
        wxcube(&[&args("s3://lake/crash", &base, &id)[..], &lease].concat(), &envs).await.assert_ok();
    }
    let local = tempfile::tempdir().unwrap();
    // Compare through the same reader as local output: copy the objects down.
    for key in moto.keys("crash").await {
        let bytes = store.get(&object_store::path::Path::from(key.as_str())).await.unwrap().bytes().await.unwrap();
        let path = local.path().join(key.trim_start_matches("crash/"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let accounts: Vec<usize> = (1..=ACCOUNTS).collect();
    for t in registry::tables() {
        assert_eq!(table_rows(local.path(), t), expected_rows(t, &accounts, BEGIN, END), "{t}");
    }
    assert_eq!(moto.dangling_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_cleanly_with_a_summary() {
    let sim = slow_simulator().await;
    let out = tempfile::tempdir().unwrap();
    let (base, id) = (sim.base_url(), appid(1));
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxcube"))
        .args(args(out.path().to_str().unwrap(), &base, &id))
        .env("WECHAT_SECRET", secret(1))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let done =
        tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.expect("stops promptly").unwrap();
    let run = Run {
        code: done.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&done.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&done.stderr).into_owned(),
    };
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary = run.summary();
    assert_eq!(summary["status"], "stopped");
    assert!(summary["failures"].as_u64().unwrap() > 0, "unfinished cells are listed");
    assert!(run.stderr.contains("SIGTERM received"), "{}", run.stderr);
    assert_local_output_readable(out.path());
    // What the stopped run did not fetch, the next run fills.
    let again = wxcube(&args(out.path().to_str().unwrap(), &base, &id), &[("WECHAT_SECRET", &secret(1))]).await;
    again.assert_ok();
    for t in registry::tables() {
        assert_eq!(table_rows(out.path(), t), expected_rows(t, &[1], BEGIN, END), "{t}");
    }
}
