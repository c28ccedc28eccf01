//! Helpers: start the simulator, run the binary, read the output back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use arrow::array::{Array, Int32Array, Int64Array, RecordBatch, StringArray};
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use wxcube_connector::schema::ArrowSchema;
use wxcube_registry::{Source, Table};
use wxcube_simulator::data::SimValue;
use wxcube_simulator::{self as simulate, Clock, RunningSimulator, SimConfig, SimStats};

/// The simulated "today" of most tests: pinned so the data and plans never drift.
pub const TODAY: &str = "2024-04-10";

pub fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

pub fn appid(i: usize) -> String {
    simulate::accounts::demo_appid(i)
}

pub fn secret(i: usize) -> String {
    simulate::accounts::demo_secret(i)
}

pub async fn simulator() -> RunningSimulator {
    simulator_with(SimConfig { clock: Clock::noon_on(d(TODAY)), ..SimConfig::default() }).await
}

pub async fn simulator_with(config: SimConfig) -> RunningSimulator {
    simulate::Simulator::start(config).await.expect("simulator starts")
}

/// The tables a run takes without `--tables`: every current table (the legacy article tables
/// only when named).
pub fn default_tables() -> Vec<std::sync::Arc<Table>> {
    wxcube_registry::select("all").unwrap()
}

/// What a finished `wxcube` process printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The JSON summary: the last line of stdout.
    pub fn summary(&self) -> serde_json::Value {
        let last = self.stdout.lines().last().unwrap_or_else(|| panic!("no stdout; stderr: {}", self.stderr));
        serde_json::from_str(last).unwrap_or_else(|e| panic!("last stdout line is not JSON ({e}): {last}"))
    }

    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    /// Everything the process printed.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs the binary with `args` and the given environment, with no WECHAT_* or AWS_* inherited
