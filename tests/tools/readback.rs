//! Real readers: DuckDB reads the output with hive partitioning and sees the declared types.

use std::path::Path;

use wxcube_registry as registry;

use crate::support::*;

/// The date of the one cell per table the DuckDB check filters on: a period start.
fn cell_date(table: &registry::Table) -> &'static str {
    match table.period {
        registry::Period::Week => "2024-02-05",
        registry::Period::Month => "2024-02-01",
        _ => "2024-02-14",
    }
}

fn duckdb_view(out: &Path, appid: &str) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/readback/duckdb_check.py");
    let mut cmd = std::process::Command::new(python());
    cmd.arg(script).arg(out).arg(appid);
    cmd.args(registry::tables().iter().map(|t| format!("{}={}", t.name, cell_date(t))));
    let run = cmd.output().expect("python runs");
    assert!(run.status.success(), "duckdb check failed: {}", String::from_utf8_lossy(&run.stderr));
    serde_json::from_slice(&run.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn duckdb_reads_dates_counts_and_labels() {
    python(); // DuckDB is needed: say so now, not from inside the task that reads.
    let sim = simulator().await;
    let out = tempfile::tempdir().unwrap();
    extract(&sim, out.path(), 1, &["--begin", "2024-01-01", "--end", "2024-03-31"]).await.assert_ok();
    extract(&sim, out.path(), 3, &["--begin", "2024-01-01", "--end", "2024-03-31"]).await.assert_ok();
    let seen = tokio::task::spawn_blocking({
        let p = out.path().to_path_buf();
        move || duckdb_view(&p, &appid(3))
    })
    .await
    .unwrap();
    for table in registry::tables() {
        let t = &seen[&table.name];
        let types = &t["types"];
        assert_eq!(types["ref_date"], "DATE", "{table}: {types}");
        assert_eq!(types["appid"], "VARCHAR");
        assert_eq!(types["msg_user"], "BIGINT");
        assert_eq!(types["extracted_at"], "TIMESTAMP WITH TIME ZONE");
        for c in &table.columns {
            let want = match c.ty {
                registry::ColumnType::String => "VARCHAR",
                registry::ColumnType::Int32 => "INTEGER",
                registry::ColumnType::Int64 => "BIGINT",
                registry::ColumnType::TimestampUsUtc => "TIMESTAMP WITH TIME ZONE",
            };
            assert_eq!(types[&c.name], want, "{table}.{}", c.name);
        }
        let want = expected_rows(table, &[1, 3], "2024-01-01", "2024-03-31");
        assert_eq!(t["rows"], want.len() as u64, "{table}: row count");
        let field = table.field_index("msg_user").unwrap();
        assert_eq!(t["sums"]["msg_user"], want.iter().map(|r| r.2[field]).sum::<i64>(), "{table}: sum of msg_user");
        let cell: Vec<&Key> = want.iter().filter(|r| r.0 == appid(3) && r.1 == d(cell_date(table))).collect();
        assert!(!cell.is_empty(), "{table}: the filtered cell has rows");
        assert_eq!(t["cell"]["rows"], cell.len() as u64, "{table}: rows of one (ref_date, appid)");
        assert_eq!(t["cell"]["msg_user"], cell.iter().map(|r| r.2[field]).sum::<i64>(), "{table}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_duckdb_example_runs_on_demo_shaped_output() {
    let sim = simulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("wxcube-demo");
    extract(&sim, &out, 2, &["--begin", "2024-03-01", "--end", "2024-03-07", "--tables", "upstream_msg"])
        .await
        .assert_ok();
    let sql = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/duckdb/daily_messages.sql");
    let code = format!(
        "import duckdb, json; rows = duckdb.sql(open({sql:?}).read()).fetchall(); print(json.dumps([[str(c) for c in r] for r in rows]))"
    );
    let run = std::process::Command::new(python()).arg("-c").arg(code).current_dir(tmp.path()).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let rows: Vec<Vec<String>> = serde_json::from_slice(&run.stdout).unwrap();
    let table = wxcube_registry::find("upstream_msg").unwrap();
    let want = expected_rows(table, &[2], "2024-03-01", "2024-03-07");
    let count = table.field_index("msg_count").unwrap();
    assert_eq!(rows.len(), want.len(), "one row per day and message type");
    let messages: i64 = rows.iter().map(|r| r[4].parse::<i64>().unwrap()).sum();
    assert_eq!(messages, want.iter().map(|r| r.2[count]).sum::<i64>());
}

#[tokio::test(flavor = "multi_thread")]
async fn spark_reads_every_table_and_runs_the_example() {
    let sim = simulator().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("wxcube-demo");
    for i in [1, 2] {
        extract(&sim, &out, i, &["--begin", "2024-01-01", "--end", "2024-03-31"]).await.assert_ok();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/readback/spark_check.py");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pyspark/read_tables.py");
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(script).arg(&out).arg(example).args(registry::tables().iter().map(|t| t.name.as_str()));
    let run = cmd.output().await.unwrap();
    assert!(run.status.success(), "spark check failed: {}", String::from_utf8_lossy(&run.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    for table in registry::tables() {
        let t = &seen[&table.name];
        let types = &t["types"];
        assert_eq!(types["ref_date"], "date", "{table}: ref_date is discovered from the path: {types}");
        assert_eq!(types["extracted_at"], "timestamp", "{table}");
        for c in &table.columns {
            let want = match c.ty {
                registry::ColumnType::String => "string",
                registry::ColumnType::Int32 => "int",
                registry::ColumnType::Int64 => "bigint",
                registry::ColumnType::TimestampUsUtc => "timestamp",
            };
            assert_eq!(types[&c.name], want, "{table}.{}", c.name);
        }
        let want = expected_rows(table, &[1, 2], "2024-01-01", "2024-03-31");
        assert_eq!(t["rows"], want.len() as u64, "{table}: rows");
        for measure in ["msg_user", "msg_count"] {
            if let Some(f) = table.field_index(measure) {
                assert_eq!(t["sums"][measure], want.iter().map(|r| r.2[f]).sum::<i64>(), "{table}: sum of {measure}");
            }
        }
    }
    // The example: messages per type over both accounts.
    let msg = registry::find("upstream_msg").unwrap();
    let (ty, count) = (msg.field_index("msg_type").unwrap(), msg.field_index("msg_count").unwrap());
    let want = expected_rows(msg, &[1, 2], "2024-01-01", "2024-03-31");
    for row in seen["example"].as_array().unwrap() {
        let code = row["msg_type"].as_i64().unwrap();
        let sum: i64 = want.iter().filter(|r| r.2[ty] == code).map(|r| r.2[count]).sum();
        assert_eq!(row["messages"], sum, "messages of type {code}");
    }
    assert!(!seen["example"].as_array().unwrap().is_empty());
}
