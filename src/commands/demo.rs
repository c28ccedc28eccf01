//! `wxcube demo`: the whole pipeline with zero set-up.
//!
//! Starts the simulator in-process on a free loopback port, extracts every table of every
//! family (the legacy article tables too) for the last `--days` days for a few demo accounts
//! into a local folder, and prints what it wrote with DuckDB queries to paste.

use std::io::Write;
use std::time::Duration;

use chrono::{Days, Utc};

use crate::cli::{DemoArgs, OutputFormat};
use crate::exit::Failure;
use wxcube_connector::account::{Account, AppId, Credentials, Secret};
use wxcube_connector::dates::{self, DateRange};
use wxcube_connector::extract::retry::RetryPolicy;
use wxcube_connector::run::{self, RunConfig};
use wxcube_connector::summary::Summary;
use wxcube_connector::write::store::OutputSpec;
use wxcube_registry as registry;
use wxcube_simulator::{self as simulate, SimConfig};

pub async fn run(
    args: &DemoArgs,
    out: &mut impl Write,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Summary, Failure> {
    let sim = simulate::Simulator::start(SimConfig { accounts: args.accounts as usize, ..SimConfig::default() })
        .await
        .map_err(|e| Failure::Simulator(format!("starting the simulator: {e}")))?;
    let latest = dates::latest_complete_day(Utc::now());
    let range = DateRange::new(latest - Days::new(u64::from(args.days) - 1), latest).expect("days ≥ 1");
    let accounts = (1..=args.accounts as usize)
        .map(|i| Account {
            appid: AppId::parse(&simulate::accounts::demo_appid(i)).expect("demo appids are valid"),
            credentials: Credentials::StableToken(Secret::new(simulate::accounts::demo_secret(i))),
        })
        .collect();
    let config = RunConfig {
        tables: registry::tables().to_vec(),
        range: run::RangeSpec::Fixed(range),
        latest,
        accounts,
        account_concurrency: 4,
        shard: None,
        dry_run: false,
        keep_raw: false,
        api_base: sim.base_url().parse().expect("the simulator's URL parses"),
        timeout: Duration::from_secs(30),
        concurrency: 8,
        retry: RetryPolicy::default(),
        output: OutputSpec::Local(args.output.clone()),
        buckets: None,
        format: Some(args.format.into()),
        lease: wxcube_connector::write::lease::DEFAULT_LEASE,
        lease_wait: Duration::ZERO,
    };
    writeln!(
        out,
        "simulator on {}; extracting {range} for {} demo account(s) into {}",
        sim.base_url(),
        args.accounts,
        args.output.display()
    )?;
    let summary = run::run(config, stop).await?;
    let dir = std::fs::canonicalize(&args.output).unwrap_or_else(|_| args.output.clone());
    for (name, t) in &summary.tables {
        writeln!(
            out,
            "  {name:<24} {:>6} rows  {:>4} file(s) written  {:>3} request(s)",
            t.rows, t.files_written, t.requests
        )?;
    }
    // DuckDB reads a table as Hive-style folders of Parquet, or through its delta extension.
    let source = |table: &str| match args.format {
        OutputFormat::Parquet => {
            format!("read_parquet('{}/{table}/*/*.parquet', hive_partitioning = true)", dir.display())
        }
        OutputFormat::Delta => format!("delta_scan('{}/{table}')", dir.display()),
    };
    let load = if args.format == OutputFormat::Delta { "INSTALL delta; LOAD delta; " } else { "" };
    writeln!(out, "\nQuery it with DuckDB (pip install duckdb, or the duckdb CLI):\n")?;
    writeln!(
        out,
        "  duckdb -c \"{load}SELECT ref_date, msg_type_label, sum(msg_count) AS messages FROM {} GROUP BY ALL ORDER BY ALL DESC LIMIT 10\"\n",
        source("upstream_msg")
    )?;
    writeln!(out, "and article readers by read source (a list column, one row per source with UNNEST):\n")?;
    writeln!(
        out,
        "  duckdb -c \"{load}SELECT s.scene_desc, sum(s.user_count) AS readers FROM (SELECT UNNEST(read_user_source) AS s FROM {}) GROUP BY ALL ORDER BY readers DESC\"\n",
        source("article_read")
    )?;
    writeln!(out, "More, one per family: examples/duckdb/. Every table and column: wxcube tables.\n")?;
    Ok(summary)
}