/// (a developer's own AWS settings must not reach the tests' stores).
pub async fn wxcube(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxcube"));
    cmd.args(args);
    for var in
        ["WECHAT_APPID", "WECHAT_SECRET", "WECHAT_SECRET_FILE", "WECHAT_ACCESS_TOKEN", "WECHAT_API_BASE", "RUST_LOG"]
    {
        cmd.env_remove(var);
    }
    for (var, _) in std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("AWS_")) {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out: Output = cmd.output().await.expect("wxcube runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `wxcube extract` for demo account `i` against `sim` into `out`, plus `extra` flags.
pub async fn extract(sim: &RunningSimulator, out: &Path, i: usize, extra: &[&str]) -> Run {
    let base = sim.base_url();
    let out = out.to_str().unwrap();
    let mut args = vec!["extract", "--output", out, "--api-base", &base, "--appid"];
    let (id, key) = (appid(i), secret(i));
    args.push(&id);
    args.extend_from_slice(extra);
    wxcube(&args, &[("WECHAT_SECRET", &key)]).await
}

/// One output row, comparable with the simulator's: (appid, ref_date, API field values as the
/// simulator sends them; a left-out field is `Absent`, a float or a list its JSON text).
pub type Key = (String, NaiveDate, Vec<SimValue>);

/// Every data file of `table` under `out`: relative path → batch.
pub fn read_table(out: &Path, table: &Table) -> BTreeMap<String, RecordBatch> {
    let mut files = BTreeMap::new();
    let dir = out.join(&table.name);
    let Ok(partitions) = std::fs::read_dir(&dir) else { return files };
    for p in partitions {
        let p = p.unwrap().path();
        for f in std::fs::read_dir(&p).unwrap() {
            let f = f.unwrap().path();
            let rel = f.strip_prefix(out).unwrap().to_string_lossy().into_owned();
            let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
                .unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!(reader.schema().as_ref(), table.schema().as_ref(), "{rel}: schema differs from the registry's");
            let batches: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
            files.insert(rel, arrow::compute::concat_batches(&table.schema(), &batches).unwrap());
        }
    }
    files
}

/// The rows of `table` under `out` as comparable keys, checking labels on the way.
pub fn table_rows(out: &Path, table: &Table) -> Vec<Key> {
    let mut rows = Vec::new();
    for (rel, batch) in read_table(out, table) {
        let date = d(rel.split("ref_date=").nth(1).unwrap().split('/').next().unwrap());
        rows.extend(batch_rows(table, &batch, date));
    }
    rows.sort();
    rows
}

pub fn batch_rows(table: &Table, batch: &RecordBatch, date: NaiveDate) -> Vec<Key> {
    let appids = batch.column(table.appid_column()).as_any().downcast_ref::<StringArray>().unwrap();
    (0..batch.num_rows())
        .map(|row| {
            let mut values = vec![None; table.api_fields.len()];
            for (i, c) in table.columns.iter().enumerate() {
                match c.source {
                    Source::Field { field, divide_by, .. } => {
                        let v = sim_value(batch.column(i).as_ref(), row);
                        match divide_by {
                            // A derived column (hour): it must agree with its raw field.
                            Some(dv) => {
                                let raw = SimValue::Int(v.int().unwrap() * dv);
                                assert_eq!(values[field].clone().unwrap_or(raw.clone()), raw);
                            }
                            None => values[field] = Some(v),
                        }
                    }
                    Source::Label { field } => {
                        let labels = batch.column(i).as_any().downcast_ref::<StringArray>().unwrap();
                        let code = table
                            .columns
                            .iter()
                            .position(|x| x.source == Source::Field { field, divide_by: None, range: None });
                        let code = sim_value(batch.column(code.unwrap()).as_ref(), row).int();
                        let label = (!labels.is_null(row)).then(|| labels.value(row));
                        assert_eq!(label, code.and_then(|code| table.label(field, code)), "label of {code:?}");
                    }
                    _ => {}
                }
            }
            (appids.value(row).to_string(), date, values.into_iter().map(Option::unwrap).collect())
        })
        .collect()
}

/// A Parquet value as the simulator would have sent it (see [`Key`]).
pub fn sim_value(column: &dyn Array, row: usize) -> SimValue {
    use arrow::array::{BooleanArray, Date32Array, Float64Array, ListArray, StructArray};
    if column.is_null(row) {
        return SimValue::Absent;
    }
    let any = column.as_any();
    if let Some(a) = any.downcast_ref::<Int32Array>() {
        SimValue::Int(i64::from(a.value(row)))
    } else if let Some(a) = any.downcast_ref::<Int64Array>() {
        SimValue::Int(a.value(row))
    } else if let Some(a) = any.downcast_ref::<Float64Array>() {
        SimValue::float(a.value(row))
    } else if let Some(a) = any.downcast_ref::<StringArray>() {
        SimValue::Text(a.value(row).to_string())
    } else if let Some(a) = any.downcast_ref::<Date32Array>() {
        SimValue::Text(a.value_as_date(row).unwrap().to_string())
    } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
        SimValue::Raw(a.value(row).to_string())
    } else if let Some(a) = any.downcast_ref::<ListArray>() {
        // `[{"name":value,…},…]`, fields in the list type's order, as the API sends them.
        let items = a.value(row);
        let items = items.as_any().downcast_ref::<StructArray>().unwrap();
        let names = items.column_names();
        let elements: Vec<String> = (0..items.len())
            .map(|k| {
                let fields: Vec<String> = names
                    .iter()
                    .enumerate()
                    .filter_map(|(f, name)| match sim_value(items.column(f).as_ref(), k) {
                        SimValue::Absent => None,
                        v => Some(format!("{}:{v}", serde_json::Value::from(*name))),
                    })
                    .collect();
                format!("{{{}}}", fields.join(","))
            })
            .collect();
        SimValue::Raw(format!("[{}]", elements.join(",")))
    } else {
        panic!("no simulator value for a {} column", column.data_type())
    }
}

/// What the simulator answers for `table`, for demo accounts `accounts`, to a request of
/// `begin..=end` on the simulated [`TODAY`]: the simulator's own truth, computed with its own
/// calendar, never with the connector's planner or date logic, so that a mistake there cannot
/// agree with itself here.
pub fn expected_rows(table: &Table, accounts: &[usize], begin: &str, end: &str) -> Vec<Key> {
    expected_rows_on(TODAY, table, accounts, begin, end)
}

/// [`expected_rows`] for a simulator whose day is `today` (at noon, Beijing).
pub fn expected_rows_on(today: &str, table: &Table, accounts: &[usize], begin: &str, end: &str) -> Vec<Key> {
    let asked = simulate::calendar::DaySpan::new(d(begin), d(end)).unwrap();
    let now = Clock::noon_on(d(today)).now();
    let mut rows: Vec<Key> = accounts
        .iter()
        .flat_map(|&i| {
            simulate::data::window_rows(table, &appid(i), asked, now)
                .into_iter()
                .map(move |r| (appid(i), r.ref_date, r.fields))
        })
        .collect();
    rows.sort();
    rows
}

/// Every file under `dir`, relative, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() { walk(base, &p, out) } else { out.push(p.strip_prefix(base).unwrap().to_path_buf()) }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Token endpoint calls of either kind.
pub fn token_calls(stats: &SimStats) -> u64 {
    stats.token_calls.stable_token + stats.token_calls.token
}

/// The Python with the test readers and servers installed (scripts/test.sh sets it up).
pub fn python() -> String {
    installed("WXCUBE_PYTHON", "DuckDB, moto and PySpark")
}

/// The value of `var`, which scripts/test.sh sets once it has installed `what`. Without it the
/// test fails with one line saying so, not with a panic's backtrace: plain `cargo test` runs
/// every test, and those that need more than Rust should say what to run instead.
pub fn installed(var: &str, what: &str) -> String {
    match std::env::var(var) {
        Ok(value) => value,
        Err(_) => {
            eprintln!("{var} is not set: run the suite with scripts/test.sh, which installs {what} for this test");
            // Unwinds without the panic hook, which would print a backtrace under the line.
            std::panic::resume_unwind(Box::new(()))
        }
    }
}

/// `wxcube extract` for demo account `i` with `extra` flags and environment.
pub async fn extract_env(sim: &RunningSimulator, out: &Path, i: usize, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let (base, id, key) = (sim.base_url(), appid(i), secret(i));
    let mut args = vec!["extract", "--output", out.to_str().unwrap(), "--api-base", &base, "--appid", &id];
    args.extend_from_slice(extra);
    let mut envs = vec![("WECHAT_SECRET", key.as_str())];
    envs.extend_from_slice(env);
    wxcube(&args, &envs).await
}

/// Fails if any credential — the demo secrets, every token the simulator issued, or `more` —
/// appears in what the run printed or in any file under `out`.
pub fn assert_no_secrets(run: &Run, out: &Path, sim: &RunningSimulator, more: &[&str]) {
    let mut secrets: Vec<String> = (1..=3).map(secret).collect();
    secrets.extend(sim.issued_tokens());
    secrets.extend(more.iter().map(|s| s.to_string()));
    let printed = run.all_output();
    for s in &secrets {
        assert!(!printed.contains(s.as_str()), "a credential appears in the output");
    }
    for f in files(out) {
        // Lossy text keeps every ASCII credential intact, and `contains` is fast in debug builds.
        let text = String::from_utf8_lossy(&std::fs::read(out.join(&f)).unwrap()).into_owned();
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "a credential appears in {}", f.display());
        }
    }
}

