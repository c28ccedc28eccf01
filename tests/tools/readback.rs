//! Real readers: DuckDB reads the output with hive partitioning and sees the declared types.

use std::path::Path;

use wxcube_registry as registry;

use crate::support::*;

/// The simulated today: after the 2025 article family's first day, so that every family has
/// data; and the range every readback test extracts, around that first day.
const DAY: &str = "2025-12-10";
const BEGIN: &str = "2025-10-27";
const END: &str = "2025-11-16";

/// The date of the one cell per table the DuckDB check filters on: a period start.
fn cell_date(table: &registry::Table) -> &'static str {
    match table.period {
        registry::Period::Week => "2025-11-03",
        registry::Period::Month => "2025-11-01",
        _ => "2025-11-05",
    }
}

async fn simulator_on_day() -> wxcube_simulator::RunningSimulator {
    let clock = wxcube_simulator::Clock::noon_on(d(DAY));
    simulator_with(wxcube_simulator::SimConfig { clock, ..Default::default() }).await
}

/// Extracts every table of the registry for demo accounts `ids` into `out`.
async fn extract_all(sim: &wxcube_simulator::RunningSimulator, out: &Path, ids: &[usize]) {
    for &i in ids {
        extract(sim, out, i, &["--begin", BEGIN, "--end", END, "--tables", "all,article_legacy"]).await.assert_ok();
    }
}

/// What a reader should see of `table` for accounts `ids`, from the simulator's own rows: the
/// row count, the sum of every integer column, and per list column its number of elements and
/// the sums of their integer fields.
fn truth(table: &registry::Table, ids: &[usize]) -> serde_json::Value {
    let want = expected_rows_on(DAY, table, ids, BEGIN, END);
    let mut sums = serde_json::Map::new();
    let mut lists = serde_json::Map::new();
    for c in &table.columns {
        let registry::Source::Field { field, divide_by, .. } = c.source else { continue };
        match &c.ty {
            registry::ColumnType::Int32 | registry::ColumnType::Int64 => {
                let sum: i64 = want.iter().filter_map(|r| r.2[field].int()).map(|v| v / divide_by.unwrap_or(1)).sum();
                sums.insert(c.name.clone(), sum.into());
            }
            registry::ColumnType::List(fields) => {
                let elements: Vec<serde_json::Value> = want
                    .iter()
                    .filter_map(|r| match &r.2[field] {
                        wxcube_simulator::data::SimValue::Raw(json) => Some(json),
                        _ => None,
                    })
                    .flat_map(|json| serde_json::from_str::<Vec<serde_json::Value>>(json).unwrap())
                    .collect();
                let ints = fields.iter().filter(|f| f.ty == registry::ColumnType::Int64);
                let field_sums: serde_json::Map<String, serde_json::Value> = ints
                    .map(|f| (f.name.clone(), elements.iter().filter_map(|e| e[&f.name].as_i64()).sum::<i64>().into()))
                    .collect();
                lists.insert(c.name.clone(), serde_json::json!({"elements": elements.len(), "sums": field_sums}));
            }
            _ => {}
        }
    }
    serde_json::json!({"rows": want.len(), "sums": sums, "lists": lists})
}

/// The type DuckDB gives a column of this type.
fn duckdb_type(ty: &registry::ColumnType) -> String {
    use registry::ColumnType as T;
    match ty {
        T::String => "VARCHAR".into(),
        T::Int32 => "INTEGER".into(),
        T::Int64 => "BIGINT".into(),
        T::Double => "DOUBLE".into(),
        T::Bool => "BOOLEAN".into(),
        T::Date => "DATE".into(),
        T::TimestampUsUtc => "TIMESTAMP WITH TIME ZONE".into(),
        T::List(fields) => {
            let inner: Vec<String> = fields.iter().map(|f| format!("{} {}", f.name, duckdb_type(&f.ty))).collect();
            format!("STRUCT({})[]", inner.join(", "))
        }
    }
}

