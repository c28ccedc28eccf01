//! `--format delta`, proven by readers that share no code with wxcube: the `deltalake` Python
//! package (delta-rs), Polars' `read_delta` and DuckDB's delta extension
//! (tests/readback/delta_check.py) read each table, and every row they see is compared with the
//! simulator's own. Then the protocol's guarantees with real concurrent processes, on local
//! disk and on S3 (moto): three writers at once, a run killed between writing its files and
//! committing them, and a run whose table another writer advanced meanwhile.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use arrow::array::{Array, Date32Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tokio::io::AsyncReadExt;
use wxcube_registry::{self as registry, Table};

use crate::scenarios::{BEGIN, END, Target, all_at_once, signal, sim};
use crate::support::*;

const READERS: [&str; 3] = ["deltalake", "polars", "duckdb"];

/// The simulated today and range of the every-table test: every family has data (see
/// tests/tools/readback.rs).
const DAY: &str = "2025-12-10";
const ALL_BEGIN: &str = "2025-10-27";
const ALL_END: &str = "2025-11-16";

fn delta_python() -> String {
    installed("WXCUBE_DELTA_PYTHON", "deltalake, Polars and DuckDB's delta extension")
}

/// What the readers saw of one table: delta_check.py's JSON line, and each reader's rows.
pub struct Seen {
    pub info: serde_json::Value,
    pub rows: BTreeMap<String, Vec<Key>>,
}

/// Reads the Delta table at `uri` (at `version`, if given) with `readers`.
pub async fn read_delta(
    table: &Table,
    uri: &str,
    version: Option<u64>,
    readers: &[&str],
    env: &[(String, String)],
) -> Seen {
    let tmp = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/readback/delta_check.py");
    let mut cmd = tokio::process::Command::new(delta_python());
    cmd.arg(script).arg(uri).arg(tmp.path()).arg("--readers").arg(readers.join(","));
    if let Some(v) = version {
        cmd.arg("--version").arg(v.to_string());
    }
    let out = cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))).output().await.unwrap();
    assert!(out.status.success(), "{table}: {}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = readers
        .iter()
        .map(|r| (r.to_string(), parquet_rows(&tmp.path().join(format!("{r}.parquet")), table)))
        .collect();
    Seen { info, rows }
}

/// The rows of a reader's file (every column of the table by name, and `ref_date`).
fn parquet_rows(path: &Path, table: &Table) -> Vec<Key> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap().build().unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let schema = batch.schema();
        let indices: Vec<usize> = table
            .columns
            .iter()
            .map(|c| {
                schema.index_of(&c.name).unwrap_or_else(|_| panic!("{table}: the reader has no column {}", c.name))
            })
            .collect();
        let ours: RecordBatch = batch.project(&indices).unwrap();
        let dates = batch.column_by_name("ref_date").unwrap().as_any().downcast_ref::<Date32Array>().unwrap();
        for i in 0..batch.num_rows() {
            assert!(dates.is_valid(i), "{table}: a row without ref_date");
            rows.extend(batch_rows(table, &ours.slice(i, 1), dates.value_as_date(i).unwrap()));
        }
    }
    rows.sort();
    rows
}

/// The table's location, as the readers open it.
fn uri(target: &Target, table: &Table) -> String {
    format!("{}/{}", target.output(), table.name)
}

/// Every row of every message table, as deltalake reads the latest version, against the
/// simulator's rows for `ids`.
async fn assert_delta_rows(target: &Target, ids: &[usize]) {
    for t in &registry::select("message").unwrap() {
        let seen = read_delta(t, &uri(target, t), None, &["deltalake"], &target.env()).await;
        assert_eq!(seen.rows["deltalake"], expected_rows(t, ids, BEGIN, END), "{t}");
    }
}

/// The versions in a table's log.
async fn versions(target: &Target, table: &Table) -> Vec<u64> {
    target
        .keys(&format!("{}/_delta_log", table.name))
        .await
        .iter()
        .filter_map(|k| k.rsplit('/').next()?.strip_suffix(".json")?.parse().ok())
        .collect()
}

/// Data files under a table's partitions, named in the log or not.
async fn data_files(target: &Target) -> usize {
    let mut n = 0;
    for t in &registry::select("message").unwrap() {
        n += target.keys(&t.name).await.iter().filter(|k| k.contains("/ref_date=") && k.ends_with(".parquet")).count();
    }
    n
}

fn delta_flags() -> Vec<&'static str> {
    vec!["--begin", BEGIN, "--end", END, "--tables", "message", "--format", "delta"]
}

// --- The readers ----------------------------------------------------------------------------

