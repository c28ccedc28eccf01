//! End to end: every row of every table, re-runs, several accounts, dry runs, the demo.

use std::collections::BTreeSet;

use arrow::array::{Array, Int64Array, StringArray, TimestampMicrosecondArray};
use wxcube_registry as registry;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn every_row_of_the_message_tables_matches_the_simulator() {
    // The other families, end to end: tests/it/families.rs.
    let sim = simulator().await;
    let out = tempfile::tempdir().unwrap();
    let run =
        extract(&sim, out.path(), 1, &["--begin", "2024-01-01", "--end", "2024-04-09", "--tables", "message"]).await;
    run.assert_ok();
    let summary = run.summary();
    assert_eq!(summary["status"], "ok");
    assert_eq!(summary["failures"], 0);
    let message = registry::select("message").unwrap();
    assert_eq!(message.len(), 7);
    assert_eq!(summary["tables"].as_object().unwrap().len(), 7);
    let mut planned = 0;
    for table in &message {
        let got = table_rows(out.path(), table);
        let want = expected_rows(table, &[1], "2024-01-01", "2024-04-09");
        assert!(!want.is_empty(), "{table}: the simulator has data");
        assert_eq!(got.len(), want.len(), "{table}: row count");
        assert_eq!(got, want, "{table}: rows");
        let t = &summary["tables"][&table.name];
        assert_eq!(t["rows"], want.len() as u64, "{table}");
        assert_eq!(t["requests"], t["planned"], "{table}: one request per planned window, no more");
        planned += t["planned"].as_u64().unwrap();
    }
    // The fewest calls: the simulator saw exactly the planned requests, and one token fetch.
    let stats = sim.stats();
    assert_eq!(stats.datacube_requests, planned);
    assert_eq!(token_calls(&stats), 1);
    // Bookkeeping stays under _wxcube/, and nothing is left in staging.
    let all = files(out.path());
    assert!(all.iter().any(|p| p.ends_with("_wxcube/dataset.json")));
    assert!(!all.iter().any(|p| p.to_string_lossy().contains("staging/")), "{all:?}");
    for p in &all {
        let s = p.to_string_lossy();
        assert!(s.starts_with("_wxcube/") || s.ends_with(".parquet"), "unexpected file {s}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_gives_the_same_rows_and_files() {
    let sim = simulator().await;
    let out = tempfile::tempdir().unwrap();
    let range = ["--begin", "2024-02-20", "--end", "2024-03-10"];
    extract(&sim, out.path(), 1, &range).await.assert_ok();
    let files_before = files(out.path());
    let rows_before: Vec<_> = default_tables().iter().map(|t| table_rows(out.path(), t)).collect();
    extract(&sim, out.path(), 1, &range).await.assert_ok();
    // The same files, but for the second run's record.
    let records = |files: Vec<std::path::PathBuf>| -> Vec<std::path::PathBuf> {
        files.into_iter().filter(|f| !f.starts_with("_wxcube/runs")).collect()
    };
    assert_eq!(records(files(out.path())), records(files_before));
    let rows_after: Vec<_> = default_tables().iter().map(|t| table_rows(out.path(), t)).collect();
    assert_eq!(rows_after, rows_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_for_account_b_leaves_account_a_untouched() {
    let sim = simulator().await;
    let out = tempfile::tempdir().unwrap();
    // One bucket: both accounts share every file, so the merge is what keeps A's rows.
    let flags = ["--begin", "2024-03-01", "--end", "2024-03-31", "--buckets", "1"];
    extract(&sim, out.path(), 1, &flags).await.assert_ok();
    let table = registry::find("upstream_msg_hour").unwrap();
    let a_before = read_table(out.path(), table);
    extract(&sim, out.path(), 2, &flags).await.assert_ok();
    let after = read_table(out.path(), table);
    assert_eq!(after.keys().collect::<Vec<_>>(), a_before.keys().collect::<Vec<_>>(), "same files, one per partition");
    for (file, batch) in &after {
        let appids = batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        let owners: BTreeSet<&str> = appids.iter().flatten().collect();
        assert_eq!(owners.len(), 2, "{file} holds both accounts");
        // A's rows, extracted_at included, are exactly what they were.
        let a_rows = (0..batch.num_rows()).filter(|&r| appids.value(r) == appid(1)).count();
        let a_slice = batch.slice(0, a_rows);
        assert_eq!(&a_slice, &a_before[file], "{file}");
    }
    for t in &default_tables() {
        assert_eq!(table_rows(out.path(), t), expected_rows(t, &[1, 2], "2024-03-01", "2024-03-31"), "{t}");
    }
    // A re-run of A with other buckets is refused: its rows live in the files of bucket 0.
    let refused =
        extract(&sim, out.path(), 1, &["--begin", "2024-03-01", "--end", "2024-03-31", "--buckets", "16"]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--buckets 1"), "{}", refused.stderr);
}

/// `extracted_at` is when an account's current values were first fetched: a re-run where one
/// account's values changed restamps that account's rows, not its neighbours' in the file.
#[tokio::test(flavor = "multi_thread")]
async fn extracted_at_is_decided_per_account() {
    let sim = simulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let (out, config) = (tmp.path().join("out"), tmp.path().join("accounts.toml"));
    std::fs::write(
        &config,
        format!(
            "[[account]]\nappid = \"{}\"\nsecret_env = \"S1\"\n[[account]]\nappid = \"{}\"\nsecret_env = \"S2\"\n",
            appid(1),
            appid(2)
        ),
    )
    .unwrap();
    let base = sim.base_url();
    let args = [
        "extract",
        "--output",
        out.to_str().unwrap(),
        "--api-base",
        &base,
        "--config",
        config.to_str().unwrap(),
        "--begin",
        "2024-03-01",
        "--end",
        "2024-03-07",
        "--tables",
        "upstream_msg",
    ];
    let env = [("S1", secret(1)), ("S2", secret(2))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    wxcube(&args, &env).await.assert_ok();
    let table = registry::find("upstream_msg").unwrap();
    let file = "upstream_msg/ref_date=2024-03-03/part-00.parquet";
    let first = read_table(&out, table).remove(file).unwrap();
    // Account 1's values in that file go stale (as when the API fills a day in late).
    let counts = first.column_by_name("msg_count").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
    let appids = first.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    let stale: Int64Array =
        (0..first.num_rows()).map(|r| Some(counts.value(r) + i64::from(appids.value(r) == appid(1)))).collect();
    let mut columns = first.columns().to_vec();
    columns[table.columns.iter().position(|c| c.name == "msg_count").unwrap()] = std::sync::Arc::new(stale);
    let stale = arrow::array::RecordBatch::try_new(first.schema(), columns).unwrap();
    std::fs::write(out.join(file), wxcube_connector::write::encode_parquet(table, &stale).unwrap()).unwrap();
    let untouched = std::fs::read(out.join("upstream_msg/ref_date=2024-03-04/part-00.parquet")).unwrap();

    let second = wxcube(&args, &env).await;
    second.assert_ok();
    assert_eq!(second.summary()["files_written"], 1, "only the stale file is rewritten");
    let after = read_table(&out, table).remove(file).unwrap();
    let stamps = |b: &arrow::array::RecordBatch, who: &str| -> BTreeSet<i64> {
        let at =
            b.column_by_name("extracted_at").unwrap().as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        let ids = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        (0..b.num_rows()).filter(|&r| ids.value(r) == who).map(|r| at.value(r)).collect()
    };
    assert_eq!(stamps(&after, &appid(2)), stamps(&first, &appid(2)), "account 2's values did not change");
    assert_ne!(stamps(&after, &appid(1)), stamps(&first, &appid(1)), "account 1's values did");
    assert_eq!(std::fs::read(out.join("upstream_msg/ref_date=2024-03-04/part-00.parquet")).unwrap(), untouched);
    assert_eq!(table_rows(&out, table), expected_rows(table, &[1, 2], "2024-03-01", "2024-03-07"));
}

/// Fields the answers carry that a table does not declare (the real API's `user_source`, which
/// the simulator sends on every message row) are counted per table and named once in the log.
#[tokio::test(flavor = "multi_thread")]
async fn undeclared_fields_are_counted_and_named() {
    let sim = simulator().await;
    let out = tempfile::tempdir().unwrap();
    let run =
        extract(&sim, out.path(), 1, &["--begin", "2024-03-01", "--end", "2024-03-31", "--tables", "message"]).await;
    run.assert_ok();
    let summary = run.summary();
    for t in &registry::select("message").unwrap() {
        let rows = expected_rows(t, &[1], "2024-03-01", "2024-03-31").len() as u64;
        assert_eq!(summary["tables"][&t.name]["unknown_fields"], serde_json::json!({ "user_source": rows }), "{t}");
    }
    let named: Vec<&str> = run.stderr.lines().filter(|l| l.contains("user_source")).collect();
    assert_eq!(named.len(), 1, "named once per run: {}", run.stderr);
    assert!(named[0].contains("not written"), "{}", named[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_prints_the_plan_and_calls_nothing() {
    let sim = simulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("never-created");
    let run = extract(
        &sim,
        &out,
        1,
        &["--begin", "2024-02-01", "--end", "2024-03-31", "--tables", "upstream_msg,getupstreammsgmonth", "--dry-run"],
    )
    .await;
    run.assert_ok();
    let lines: Vec<&str> = run.stdout.lines().filter(|l| !l.starts_with('#') && !l.starts_with('{')).collect();
    let mut want: Vec<String> = Vec::new();
    let mut b = d("2024-02-01");
    while b <= d("2024-03-31") {
        let e = (b + chrono::Days::new(6)).min(d("2024-03-31"));
        want.push(format!("upstream_msg\t{b}\t{e}\t1"));
        b = e.succ_opt().unwrap();
    }
    want.push("upstream_msg_month\t2024-02-01\t2024-03-01\t1".into());
    assert_eq!(lines, want);
    assert_eq!(run.summary()["dry_run"], true);
    let stats = sim.stats();
    assert_eq!((stats.datacube_requests, token_calls(&stats)), (0, 0), "a dry run sends nothing");
    assert!(!out.exists(), "a dry run writes nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_with_zero_setup() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let run = wxcube(&["demo", "--output", out.to_str().unwrap(), "--days", "20", "--accounts", "2"], &[]).await;
    run.assert_ok();
    assert!(run.stdout.contains("duckdb -c"), "{}", run.stdout);
    let summary = run.summary();
    assert_eq!(summary["status"], "ok");
    assert!(summary["rows"].as_u64().unwrap() > 0);
    for t in default_tables().iter().filter(|t| t.period != registry::Period::Month) {
        assert!(!read_table(&out, t).is_empty(), "{t} has files");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_lists_the_registry() {
    let run = wxcube(&["tables"], &[]).await;
    run.assert_ok();
    for t in &default_tables() {
        let heading = format!("{}  (family {}, API {}, {}", t.name, t.family, t.endpoint, t.status.name());
        assert!(run.stdout.contains(&heading), "{heading}: {}", run.stdout);
    }
    for column in ["msg_type_label", "read_user_source", "list<struct<user_count: int64, scene_desc: string>>"] {
        assert!(run.stdout.contains(column), "{column}");
    }
    assert!(run.stdout.contains("data from 2025-11-01; an incremental run fetches again the last 30 days"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_window_fails_its_cell_and_the_rest_goes_on() {
    // The first request is answered "system busy" and, with no retries allowed, its window
    // fails; every other window of every table is written.
    let faults = wxcube_simulator::Faults { busy: wxcube_simulator::faults::Trigger::count(1), ..Default::default() };
    let config = wxcube_simulator::SimConfig {
        clock: wxcube_simulator::Clock::noon_on(d(TODAY)),
        faults,
        ..wxcube_simulator::SimConfig::default()
    };
    let sim = simulator_with(config).await;
    let out = tempfile::tempdir().unwrap();
    let run =
        extract(&sim, out.path(), 1, &["--begin", "2024-03-01", "--end", "2024-03-10", "--max-retries", "0"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary = run.summary();
    assert_eq!(summary["status"], "partial");
    let failed = failed_cells(&summary);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0]["error"].as_str().unwrap().contains("errcode -1 (system busy)"), "{failed:?}");
    for t in &default_tables() {
        assert_eq!(
            table_rows(out.path(), t),
            expected_without_failures(t, 1, "2024-03-01", "2024-03-10", &summary),
            "{t}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_legacy_token_endpoint_is_used_only_when_asked() {
    let sim = simulator().await;
    let out = tempfile::tempdir().unwrap();
    let flags = ["--begin", "2024-03-01", "--end", "2024-03-02", "--tables", "upstream_msg"];
    extract(&sim, out.path(), 1, &flags).await.assert_ok();
    assert_eq!((sim.stats().token_calls.stable_token, sim.stats().token_calls.token), (1, 0));
    extract(&sim, out.path(), 1, &[&flags[..], &["--legacy-token-endpoint"]].concat()).await.assert_ok();
    assert_eq!((sim.stats().token_calls.stable_token, sim.stats().token_calls.token), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulate_command_serves_a_run() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxcube"))
        .args(["simulate", "--today", TODAY])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let base = first.strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {first}")).to_string();
    let out = tempfile::tempdir().unwrap();
    let run = wxcube(
        &[
            "extract",
            "--output",
            out.path().to_str().unwrap(),
            "--api-base",
            &base,
            "--appid",
            &appid(3),
            "--begin",
            "2024-03-01",
            "--end",
            "2024-03-31",
        ],
        &[("WECHAT_SECRET", &secret(3))],
    )
    .await;
    run.assert_ok();
    for t in &default_tables() {
        assert_eq!(table_rows(out.path(), t), expected_rows(t, &[3], "2024-03-01", "2024-03-31"), "{t}");
    }
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_on_the_same_buckets_is_refused_while_the_first_runs() {
    let faults = wxcube_simulator::Faults { latency_ms: 30, ..Default::default() };
    let sim = simulator_with(wxcube_simulator::SimConfig {
        clock: wxcube_simulator::Clock::noon_on(d(TODAY)),
        faults,
        ..wxcube_simulator::SimConfig::default()
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    let flags = ["--begin", "2024-01-01", "--end", "2024-03-31", "--concurrency", "2"];
    let first = extract(&sim, out.path(), 1, &flags);
    let second = async {
        // Wait until the first run holds its lease.
        for _ in 0..200 {
            if files(out.path()).iter().any(|f| f.starts_with("_wxcube/locks")) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        extract(&sim, out.path(), 1, &flags).await
    };
    let (first, second) = tokio::join!(first, second);
    first.assert_ok();
    assert_eq!(second.code, 2, "{}", second.stderr);
    assert!(second.stderr.contains("another run (extract pid"), "{}", second.stderr);
    let lease: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("_wxcube/locks/bucket-00.json")).unwrap()).unwrap();
    assert_eq!(lease["holders"], serde_json::json!([]), "the lease is released");
}
