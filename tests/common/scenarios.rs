//! Writers that meet: units of one run, runs of other accounts, runs of the same accounts, a
//! rebuild, a run killed or stalled while it holds its lease. Every test runs real `wxcube`
//! processes against one output, on local disk and on S3 (moto), and checks every row of every
//! table against what the simulator holds.

use std::time::Duration;

use object_store::ObjectStoreExt;
use object_store::path::Path;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr};
use wxcube_connector::write::DEFAULT_BUCKETS;
use wxcube_registry::{self as registry, Table};
use wxcube_simulator::faults::Faults;
use wxcube_simulator::{Clock, RunningSimulator, SimConfig};

use crate::moto::{BUCKET, Moto, s3_rows};
use crate::support::*;

/// Where a test writes: a local folder or a prefix of a moto bucket.
pub enum Store {
    Local,
    S3(Box<Moto>),
}

pub struct Target {
    store: Store,
    /// Holds the output (local) and the accounts files.
    dir: tempfile::TempDir,
}

impl Target {
    pub async fn new(s3: bool) -> Target {
        let store = if s3 { Store::S3(Box::new(Moto::start().await)) } else { Store::Local };
        Target { store, dir: tempfile::tempdir().unwrap() }
    }

    pub fn output(&self) -> String {
        match &self.store {
            Store::Local => self.dir.path().join("out").to_str().unwrap().to_string(),
            Store::S3(_) => format!("s3://{BUCKET}/out"),
        }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        match &self.store {
            Store::Local => vec![],
            Store::S3(moto) => moto.env(&moto.endpoint).into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    /// `wxcube <command>` for demo accounts `ids` (through an accounts file) and `extra` flags.
    pub fn command(&self, sim: &RunningSimulator, command: &str, ids: &[usize], extra: &[&str]) -> Cmd {
        let name = format!("accounts-{}.toml", ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("-"));
        let config = self.dir.path().join(name);
        let text: String = ids
            .iter()
            .map(|i| format!("[[account]]\nappid = \"{}\"\nsecret_env = \"WXDEMO_SECRET_{i}\"\n\n", appid(*i)))
            .collect();
        std::fs::write(&config, text).unwrap();
        let mut args: Vec<String> = [command, "--output", &self.output(), "--api-base", &sim.base_url(), "--config"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(config.to_str().unwrap().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut env = self.env();
        env.extend(ids.iter().map(|i| (format!("WXDEMO_SECRET_{i}"), secret(*i))));
        Cmd { args, env }
    }

    /// `wxcube rebuild` of the whole output.
    fn rebuild(&self, extra: &[&str]) -> Cmd {
        let mut args: Vec<String> = vec!["rebuild".into(), "--output".into(), self.output()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Cmd { args, env: self.env() }
    }

    async fn rows(&self, table: &Table) -> Vec<Key> {
        match &self.store {
            Store::Local => table_rows(&self.dir.path().join("out"), table),
            Store::S3(moto) => s3_rows(moto, "out", table, DEFAULT_BUCKETS).await,
        }
    }

    /// Asserts that every table holds exactly what the simulator holds for `ids` over the range.
    pub async fn assert_rows(&self, ids: &[usize], begin: &str, end: &str) {
        for t in &default_tables() {
            assert_eq!(self.rows(t).await, truth(t, ids, begin, end), "{t}");
        }
    }

    /// Every object under `<output>/<under>`, relative to the output, sorted.
    pub async fn keys(&self, under: &str) -> Vec<String> {
        match &self.store {
            Store::Local => {
                let out = self.dir.path().join("out");
                files(&out.join(under)).into_iter().map(|f| format!("{under}/{}", f.to_string_lossy())).collect()
            }
            Store::S3(moto) => {
                moto.keys(&format!("out/{under}")).await.into_iter().map(|k| k["out/".len()..].to_string()).collect()
            }
        }
    }

    /// Replaces (or creates) the object at `rel` under the output.
    async fn put(&self, rel: &str, bytes: Vec<u8>) {
        match &self.store {
            Store::Local => {
                let path = self.dir.path().join("out").join(rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
            }
            Store::S3(moto) => {
                moto.store().put(&Path::from(format!("out/{rel}")), bytes.into()).await.unwrap();
            }
        }
    }

    async fn get(&self, rel: &str) -> Vec<u8> {
        match &self.store {
            Store::Local => std::fs::read(self.dir.path().join("out").join(rel)).unwrap(),
            Store::S3(moto) => {
                moto.store().get(&Path::from(format!("out/{rel}"))).await.unwrap().bytes().await.unwrap().to_vec()
            }
        }
    }

    /// Removes every data object of the output (the bookkeeping and raw answers stay).
    async fn remove_data(&self) {
        for t in &default_tables() {
            match &self.store {
                Store::Local => {
                    let _ = std::fs::remove_dir_all(self.dir.path().join("out").join(&t.name));
                }
                Store::S3(moto) => {
                    for key in moto.keys(&format!("out/{}", t.name)).await {
                        moto.store().delete(&Path::from(key)).await.unwrap();
                    }
                }
            }
        }
    }

    /// The holders listed in the lease of bucket 00.
    async fn lease_holders(&self) -> Vec<serde_json::Value> {
        let lease: serde_json::Value = serde_json::from_slice(&self.get("_wxcube/locks/bucket-00.json").await).unwrap();
        lease["holders"].as_array().unwrap().clone()
    }
}

/// One command line with its environment.
#[derive(Clone)]
pub struct Cmd {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Cmd {
    pub async fn run(&self) -> Run {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        wxcube(&args, &env).await
    }

    /// Starts it and waits until it has its lease and starts extracting; the rest of its
    /// stderr is collected as it comes (a full pipe would block the process).
    pub async fn start(&self) -> (Child, tokio::task::JoinHandle<String>) {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxcube"))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
        while let Some(line) = log.next_line().await.unwrap() {
            if line.contains("starting extraction") {
                return (child, tokio::spawn(collect(log)));
            }
        }
        panic!("the run ended before it started extracting");
    }
}

pub async fn collect(mut log: Lines<BufReader<ChildStderr>>) -> String {
    let mut text = String::new();
    while let Ok(Some(line)) = log.next_line().await {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// Runs every command at the same moment.
pub async fn all_at_once(cmds: &[Cmd]) -> Vec<Run> {
    futures::future::join_all(cmds.iter().map(Cmd::run)).await
}

/// What the simulator answers for `ids` over `begin..=end` (see `expected_rows`).
pub fn truth(table: &Table, ids: &[usize], begin: &str, end: &str) -> Vec<Key> {
    expected_rows(table, ids, begin, end)
}

/// A simulator with six demo accounts, pinned to [`TODAY`], each request taking `latency_ms`.
pub async fn sim(latency_ms: u64) -> RunningSimulator {
    let faults = Faults { latency_ms, ..Faults::default() };
    simulator_with(SimConfig { clock: Clock::noon_on(d(TODAY)), accounts: 6, faults, ..SimConfig::default() }).await
}

pub const BEGIN: &str = "2024-02-01";
pub const END: &str = "2024-04-09";

// --- Units of one run -----------------------------------------------------------------------

/// Six accounts first run on five different days, then one incremental run of all six: the
/// run's units whose windows share dates merge into the same files at once, with look-backs
/// that overlap. Before writes were conditional, cells went missing here with exit 0.
pub async fn incremental_runs_over_accounts_on_different_days(s3: bool) {
    let (target, sim) = (Target::new(s3).await, sim(0).await);
    let ends = ["2024-03-04", "2024-03-11", "2024-03-15", "2024-03-20", "2024-03-20", "2024-03-27"];
    for (i, end) in ends.iter().enumerate() {
        let first = ["--incremental", "--start-date", BEGIN, "--end", end, "--today", TODAY];
        target.command(&sim, "extract", &[i + 1], &first).run().await.assert_ok();
    }
    let all = [1, 2, 3, 4, 5, 6];
    let run = target.command(&sim, "extract", &all, &["--incremental", "--lookback-days", "5", "--today", TODAY]);
    let run = run.run().await;
    run.assert_ok();
    assert_eq!(run.summary()["status"], "ok");
    target.assert_rows(&all, BEGIN, END).await;
}

// --- Runs of other accounts -----------------------------------------------------------------

/// Three runs of other accounts, started at the same moment, all write every partition's one
/// bucket file: each merges into what the others wrote, none drops their rows.
pub async fn runs_of_other_accounts_share_every_file(s3: bool) {
    let (target, sim) = (Target::new(s3).await, sim(0).await);
    let range = ["--begin", BEGIN, "--end", END];
    let cmds: Vec<Cmd> =
        [[1, 2], [3, 4], [5, 6]].iter().map(|ids| target.command(&sim, "extract", ids, &range)).collect();
    for run in all_at_once(&cmds).await {
        run.assert_ok();
    }
    target.assert_rows(&[1, 2, 3, 4, 5, 6], BEGIN, END).await;
}

// --- Runs of the same accounts ----------------------------------------------------------------

/// Asserts that exactly one of `runs` did the work and the others were turned away before
/// writing anything, with the message naming the run that holds the lease.
pub fn assert_one_worked(runs: &[Run]) {
    let worked: Vec<&Run> = runs.iter().filter(|r| r.code == 0).collect();
    assert_eq!(worked.len(), 1, "{:?}", runs.iter().map(|r| (r.code, &r.stderr)).collect::<Vec<_>>());
    assert_eq!(worked[0].summary()["status"], "ok");
    for r in runs.iter().filter(|r| r.code != 0) {
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains("another run (extract pid"), "{}", r.stderr);
        assert!(r.stdout.is_empty(), "a turned-away run reports nothing as written: {}", r.stdout);
    }
}

/// Two, then three runs of the same accounts started at once: one works, the others go away.
pub async fn runs_of_the_same_accounts(s3: bool) {
    let (target, sim) = (Target::new(s3).await, sim(3).await);
    // Each round a later range, so that the round's work is real.
    for (n, end) in [(2, "2024-03-10"), (3, END)] {
        let cmd = target.command(&sim, "extract", &[1, 2, 3], &["--begin", BEGIN, "--end", end]);
        let runs = all_at_once(&vec![cmd; n]).await;
        assert_one_worked(&runs);
        target.assert_rows(&[1, 2, 3], BEGIN, end).await;
        assert_eq!(target.lease_holders().await, Vec::<serde_json::Value>::new(), "the lease is given back");
    }
}

/// A lease left by a run that is gone (lapsed on S3; on local disk, its process holds no lock,
/// though its claim has not lapsed): three runs started at once, exactly one takes it over.
pub async fn a_stale_lease_is_taken_over_by_one_run(s3: bool) {
    let (target, sim) = (Target::new(s3).await, sim(3).await);
    let range = ["--begin", BEGIN, "--end", END];
    target.command(&sim, "extract", &[1], &["--begin", BEGIN, "--end", BEGIN]).run().await.assert_ok();
    let expires = if s3 { "2020-01-01T00:00:00Z" } else { "2999-01-01T00:00:00Z" };
    let defaults = default_tables();
    let tables: Vec<&str> = defaults.iter().map(|t| t.name.as_str()).collect();
    let stale = serde_json::json!({"format_version": 2, "holders": [{
        "run": "20200101T000000Z-4242-dead", "command": "extract", "host": "gone", "pid": 4242,
        "since": "2020-01-01T00:00:00Z", "expires": expires, "tables": tables,
        "accounts": [appid(1), appid(2), appid(3)],
    }]});
    target.put("_wxcube/locks/bucket-00.json", serde_json::to_vec(&stale).unwrap()).await;
    let cmd = target.command(&sim, "extract", &[1, 2, 3], &range);
    let runs = all_at_once(&vec![cmd; 3]).await;
    assert_one_worked(&runs);
    target.assert_rows(&[1, 2, 3], BEGIN, END).await;
    assert_eq!(target.lease_holders().await, Vec::<serde_json::Value>::new());
}

/// A run killed with SIGKILL while it holds its lease and writes; then two runs started at
/// once, waiting for leases: the first takes the killed run's lease over (at once on local
/// disk, once it lapses on S3), the second waits for the first, and every row is exact.
pub async fn a_run_killed_holding_its_lease(s3: bool) {
    let (target, sim) = (Target::new(s3).await, sim(3).await);
    // Leases of ten seconds: short enough to wait out, long enough that a renewal slowed by a
    // loaded machine is still in time.
    let flags = ["--begin", BEGIN, "--end", END, "--lease-secs", "10", "--lease-wait-secs", "120"];
    let cmd = target.command(&sim, "extract", &[1, 2, 3], &flags);
    let (mut killed, _log) = cmd.start().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    killed.start_kill().unwrap(); // SIGKILL
    killed.wait().await.unwrap();
    for run in all_at_once(&[cmd.clone(), cmd]).await {
        run.assert_ok();
        assert_eq!(run.summary()["status"], "ok");
    }
    target.assert_rows(&[1, 2, 3], BEGIN, END).await;
}

pub fn signal(which: &str, pid: &str) {
    assert!(std::process::Command::new("kill").args([which, pid]).status().unwrap().success());
}

// --- A rebuild ---------------------------------------------------------------------------------

/// A rebuild of accounts 1–3 from their raw answers while an extract of accounts 4–6 writes
/// the same partitions: both write every file, neither loses the other's rows. A rebuild of
/// the accounts a run is extracting is turned away.
pub async fn rebuild_meets_extract(s3: bool) {
    let (target, sim) = (Target::new(s3).await, sim(2).await);
    let range = ["--begin", BEGIN, "--end", END];
    target.command(&sim, "extract", &[1, 2, 3], &[&range[..], &["--keep-raw"]].concat()).run().await.assert_ok();
    target.remove_data().await;
    let extract = target.command(&sim, "extract", &[4, 5, 6], &range);
    let rebuild = target.rebuild(&[]);
    let (rebuilt, extracted) = tokio::join!(rebuild.run(), extract.run());
    rebuilt.assert_ok();
    extracted.assert_ok();
    target.assert_rows(&[1, 2, 3, 4, 5, 6], BEGIN, END).await;

    // The same accounts: the rebuild waits for nothing and goes away. The extract is held
    // (SIGSTOP) while the rebuild runs, so that it is still running whatever either's speed.
    let extract = target.command(&sim, "extract", &[1, 2, 3], &[&range[..], &["--keep-raw"]].concat());
    let (running, _log) = extract.start().await;
    let pid = running.id().unwrap().to_string();
    signal("-STOP", &pid);
    let refused = target.rebuild(&[]).run().await;
    signal("-CONT", &pid);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("another run (extract pid"), "{}", refused.stderr);
    assert!(running.wait_with_output().await.unwrap().status.success());
    target.assert_rows(&[1, 2, 3, 4, 5, 6], BEGIN, END).await;
}

// --- Files wxcube cannot merge with -------------------------------------------------------------

/// A corrupt file and a file of another schema at bucket paths: the cells that need them fail
/// with the path and the fix, every other cell is written, and the files are left as found.
pub async fn bad_bucket_files(s3: bool) {
    let (target, sim) = (Target::new(s3).await, sim(0).await);
    let range = ["--begin", "2024-03-01", "--end", "2024-03-31", "--tables", "upstream_msg,upstream_msg_dist"];
    target.command(&sim, "extract", &[1], &range).run().await.assert_ok();
    let corrupt = "upstream_msg/ref_date=2024-03-05/part-00.parquet";
    let foreign = "upstream_msg/ref_date=2024-03-20/part-00.parquet";
    target.put(corrupt, b"PAR1 this is not a parquet file".to_vec()).await;
    let dist = target.get("upstream_msg_dist/ref_date=2024-03-20/part-00.parquet").await;
    target.put(foreign, dist.clone()).await;
    let run = target.command(&sim, "extract", &[1, 2], &range).run().await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let summary = run.summary();
    let failed = summary["failed"].as_array().unwrap();
    // The windows holding those dates fail for both accounts of the bucket; nothing else.
    assert_eq!(summary["failures"], 4, "{summary}");
    for g in failed {
        let error = g["error"].as_str().unwrap();
        assert_eq!(g["table"], "upstream_msg");
        assert!(error.contains("move the file away and re-run"), "{error}");
        assert!(error.contains(corrupt) || error.contains(foreign), "{error}");
    }
    assert_eq!(target.get(corrupt).await, b"PAR1 this is not a parquet file");
    assert_eq!(target.get(foreign).await, dist);
    let dist_table = registry::find("upstream_msg_dist").unwrap();
    assert_eq!(target.rows(dist_table).await, truth(dist_table, &[1, 2], "2024-03-01", "2024-03-31"));
    // Moved away, the same command fills them.
    target.remove_data().await;
    target.command(&sim, "extract", &[1, 2], &range).run().await.assert_ok();
    for t in [registry::find("upstream_msg").unwrap(), dist_table] {
        assert_eq!(target.rows(t).await, truth(t, &[1, 2], "2024-03-01", "2024-03-31"), "{t}");
    }
}
