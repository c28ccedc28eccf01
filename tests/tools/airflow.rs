//! The Airflow example, `examples/airflow/wxcube_dag.py`, run once with `airflow dags test`
//! against the simulator: four shards of four accounts, every table in full, every shard's
//! summary in XCom, the shards covering each account once, and no secret anywhere Airflow keeps
//! things. The output is Delta tables (`WXCUBE_FORMAT=delta`): four shards commit to each table
//! at once, and deltalake reads every row back. Airflow comes from its own virtualenv (scripts/test.sh installs it); its start-up is
//! slow, so this is one DAG run that checks everything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use wxcube_simulator::{Clock, SimConfig};

use crate::support::*;

const ACCOUNTS: usize = 4;
const SHARDS: usize = 4;
/// Where accounts without state start: the DAG's first run.
const START: &str = "2024-03-01";
/// The latest complete day with the clock pinned at TODAY.
const END: &str = "2024-04-09";

/// The Python of the Airflow virtualenv, found from `WXCUBE_AIRFLOW` (the `airflow` script).
fn airflow_python() -> PathBuf {
    let airflow = installed("WXCUBE_AIRFLOW", "Apache Airflow");
    let python = Path::new(&airflow).with_file_name("python");
    assert!(
        python.exists(),
        "{} does not exist: run scripts/test.sh, which installs Apache Airflow into that virtualenv",
        python.display()
    );
    python
}

/// The folder where `pip install` put the wheel's `wxcube` (scripts/test.sh).
fn installed_bin_dir() -> PathBuf {
    PathBuf::from(installed("WXCUBE_INSTALLED", "the wheel of wxcube into a fresh virtualenv"))
}

/// `PATH` with `dir` first.
fn path_with(dir: &Path) -> std::ffi::OsString {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&rest))).unwrap()
}