/// The rows the output should hold for account `i` over `begin..end`, leaving out the dates of
/// the run's failed cells of each table.
pub fn expected_without_failures(
    table: &Table,
    i: usize,
    begin: &str,
    end: &str,
    summary: &serde_json::Value,
) -> Vec<Key> {
    let failed = failed_ranges(summary, table, &appid(i));
    expected_rows(table, &[i], begin, end)
        .into_iter()
        .filter(|r| !failed.iter().any(|(b, e)| *b <= r.1 && r.1 <= *e))
        .collect()
}

/// The date ranges of `appid`'s failed cells of `table`: from the run's record on a local
/// output, else from the summary's grouped `failed`.
pub fn failed_ranges(summary: &serde_json::Value, table: &Table, appid: &str) -> Vec<(NaiveDate, NaiveDate)> {
    if summary["run_record"].as_str().is_some_and(|r| !r.starts_with("s3://")) {
        return failed_cells(summary)
            .iter()
            .filter(|c| c["table"] == table.name.as_str() && c["appid"] == appid)
            .map(|c| (d(c["begin"].as_str().unwrap()), d(c["end"].as_str().unwrap())))
            .collect();
    }
    assert!(summary.get("failed_groups_omitted").is_none(), "the summary left groups out");
    let mut ranges = Vec::new();
    for g in summary["failed"].as_array().unwrap() {
        if g["table"] != table.name.as_str() || g["appid"] != appid {
            continue;
        }
        assert!(g.get("ranges_omitted").is_none(), "the summary left ranges out: {g}");
        for r in g["ranges"].as_array().unwrap() {
            ranges.push((d(r[0].as_str().unwrap()), d(r[1].as_str().unwrap())));
        }
    }
    ranges
}

/// Every failed cell of a run on a local output, from its record under `_wxcube/runs/`.
pub fn failed_cells(summary: &serde_json::Value) -> Vec<serde_json::Value> {
    let record = summary["run_record"].as_str().unwrap_or_else(|| panic!("no run record: {summary}"));
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    assert_eq!(record["summary"]["failures"], summary["failures"]);
    record["failed_cells"].as_array().unwrap().clone()
}

/// POSTs `body` to `url` (the simulator) and returns the JSON answer.
pub async fn post_json(url: &str, body: &serde_json::Value) -> serde_json::Value {
    // reqwest refuses to build a client without a TLS crypto provider, even for plain HTTP.
    wxcube_connector::tls::install_crypto_provider();
    reqwest::Client::new().post(url).json(body).send().await.unwrap().json().await.unwrap()
}
