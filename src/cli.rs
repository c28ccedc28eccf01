//! Command-line flags, as typed but not yet validated against each other.
//!
//! `config` turns these into a [`crate::run::RunConfig`]; nothing here talks to the network.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::dates::parse_date;

#[derive(Parser, Debug)]
#[command(
    name = "wxcube",
    version,
    about = "Pulls the WeChat datacube message-analysis tables into date-partitioned Parquet."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More log detail (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Extract tables over a date range into Parquet.
    Extract(ExtractArgs),
    /// Serve the built-in API simulator on loopback.
    Simulate(crate::simulate::SimulateArgs),
    /// Start the simulator and extract all tables for the last 90 days into a local folder.
    Demo(DemoArgs),
    /// Print the table registry: names, endpoints, spans, columns and labels.
    Tables,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn date(s: &str) -> Result<NaiveDate, String> {
    parse_date(s)
}

#[derive(Args, Debug, Clone)]
pub struct ExtractArgs {
    /// Where to write: a folder, file:///path, or s3://bucket/prefix.
    #[arg(long, value_name = "DIR|URL")]
    pub output: String,
    /// Tables to extract: `all`, or a comma-separated list of names or API names.
    #[arg(long, default_value = "all", value_name = "all|t1,t2")]
    pub tables: String,
    /// First Beijing date to extract, inclusive.
    #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
    pub begin: Option<NaiveDate>,
    /// Last Beijing date to extract, inclusive [default: the latest complete day].
    #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
    pub end: Option<NaiveDate>,
    /// The account's appid.
    #[arg(long, env = "WECHAT_APPID")]
    pub appid: Option<String>,
    /// The app secret. Prefer WECHAT_SECRET or --secret-file: a command line is visible to
    /// other users of the machine.
    #[arg(long, env = "WECHAT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// A file holding the app secret (surrounding whitespace is ignored).
    #[arg(long, env = "WECHAT_SECRET_FILE", value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    /// An access token obtained elsewhere (a central token service), used as is.
    #[arg(long, env = "WECHAT_ACCESS_TOKEN", hide_env_values = true)]
    pub access_token: Option<String>,
    /// Get tokens from the legacy /cgi-bin/token, which invalidates the token every other
    /// service of the account is using. Only when stable_token is unavailable.
    #[arg(long)]
    pub legacy_token_endpoint: bool,
    /// API root. Must be https unless it is a loopback address (the simulator).
    #[arg(long, env = "WECHAT_API_BASE", default_value = "https://api.weixin.qq.com", value_name = "URL")]
    pub api_base: String,
    /// Requests in flight at once, across accounts and tables.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Timeout of one request, from connect to the last byte.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600), value_name = "SECS")]
    pub timeout_secs: u64,
    /// Retries of a request that failed transiently (system busy, 5xx, timeouts).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub max_retries: u32,
    /// Files per partition (fixed when the output is first written; later runs must match).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub buckets: Option<u32>,
    /// Print the planned requests and exit without calling the API or writing anything.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Where to write the demo dataset.
    #[arg(long, default_value = "wxcube-demo", value_name = "DIR")]
    pub output: PathBuf,
    /// Days to extract, ending with the latest complete day.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    /// Number of simulated accounts.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub accounts: u32,
}
