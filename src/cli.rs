//! Command-line flags, as typed but not yet validated against each other.
//!
//! `config` turns these into a [`wxcube_connector::run::RunConfig`]; nothing here talks to the network.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

use wxcube_connector::dates::parse_date;
use wxcube_connector::write::store::OutputSpec;

#[derive(Parser, Debug)]
#[command(
    name = "wxcube",
    version = env!("WXCUBE_VERSION"),
    about = "Pulls the WeChat datacube tables (message, user, article and interface analysis) into date-partitioned Parquet or Delta Lake tables."
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
    Simulate(wxcube_simulator::SimulateArgs),
    /// Start the simulator and extract all tables for the last 90 days into a local folder.
    Demo(DemoArgs),
    /// Print the table registry: names, endpoints, spans, columns and labels.
    Tables,
    /// Check each account's credentials and permission: a token and one cheap call.
    Check(CheckArgs),
    /// Report each account's daily datacube quota, per table.
    Quota(CheckArgs),
    /// Derive the tables again from the raw answers kept with --keep-raw, without the API.
    Rebuild(RebuildArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn date(s: &str) -> Result<NaiveDate, String> {
    parse_date(s)
}

/// `demo --output`: a folder or a `file://` URL. The demo's report and queries read local
/// files; a store's URL (`s3://`, or any other scheme) is refused rather than taken as a folder
/// named `s3:`.
fn local_folder(s: &str) -> Result<PathBuf, String> {
    match OutputSpec::parse(s) {
        Ok(OutputSpec::Local(dir)) => Ok(dir),
        Err(e) if !s.contains("://") || s.starts_with("file://") => Err(e),
        _ => Err(format!(
            "the demo writes to a local folder, not {s}: give a folder, or run `wxcube simulate` and \
             `wxcube extract --api-base <its URL> --output s3://…` to land the simulator's data in S3"
        )),
    }
}

#[derive(Args, Debug, Clone)]
pub struct ExtractArgs {
    /// Where to write: a folder, file:///path, or s3://bucket/prefix.
    #[arg(long, value_name = "DIR|URL")]
    pub output: String,
    /// Tables to extract, comma-separated: `all` (every current table), a family (`message`,
    /// `user`, `article`, `interface`, `article_legacy`), table names or API names.
    #[arg(long, default_value = "all", value_name = "all|FAMILY|TABLE,...")]
    pub tables: String,
    /// First Beijing date to extract, inclusive.
    #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
    pub begin: Option<NaiveDate>,
    /// Last Beijing date to extract, inclusive [default: the latest complete day].
    #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
    pub end: Option<NaiveDate>,
    #[command(flatten)]
    pub account: AccountArgs,
    /// Requests in flight at once, across accounts and tables.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Retries of a request that failed transiently (system busy, 5xx, timeouts).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub max_retries: u32,
    /// Files per partition, fixed when the output is first written (later runs must match);
    /// default 1, or N when the first run is a --shard I/N.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub buckets: Option<u32>,
    /// How the tables are kept, fixed when the output is first written: `parquet` (Hive-style
    /// folders) or `delta` (Delta Lake tables of the same files) [default: the output's;
    /// parquet for a new one].
    #[arg(long, value_enum, value_name = "parquet|delta")]
    pub format: Option<OutputFormat>,
    /// Requests in flight at once for one account.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub account_concurrency: u16,
    /// Continue each (account, table) from where the last successful run left it (state under
    /// <output>/_wxcube/state/), re-pulling the last --lookback-days days, up to --end.
    #[arg(long, conflicts_with = "begin")]
    pub incremental: bool,
    /// With --incremental: where an (account, table) without state starts.
    #[arg(long, value_parser = date, value_name = "YYYY-MM-DD", requires = "incremental")]
    pub start_date: Option<NaiveDate>,
    /// With --incremental: days re-pulled before the last complete day, since the API fills
    /// late days in.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=366), value_name = "DAYS")]
    pub lookback_days: u32,
    /// Take only the accounts of shard I of N (0-based): N tasks with the same output never
    /// write the same file.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<wxcube_connector::shard::Shard>,
    /// Keep every API answer as received, compressed, under <output>/_wxcube/raw/, so that
    /// `wxcube rebuild` can derive the tables again without calling the API.
    #[arg(long)]
    pub keep_raw: bool,
    /// Pin today's Beijing date (as at 12:00), which decides the latest complete day: for runs
    /// against a simulator started with `wxcube simulate --today`.
    #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
    pub today: Option<NaiveDate>,
    /// Print the planned requests and exit without calling the API or writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// How long this run's lease outlives its last renewal (renewed every fifth of it). A run
    /// killed without a chance to release its lease keeps others off its accounts this long on
    /// S3; on local disk its lease goes with its process.
    #[arg(long, default_value_t = wxcube_connector::write::lease::DEFAULT_LEASE.as_secs(), value_parser = clap::value_parser!(u64).range(5..=86_400), value_name = "SECS")]
    pub lease_secs: u64,
    /// How long to wait for another run that holds the same accounts and tables before giving
    /// up (exit 2). A retried task whose first try was killed waits its lease out this way.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=86_400), value_name = "SECS")]
    pub lease_wait_secs: u64,
}

/// `--format`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Parquet,
    Delta,
}