/// Every demo secret found in any file under `dir`, with the file.
fn secrets_in(dir: &Path) -> Vec<String> {
    let secrets: Vec<String> = (1..=ACCOUNTS).map(secret).collect();
    let mut found = Vec::new();
    for f in files(dir) {
        let bytes = std::fs::read(dir.join(&f)).unwrap_or_default();
        for s in &secrets {
            if bytes.windows(s.len()).any(|w| w == s.as_bytes()) {
                found.push(format!("secret of {} in {}", s.len(), f.display()));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn the_airflow_dag_runs_every_shard_and_pushes_each_summary_to_xcom() {
    let python = airflow_python();
    let sim =
        simulator_with(SimConfig { accounts: ACCOUNTS, clock: Clock::noon_on(d(TODAY)), ..SimConfig::default() }).await;
    let tmp = tempfile::tempdir().unwrap();
    let (home, out, config) = (tmp.path().join("airflow"), tmp.path().join("out"), tmp.path().join("accounts.toml"));
    let accounts: String = (1..=ACCOUNTS)
        .map(|i| format!("[[account]]\nappid = \"{}\"\nsecret_env = \"WXDEMO_SECRET_{i}\"\n", appid(i)))
        .collect();
    std::fs::write(&config, accounts).unwrap();

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(root.join("tests/airflow/run_dag.py"))
        .arg(root.join("examples/airflow/wxcube_dag.py"))
        .arg("wxcube_daily")
        .arg(TODAY);
    for var in ["WECHAT_APPID", "WECHAT_SECRET", "WECHAT_SECRET_FILE", "WECHAT_ACCESS_TOKEN", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    cmd.env("AIRFLOW_HOME", &home)
        // wxcube as a worker has it: `pip install wxcube` put it on PATH (the DAG's default).
        .env_remove("WXCUBE_BIN")
        .env("PATH", path_with(&installed_bin_dir()))
        .env("WXCUBE_CONFIG", &config)
        .env("WXCUBE_OUTPUT", &out)
        .env("WXCUBE_START_DATE", START)
        .env("WXCUBE_SHARDS", SHARDS.to_string())
        .env("WXCUBE_FORMAT", "delta")
        // The simulator's clock is pinned, so wxcube's must be too.
        .env("WXCUBE_EXTRA_ARGS", format!("--today {TODAY}"))
        .env("WECHAT_API_BASE", sim.base_url());
    for i in 1..=ACCOUNTS {
        cmd.env(format!("WXDEMO_SECRET_{i}"), secret(i));
    }
    let run = cmd.output().await.expect("the Airflow virtualenv's python runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "tests/airflow/run_dag.py failed:\n{stderr}");
    let seen: serde_json::Value = serde_json::from_slice(&run.stdout)
        .unwrap_or_else(|e| panic!("run_dag.py printed no JSON ({e}):\n{}", String::from_utf8_lossy(&run.stdout)));
    let log = || std::fs::read_to_string(home.join("dags-test.log")).unwrap_or_default();
    let stopped = seen["stopped"].as_str().map(|why| format!(" (stopped: {why})")).unwrap_or_default();
    assert_eq!(seen["exit_code"], 0, "airflow dags test failed{stopped}; the end of its log:\n{stderr}");
    assert_eq!(seen["run"]["state"], "success", "{seen}");
    eprintln!("airflow: {}", seen["seconds"]);

    // One mapped task per shard, each done on its first try, each summary whole in XCom.
    let tasks = seen["tasks"].as_array().unwrap();
    let extract: Vec<&serde_json::Value> = tasks.iter().filter(|t| t["task_id"] == "extract").collect();
    assert_eq!(extract.len(), SHARDS, "{seen}");
    let mut covered: BTreeMap<String, usize> = BTreeMap::new();
    let mut table_rows_in_summaries: BTreeMap<String, u64> = BTreeMap::new();
    for (i, t) in extract.iter().enumerate() {
        let shard = format!("{i}/{SHARDS}");
        assert_eq!(t["map_index"], i, "{t}");
        assert_eq!(t["state"], "success", "{t}");
        assert_eq!(t["try_number"], 1, "{t}");
        assert_eq!(t["rendered_map_index"], format!("shard {shard}"), "{t}");
        let s = &t["xcom"];
        assert!(s.is_object(), "shard {shard}: the XCom value is not the summary object: {s}\n{}", log());
        assert_eq!(s["status"], "ok", "shard {shard}: {s}");
        assert_eq!(s["failures"], 0, "shard {shard}: {s}");
        assert_eq!(s["shard"], shard.as_str(), "{s}");
        assert_eq!((s["begin"].as_str(), s["end"].as_str()), (Some(START), Some(END)), "{s}");
        for a in s["per_account"].as_array().unwrap() {
            assert_eq!(a["status"], "ok", "{a}");
            *covered.entry(a["appid"].as_str().unwrap().to_string()).or_default() += 1;
        }
        for (name, figures) in s["tables"].as_object().unwrap() {
            *table_rows_in_summaries.entry(name.clone()).or_default() += figures["rows"].as_u64().unwrap();
        }
    }
    let every_account_once: BTreeMap<String, usize> = (1..=ACCOUNTS).map(|i| (appid(i), 1)).collect();
    assert_eq!(covered, every_account_once, "the shards together take every account exactly once");

    // The downstream task added them up.
    let report = tasks.iter().find(|t| t["task_id"] == "report").expect("a report task");
    assert_eq!(report["state"], "success", "{report}");
    let total = &report["xcom"];
    assert_eq!(total["shards"], SHARDS, "{total}");
    assert_eq!(total["accounts"], ACCOUNTS, "{total}");
    assert_eq!(total["failures"], 0, "{total}");

    // The files hold exactly what the simulator serves for every account over the run's range.
    let all: Vec<usize> = (1..=ACCOUNTS).collect();
    let mut rows = 0;
    for table in &default_tables() {
        let want = expected_rows(table, &all, START, END);
        // Every table has rows in the range but the 2025 article family's, whose data begins later.
        assert_eq!(want.is_empty(), table.floor > d(END), "{table}: the range covers some of its periods");
        if !want.is_empty() {
            let dir = out.join(&table.name);
            let seen = crate::delta::read_delta(table, dir.to_str().unwrap(), None, &["deltalake"], &[]).await;
            assert_eq!(seen.rows["deltalake"], want, "{table}: rows in the Delta table");
        }
        assert_eq!(table_rows_in_summaries[&table.name], want.len() as u64, "{table}: rows in the summaries");
        assert_eq!(total["tables"][&table.name], want.len() as u64, "{table}: rows in the report");
        rows += want.len();
    }
    assert_eq!(total["rows"], rows, "{total}");

    // Exit 1 is retried, exit 2 is not; the DAG file imports without a warning of its own.
    assert_eq!(seen["retry_policy"], serde_json::json!({"1": "default", "2": "fail"}));
    assert_eq!(seen["dag_warnings"], serde_json::json!([]));
    // Secrets reach wxcube through the worker's environment only: not in the task logs, the
    // rendered fields or anything else in the metadata database, nor in the output.
    assert_eq!(secrets_in(tmp.path()), Vec::<String>::new(), "a secret was written down");
}