/// Every table of the registry, two accounts: each reader sees exactly the simulator's rows,
/// the schema and properties wxcube declares, and, at the version before the second account's
/// run changed a table, exactly the first account's rows. A third run that changes nothing
/// makes no version.
#[tokio::test(flavor = "multi_thread")]
async fn every_reader_sees_every_row_and_the_version_before_a_change() {
    let sim = simulator_with(wxcube_simulator::SimConfig {
        clock: wxcube_simulator::Clock::noon_on(d(DAY)),
        ..Default::default()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let flags = ["--begin", ALL_BEGIN, "--end", ALL_END, "--tables", "all,article_legacy", "--format", "delta"];
    let first = extract(&sim, &out, 1, &flags).await;
    first.assert_ok();
    let second = extract(&sim, &out, 2, &flags).await;
    second.assert_ok();
    let mut travelled = 0;
    for t in registry::tables() {
        let version = |run: &Run| run.summary()["tables"][&t.name]["delta_version"].as_u64();
        let table_dir = out.join(&t.name);
        let seen = read_delta(t, table_dir.to_str().unwrap(), None, &READERS, &[]).await;
        let want = expected_rows_on(DAY, t, &[1, 2], ALL_BEGIN, ALL_END);
        assert!(!want.is_empty(), "{t}: the simulator has rows in the range");
        for reader in READERS {
            assert_eq!(seen.rows[reader], want, "{t}, read by {reader}");
        }
        let mut columns: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        columns.push("ref_date");
        assert_eq!(seen.info["columns"], serde_json::json!(columns), "{t}");
        assert_eq!(seen.info["partition_columns"], serde_json::json!(["ref_date"]), "{t}");
        let properties = &seen.info["configuration"];
        assert_eq!(properties["wxcube.table"], t.name.as_str());
        assert!(properties["wxcube.endpoint"].as_str().unwrap().ends_with(&format!("/{}", t.endpoint)), "{properties}");
        assert!(properties["wxcube.writer"].as_str().unwrap().starts_with("wxcube "), "{properties}");
        assert_eq!(seen.info["deltalake"]["version"].as_u64(), version(&second), "{t}: the summary's version");
        // Time travel to the version the first run left, where the second changed the table.
        let (before, after) = (version(&first).unwrap(), version(&second).unwrap());
        if after > before {
            travelled += 1;
            let old = read_delta(t, table_dir.to_str().unwrap(), Some(before), &READERS, &[]).await;
            let want = expected_rows_on(DAY, t, &[1], ALL_BEGIN, ALL_END);
            for reader in READERS {
                assert_eq!(old.rows[reader], want, "{t} at version {before}, read by {reader}");
            }
        }
    }
    assert!(travelled > 10, "most tables hold both accounts' rows in the same files");
    let third = extract(&sim, &out, 2, &flags).await;
    third.assert_ok();
    assert_eq!(third.summary()["files_written"], 0);
    for t in registry::tables() {
        let v = |run: &Run| run.summary()["tables"][&t.name]["delta_version"].clone();
        assert_eq!(v(&third), v(&second), "{t}: nothing changed, no new version");
    }
}

/// Twelve runs, a week each: a checkpoint at version 10 that every reader opens, with the
/// commits before it removed (as a log clean-up leaves a table); time travel before it.
#[tokio::test(flavor = "multi_thread")]
async fn readers_open_the_checkpoints_wxcube_writes() {
    let sim = simulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let table = registry::find("upstream_msg").unwrap();
    let monday = d("2024-01-01");
    let week = |k: u64| (monday + chrono::Days::new(7 * k), monday + chrono::Days::new(7 * k + 6));
    for k in 0..12 {
        let (begin, end) = week(k);
        let (begin, end) = (begin.to_string(), end.to_string());
        let run = extract(
            &sim,
            &out,
            1,
            &["--begin", &begin, "--end", &end, "--tables", "upstream_msg", "--format", "delta"],
        )
        .await;
        run.assert_ok();
        assert_eq!(run.summary()["tables"]["upstream_msg"]["delta_version"], k, "one commit per run");
    }
    let log = out.join("upstream_msg/_delta_log");
    assert!(log.join("00000000000000000010.checkpoint.parquet").is_file());
    let pointer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(log.join("_last_checkpoint")).unwrap()).unwrap();
    assert_eq!(pointer["version"], 10);
    let dir = out.join("upstream_msg");
    let six_weeks = read_delta(table, dir.to_str().unwrap(), Some(5), &READERS, &[]).await;
    for reader in READERS {
        assert_eq!(six_weeks.rows[reader], expected_rows(table, &[1], "2024-01-01", "2024-02-11"), "{reader}");
    }
    for v in 0..10 {
        std::fs::remove_file(log.join(format!("{v:020}.json"))).unwrap();
    }
    let all = read_delta(table, dir.to_str().unwrap(), None, &READERS, &[]).await;
    for reader in READERS {
        assert_eq!(all.rows[reader], expected_rows(table, &[1], "2024-01-01", "2024-03-24"), "{reader}");
    }
    // wxcube reads its table from the checkpoint too: an unchanged week makes no version.
    let run = extract(
        &sim,
        &out,
        1,
        &["--begin", "2024-01-01", "--end", "2024-01-07", "--tables", "upstream_msg", "--format", "delta"],
    )
    .await;
    run.assert_ok();
    assert_eq!(run.summary()["tables"]["upstream_msg"]["delta_version"], 11);
}

// --- The protocol, on local disk and S3 -------------------------------------------------------

/// Three writers of overlapping accounts started at once on a new output: they race to create
/// each table and to commit its versions; every row is there once.
async fn three_writers_at_once(s3: bool) {
    let (target, sim) = (Target::new(s3).await, sim(1).await);
    let flags = delta_flags();
    let cmds: Vec<_> =
        [[1, 2], [2, 3], [1, 3]].iter().map(|ids| target.command(&sim, "extract", ids, &flags)).collect();
    for run in all_at_once(&cmds).await {
        run.assert_ok();
    }
    assert_delta_rows(&target, &[1, 2, 3]).await;
    for t in &registry::select("message").unwrap() {
        let v = versions(&target, t).await;
        assert!(!v.is_empty() && v.len() <= 3, "{t}: one commit per writer at most: {v:?}");
    }
}

/// Starts `cmd` and stops it (SIGSTOP) once it has written data files; asserts that it has
/// committed nothing yet. Ordering comes from the stopped process, not from timing: whatever
/// happens next, it cannot commit until it is continued.
async fn start_and_stop_after_its_first_files(target: &Target, cmd: &crate::scenarios::Cmd) -> Stopped {
    // One table is watched: a listing of every table takes long enough on S3 that a short run
    // could end meanwhile.
    let watched = || async { target.keys("upstream_msg").await.iter().filter(|k| k.ends_with(".parquet")).count() };
    let before = watched().await;
    let (mut child, log) = cmd.start().await;
    while watched().await == before {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it wrote a file");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = child.id().unwrap().to_string();
    signal("-STOP", &pid);
    Stopped { child, log, pid }
}

struct Stopped {
    child: tokio::process::Child,
    log: tokio::task::JoinHandle<String>,
    pid: String,
}

/// The versions of every message table.
async fn all_versions(target: &Target) -> Vec<Vec<u64>> {
    let mut all = Vec::new();
    for t in &registry::select("message").unwrap() {
        all.push(versions(target, t).await);
    }
    all
}

/// A run killed with SIGKILL after writing data files, before committing them: readers see the
/// table as it was; a re-run commits the account once.
async fn a_run_killed_before_its_commit(s3: bool) {
    let (target, sim) = (Target::new(s3).await, sim(80).await);
    let flags = delta_flags();
    target.command(&sim, "extract", &[1], &flags).run().await.assert_ok();
    let before = data_files(&target).await;
    let second = target.command(&sim, "extract", &[2], &flags);
    let mut stopped = start_and_stop_after_its_first_files(&target, &second).await;
    let committed_before = all_versions(&target).await;
    assert!(
        committed_before.iter().all(|v| v == &[0]),
        "the second run has committed nothing yet: {committed_before:?}"
    );
    stopped.child.start_kill().unwrap(); // SIGKILL
    stopped.child.wait().await.unwrap();
    assert!(data_files(&target).await > before, "the killed run wrote files");
    assert_eq!(all_versions(&target).await, committed_before, "the killed run committed nothing");
    assert_delta_rows(&target, &[1]).await;
    let rerun = second.run().await;
    rerun.assert_ok();
    for t in &registry::select("message").unwrap() {
        assert_eq!(versions(&target, t).await, [0, 1], "{t}: the re-run committed once");
        assert_eq!(rerun.summary()["tables"][&t.name]["delta_version"], 1);
    }
    assert_delta_rows(&target, &[1, 2]).await;
}

/// A run reads the tables (they do not exist yet) and writes files; while it is stopped, another
/// writer creates every table and commits its accounts; continued, the first must merge its
/// accounts into the other's files, rather than add a second file beside theirs (account 1, in
/// both runs, would be doubled) or drop theirs.
async fn a_table_advanced_mid_run(s3: bool) {
    let (target, sim) = (Target::new(s3).await, sim(80).await);
    let flags = delta_flags();
    let mut first =
        start_and_stop_after_its_first_files(&target, &target.command(&sim, "extract", &[1, 3], &flags)).await;
    assert!(all_versions(&target).await.iter().all(Vec::is_empty), "no table exists yet");
    target.command(&sim, "extract", &[1, 2], &flags).run().await.assert_ok();
    assert!(all_versions(&target).await.iter().all(|v| v == &[0]), "the other run created every table");
    signal("-CONT", &first.pid);
    let mut stdout = first.child.stdout.take().unwrap();
    let status = first.child.wait().await.unwrap();
    let mut printed = String::new();
    stdout.read_to_string(&mut printed).await.unwrap();
    assert!(status.success(), "{}", first.log.await.unwrap());
    let summary: serde_json::Value = serde_json::from_str(printed.lines().last().unwrap()).unwrap();
    for t in &registry::select("message").unwrap() {
        assert_eq!(summary["tables"][&t.name]["delta_version"], 1, "{t}: committed after the other run's version 0");
    }
    assert_delta_rows(&target, &[1, 2, 3]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_writers_at_once_on_local_disk() {
    three_writers_at_once(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_writers_at_once_on_s3() {
    three_writers_at_once(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_before_its_commit_on_local_disk() {
    a_run_killed_before_its_commit(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_before_its_commit_on_s3() {
    a_run_killed_before_its_commit(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_advanced_mid_run_on_local_disk() {
    a_table_advanced_mid_run(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_advanced_mid_run_on_s3() {
    a_table_advanced_mid_run(true).await;
}

// --- Signals, raw answers and rebuild ---------------------------------------------------------

/// SIGTERM: the run stops fetching and commits what it wrote, so readers see whole days of
/// the account; a re-run fills the rest.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_commits_what_the_run_wrote_and_a_rerun_fills_the_rest() {
    let (target, sim) = (Target::new(false).await, sim(80).await);
    let cmd = target.command(&sim, "extract", &[1], &delta_flags());
    // Stopped once it has written files, then terminated: the signal finds it mid-run however
    // slow this machine is.
    let Stopped { mut child, log, pid } = start_and_stop_after_its_first_files(&target, &cmd).await;
    let mut stdout = child.stdout.take().unwrap();
    signal("-TERM", &pid);
    signal("-CONT", &pid);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("stops promptly").unwrap();
    let mut printed = String::new();
    stdout.read_to_string(&mut printed).await.unwrap();
    assert_eq!(status.code(), Some(1), "{}", log.await.unwrap());
    let summary: serde_json::Value = serde_json::from_str(printed.lines().last().unwrap()).unwrap();
    assert_eq!(summary["status"], "stopped");
    let mut committed = 0;
    for t in &registry::select("message").unwrap() {
        if versions(&target, t).await.is_empty() {
            continue;
        }
        committed += 1;
        assert_eq!(summary["tables"][&t.name]["delta_version"], 0, "{t}");
        let seen = read_delta(t, &uri(&target, t), None, &["deltalake"], &[]).await;
        let days: std::collections::BTreeSet<_> = seen.rows["deltalake"].iter().map(|r| r.1).collect();
        let want: Vec<Key> = expected_rows(t, &[1], BEGIN, END).into_iter().filter(|r| days.contains(&r.1)).collect();
        assert_eq!(seen.rows["deltalake"], want, "{t}: whole days of the account");
    }
    assert!(committed > 0, "the stopped run committed the files it had written");
    cmd.run().await.assert_ok();
    assert_delta_rows(&target, &[1]).await;
}

/// `--keep-raw` and `rebuild` on Delta tables: a rebuild that changes nothing makes no
/// version; a rebuild asking for Parquet is refused with the output's format named.
#[tokio::test(flavor = "multi_thread")]
async fn rebuild_of_delta_tables_from_raw_answers() {
    let (target, sim) = (Target::new(false).await, sim(0).await);
    let mut flags = delta_flags();
    flags.push("--keep-raw");
    target.command(&sim, "extract", &[1, 2], &flags).run().await.assert_ok();
    let rebuild = |format: &'static str| {
        let output = target.output();
        async move { wxcube(&["rebuild", "--output", &output, "--tables", "message", "--format", format], &[]).await }
    };
    let rebuilt = rebuild("delta").await;
    rebuilt.assert_ok();
    let summary = rebuilt.summary();
    assert_eq!(summary["files_written"], 0, "{summary}");
    for t in &registry::select("message").unwrap() {
        assert_eq!(summary["tables"][&t.name]["delta_version"], 0, "{t}: no new version");
        assert_eq!(versions(&target, t).await, [0], "{t}");
    }
    assert_delta_rows(&target, &[1, 2]).await;
    let refused = rebuild("parquet").await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("holds delta tables, not parquet: use --format delta"), "{}", refused.stderr);
}