impl From<OutputFormat> for wxcube_connector::write::Format {
    fn from(f: OutputFormat) -> Self {
        match f {
            OutputFormat::Parquet => Self::Parquet,
            OutputFormat::Delta => Self::Delta,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Where to write the demo dataset: a local folder (or file:///path).
    #[arg(long, default_value = "wxcube-demo", value_name = "DIR", value_parser = local_folder)]
    pub output: PathBuf,
    /// Days to extract, ending with the latest complete day.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    /// Number of simulated accounts.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub accounts: u32,
    /// `parquet` (Hive-style folders) or `delta` (Delta Lake tables).
    #[arg(long, value_enum, default_value = "parquet", value_name = "parquet|delta")]
    pub format: OutputFormat,
}

/// Which accounts, with which credentials, against which API: shared by `extract`, `check`
/// and `quota`.
#[derive(Args, Debug, Clone)]
pub struct AccountArgs {
    /// A TOML file listing the accounts and where each one's credentials are (see README).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["appid", "secret", "secret_file", "access_token"])]
    pub config: Option<PathBuf>,
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
    /// Timeout of one request, from connect to the last byte.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600), value_name = "SECS")]
    pub timeout_secs: u64,
}

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    #[command(flatten)]
    pub account: AccountArgs,
}

#[derive(Args, Debug, Clone)]
pub struct RebuildArgs {
    /// The output written with --keep-raw: a folder, file:///path, or s3://bucket/prefix.
    #[arg(long, value_name = "DIR|URL")]
    pub output: String,
    /// Tables to rebuild, as for extract; by default every table, the legacy article tables
    /// included (whatever raw answers the output holds).
    #[arg(long, default_value = "all,article_legacy", value_name = "all|FAMILY|TABLE,...")]
    pub tables: String,
    /// The output's format, `parquet` or `delta`: a rebuild writes the tables as they were
    /// first written, and refuses the other format [default: the output's].
    #[arg(long, value_enum, value_name = "parquet|delta")]
    pub format: Option<OutputFormat>,
    /// How long this run's lease outlives its last renewal (renewed every fifth of it). A run
    /// killed without a chance to release its lease keeps others off its accounts this long on
    /// S3; on local disk its lease goes with its process.
    #[arg(long, default_value_t = wxcube_connector::write::lease::DEFAULT_LEASE.as_secs(), value_parser = clap::value_parser!(u64).range(5..=86_400), value_name = "SECS")]
    pub lease_secs: u64,
    /// How long to wait for another run that holds the same accounts and tables before giving
    /// up (exit 2). A retried task whose first try was killed waits its lease out this way.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=86_400), value_name = "SECS")]
    pub lease_wait_secs: u64,
}