/// The type Spark gives a column of this type (`simpleString`).
fn spark_type(ty: &registry::ColumnType) -> String {
    use registry::ColumnType as T;
    match ty {
        T::String => "string".into(),
        T::Int32 => "int".into(),
        T::Int64 => "bigint".into(),
        T::Double => "double".into(),
        T::Bool => "boolean".into(),
        T::Date => "date".into(),
        T::TimestampUsUtc => "timestamp".into(),
        T::List(fields) => {
            let inner: Vec<String> = fields.iter().map(|f| format!("{}:{}", f.name, spark_type(&f.ty))).collect();
            format!("array<struct<{}>>", inner.join(","))
        }
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

/// DuckDB reads every table of every family: the declared types (list columns as lists of
/// structs it can UNNEST), every row, every integer, every list element.
#[tokio::test(flavor = "multi_thread")]
async fn duckdb_reads_every_table_types_counts_and_lists() {
    python(); // DuckDB is needed: say so now, not from inside the task that reads.
    let sim = simulator_on_day().await;
    let out = tempfile::tempdir().unwrap();
    extract_all(&sim, out.path(), &[1, 3]).await;
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
        for c in &table.columns {
            assert_eq!(types[&c.name], duckdb_type(&c.ty), "{table}.{}", c.name);
        }
        let want = truth(table, &[1, 3]);
        assert_eq!(t["rows"], want["rows"], "{table}: row count");
        assert_eq!(t["sums"], want["sums"], "{table}: sums of the integer columns");
        assert_eq!(t["lists"], want["lists"], "{table}: list elements through UNNEST");
        let cell = expected_rows_on(DAY, table, &[3], cell_date(table), cell_date(table));
        assert_eq!(t["cell"]["rows"], cell.len() as u64, "{table}: rows of one (ref_date, appid)");
    }
}

/// Runs a DuckDB example from examples/duckdb/ in a folder that holds `wxcube-demo`.
fn run_duckdb_example(folder: &Path, name: &str) -> Vec<Vec<String>> {
    let sql = format!("{}/examples/duckdb/{name}", env!("CARGO_MANIFEST_DIR"));
    let code = format!(
        "import duckdb, json; rows = duckdb.sql(open({sql:?}).read()).fetchall(); print(json.dumps([[str(c) for c in r] for r in rows]))"
    );
    let run = std::process::Command::new(python()).arg("-c").arg(code).current_dir(folder).output().unwrap();
    assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
    serde_json::from_slice(&run.stdout).unwrap()
}

/// Every DuckDB example (one per family) runs on demo-shaped output and gives the simulator's
/// figures.
#[tokio::test(flavor = "multi_thread")]
async fn the_duckdb_examples_run_on_demo_shaped_output() {
    let sim = simulator_on_day().await;
    let tmp = tempfile::tempdir().unwrap();
    extract_all(&sim, &tmp.path().join("wxcube-demo"), &[2]).await;
    let rows_of = |name: &str| expected_rows_on(DAY, registry::find(name).unwrap(), &[2], BEGIN, END);
    let int = |t: &str, r: &Key, field: &str| r.2[registry::find(t).unwrap().field_index(field).unwrap()].int();

    // message: one row per day and type, messages summed.
    let rows = run_duckdb_example(tmp.path(), "daily_messages.sql");
    let want = rows_of("upstream_msg");
    assert_eq!(rows.len(), want.len(), "one row per day and message type");
    let messages: i64 = rows.iter().map(|r| r[4].parse::<i64>().unwrap()).sum();
    assert_eq!(messages, want.iter().filter_map(|r| int("upstream_msg", r, "msg_count")).sum::<i64>());

    // user: net growth per day, and the day's total followers.
    let rows = run_duckdb_example(tmp.path(), "follower_growth.sql");
    let summary = rows_of("user_summary");
    let cumulate = rows_of("user_cumulate");
    assert_eq!(rows.len(), summary.iter().map(|r| r.1).collect::<std::collections::BTreeSet<_>>().len());
    for r in &rows {
        let day = d(&r[1]);
        let net: i64 = summary
            .iter()
            .filter(|k| k.1 == day)
            .map(|k| int("user_summary", k, "new_user").unwrap() - int("user_summary", k, "cancel_user").unwrap())
            .sum();
        assert_eq!(r[4].parse::<i64>().unwrap(), net, "net growth on {day}");
        let followers = cumulate.iter().find(|k| k.1 == day).and_then(|k| int("user_cumulate", k, "cumulate_user"));
        assert_eq!(r[6], followers.map_or("None".to_string(), |f| f.to_string()), "followers on {day}");
    }

    // article: readers per read source, through UNNEST.
    let rows = run_duckdb_example(tmp.path(), "article_reads_by_source.sql");
    let table = registry::find("article_read").unwrap();
    let field = table.field_index("detail.read_user_source").unwrap();
    let mut readers: std::collections::BTreeMap<String, i64> = Default::default();
    for k in rows_of("article_read") {
        if let wxcube_simulator::data::SimValue::Raw(json) = &k.2[field] {
            for e in serde_json::from_str::<Vec<serde_json::Value>>(json).unwrap() {
                *readers.entry(e["scene_desc"].as_str().unwrap().to_string()).or_default() +=
                    e["user_count"].as_i64().unwrap();
            }
        }
    }
    let seen: std::collections::BTreeMap<String, i64> =
        rows.iter().map(|r| (r[0].clone(), r[2].parse::<i64>().unwrap())).collect();
    assert_eq!(seen, readers);
    assert!(seen.contains_key("全部"), "{seen:?}");

    // interface: replies per day.
    let rows = run_duckdb_example(tmp.path(), "interface_health.sql");
    let want = rows_of("interface_summary");
    assert_eq!(rows.len(), want.len());
    for r in &rows {
        let day = d(&r[0]);
        let k = want.iter().find(|k| k.1 == day).unwrap();
        assert_eq!(r[1].parse::<i64>().unwrap(), int("interface_summary", k, "callback_count").unwrap(), "{day}");
    }
}

/// Spark reads every table of every family (lists of structs it can `explode`) and runs the
/// PySpark examples.
#[tokio::test(flavor = "multi_thread")]
async fn spark_reads_every_table_and_runs_the_examples() {
    let sim = simulator_on_day().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("wxcube-demo");
    extract_all(&sim, &out, &[1, 2]).await;
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
        for c in &table.columns {
            assert_eq!(types[&c.name], spark_type(&c.ty), "{table}.{}", c.name);
        }
        let want = truth(table, &[1, 2]);
        assert_eq!(t["rows"], want["rows"], "{table}: rows");
        assert_eq!(t["sums"], want["sums"], "{table}: sums of the integer columns");
        assert_eq!(t["lists"], want["lists"], "{table}: list elements through explode");
    }
    // The examples: messages per type, and readers per read source.
    let msg = registry::find("upstream_msg").unwrap();
    let (ty, count) = (msg.field_index("msg_type").unwrap(), msg.field_index("msg_count").unwrap());
    let want = expected_rows_on(DAY, msg, &[1, 2], BEGIN, END);
    for row in seen["example"].as_array().unwrap() {
        let code = row["msg_type"].as_i64().unwrap();
        let sum: i64 = want.iter().filter(|r| r.2[ty].int() == Some(code)).map(|r| r.2[count].int().unwrap()).sum();
        assert_eq!(row["messages"], sum, "messages of type {code}");
    }
    assert!(!seen["example"].as_array().unwrap().is_empty());
    let reads = registry::find("article_read").unwrap();
    let sources = truth(reads, &[1, 2]);
    let total: i64 = seen["readers_by_source"].as_object().unwrap().values().map(|v| v.as_i64().unwrap()).sum();
    assert_eq!(total, sources["lists"]["read_user_source"]["sums"]["user_count"].as_i64().unwrap());
}
